//! One table describes every command: its handler, flags, key access, arity and arguments. Registration,
//! the command docs (`COMMAND DOCS`, redis-cli hints) and the option parser all read it, so what the docs
//! promise is exactly what the parser accepts.

use std::ffi::c_int;

use super::{
    ack, bulk, events, extend, groups, histogram, inspect, internal, lists, manage, nack, operate, push, reserve,
    result, run, schedule, stats,
};
use crate::rm::{Ctx, RStr};

/// What Redis calls: a handler wrapped by `run`, so no error or panic escapes.
pub type Entry = extern "C" fn(Ctx, *mut RStr, c_int) -> c_int;

macro_rules! entry {
    ($handler:path, $flags:literal) => {{
        extern "C" fn cmd(ctx: Ctx, argv: *mut RStr, argc: c_int) -> c_int {
            run(ctx, argv, argc, $handler, $flags.starts_with("write"))
        }
        cmd as Entry
    }};
}

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

pub struct Command {
    pub name: &'static str,
    pub entry: Entry,
    /// What `entry` runs: `ONCE._MANY` calls it for each record it replays.
    pub handler: super::Handler,
    pub flags: &'static str,
    pub access: Access,
    /// Redis arity: negative means "at least".
    pub arity: i32,
    pub summary: &'static str,
    pub complexity: &'static str,
    pub args: &'static [Arg],
}

impl Command {
    pub fn is_internal(&self) -> bool {
        self.name.starts_with("ONCE._")
    }

    /// The ACL categories its flags imply, as the server gives its own commands: `write` or `read`, `fast` or
    /// `slow`, `blocking` where it may block; `once` for the public ones (where the server lets a module add a
    /// category); the internal ones also `admin` and `dangerous`, since they change state outside the contract.
    pub fn acl_categories(&self, with_once: bool) -> String {
        let has = |flag: &str| self.flags.split(' ').any(|f| f == flag);
        let mut cats = vec![if has("write") { "write" } else { "read" }, if has("fast") { "fast" } else { "slow" }];
        if has("blocking") {
            cats.push("blocking");
        }
        if self.is_internal() {
            cats.extend(["admin", "dangerous"]);
        } else if with_once {
            cats.push("once");
        }
        cats.join(" ")
    }
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
            $($more),*
        ]
    };
}

pub const PUSH_ARGS: &[Arg] = push_args!();

