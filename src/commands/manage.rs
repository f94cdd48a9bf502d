//! ONCE.RETRY queue id [id ...]: dead jobs back to ready, with a fresh set of attempts.
//! ONCE.CANCEL queue id [id ...]: removes jobs in any state but reserved.
//! Both are deterministic, so they replicate as themselves with the ids that took effect.

use super::args::{arity, CmdResult};
use super::{existing, settle};
use crate::core::Queue;
use crate::rm::{self, Ctx, Key, OwnedStr, RStr};

pub fn retry(ctx: Ctx, args: &[RStr]) -> CmdResult {
    by_ids(ctx, args, "ONCE.RETRY", b"ONCE.RETRY\0", Queue::retry_dead)
}

pub fn cancel(ctx: Ctx, args: &[RStr]) -> CmdResult {
    by_ids(ctx, args, "ONCE.CANCEL", b"ONCE.CANCEL\0", Queue::cancel)
}

fn by_ids(ctx: Ctx, args: &[RStr], name: &str, cname: &'static [u8], change: fn(&mut Queue, u64) -> bool) -> CmdResult {
    if args.len() < 3 {
        return Err(arity(name));
    }
    let key = Key::open(ctx, args[1], true);
    let Some(v) = existing(&key)? else {
        rm::reply_int(ctx, 0);
        return Ok(());
    };
    let before = v.snapshot();
    let mut done = vec![OwnedStr::retain(args[1])];
    for &id in &args[2..] {
        if let Some(seq) = v.queue.find(rm::bytes(id)) {
            if change(&mut v.queue, seq) {
                done.push(OwnedStr::retain(id));
            }
        }
    }
    let n = done.len() - 1;
    if n > 0 {
        rm::replicate(ctx, cname, &done);
        settle(ctx, args[1], v, before);
    }
    rm::reply_int(ctx, n as i64);
    Ok(())
}
