//! The ONCE.* commands: each file parses one command, calls the core and replies; spec.rs is the table of
//! them all. This file runs a handler safely, registers the table, and applies a change to a list of ids.

pub mod ack;
pub mod args;
pub mod bulk;
pub mod deps;
pub mod docs;
pub mod events;
pub mod extend;
pub mod groups;
pub mod histogram;
pub mod inspect;
pub mod internal;
pub mod lists;
pub mod manage;
pub mod nack;
pub mod operate;
pub mod push;
pub mod reserve;
pub mod result;
pub mod schedule;
pub mod spec;
pub mod stats;
pub mod table;

use std::ffi::c_int;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::rm::{self, Ctx, RStr, RawCtx, RawStr};
pub use crate::service::{existing, existing_or_new, settle};
use crate::value::QueueValue;
use args::{CmdError, CmdResult};
pub use table::register;

/// What a change by ids is: the command it replicates as, the words that follow the ids in that record
/// (`RESULT data`), and the outcome of a job it finishes that is not kept (for clients waiting on it).
pub struct ByIds<'a> {
    pub cmd: &'static [u8],
    pub tail: &'a [rm::OwnedStr],
    pub ended: &'a dyn Fn(&crate::core::Job, u64) -> crate::core::queue::Finish,
}

/// Applies `change` (given the job's seq, the time and the id's place in `ids`) to each job named in `ids`; replicates
/// `cmd key <ids that took effect> <tail>` at that time (these commands are deterministic given it), wakes the
/// clients waiting on a job it finished, and settles the queue. Returns how many took effect.
pub fn change_by_ids(
    ctx: Ctx<'_>,
    how: ByIds,
    key: RStr<'_>,
    v: &mut QueueValue,
    ids: &[RStr<'_>],
    change: impl Fn(&mut crate::core::Queue, u64, u64, usize) -> bool,
) -> u64 {
    let before = v.snapshot();
    let now = rm::now_ms();
    let mut done = vec![rm::OwnedStr::retain(key)];
    for (i, &id) in ids.iter().enumerate() {
        if let Some(seq) = v.queue.find(id.bytes()) {
            let watch = crate::waiters::before(ctx, key, &v.queue, seq);
            if change(&mut v.queue, seq, now, i) {
                done.push(rm::OwnedStr::retain(id));
                crate::waiters::after(ctx, key, &v.queue, seq, watch, |j| (how.ended)(j, now));
            }
        }
    }
    let n = done.len() as u64 - 1;
    if n > 0 {
        crate::config::write_fault_point("an ACK, RETRY or CANCEL");
        done.extend(how.tail.iter().map(|a| rm::OwnedStr::retain(a.as_rstr())));
        crate::effects::at(ctx, now, how.cmd, &done);
        settle(ctx, key, v, before);
    }
    n
}

pub type Handler = fn(Ctx<'_>, &[RStr<'_>]) -> CmdResult;

/// A blocked client's callback when its key is signalled (RESERVE, EVENTS): `serve` replies and says true,
/// or says false to keep the client waiting. Neither an error nor a panic escapes into Redis; a panic in a
/// write (`writes`: RESERVE) stops the server, as in `run`.
pub fn serve_blocked(
    ctx: RawCtx,
    writes: bool,
    serve: impl for<'a> FnOnce(Ctx<'a>) -> Result<bool, CmdError>,
) -> c_int {
    rm::callback(ctx, |ctx| serve_blocked_in(ctx, writes, serve))
}

fn serve_blocked_in<'a>(ctx: Ctx<'a>, writes: bool, serve: impl FnOnce(Ctx<'a>) -> Result<bool, CmdError>) -> c_int {
    let began = rm::begin_command();
    let outcome = catch_unwind(AssertUnwindSafe(|| serve(ctx)));
    if began {
        rm::end_command(ctx);
    }
    match outcome {
        Ok(Ok(true)) => rm::OK,
        Ok(Ok(false)) => rm::ERR,
        Ok(Err(CmdError(msg))) => {
            rm::reply_error(ctx, &msg);
            rm::OK
        }
        Err(_) if writes => stop_after_write_panic(ctx),
        Err(_) => {
            rm::reply_error(ctx, "ERR internal error in the once module (see the server log)");
            rm::OK
        }
    }
}

/// A write panicked, perhaps between changing a queue and replicating it: going on would leave this node, its
/// replicas and its AOF with different queues, so the server stops, as Redis does on a failed assertion, and
/// restarts from what it persisted and replicated.
fn stop_after_write_panic(ctx: Ctx<'_>) -> ! {
    rm::log(
        ctx,
        "warning",
        "once: a write command panicked (a bug: see the panic above); stopping the server so that it cannot part \
         from its replicas and its AOF",
    );
    std::process::abort();
}

/// Runs a handler so that neither an error nor a panic escapes into Redis: a read's panic fails the read, a
/// write's stops the server (`stop_after_write_panic`).
pub fn run(ctx: RawCtx, argv: *mut RawStr, argc: c_int, handler: Handler, writes: bool) -> c_int {
    rm::command(ctx, argv, argc, |ctx, args| run_in(ctx, args, handler, writes))
}

fn run_in(ctx: Ctx<'_>, args: &[RStr<'_>], handler: Handler, writes: bool) -> c_int {
    // What the command replicates goes out as one record when it ends (nothing was sent if it panicked: a
    // write then stops the server before this).
    let began = rm::begin_command();
    let outcome = catch_unwind(AssertUnwindSafe(|| handler(ctx, args)));
    if began && (outcome.is_ok() || !writes) {
        rm::end_command(ctx);
    }
    match outcome {
        Ok(Ok(())) => {}
        Ok(Err(CmdError(msg))) => rm::reply_error(ctx, &msg),
        Err(_) if writes => stop_after_write_panic(ctx),
        Err(_) => rm::reply_error(ctx, "ERR internal error in the once module (see the server log)"),
    }
    rm::OK
}
