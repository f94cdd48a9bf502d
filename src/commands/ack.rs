//! ONCE.ACK queue id [id ...] [ATTEMPT n]  |  ONCE.ACK queue ACKS n id attempt [id attempt ...]
//!
//! `ATTEMPT n` (with a single id) fences the acknowledgement: it completes the job only while reservation n
//! holds, so a worker whose lease ran out cannot complete the job another worker now runs. The words
//! `ATTEMPT n` are read as the fence only as the last two of exactly three arguments after the key.
//! `ACKS n` then n pairs fences each of several jobs by its own attempt (a worker that prefetched a batch
//! acknowledges what it finished in one command). A first word ACKS always starts that form (a job whose id is
//! "ACKS" is acknowledged with `ACKS 1 ACKS <attempt>`), so a malformed batch is an error, never an unfenced ACK.

use super::args::{arity, err, int_range, CmdError, CmdResult};
use super::{change_by_ids, existing};
use crate::core::limits;
use crate::rm::{self, Ctx, Key, RStr};
use crate::value::QueueValue;

pub fn ack(ctx: Ctx, args: &[RStr]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.ACK"));
    }
    if let Some(pairs) = fenced_pairs(&args[2..])? {
        let mut key = Key::open(ctx, args[1], true);
        let done = match existing(&mut key)? {
            Some(v) => ack_fenced(ctx, args[1], v, &pairs),
            None => 0,
        };
        rm::reply_u64(ctx, done);
        return Ok(());
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
        None => change_by_ids(ctx, b"ONCE.ACK\0", key_name, v, ids, |q, seq, now, _| q.ack(seq, now)),
        Some(a) => change_by_ids(ctx, b"ONCE.ACK\0", key_name, v, ids, |q, seq, now, _| {
            q.holds_reservation(seq, Some(a)) && q.ack(seq, now)
        }),
    };
    if n > 0 {
        rm::notify(ctx, c"once.ack", key_name);
    }
    n
}

/// `ACKS n id attempt ...` taking all of `args`: the (id, attempt) pairs. None when the first word is not
/// ACKS (then they are ids, as before); an error when the rest is not n pairs with good attempts.
pub fn fenced_pairs(args: &[RStr]) -> Result<Option<Vec<(RStr, u64)>>, CmdError> {
    let (Some(word), Some(count)) = (args.first(), args.get(1)) else { return Ok(None) };
    if !rm::bytes(word).eq_ignore_ascii_case(b"ACKS") {
        return Ok(None);
    }
    let n = int_range(rm::bytes(count), limits::ACKS)? as usize;
    if args.len() != 2 + 2 * n {
        return Err(err(format!("ACKS {n} needs {n} id attempt pairs after it, got {} words", args.len() - 2)));
    }
    args[2..]
        .chunks(2)
        .map(|p| Ok((p[0], int_range(rm::bytes(&p[1]), limits::ATTEMPT)? as u64)))
        .collect::<Result<Vec<_>, CmdError>>()
        .map(Some)
}

/// Completes each named job while the reservation its attempt names holds. Replicates and notifies as
/// `ack_ids` does; returns how many.
pub fn ack_fenced(ctx: Ctx, key_name: RStr, v: &mut QueueValue, pairs: &[(RStr, u64)]) -> u64 {
    let ids: Vec<RStr> = pairs.iter().map(|p| p.0).collect();
    let n = change_by_ids(ctx, b"ONCE.ACK\0", key_name, v, &ids, |q, seq, now, i| {
        q.holds_reservation(seq, Some(pairs[i].1)) && q.ack(seq, now)
    });
    if n > 0 {
        rm::notify(ctx, c"once.ack", key_name);
    }
    n
}
