//! ONCE.ACK queue id [id ...] [ATTEMPT n]
//!
//! `ATTEMPT n` (with a single id) fences the acknowledgement: it completes the job only while reservation n
//! holds, so a worker whose lease ran out cannot complete the job another worker now runs. The words
//! `ATTEMPT n` are read as the fence only as the last two of exactly three arguments after the key.

use super::args::{arity, err, int_range, CmdResult};
use super::{change_by_ids, existing};
use crate::core::limits;
use crate::rm::{self, Ctx, Key, RStr};
use crate::value::QueueValue;

pub fn ack(ctx: Ctx, args: &[RStr]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.ACK"));
    }
    let n = args.len();
    let fenced = n >= 5 && rm::bytes(&args[n - 2]).eq_ignore_ascii_case(b"ATTEMPT");
    let (ids, attempt) = if fenced {
        if n != 5 {
            let twice = args[2..n - 2].iter().any(|a| rm::bytes(a).eq_ignore_ascii_case(b"ATTEMPT"));
            return Err(err(if twice { "option 'ATTEMPT' given twice" } else { "ATTEMPT goes with a single id" }));
        }
        (&args[2..3], Some(int_range(rm::bytes(&args[4]), limits::ATTEMPT)? as u64))
    } else {
        (&args[2..], None)
    };
    let mut key = Key::open(ctx, args[1], true);
    let done = match existing(&mut key)? {
        Some(v) => ack_ids(ctx, args[1], v, ids, attempt),
        None => 0,
    };
    rm::reply_u64(ctx, done);
    Ok(())
}

/// Completes the reserved jobs among `ids` (given a fence, only the reservation with that attempt).
/// Replicates `ONCE.ACK key <ids completed>` at the master's time, which is exact on a replica. Returns how many.
pub fn ack_ids(ctx: Ctx, key_name: RStr, v: &mut QueueValue, ids: &[RStr], attempt: Option<u64>) -> u64 {
    let n = match attempt {
        None => change_by_ids(ctx, b"ONCE.ACK\0", key_name, v, ids, |q, seq, now| q.ack(seq, now)),
        Some(a) => change_by_ids(ctx, b"ONCE.ACK\0", key_name, v, ids, |q, seq, now| q.holds_reservation(seq, Some(a)) && q.ack(seq, now)),
    };
    if n > 0 {
        rm::notify(ctx, c"once.ack", key_name);
    }
    n
}
