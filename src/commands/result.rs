//! ONCE.RESULT queue id [BLOCK ms]: a job's outcome, optionally waiting until it finishes.
//! ONCE.CALL queue payload [PUSH options] TIMEOUT ms [CANCEL]: a push, then RESULT BLOCK on that job.
//! ONCE.PROGRESS queue id data [ATTEMPT n]: a reserved job's progress, fenced like EXTEND.
//!
//! A waiter blocks on the queue's key, as a blocked RESERVE does, and is woken by the change that finishes its
//! job (waiters.rs keeps the outcome of a job that is not kept until its waiters have it).

use std::ffi::c_int;
use std::os::raw::c_void;

use super::args::{arity, err, CmdResult, Options};
use super::push::{check_payload, push_one, PushRequest};
use super::spec::{CALL_ARGS, PROGRESS_ARGS, RESULT_ARGS};
use super::{existing, settle};
use crate::core::limits;
use crate::core::queue::Finish;
use crate::core::State;
use crate::effects;
use crate::rm::{self, Ctx, Key, OwnedStr, RStr, RawCtx, RawStr};
use crate::waiters::{self, Watch};

/// The error of a job a CALL … CANCEL cancelled at its timeout.
pub const CALL_TIMED_OUT: &[u8] = b"call timed out";

/// A blocked RESULT or CALL: the job it waits for, and whether it is a CALL (nil at its timeout).
struct Wait {
    watch: Watch,
    key: OwnedStr,
    call: bool,
}

/// The job's outcome now (None: no such job).
fn lookup(ctx: Ctx<'_>, key: RStr<'_>, id: &[u8]) -> Result<Option<Finish>, super::args::CmdError> {
    let mut k = Key::open(ctx, key, false);
    let found = existing(&mut k)?.and_then(|v| v.queue.find(id).and_then(|s| v.queue.outcome(s)));
    Ok(found)
}

/// RESULT's map: state, result, error, attempts, finished, progress (nil where a job has none).
fn reply_outcome(ctx: Ctx<'_>, f: &Finish) {
    let text = |ctx, t: &Option<Box<[u8]>>| match t {
        Some(b) => rm::reply_bulk(ctx, b),
        None => rm::reply_null(ctx),
    };
    rm::reply_map(ctx, 6);
    rm::reply_bulk(ctx, b"state");
    rm::reply_bulk(ctx, f.state.name().as_bytes());
    rm::reply_bulk(ctx, b"result");
    text(ctx, &f.result);
    rm::reply_bulk(ctx, b"error");
    text(ctx, &f.error);
    rm::reply_bulk(ctx, b"attempts");
    rm::reply_int(ctx, i64::from(f.attempts));
    rm::reply_bulk(ctx, b"finished");
    match f.finished_ms {
        Some(t) => rm::reply_u64(ctx, t),
        None => rm::reply_null(ctx),
    }
    rm::reply_bulk(ctx, b"progress");
    text(ctx, &f.progress);
}

/// A CALL replies nil when its job was cancelled by its own timeout (CANCEL), as at the timeout itself.
fn reply_for(ctx: Ctx<'_>, f: &Finish, call: bool) {
    if call && f.state == State::Cancelled && f.error.as_deref() == Some(CALL_TIMED_OUT) {
        rm::reply_null(ctx);
    } else {
        reply_outcome(ctx, f);
    }
}

fn block(ctx: Ctx<'_>, key: RStr<'_>, id: &[u8], ms: i64, call: bool) {
    let w = Wait { watch: Watch::new(ctx, key, id), key: OwnedStr::retain(key), call };
    waiters::watch(&w.watch);
    rm::block_on_keys(ctx, &[key], ms, on_ready, on_timeout, free_wait, Box::new(w));
}

pub fn result(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.RESULT"));
    }
    let mut block_ms = None;
    let mut opts = Options::new(args, 3, RESULT_ARGS);
    while opts.next_option()?.is_some() {
        block_ms = Some(opts.int(limits::BLOCK)?);
    }
    let (key, id) = (args[1], args[2].bytes());
    match lookup(ctx, key, id)? {
        None => rm::reply_null(ctx),
        // Inside MULTI or a script it answers at once, as a blocking list command does there.
        Some(f) if f.state.is_finished() || block_ms.is_none() || rm::may_not_block(ctx) => reply_outcome(ctx, &f),
        Some(_) => block(ctx, key, id, block_ms.unwrap_or(0), false),
    }
    Ok(())
}

