//! The grammar of every command: its arguments, their tokens and kinds. The command docs (`COMMAND DOCS`,
//! redis-cli hints) and the option parser both read it, so what the docs promise is exactly what the parser
//! accepts; the registration table (table.rs) names each command's grammar.

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Key,
    Str,
    Int,
    UnixTime,
    /// A keyword with no value (`DEAD`).
    Token,
    /// Exactly one of the sub-arguments.
    OneOf(&'static [Arg]),
    /// A group of sub-arguments given together.
    Block(&'static [Arg]),
}

#[derive(Clone, Copy, Debug)]
pub struct Arg {
    pub name: &'static str,
    pub kind: Kind,
    /// The keyword that introduces the value (`DELAY` in `DELAY ms`).
    pub token: Option<&'static str>,
    pub optional: bool,
    pub multiple: bool,
}

const fn pos(name: &'static str, kind: Kind) -> Arg {
    Arg { name, kind, token: None, optional: false, multiple: false }
}

const fn many(name: &'static str, kind: Kind) -> Arg {
    Arg { name, kind, token: None, optional: false, multiple: true }
}

/// An optional `TOKEN value` (or a bare token for `Kind::Token`).
const fn opt(token: &'static str, name: &'static str, kind: Kind) -> Arg {
    Arg { name, kind, token: Some(token), optional: true, multiple: false }
}

const fn one_of(name: &'static str, choices: &'static [Arg]) -> Arg {
    Arg { name, kind: Kind::OneOf(choices), token: None, optional: true, multiple: false }
}

/// A required choice among fixed words (`ready|delayed`).
const fn word(name: &'static str) -> Arg {
    Arg { name, kind: Kind::Token, token: Some(name), optional: false, multiple: false }
}

/// What a command does to its key, for key specs and ACL checks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    Read,
    /// Reads and inserts (PUSH, SCHEDULE).
    Insert,
    /// Reads and changes what is there.
    Update,
    /// Reads and removes (ACK, CANCEL, UNSCHEDULE).
    Delete,
}

/// Every option token of `args`, walking into choices and blocks, in a fixed order.
pub fn tokens(args: &'static [Arg], out: &mut Vec<&'static str>) {
    for a in args {
        if let (Some(t), true) = (a.token, a.optional) {
            out.push(t);
        }
        if let Kind::OneOf(sub) | Kind::Block(sub) = a.kind {
            tokens(sub, out);
        }
    }
}

/// The option token of `args` that `word` names (any case), with its place in `tokens` order.
pub fn find_token(args: &'static [Arg], word: &[u8]) -> Option<(usize, &'static str)> {
    fn walk(args: &'static [Arg], word: &[u8], i: &mut usize) -> Option<(usize, &'static str)> {
        for a in args {
            if let (Some(t), true) = (a.token, a.optional) {
                if t.as_bytes().eq_ignore_ascii_case(word) {
                    return Some((*i, t));
                }
                *i += 1;
            }
            if let Kind::OneOf(sub) | Kind::Block(sub) = a.kind {
                if let Some(found) = walk(sub, word, i) {
                    return Some(found);
                }
            }
        }
        None
    }
    walk(args, word, &mut 0)
}

use Kind::{Int, Key, Str, Token, UnixTime};

const KEY: Arg = pos("queue", Key);
const JOB_OPTIONS: [Arg; 4] = [
    opt("RETRIES", "retries", Int),
    opt("BACKOFF", "backoff-ms", Int),
    opt("LEASE", "lease-ms", Int),
    opt("PRIORITY", "priority", Int),
];

/// PUSH's arguments, then what a command built on PUSH adds (CALL's TIMEOUT and CANCEL).
macro_rules! push_args {
    ($($more:expr),*) => {
        &[
            KEY,
            pos("payload", Str),
            opt("ID", "id", Str),
            one_of("when", &[opt("DELAY", "delay-ms", Int), opt("AT", "unix-time-ms", UnixTime)]),
            JOB_OPTIONS[0],
            JOB_OPTIONS[1],
            JOB_OPTIONS[2],
            JOB_OPTIONS[3],
            opt("GROUP", "group", Str),
            opt("KEEP", "keep-ms", Int),
            Arg {
                name: "ttl",
                kind: Kind::Block(&[pos("ms", Int), opt("DROP", "drop", Token)]),
                token: Some("TTL"),
                optional: true,
                multiple: false,
            },
            Arg {
                name: "after",
                kind: Kind::Block(&[pos("dep-queue", Key), pos("n", Int), many("id", Str)]),
                token: Some("AFTER"),
                optional: true,
                multiple: true,
            },
            opt("ON-FAIL", "policy", Kind::OneOf(&[word("fail"), word("ignore"), word("continue")])),
            $($more),*
        ]
    };
}