pub const CALL_ARGS: &[Arg] = push_args!(
    // Required (call.rs says so): the parser knows only optional tokens.
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
    Arg {
        name: "acks",
        kind: Kind::Block(&[
            pos("n", Int),
            Arg {
                name: "reservation",
                kind: Kind::Block(&[pos("id", Str), pos("attempt", Int)]),
                token: None,
                optional: false,
                multiple: true,
            },
        ]),
        token: Some("ACKS"),
        optional: true,
        multiple: false,
    },
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
            Arg {
                name: "fenced",
                kind: Kind::Block(&[
                    pos("n", Int),
                    Arg {
                        name: "reservation",
                        kind: Kind::Block(&[pos("id", Str), pos("attempt", Int)]),
                        token: None,
                        optional: false,
                        multiple: true,
                    },
                ]),
                token: Some("ACKS"),
                optional: false,
                multiple: false,
            },
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

const IDS_ARGS: &[Arg] = &[KEY, many("id", Str)];
const RETRY_ARGS: &[Arg] = &[
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
const PURGE_ARGS: &[Arg] = &[
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
const ID_ARGS: &[Arg] = &[KEY, pos("id", Str)];
pub const EVENTS_ARGS: &[Arg] =
    &[KEY, opt("AFTER", "event-id", Str), opt("COUNT", "count", Int), opt("BLOCK", "timeout-ms", Int)];
pub const GROUP_ARGS: &[Arg] =
    &[KEY, pos("name", Str), opt("CONCURRENCY", "n", Int), rate("rate", "RATE"), opt("RESET", "reset", Token)];
pub const GROUPS_ARGS: &[Arg] = &[KEY, opt("CURSOR", "cursor", Str), opt("COUNT", "count", Int)];
const HISTOGRAM_ARGS: &[Arg] = &[
    KEY,
    Arg {
        name: "which",
        kind: Kind::OneOf(&[word("wait"), word("run")]),
        token: None,
        optional: false,
        multiple: false,
    },
];
const KEY_ONLY: &[Arg] = &[KEY];
const LIST_PUSH_ARGS: &[Arg] = &[KEY, many("element", Str)];

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

const UNSCHEDULE_ARGS: &[Arg] = &[KEY, pos("name", Str)];
const INTERNAL_ARGS: &[Arg] = &[KEY, many("field", Str)];

const INTERNAL: &str = "internal: replicates one decided change (sent by a master, written to the AOF)";

macro_rules! cmd {
    ($name:literal, $handler:path, $flags:literal, $access:ident, $arity:literal, $args:expr, $summary:literal, $complexity:literal) => {
        Command {
            name: $name,
            entry: entry!($handler, $flags),
            handler: $handler,
            flags: $flags,
            access: Access::$access,
            arity: $arity,
            summary: $summary,
            complexity: $complexity,
            args: $args,
        }
    };
}

macro_rules! internal_cmd {
    ($name:literal, $handler:path) => {
        Command {
            name: $name,
            entry: entry!($handler, "write"),
            handler: $handler,
            flags: "write",
            access: Access::Update,
            arity: -3,
            summary: INTERNAL,
            complexity: "O(k log n) for k jobs named",
            args: INTERNAL_ARGS,
        }
    };
}

pub static COMMANDS: &[Command] = &[
    cmd!("ONCE.PUSH", push::push, "write deny-oom fast", Insert, -3, PUSH_ARGS,
        "Adds a job to a queue, ready now or delayed; with ID, adds nothing while that id is live",
        "O(1) for a ready job, O(log n) for a delayed one"),
    cmd!("ONCE.BULK", bulk::bulk, "write deny-oom", Insert, -4, BULK_ARGS,
        "Adds many jobs with the same options in one step, all or none; with IDS, each id adds nothing while it is live",
        "O(N) for N payloads, O(N log n) when delayed"),
    cmd!("ONCE.RESERVE", reserve::reserve, "write blocking", Update, -2, RESERVE_ARGS,
        "Reserves the next ready jobs under a lease, optionally waiting for one and acknowledging the previous job",
        "O(COUNT log n); with BLOCK it may wait"),
    cmd!("ONCE.ACK", ack::ack, "write fast", Delete, -3, ACK_ARGS,
        "Completes reserved jobs (with ATTEMPT, only while that reservation holds); RESULT keeps one job's result",
        "O(1) per id; O(log n) when the job is kept"),
    cmd!("ONCE.RESULT", result::result, "readonly blocking", Read, -3, RESULT_ARGS,
        "Shows a job's outcome (state, result or error, attempts, finished); with BLOCK waits until it finishes",
        "O(1); with BLOCK it may wait"),
    cmd!("ONCE.CALL", result::call, "write deny-oom blocking", Insert, -3, CALL_ARGS,
        "Pushes a job and waits until it finishes, replying its outcome (nil at TIMEOUT; CANCEL cancels it then)",
        "O(1) for the push; then it waits"),
    cmd!("ONCE.PROGRESS", result::progress, "write fast", Update, -4, PROGRESS_ARGS,
        "Records a reserved job's progress (with ATTEMPT, only while that reservation holds)", "O(1)"),
    cmd!("ONCE.NACK", nack::nack, "write fast", Update, -3, NACK_ARGS,
        "Records a failed attempt: the job is retried after a backoff or becomes dead",
        "O(log n)"),
    cmd!("ONCE.EXTEND", extend::extend, "write fast", Update, -4, EXTEND_ARGS,
        "Moves a reserved job's lease deadline to now + ms", "O(log n)"),
    cmd!("ONCE.RETRY", manage::retry, "write fast", Update, -3, RETRY_ARGS,
        "Sends dead jobs (or ALL of them, in timer steps) back to ready with a fresh retry budget",
        "O(1) per id; ALL: O(1024) now, the rest in timer steps"),
    cmd!("ONCE.CANCEL", manage::cancel, "write fast", Delete, -3, IDS_ARGS,
        "Finishes jobs that have not finished, reserved ones too, as cancelled (kept for KEEP, else removed)",
        "O(log n) per id"),
    cmd!("ONCE.INSPECT", inspect::inspect, "readonly fast", Read, 3, ID_ARGS,
        "Shows one job: state, payload, attempts, times and last error", "O(1)"),
    cmd!("ONCE.STATS", stats::stats, "readonly fast", Read, 2, KEY_ONLY,
        "Counts a queue's jobs by state and its totals since it was made", "O(1)"),
    cmd!("ONCE.SCHEDULE", schedule::schedule, "write deny-oom", Insert, -5, SCHEDULE_ARGS,
        "Adds or replaces a cron schedule that pushes a job at every tick",
        "O(log s) plus parsing the spec"),
    cmd!("ONCE.UNSCHEDULE", schedule::unschedule, "write fast", Delete, 3, UNSCHEDULE_ARGS,
        "Removes a schedule", "O(log s)"),
    cmd!("ONCE.SCHEDULES", schedule::schedules, "readonly", Read, 2, KEY_ONLY,
        "Lists a queue's schedules with their next fire time", "O(s) for s schedules"),
    cmd!("ONCE.LIST", operate::list, "readonly", Read, -3, LIST_ARGS,
        "Lists a page of the jobs in one state, in the order of that state, from a cursor; MATCH keeps the jobs whose id, payload or last error match a glob",
        "O(log n + COUNT); with MATCH, O(log n) plus at most 10 x COUNT jobs examined (10000 at most)"),
    cmd!("ONCE.PURGE", operate::purge, "write", Delete, 3, PURGE_ARGS,
        "Removes every ready, delayed, dead or kept (completed and cancelled) job at once (freed in timer steps)",
        "O(1) per job; O(g) for g groups when purging ready jobs"),
    cmd!("ONCE.PAUSE", operate::pause, "write fast", Insert, 2, KEY_ONLY,
        "Stops RESERVE serving the queue (pushes, promotions and lease expiry go on)", "O(1)"),
    cmd!("ONCE.RESUME", operate::resume, "write fast", Insert, 2, KEY_ONLY,
        "Lets RESERVE serve a paused queue again; blocked reservers are served", "O(1)"),
    cmd!("ONCE.CONFIGURE", operate::configure, "write deny-oom", Insert, -2, CONFIGURE_ARGS,
        "Sets and shows a queue's own settings (a job's option wins, then these, then the module configs)",
        "O(1); O(g) for g groups when a limit changes"),
    cmd!("ONCE.GROUP", groups::group, "write deny-oom fast", Insert, -3, GROUP_ARGS,
        "Sets and shows one group's own limits (over GROUP-CONCURRENCY and GROUP-RATE) and its counts",
        "O(log g)"),
    cmd!("ONCE.GROUPS", groups::groups, "readonly", Read, -2, GROUPS_ARGS,
        "Lists a page of the queue's groups by name, from a cursor", "O(log g + COUNT)"),
    cmd!("ONCE.EVENTS", events::events, "readonly blocking", Read, -2, EVENTS_ARGS,
        "Reads the queue's event log (EVENTS-MAX) after an event id, optionally waiting for the next event",
        "O(log n + COUNT); with BLOCK it may wait"),
    cmd!("ONCE.HISTOGRAM", histogram::histogram, "readonly fast", Read, 3, HISTOGRAM_ARGS,
        "Shows the wait or run latency histogram: cumulative counts under fixed bounds in ms", "O(1)"),
    cmd!("ONCE.RPUSH", lists::rpush, "write deny-oom", Insert, -3, LIST_PUSH_ARGS,
        "What a list producer's RPUSH onto a queue becomes: one ready job per element, in order (RPUSH itself when the key is not a queue)",
        "O(n) for n elements"),
    cmd!("ONCE.LPUSH", lists::lpush, "write deny-oom", Insert, -3, LIST_PUSH_ARGS,
        "What a list producer's LPUSH onto a queue becomes: one ready job per element, in the order given (LPUSH itself when the key is not a queue)",
        "O(n) for n elements"),
    cmd!("ONCE.ADOPT", lists::adopt, "write deny-oom", Insert, 2, KEY_ONLY,
        "Turns the list under a key into a queue in one step: each element, head first, becomes a ready job",
        "O(n) for a list of n elements"),
    internal_cmd!("ONCE._JOB", internal::job),
    internal_cmd!("ONCE._RESERVE", internal::reserve),
    internal_cmd!("ONCE._FAIL", internal::fail),
    internal_cmd!("ONCE._LEASE", internal::lease),
    internal_cmd!("ONCE._PROMOTE", internal::promote),
    internal_cmd!("ONCE._META", internal::meta),
    internal_cmd!("ONCE._SCHED", internal::sched),
    internal_cmd!("ONCE._FIRED", internal::fired),
    internal_cmd!("ONCE._SETTINGS", internal::settings),
    internal_cmd!("ONCE._DROP", internal::drop),
    internal_cmd!("ONCE._AT", internal::at),
    internal_cmd!("ONCE._EVENTS", internal::events),
    internal_cmd!("ONCE._HIST", internal::hist),
    internal_cmd!("ONCE._GROUP", internal::group),
    internal_cmd!("ONCE._WINDOW", internal::window),
    internal_cmd!("ONCE._RING", internal::ring),
    internal_cmd!("ONCE._SWEEP", internal::sweep),
    internal_cmd!("ONCE._BULK", bulk::record),
    internal_cmd!("ONCE._TIMED", internal::timed),
    internal_cmd!("ONCE._MANY", internal::many),
];

#[cfg(test)]
mod tests {
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
