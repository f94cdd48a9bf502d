//! Client text in and out: error replies built in one place so they read the same everywhere, integers
//! in decimal, and how client input is quoted back in errors.

use crate::core::limits::QUOTE_BYTES;

/// How an argument is echoed in an error: printable ASCII only, cut short.
pub fn shown(b: &[u8]) -> String {
    let mut s: String =
        b.iter().take(QUOTE_BYTES).map(|&c| if (0x20..0x7f).contains(&c) { c as char } else { '?' }).collect();
    if b.len() > QUOTE_BYTES {
        s.push_str("...");
    }
    s
}

pub fn parse_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse::<i64>().ok()
}

#[derive(Debug)]
pub struct CmdError(pub String);

pub type CmdResult = Result<(), CmdError>;

pub fn err(msg: impl Into<String>) -> CmdError {
    CmdError(format!("ERR {}", msg.into()))
}

pub fn wrong_type() -> CmdError {
    CmdError("WRONGTYPE Operation against a key holding the wrong kind of value".into())
}