pub fn call(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.CALL"));
    }
    let mut r = PushRequest::default();
    let (mut timeout, mut cancel) = (None, false);
    let mut opts = Options::new(args, 3, CALL_ARGS);
    let parsed = r.read_all(&mut opts, |token, opts| {
        match token {
            "TIMEOUT" => timeout = Some(opts.int(limits::CALL_TIMEOUT)?),
            "CANCEL" => cancel = true,
            _ => return Ok(false),
        }
        Ok(true)
    });
    if r.answer_keys_request(ctx) {
        return Ok(());
    }
    parsed?;
    r.check()?;
    let Some(timeout) = timeout else { return Err(err("TIMEOUT ms is required (how long CALL waits)")) };
    if rm::may_not_block(ctx) {
        return Err(err("ONCE.CALL blocks: it cannot run inside MULTI, Lua or a function"));
    }
    let now = rm::now_ms();
    let cancel_at = cancel.then(|| now.saturating_add(timeout as u64));
    let key = args[1];
    let id = push_one(ctx, key, args[2], &r, cancel_at, now)?;
    match lookup(ctx, key, &id)? {
        // The id named a job that has finished already (the dedup window): its outcome at once.
        Some(f) if f.state.is_finished() => reply_for(ctx, &f, true),
        _ => block(ctx, key, &id, timeout, true),
    }
    Ok(())
}

pub fn progress(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 4 {
        return Err(arity("ONCE.PROGRESS"));
    }
    let mut attempt = None;
    let mut opts = Options::new(args, 4, PROGRESS_ARGS);
    while opts.next_option()?.is_some() {
        attempt = Some(opts.int(limits::ATTEMPT)? as u64);
    }
    check_payload(args[3].bytes()).map_err(|e| super::args::CmdError(e.0.replacen("payload", "progress", 1)))?;
    let mut key = Key::open(ctx, args[1], true);
    let Some(v) = existing(&mut key)? else {
        rm::reply_u64(ctx, 0);
        return Ok(());
    };
    let now = rm::now_ms();
    let Some(seq) = v.queue.find(args[2].bytes()) else {
        rm::reply_u64(ctx, 0);
        return Ok(());
    };
    let before = v.snapshot();
    if !v.queue.set_progress(seq, attempt, args[3].bytes(), now) {
        rm::reply_u64(ctx, 0);
        return Ok(());
    }
    // The fence was checked here; the record names the job and its progress at this time.
    effects::at(
        ctx,
        now,
        b"ONCE.PROGRESS\0",
        &[OwnedStr::retain(args[1]), OwnedStr::retain(args[2]), OwnedStr::retain(args[3])],
    );
    rm::notify(ctx, c"once.progress", args[1]);
    settle(ctx, args[1], v, before);
    rm::reply_u64(ctx, 1);
    Ok(())
}

/// Called each time the key is signalled: reply once the job has finished, else keep waiting.
extern "C" fn on_ready(ctx: RawCtx, _argv: *mut RawStr, _argc: c_int) -> c_int {
    super::serve_blocked(ctx, false, |ctx| {
        let Some(w) = rm::blocked_data::<Wait>(ctx) else { return Ok(false) };
        let now = lookup(ctx, w.key.as_rstr(), &w.watch.id)?;
        let present = now.is_some();
        let outcome = match now {
            Some(f) if f.state.is_finished() => Some(f),
            // Finished and gone (KEEP 0), or gone and its id pushed again: what the finishing change stored.
            _ => waiters::stored(&w.watch),
        };
        match outcome {
            Some(f) => reply_for(ctx, &f, w.call),
            None if present => return Ok(false),
            // Gone without an outcome (purged, the key deleted).
            None => rm::reply_null(ctx),
        }
        Ok(true)
    })
}

/// RESULT replies the job as it is at its timeout; CALL replies nil.
extern "C" fn on_timeout(ctx: RawCtx, _argv: *mut RawStr, _argc: c_int) -> c_int {
    super::serve_blocked(ctx, false, |ctx| {
        match rm::blocked_data::<Wait>(ctx) {
            Some(w) if !w.call => match lookup(ctx, w.key.as_rstr(), &w.watch.id)? {
                Some(f) => reply_outcome(ctx, &f),
                None => rm::reply_null(ctx),
            },
            _ => rm::reply_null(ctx),
        }
        Ok(true)
    })
}

extern "C" fn free_wait(_ctx: RawCtx, privdata: *mut c_void) {
    if let Some(w) = rm::take_blocked::<Wait>(privdata) {
        waiters::unwatch(&w.watch);
    }
}
