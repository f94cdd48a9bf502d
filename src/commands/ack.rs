//! ONCE.ACK queue id [id ...]

use super::args::{arity, CmdResult};
use super::{existing, settle};
use crate::rm::{self, Ctx, Key, OwnedStr, RStr};
use crate::value::QueueValue;

pub fn ack(ctx: Ctx, args: &[RStr]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.ACK"));
    }
    let key = Key::open(ctx, args[1], true);
    let done = match existing(&key)? {
        Some(v) => ack_ids(ctx, args[1], v, &args[2..]),
        None => 0,
    };
    rm::reply_u64(ctx, done);
    Ok(())
}

/// Completes the reserved jobs among `ids`; replicates the ids that took effect. Returns how many.
pub fn ack_ids(ctx: Ctx, key_name: RStr, v: &mut QueueValue, ids: &[RStr]) -> u64 {
    let before = v.snapshot();
    let mut done: Vec<OwnedStr> = Vec::new();
    for &id in ids {
        if let Some(seq) = v.queue.find(rm::bytes(id)) {
            if v.queue.ack(seq) {
                done.push(OwnedStr::retain(id));
            }
        }
    }
    if !done.is_empty() {
        let mut repl = vec![OwnedStr::retain(key_name)];
        let n = done.len() as u64;
        repl.extend(done);
        rm::replicate(ctx, b"ONCE.ACK\0", &repl);
        settle(ctx, key_name, v, before);
        return n;
    }
    0
}
