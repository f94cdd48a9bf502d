//! Argument parsing shared by every command: options in any order and any case, each at most once, and
//! error texts built in one place so they read the same everywhere.

use crate::rm::{bytes, RStr};

#[derive(Debug)]
pub struct CmdError(pub String);

pub type CmdResult = Result<(), CmdError>;

pub fn err(msg: impl Into<String>) -> CmdError {
    CmdError(format!("ERR {}", msg.into()))
}

pub fn wrong_type() -> CmdError {
    CmdError("WRONGTYPE Operation against a key holding the wrong kind of value".into())
}

pub fn arity(command: &str) -> CmdError {
    CmdError(format!("ERR wrong number of arguments for '{}' command", command.to_ascii_lowercase()))
}

/// How an argument is echoed in an error: printable ASCII only, cut short.
pub fn shown(b: &[u8]) -> String {
    let mut s: String = b.iter().take(64).map(|&c| if (0x20..0x7f).contains(&c) { c as char } else { '?' }).collect();
    if b.len() > 64 {
        s.push_str("...");
    }
    s
}

pub fn parse_i64(b: &[u8]) -> Option<i64> {
    std::str::from_utf8(b).ok()?.parse::<i64>().ok()
}

/// An integer named `name` within [min, max].
pub fn int_in(name: &str, b: &[u8], min: i64, max: i64) -> Result<i64, CmdError> {
    let v = parse_i64(b).ok_or_else(|| err(format!("{name} must be an integer, got '{}'", shown(b))))?;
    if v < min || v > max {
        return Err(err(format!("{name} must be between {min} and {max}, got {v}")));
    }
    Ok(v)
}

pub const MAX_MS_10Y: i64 = 315_360_000_000;
pub const MAX_LEASE: i64 = 604_800_000;

/// Walks `KEYWORD [value]` options after the positional arguments.
pub struct Options<'a> {
    args: &'a [RStr],
    pos: usize,
    seen: u64,
}

impl<'a> Options<'a> {
    pub fn new(args: &'a [RStr], start: usize) -> Self {
        Options { args, pos: start, seen: 0 }
    }

    /// The next option, as an index into `known`. Unknown and repeated options are errors.
    pub fn next(&mut self, known: &[&'static str]) -> Result<Option<usize>, CmdError> {
        let Some(&arg) = self.args.get(self.pos) else { return Ok(None) };
        let word = bytes(arg);
        self.pos += 1;
        let Some(i) = known.iter().position(|k| k.as_bytes().eq_ignore_ascii_case(word)) else {
            return Err(err(format!("unknown option '{}'", shown(word))));
        };
        if self.seen & (1 << i) != 0 {
            return Err(err(format!("option '{}' given twice", known[i])));
        }
        self.seen |= 1 << i;
        Ok(Some(i))
    }

    pub fn value(&mut self, name: &str) -> Result<&'a [u8], CmdError> {
        let v = self.raw_value(name)?;
        Ok(bytes(v))
    }

    pub fn raw_value(&mut self, name: &str) -> Result<RStr, CmdError> {
        let Some(&v) = self.args.get(self.pos) else {
            return Err(err(format!("option '{name}' needs a value")));
        };
        self.pos += 1;
        Ok(v)
    }

    pub fn int(&mut self, name: &str, min: i64, max: i64) -> Result<i64, CmdError> {
        let v = self.value(name)?;
        int_in(name, v, min, max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ints_are_checked_by_name_and_range() {
        assert_eq!(int_in("DELAY", b"5", 0, 10).ok(), Some(5));
        assert_eq!(int_in("DELAY", b"x", 0, 10).unwrap_err().0, "ERR DELAY must be an integer, got 'x'");
        assert_eq!(int_in("DELAY", b"-1", 0, 10).unwrap_err().0, "ERR DELAY must be between 0 and 10, got -1");
        assert_eq!(int_in("DELAY", b"1.5", 0, 10).unwrap_err().0, "ERR DELAY must be an integer, got '1.5'");
        assert_eq!(shown(b"a\r\nb"), "a??b");
    }
}
