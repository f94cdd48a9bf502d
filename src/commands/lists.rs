//! ONCE.RPUSH / ONCE.LPUSH queue element [element ...]: what a list producer's RPUSH or LPUSH becomes when
//! its key is a queue (list_producers.rs); ONCE.ADOPT queue: a list a producer made first becomes a queue.
//!
//! Each element becomes one ready job with the queue's default options, in the order given (LPUSH too: the
//! order the producer pushed them). The reply is an integer, as RPUSH's is: the queue's ready jobs after the
//! push. When the key is not a queue after all (a list, a missing key, or another type — the filter's list of
//! names may be stale), the real list command runs, as the client sent it.

use super::args::{arity, err, CmdResult};
use super::{existing, existing_or_new, settle};
use crate::config;
use crate::core::queue::{NewJob, Pushed};
use crate::effects;
use crate::rm::{self, Ctx, Key, OwnedStr, RStr};
use crate::value::QueueValue;

pub fn rpush(ctx: Ctx, args: &[RStr]) -> CmdResult {
    list_push(ctx, args, "RPUSH")
}

pub fn lpush(ctx: Ctx, args: &[RStr]) -> CmdResult {
    list_push(ctx, args, "LPUSH")
}

fn list_push(ctx: Ctx, args: &[RStr], list_cmd: &str) -> CmdResult {
    if args.len() < 3 {
        return Err(arity(list_cmd));
    }
    let mut key = Key::open(ctx, args[1], true);
    let Ok(Some(v)) = existing(&mut key) else {
        drop(key);
        rm::call_and_reply(ctx, list_cmd, &args[1..]);
        return Ok(());
    };
    let elements: Vec<&[u8]> = args[2..].iter().map(rm::bytes).collect();
    check_sizes(&elements)?;
    let ready = push_all(ctx, args[1], v, &elements, &args[2..])?;
    rm::reply_u64(ctx, ready);
    Ok(())
}

/// Every element within once.max-payload-bytes, checked before anything is pushed.
fn check_sizes(elements: &[&[u8]]) -> CmdResult {
    let limit = config::max_payload_bytes();
    match elements.iter().find(|e| e.len() as u64 > limit) {
        Some(e) => Err(err(format!("an element is {} bytes, over the limit of {limit} (once.max-payload-bytes)", e.len()))),
        None => Ok(()),
    }
}

/// Pushes each element as a ready job with the queue's defaults, each replicated like a PUSH; the queue's
/// ready count after.
fn push_all(ctx: Ctx, key_name: RStr, v: &mut QueueValue, elements: &[&[u8]], strings: &[RStr]) -> Result<u64, super::args::CmdError> {
    let before = v.snapshot();
    let now = rm::now_ms();
    for (e, &s) in elements.iter().zip(strings) {
        let new = NewJob {
            custom_id: None,
            payload: (*e).into(),
            due_ms: 0,
            retries: v.queue.settings.retries.unwrap_or_else(config::default_retries),
            backoff_ms: v.queue.settings.backoff_ms.unwrap_or_else(config::default_backoff_ms),
            lease_ms: 0,
            priority: 0,
            group: None,
        };
        match v.queue.push(new, now) {
            Pushed::Added(seq) => {
                if let Some(job) = v.queue.job(seq) {
                    effects::job(ctx, key_name, "PUSH", job, b"", s);
                }
            }
            Pushed::Existing(_) => {}
            Pushed::Exhausted => {
                settle(ctx, key_name, v, before);
                return Err(err("the queue has used up its id sequence"));
            }
        }
    }
    settle(ctx, key_name, v, before);
    Ok(v.queue.stats().ready)
}

/// ONCE.ADOPT queue: turns the list under `queue` into a queue in one step, each element (head first, the order
/// LPOP and BLPOP serve) a ready job. Reply: how many jobs it made; 0 when the key is already a queue or missing.
pub fn adopt(ctx: Ctx, args: &[RStr]) -> CmdResult {
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
    let bytes: Vec<&[u8]> = elements.iter().map(|e| rm::bytes(&e.0)).collect();
    drop(key);
    // The list is gone: replicas and the AOF delete it too, then get the jobs as pushes.
    rm::replicate(ctx, b"DEL\0", &[OwnedStr::retain(key_name)]);
    let mut key = Key::open(ctx, key_name, true);
    let v = existing_or_new(&mut key)?;
    let strings: Vec<RStr> = elements.iter().map(|e| e.0).collect();
    push_all(ctx, key_name, v, &bytes, &strings)?;
    rm::reply_u64(ctx, elements.len() as u64);
    Ok(())
}
