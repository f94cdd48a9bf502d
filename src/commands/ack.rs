//! ONCE.ACK queue id [id ...]

use super::args::{arity, CmdResult};
use super::{change_by_ids, existing};
use crate::core::Queue;
use crate::rm::{self, Ctx, Key, RStr};
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

/// Completes the reserved jobs among `ids`. Returns how many.
pub fn ack_ids(ctx: Ctx, key_name: RStr, v: &mut QueueValue, ids: &[RStr]) -> u64 {
    change_by_ids(ctx, b"ONCE.ACK\0", key_name, v, ids, Queue::ack)
}