/// ONCE.AFTER: a waiting job, then clauses of `dep-queue n id ...` (parsed by deps.rs).
pub const AFTER_ARGS: &[Arg] = &[
    KEY,
    pos("id", Str),
    Arg {
        name: "dependencies",
        kind: Kind::Block(&[pos("dep-queue", Key), pos("n", Int), many("id", Str)]),
        token: None,
        optional: false,
        multiple: true,
    },
];

pub const DEPS_ARGS: &[Arg] = &[KEY, pos("id", Str), opt("FROM", "index", Int), opt("COUNT", "count", Int)];

pub const PUSH_ARGS: &[Arg] = push_args!();

pub const CALL_ARGS: &[Arg] = push_args!(
    // Required (result.rs says so): the parser knows only optional tokens.
    opt("TIMEOUT", "timeout-ms", Int),
    opt("CANCEL", "cancel", Token)
);

pub const RESULT_ARGS: &[Arg] = &[KEY, pos("id", Str), opt("BLOCK", "timeout-ms", Int)];
pub const PROGRESS_ARGS: &[Arg] = &[KEY, pos("id", Str), pos("data", Str), opt("ATTEMPT", "attempt", Int)];

/// BULK: PUSH's options but ID, then the lists (parsed by bulk.rs: PAYLOADS is no option).
pub const BULK_ARGS: &[Arg] = &[
    KEY,
    one_of("when", &[opt("DELAY", "delay-ms", Int), opt("AT", "unix-time-ms", UnixTime)]),
    JOB_OPTIONS[0],
    JOB_OPTIONS[1],
    JOB_OPTIONS[2],
    JOB_OPTIONS[3],
    opt("GROUP", "group", Str),
    Arg { name: "id", kind: Str, token: Some("IDS"), optional: true, multiple: true },
    Arg { name: "payload", kind: Str, token: Some("PAYLOADS"), optional: false, multiple: true },
];

/// `n id attempt [id attempt ...]`: finished reservations, each fenced (RESERVE's ACKS and ACK's).
const FENCED_ACKS: Kind = Kind::Block(&[
    pos("n", Int),
    Arg {
        name: "reservation",
        kind: Kind::Block(&[pos("id", Str), pos("attempt", Int)]),
        token: None,
        optional: false,
        multiple: true,
    },
]);

pub const RESERVE_ARGS: &[Arg] = &[
    KEY,
    opt("COUNT", "count", Int),
    opt("BLOCK", "timeout-ms", Int),
    opt("LEASE", "lease-ms", Int),
    Arg {
        name: "ack",
        kind: Kind::Block(&[pos("id", Str), opt("ATTEMPT", "attempt", Int), opt("RESULT", "data", Str)]),
        token: Some("ACK"),
        optional: true,
        multiple: false,
    },
    Arg { name: "acks", kind: FENCED_ACKS, token: Some("ACKS"), optional: true, multiple: false },
    opt("WITHACK", "withack", Token),
    Arg { name: "also", kind: Key, token: Some("ALSO"), optional: true, multiple: true },
];

pub const ACK_ARGS: &[Arg] = &[
    KEY,
    Arg {
        name: "which",
        kind: Kind::OneOf(&[
            Arg {
                name: "ids",
                kind: Kind::Block(&[many("id", Str), opt("ATTEMPT", "attempt", Int), opt("RESULT", "data", Str)]),
                token: None,
                optional: false,
                multiple: false,
            },
            Arg { name: "fenced", kind: FENCED_ACKS, token: Some("ACKS"), optional: false, multiple: false },
        ]),
        token: None,
        optional: false,
        multiple: false,
    },
];

pub const NACK_ARGS: &[Arg] = &[
    KEY,
    pos("id", Str),
    opt("ATTEMPT", "attempt", Int),
    opt("ERROR", "message", Str),
    one_of("then", &[opt("DELAY", "delay-ms", Int), opt("DEAD", "dead", Token)]),
];

pub const EXTEND_ARGS: &[Arg] = &[KEY, pos("id", Str), pos("ms", Int), opt("ATTEMPT", "attempt", Int)];

