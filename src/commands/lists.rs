//! ONCE.RPUSH / ONCE.LPUSH queue element [element ...]: what a list producer's RPUSH or LPUSH becomes when
//! its key is a queue (list_producers.rs); ONCE.ADOPT queue: a list a producer made first becomes a queue.
//!
//! Each element becomes one ready job with the queue's default options, in the order given (LPUSH too: the
//! order the producer pushed them), replicated as one `ONCE._BULK` record, as BULK is. The reply is an integer, as RPUSH's is: the queue's ready jobs after the
//! push. When the key is not a queue after all (a list, a missing key, or another type — the filter's list of
//! names may be stale), the real list command runs, as the client sent it.

use super::args::{arity, CmdResult};
use super::bulk::push_and_record;
use super::existing;
use super::push::{check_payload, JobOptions};
use crate::core::limits;
use crate::rm::{self, Ctx, Key, OwnedStr, RStr};

pub fn rpush(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    list_push(ctx, args, "RPUSH")
}

pub fn lpush(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    list_push(ctx, args, "LPUSH")
}

fn list_push(ctx: Ctx<'_>, args: &[RStr<'_>], list_cmd: &str) -> CmdResult {
    if args.len() < 3 {
        return Err(arity(list_cmd));
    }
    let mut key = Key::open(ctx, args[1], true);
    if !matches!(existing(&mut key), Ok(Some(_))) {
        drop(key);
        rm::call_and_reply(ctx, list_cmd, &args[1..]);
        return Ok(());
    }
    check_sizes(&args[2..])?;
    let ready = push_all(ctx, args[1], &mut key, &args[2..])?;
    rm::reply_u64(ctx, ready);
    Ok(())
}

/// Every element within once.max-payload-bytes, checked before anything is pushed.
fn check_sizes(elements: &[RStr<'_>]) -> CmdResult {
    elements.iter().try_for_each(|e| check_payload(e.bytes()))
}

/// Pushes each element as a ready job with the queue's defaults, replicated as BULK is (one record per
/// BULK-sized chunk); the queue's ready count after.
fn push_all(
    ctx: Ctx<'_>,
    key_name: RStr<'_>,
    key: &mut Key<'_>,
    elements: &[RStr<'_>],
) -> Result<u64, super::args::CmdError> {
    let mut ready = 0;
    for chunk in elements.chunks(limits::BULK_PAYLOADS.max as usize) {
        let (v, _) = push_and_record(ctx, key_name, key, &JobOptions::default(), None, chunk)?;
        ready = v.queue.stats().ready;
    }
    Ok(ready)
}

/// ONCE.ADOPT queue: turns the list under `queue` into a queue in one step, each element (head first, the order
/// LPOP and BLPOP serve) a ready job. Reply: how many jobs it made; 0 when the key is already a queue or missing.
pub fn adopt(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 2 {
        return Err(arity("ONCE.ADOPT"));
    }
    let key_name = args[1];
    let mut key = Key::open(ctx, key_name, true);
    if !key.is_list() {
        existing(&mut key)?;
        rm::reply_u64(ctx, 0);
        return Ok(());
    }
    let elements = key.drain_list();
    drop(key);
    // The list is gone: replicas and the AOF delete it too, then get the jobs as one bulk push.
    rm::replicate(ctx, b"DEL\0", &[OwnedStr::retain(key_name)]);
    let mut key = Key::open(ctx, key_name, true);
    let strings: Vec<RStr<'_>> = elements.iter().map(OwnedStr::as_rstr).collect();
    push_all(ctx, key_name, &mut key, &strings)?;
    rm::reply_u64(ctx, elements.len() as u64);
    Ok(())
}
