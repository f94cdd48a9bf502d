//! The registration table: every command with its handler, flags, key access, arity and grammar (spec.rs), and
//! `register`, which gives the server each of them with its docs, key spec and ACL categories.

use std::ffi::{c_int, CString};

use super::spec::*;
use super::{
    ack, bulk, deps, docs, events, extend, groups, histogram, inspect, internal, lists, manage, nack, operate, push,
    reserve, result, run, schedule, stats,
};
use crate::rm::{self, Ctx, RawCtx, RawStr};

/// What Redis calls: a handler wrapped by `run`, so no error or panic escapes.
pub type Entry = extern "C" fn(RawCtx, *mut RawStr, c_int) -> c_int;

macro_rules! entry {
    ($handler:path, $flags:literal) => {{
        extern "C" fn cmd(ctx: RawCtx, argv: *mut RawStr, argc: c_int) -> c_int {
            run(ctx, argv, argc, $handler, $flags.starts_with("write"))
        }
        cmd as Entry
    }};
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
    cmd!("ONCE.PUSH", push::push, "write deny-oom fast getkeys-api", Insert, -3, PUSH_ARGS,
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
    cmd!("ONCE.AFTER", deps::after, "write deny-oom getkeys-api", Update, -6, AFTER_ARGS,
        "Gives a waiting job more dependencies: it runs once they complete too",
        "O(N) for N ids named, plus the walk that checks for a cycle"),
    cmd!("ONCE.DEPS", deps::deps, "readonly", Read, -3, DEPS_ARGS,
        "Shows the jobs a job waits or waited on: each one's queue, id, state, outcome and result or error",
        "O(N) for N dependencies shown"),
    cmd!("ONCE.RESULT", result::result, "readonly blocking", Read, -3, RESULT_ARGS,
        "Shows a job's outcome (state, result or error, attempts, finished); with BLOCK waits until it finishes",
        "O(1); with BLOCK it may wait"),
    cmd!("ONCE.CALL", result::call, "write deny-oom blocking getkeys-api", Insert, -3, CALL_ARGS,
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
    internal_cmd!("ONCE._NOTIFY", internal::notify),
    internal_cmd!("ONCE._BACKLOG", internal::backlog),
];

/// Registers every command of the table with its docs and key spec, and (where the server has the API) its
/// ACL categories.
pub fn register(ctx: Ctx<'_>) -> Result<(), String> {
    let with_once = rm::add_acl_category(ctx, &CString::new("once").map_err(|e| e.to_string())?);
    for c in COMMANDS {
        // Lower case, as Redis names its own commands: COMMAND INFO, commandstats and error texts show it so.
        let name = CString::new(c.name.to_ascii_lowercase()).map_err(|e| e.to_string())?;
        let flags = CString::new(c.flags).map_err(|e| e.to_string())?;
        if !rm::create_command(ctx, &name, c.entry, &flags) {
            return Err(format!("could not register {}", c.name));
        }
        if !rm::set_command_info(ctx, &name, &docs::command_doc(c)?) {
            return Err(format!("the server refused the docs of {}", c.name));
        }
        let categories = CString::new(c.acl_categories(with_once)).map_err(|e| e.to_string())?;
        if rm::has_acl_categories() && !rm::set_acl_categories(ctx, &name, &categories) {
            return Err(format!("could not put {} in the ACL categories {:?}", c.name, categories));
        }
    }
    Ok(())
}