pub const IDS_ARGS: &[Arg] = &[KEY, many("id", Str)];
pub const RETRY_ARGS: &[Arg] = &[
    KEY,
    Arg {
        name: "which",
        kind: Kind::OneOf(&[word("ALL"), many("id", Str)]),
        token: None,
        optional: false,
        multiple: false,
    },
];
const STATE_ARG: Arg = Arg {
    name: "state",
    kind: Kind::OneOf(&[
        word("ready"),
        word("delayed"),
        word("reserved"),
        word("dead"),
        word("completed"),
        word("cancelled"),
    ]),
    token: None,
    optional: false,
    multiple: false,
};
pub const LIST_ARGS: &[Arg] = &[
    KEY,
    STATE_ARG,
    opt("CURSOR", "cursor", Str),
    opt("COUNT", "count", Int),
    opt("WITHPAYLOADS", "withpayloads", Token),
    opt("MATCH", "pattern", Str),
];
pub const PURGE_ARGS: &[Arg] = &[
    KEY,
    Arg {
        name: "state",
        kind: Kind::OneOf(&[word("ready"), word("delayed"), word("dead"), word("completed")]),
        token: None,
        optional: false,
        multiple: false,
    },
];
const RATE_PARTS: &[Arg] =
    &[pos("n", Int), Arg { name: "per-ms", kind: Int, token: Some("PER"), optional: false, multiple: false }];

/// `TOKEN n PER ms`: a rate limit.
const fn rate(name: &'static str, token: &'static str) -> Arg {
    Arg { name, kind: Kind::Block(RATE_PARTS), token: Some(token), optional: true, multiple: false }
}

pub const CONFIGURE_ARGS: &[Arg] = &[
    KEY,
    JOB_OPTIONS[0],
    JOB_OPTIONS[1],
    JOB_OPTIONS[2],
    opt("DEAD-MAX", "n", Int),
    opt("DEAD-TTL", "ms", Int),
    opt("EVENTS-MAX", "n", Int),
    opt("CONCURRENCY", "n", Int),
    rate("rate", "RATE"),
    opt("GROUP-CONCURRENCY", "n", Int),
    rate("group-rate", "GROUP-RATE"),
    opt("KEEP", "ms", Int),
    opt("KEEP-MAX", "n", Int),
];
pub const ID_ARGS: &[Arg] = &[KEY, pos("id", Str)];
pub const EVENTS_ARGS: &[Arg] =
    &[KEY, opt("AFTER", "event-id", Str), opt("COUNT", "count", Int), opt("BLOCK", "timeout-ms", Int)];
pub const GROUP_ARGS: &[Arg] =
    &[KEY, pos("name", Str), opt("CONCURRENCY", "n", Int), rate("rate", "RATE"), opt("RESET", "reset", Token)];
pub const GROUPS_ARGS: &[Arg] = &[KEY, opt("CURSOR", "cursor", Str), opt("COUNT", "count", Int)];
pub const HISTOGRAM_ARGS: &[Arg] = &[
    KEY,
    Arg {
        name: "which",
        kind: Kind::OneOf(&[word("wait"), word("run")]),
        token: None,
        optional: false,
        multiple: false,
    },
];
pub const KEY_ONLY: &[Arg] = &[KEY];
pub const LIST_PUSH_ARGS: &[Arg] = &[KEY, many("element", Str)];

pub const SCHEDULE_ARGS: &[Arg] = &[
    KEY,
    pos("name", Str),
    pos("spec", Str),
    pos("payload", Str),
    JOB_OPTIONS[0],
    JOB_OPTIONS[1],
    JOB_OPTIONS[2],
    JOB_OPTIONS[3],
    opt("TZ", "zone", Str),
    opt("MISSED", "policy", Kind::OneOf(&[word("once"), word("skip")])),
];

pub const UNSCHEDULE_ARGS: &[Arg] = &[KEY, pos("name", Str)];
pub const INTERNAL_ARGS: &[Arg] = &[KEY, many("field", Str)];

#[cfg(test)]
mod tests {
    use super::super::table::COMMANDS;
    use super::*;

    #[test]
    fn tokens_are_unique_per_command_and_found_by_any_case() {
        for c in COMMANDS {
            let mut t = Vec::new();
            tokens(c.args, &mut t);
            let mut sorted = t.clone();
            sorted.sort_unstable();
            sorted.dedup();
            assert_eq!(sorted.len(), t.len(), "{} repeats a token", c.name);
            assert!(t.len() <= 64, "the parser's seen-set is a u64");
            for (i, tok) in t.iter().enumerate() {
                assert_eq!(find_token(c.args, tok.to_ascii_lowercase().as_bytes()), Some((i, *tok)));
            }
        }
        assert_eq!(find_token(PUSH_ARGS, b"payload"), None);
    }
}
