//! Argument parsing shared by every command: options in any order and any case, each at most once, and
//! error texts built in one place so they read the same everywhere.

use super::spec::{find_token, Arg};
use crate::core::limits::Range;
use crate::rm::RStr;
pub use crate::text::{err, parse_i64, shown, wrong_type, CmdError, CmdResult};

pub fn arity(command: &str) -> CmdError {
    CmdError(format!("ERR wrong number of arguments for '{}' command", command.to_ascii_lowercase()))
}

/// An integer named `name` within [min, max].
pub fn int_in(name: &str, b: &[u8], min: i64, max: i64) -> Result<i64, CmdError> {
    let v = parse_i64(b).ok_or_else(|| err(format!("{name} must be an integer, got '{}'", shown(b))))?;
    if v < min || v > max {
        return Err(err(format!("{name} must be between {min} and {max}, got {v}")));
    }
    Ok(v)
}

/// An integer within `range`, named by the range in errors.
pub fn int_range(b: &[u8], range: Range) -> Result<i64, CmdError> {
    int_in(range.name, b, range.min, range.max)
}

/// Walks `KEYWORD [value]` options after the positional arguments. The words it knows are the option tokens
/// of the command's table entry (spec.rs), so the parser and the command docs cannot disagree.
pub struct Options<'a> {
    args: &'a [RStr<'a>],
    pos: usize,
    seen: u64,
    spec: &'static [Arg],
}

impl<'a> Options<'a> {
    pub fn new(args: &'a [RStr<'a>], start: usize, spec: &'static [Arg]) -> Self {
        Options { args, pos: start, seen: 0, spec }
    }

    /// The next option's token (as the table spells it). Unknown and repeated options are errors.
    pub fn next_option(&mut self) -> Result<Option<&'static str>, CmdError> {
        let Some(arg) = self.args.get(self.pos) else { return Ok(None) };
        let word = arg.bytes();
        self.pos += 1;
        let Some((i, token)) = find_token(self.spec, word) else {
            return Err(err(format!("unknown option '{}'", shown(word))));
        };
        // A repeatable option (AFTER) may come again; any other only once.
        let repeatable = self.spec.iter().any(|a| a.token == Some(token) && a.multiple);
        if self.seen & (1 << i) != 0 && !repeatable {
            return Err(err(format!("option '{token}' given twice")));
        }
        self.seen |= 1 << i;
        Ok(Some(token))
    }

    /// The arguments not read yet, left unread (BULK looks for where its options end).
    pub fn remaining(&self) -> &'a [RStr<'a>] {
        let args: &'a [RStr<'a>] = self.args;
        args.get(self.pos..).unwrap_or(&[])
    }

    pub fn value(&mut self, name: &str) -> Result<&'a [u8], CmdError> {
        Ok(self.arg_value(name)?.bytes())
    }

    pub fn raw_value(&mut self, name: &str) -> Result<RStr<'a>, CmdError> {
        self.arg_value(name).copied()
    }

    fn arg_value(&mut self, name: &str) -> Result<&'a RStr<'a>, CmdError> {
        let args: &'a [RStr<'a>] = self.args;
        let Some(v) = args.get(self.pos) else {
            return Err(err(format!("option '{name}' needs a value")));
        };
        self.pos += 1;
        Ok(v)
    }

    /// Every argument left, consumed (an option that takes the rest, such as RESERVE's ALSO).
    pub fn rest(&mut self) -> &'a [RStr<'a>] {
        let args: &'a [RStr<'a>] = self.args;
        let rest = args.get(self.pos..).unwrap_or(&[]);
        self.pos = args.len();
        rest
    }

    /// Where the next argument is (a key's position, for the server's getkeys request).
    pub fn position(&self) -> usize {
        self.pos
    }

    /// The value of the option just read, as an integer in `range` (named by the range).
    pub fn int(&mut self, range: Range) -> Result<i64, CmdError> {
        let v = self.value(range.name)?;
        int_range(v, range)
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
