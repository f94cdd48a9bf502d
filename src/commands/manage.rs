//! ONCE.RETRY queue id [id ...]: dead jobs back to ready, with a fresh set of attempts.
//! ONCE.CANCEL queue id [id ...]: removes jobs in any state but reserved.
//! Both are deterministic, so they replicate as themselves with the ids that took effect.

use super::args::{arity, CmdResult};
use super::{change_by_ids, existing};
use crate::core::Queue;
use crate::rm::{self, Ctx, Key, RStr};

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
    let mut key = Key::open(ctx, args[1], true);
    let n = match existing(&mut key)? {
        Some(v) => change_by_ids(ctx, cname, args[1], v, &args[2..], change),
        None => 0,
    };
    rm::reply_u64(ctx, n);
    Ok(())
}
