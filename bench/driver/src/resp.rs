//! A minimal RESP2 client over a blocking TcpStream: commands are appended to a write buffer
//! (pipelining = several `push` then one `flush`), replies are parsed from a read buffer.

use std::io::{self, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

#[derive(Debug, Clone, PartialEq)]
pub enum Reply {
    Nil,
    Int(i64),
    Bulk(Vec<u8>),
    Simple(Vec<u8>),
    Err(String),
    Arr(Vec<Reply>),
}

impl Reply {
    pub fn arr(&self) -> Option<&[Reply]> {
        match self {
            Reply::Arr(v) => Some(v),
            _ => None,
        }
    }
    pub fn bytes(&self) -> Option<&[u8]> {
        match self {
            Reply::Bulk(b) | Reply::Simple(b) => Some(b),
            _ => None,
        }
    }
    pub fn int(&self) -> Option<i64> {
        match self {
            Reply::Int(i) => Some(*i),
            Reply::Bulk(b) | Reply::Simple(b) => std::str::from_utf8(b).ok()?.parse().ok(),
            _ => None,
        }
    }
    /// Panics with the server's message on an error reply: the driver never continues past one.
    pub fn ok(self, what: &str) -> Reply {
        if let Reply::Err(e) = &self {
            panic!("{what}: server replied error: {e}");
        }
        self
    }
    /// A field of a RESP2 flat map (`[k1, v1, k2, v2, ...]`).
    pub fn field(&self, name: &str) -> Option<&Reply> {
        let a = self.arr()?;
        let mut i = 0;
        while i + 1 < a.len() {
            if a[i].bytes() == Some(name.as_bytes()) {
                return Some(&a[i + 1]);
            }
            i += 2;
        }
        None
    }
}

pub struct Conn {
    s: TcpStream,
    rbuf: Vec<u8>,
    rpos: usize,
    rlen: usize,
    wbuf: Vec<u8>,
}

impl Conn {
    pub fn connect(port: u16) -> Conn {
        let mut last = None;
        for _ in 0..100 {
            match TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => {
                    s.set_nodelay(true).expect("nodelay");
                    return Conn { s, rbuf: vec![0; 1 << 16], rpos: 0, rlen: 0, wbuf: Vec::with_capacity(1 << 16) };
                }
                Err(e) => {
                    last = Some(e);
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        panic!("cannot connect to 127.0.0.1:{port}: {:?}", last);
    }

    /// Appends one command to the write buffer.
    pub fn push(&mut self, args: &[&[u8]]) {
        let w = &mut self.wbuf;
        w.push(b'*');
        w.extend_from_slice(itoa(args.len() as u64).as_bytes());
        w.extend_from_slice(b"\r\n");
        for a in args {
            w.push(b'$');
            w.extend_from_slice(itoa(a.len() as u64).as_bytes());
            w.extend_from_slice(b"\r\n");
            w.extend_from_slice(a);
            w.extend_from_slice(b"\r\n");
        }
    }

    pub fn has_pending(&self) -> bool {
        !self.wbuf.is_empty()
    }

    pub fn flush(&mut self) {
        if !self.wbuf.is_empty() {
            self.s.write_all(&self.wbuf).expect("write to server");
            self.wbuf.clear();
        }
    }

    pub fn call(&mut self, args: &[&[u8]]) -> Reply {
        self.push(args);
        self.flush();
        self.read()
    }

    pub fn call_str(&mut self, args: &[&str]) -> Reply {
        let v: Vec<&[u8]> = args.iter().map(|a| a.as_bytes()).collect();
        self.call(&v)
    }

    fn fill(&mut self) -> io::Result<()> {
        if self.rpos == self.rlen {
            self.rpos = 0;
            self.rlen = 0;
        } else if self.rpos > 0 && self.rlen == self.rbuf.len() {
            self.rbuf.copy_within(self.rpos..self.rlen, 0);
            self.rlen -= self.rpos;
            self.rpos = 0;
        }
        if self.rlen == self.rbuf.len() {
            let n = self.rbuf.len() * 2;
            self.rbuf.resize(n, 0);
        }
        let n = self.s.read(&mut self.rbuf[self.rlen..])?;
        if n == 0 {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "server closed the connection"));
        }
        self.rlen += n;
        Ok(())
    }

    fn line(&mut self) -> Vec<u8> {
        loop {
            if let Some(i) = self.rbuf[self.rpos..self.rlen].windows(2).position(|w| w == b"\r\n") {
                let end = self.rpos + i;
                let l = self.rbuf[self.rpos..end].to_vec();
                self.rpos = end + 2;
                return l;
            }
            self.fill().expect("read from server");
        }
    }

    fn exact(&mut self, n: usize) -> Vec<u8> {
        while self.rlen - self.rpos < n + 2 {
            self.fill().expect("read from server");
        }
        let v = self.rbuf[self.rpos..self.rpos + n].to_vec();
        self.rpos += n + 2;
        v
    }

    pub fn read(&mut self) -> Reply {
        let l = self.line();
        let (t, rest) = (l[0], &l[1..]);
        let num = || -> i64 { std::str::from_utf8(rest).unwrap().parse().unwrap() };
        match t {
            b'+' => Reply::Simple(rest.to_vec()),
            b'-' => Reply::Err(String::from_utf8_lossy(rest).into_owned()),
            b':' => Reply::Int(num()),
            b'$' => {
                let n = num();
                if n < 0 {
                    Reply::Nil
                } else {
                    Reply::Bulk(self.exact(n as usize))
                }
            }
            b'*' => {
                let n = num();
                if n < 0 {
                    Reply::Nil
                } else {
                    let mut v = Vec::with_capacity(n as usize);
                    for _ in 0..n {
                        v.push(self.read());
                    }
                    Reply::Arr(v)
                }
            }
            _ => panic!("unexpected RESP type byte {:?}", t as char),
        }
    }
}

pub fn itoa(n: u64) -> String {
    n.to_string()
}
