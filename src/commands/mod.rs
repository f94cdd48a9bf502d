//! The ONCE.* commands: each file parses one command, calls the core and replies. This file holds what
//! they share: opening a queue key, the bookkeeping after a write, and the registration table.

pub mod ack;
pub mod args;
pub mod extend;
pub mod inspect;
pub mod internal;
pub mod manage;
pub mod nack;
pub mod push;
pub mod reserve;
pub mod schedule;
pub mod stats;

use std::ffi::{c_int, CString};
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::raw;

use crate::persist::type_methods::queue_type;
use crate::rm::{self, Ctx, Key, RStr, Slot};
use crate::timer;
use crate::value::{QueueValue, Snapshot};
use args::{wrong_type, CmdError, CmdResult};

/// The queue under an open key, if there is one.
pub fn existing(key: &Key) -> Result<Option<&mut QueueValue>, CmdError> {
    match key.get::<QueueValue>(queue_type()) {
        Slot::Empty => Ok(None),
        Slot::Ours(v) => Ok(Some(v)),
        Slot::WrongType => Err(wrong_type()),
    }
}

/// The queue under an open key, made empty if the key is missing. Call only once the command is known
/// to succeed, so a failed command never leaves an empty key behind.
pub fn existing_or_new(key: &Key) -> Result<&mut QueueValue, CmdError> {
    match key.get::<QueueValue>(queue_type()) {
        Slot::Ours(v) => Ok(v),
        Slot::WrongType => Err(wrong_type()),
        Slot::Empty => key
            .set(queue_type(), QueueValue::new(crate::core::Queue::new()))
            .ok_or_else(|| args::err("could not create the queue key")),
    }
}

/// After any change to a queue: server-wide figures, wake blocked readers, and tell the timer when this
/// queue next needs it.
pub fn settle(ctx: Ctx, key: RStr, v: &mut QueueValue, before: Snapshot) {
    before.report_changes(v);
    if v.queue.stats().ready > 0 {
        rm::signal_ready(ctx, key);
    }
    note_deadline(ctx, rm::selected_db(ctx), rm::bytes(key), v);
}

/// Applies `change` to each job named in `ids`; replicates `cmd key <ids that took effect>` (these commands are
/// deterministic) and settles the queue. Returns how many took effect.
pub fn change_by_ids(
    ctx: Ctx,
    cmd: &'static [u8],
    key: RStr,
    v: &mut QueueValue,
    ids: &[RStr],
    change: fn(&mut crate::core::Queue, u64) -> bool,
) -> u64 {
    let before = v.snapshot();
    let mut done = vec![rm::OwnedStr::retain(key)];
    for &id in ids {
        if let Some(seq) = v.queue.find(rm::bytes(id)) {
            if change(&mut v.queue, seq) {
                done.push(rm::OwnedStr::retain(id));
            }
        }
    }
    let n = done.len() as u64 - 1;
    if n > 0 {
        rm::replicate(ctx, cmd, &done);
        settle(ctx, key, v, before);
    }
    n
}

pub fn note_deadline(ctx: Ctx, db: i32, key: &[u8], v: &mut QueueValue) {
    if let Some(d) = v.queue.next_deadline() {
        if d < v.noted_deadline {
            v.noted_deadline = d;
            timer::note(ctx, db, key, d);
        }
    }
}

type Handler = fn(Ctx, &[RStr]) -> CmdResult;

/// Runs a handler so that neither an error nor a panic escapes into Redis.
pub fn run(ctx: Ctx, argv: *mut RStr, argc: c_int, handler: Handler) -> c_int {
    let args: &[RStr] = if argv.is_null() || argc <= 0 {
        &[]
    } else {
        unsafe { std::slice::from_raw_parts(argv, argc as usize) }
    };
    match catch_unwind(AssertUnwindSafe(|| handler(ctx, args))) {
        Ok(Ok(())) => {}
        Ok(Err(CmdError(msg))) => rm::reply_error(ctx, &msg),
        Err(_) => rm::reply_error(ctx, "ERR internal error in the once module (see the server log)"),
    }
    rm::OK
}

macro_rules! entry {
    ($handler:path) => {{
        extern "C" fn cmd(ctx: Ctx, argv: *mut RStr, argc: c_int) -> c_int {
            run(ctx, argv, argc, $handler)
        }
        cmd as extern "C" fn(Ctx, *mut RStr, c_int) -> c_int
    }};
}

/// Every command: name, handler, flags. All take the queue key at position 1.
pub fn table() -> Vec<(&'static str, extern "C" fn(Ctx, *mut RStr, c_int) -> c_int, &'static str)> {
    vec![
        ("ONCE.PUSH", entry!(push::push), "write deny-oom fast"),
        ("ONCE.RESERVE", entry!(reserve::reserve), "write"),
        ("ONCE.ACK", entry!(ack::ack), "write fast"),
        ("ONCE.NACK", entry!(nack::nack), "write fast"),
        ("ONCE.EXTEND", entry!(extend::extend), "write fast"),
        ("ONCE.RETRY", entry!(manage::retry), "write fast"),
        ("ONCE.CANCEL", entry!(manage::cancel), "write fast"),
        ("ONCE.INSPECT", entry!(inspect::inspect), "readonly fast"),
        ("ONCE.STATS", entry!(stats::stats), "readonly fast"),
        ("ONCE.SCHEDULE", entry!(schedule::schedule), "write deny-oom"),
        ("ONCE.UNSCHEDULE", entry!(schedule::unschedule), "write fast"),
        ("ONCE.SCHEDULES", entry!(schedule::schedules), "readonly"),
        ("ONCE._JOB", entry!(internal::job), "write"),
        ("ONCE._RESERVE", entry!(internal::reserve), "write"),
        ("ONCE._FAIL", entry!(internal::fail), "write"),
        ("ONCE._LEASE", entry!(internal::lease), "write"),
        ("ONCE._PROMOTE", entry!(internal::promote), "write"),
        ("ONCE._META", entry!(internal::meta), "write"),
        ("ONCE._SCHED", entry!(internal::sched), "write"),
        ("ONCE._FIRED", entry!(internal::fired), "write"),
    ]
}

pub fn register(ctx: Ctx) -> Result<(), String> {
    for (name, func, flags) in table() {
        let cname = CString::new(name).map_err(|e| e.to_string())?;
        let cflags = CString::new(flags).map_err(|e| e.to_string())?;
        let status = unsafe {
            raw::RedisModule_CreateCommand.unwrap()(ctx, cname.as_ptr(), Some(func), cflags.as_ptr(), 1, 1, 1)
        };
        if status != rm::OK {
            return Err(format!("could not register {name}"));
        }
    }
    Ok(())
}
