//! ONCE.EVENTS queue [AFTER id|$] [COUNT n] [BLOCK ms]
//!
//! Reads the queue's event log (EVENTS-MAX), oldest first. Without AFTER it starts at the oldest event kept;
//! `AFTER $` means "after the newest now", as in XREAD. With BLOCK and nothing to read, the client waits on
//! the key (no polling) and is served by the next event; on timeout the reply is null.

use std::ffi::{c_int, c_void};

use super::args::{arity, err, CmdError, CmdResult, Options};
use super::existing;
use super::spec::EVENTS_ARGS;
use crate::core::events::Event;
use crate::core::limits;
use crate::rm::{self, Ctx, Key, RStr, RawCtx, RawStr};
use crate::text::{parse_i64, shown};

#[derive(Clone, Copy)]
struct Read {
    after: u64,
    count: usize,
}

pub fn events(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 2 {
        return Err(arity("ONCE.EVENTS"));
    }
    let mut after = Some(0);
    let mut count = limits::EVENTS_COUNT_DEFAULT;
    let mut block = None;
    let mut opts = Options::new(args, 2, EVENTS_ARGS);
    while let Some(token) = opts.next_option()? {
        match token {
            "AFTER" => {
                let b = opts.value("AFTER")?;
                after = match b {
                    b"$" => None,
                    _ => Some(parse_i64(b).and_then(|v| u64::try_from(v).ok()).ok_or_else(|| {
                        err(format!("AFTER must be an event id (a non-negative integer) or $, got '{}'", shown(b)))
                    })?),
                };
            }
            "COUNT" => count = opts.int(limits::EVENTS_COUNT)? as usize,
            _ => block = Some(opts.int(limits::BLOCK)?),
        }
    }
    let mut key = Key::open(ctx, args[1], false);
    let last = existing(&mut key)?.map_or(0, |v| v.queue.events.last_id());
    let read = Read { after: after.unwrap_or(last), count };
    if reply_events(ctx, &mut key, read)? {
        return Ok(());
    }
    match block {
        Some(ms) if !rm::may_not_block(ctx) => {
            rm::block_on_key(ctx, args[1], ms, on_ready, on_timeout, free_read, Box::new(read));
        }
        _ => rm::reply_null_array(ctx),
    }
    Ok(())
}

/// Replies the events after `read.after` if there are any. False: nothing replied.
fn reply_events(ctx: Ctx<'_>, key: &mut Key<'_>, read: Read) -> Result<bool, CmdError> {
    let Some(v) = existing(key)? else { return Ok(false) };
    let found: Vec<&Event> = v.queue.events.after(read.after, read.count).collect();
    if found.is_empty() {
        return Ok(false);
    }
    rm::reply_array(ctx, found.len());
    for e in found {
        rm::reply_array(ctx, 6);
        rm::reply_u64(ctx, e.id);
        rm::reply_bulk(ctx, e.kind.name().as_bytes());
        opt_bulk(ctx, e.job.as_deref());
        rm::reply_u64(ctx, u64::from(e.attempt));
        rm::reply_u64(ctx, e.ms);
        opt_bulk(ctx, e.error.as_deref());
    }
    Ok(true)
}

fn opt_bulk(ctx: Ctx<'_>, b: Option<&[u8]>) {
    match b {
        Some(b) => rm::reply_bulk(ctx, b),
        None => rm::reply_null(ctx),
    }
}

/// Called each time the key is signalled: reply if there are new events, else return ERR to keep waiting.
extern "C" fn on_ready(ctx: RawCtx, _argv: *mut RawStr, _argc: c_int) -> c_int {
    super::serve_blocked(ctx, false, |ctx| {
        let Some(&read) = rm::blocked_data::<Read>(ctx) else { return Ok(false) };
        let mut key = Key::open(ctx, rm::blocked_ready_key(ctx), false);
        reply_events(ctx, &mut key, read)
    })
}

extern "C" fn on_timeout(ctx: RawCtx, _argv: *mut RawStr, _argc: c_int) -> c_int {
    rm::callback(ctx, rm::reply_null_array);
    rm::OK
}

extern "C" fn free_read(_ctx: RawCtx, privdata: *mut c_void) {
    drop(rm::take_blocked::<Read>(privdata));
}
