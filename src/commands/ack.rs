//! ONCE.ACK queue id [id ...] [ATTEMPT n] [RESULT data]  |  ONCE.ACK queue ACKS n id attempt [id attempt ...]
//!
//! `ATTEMPT n` (with a single id) fences the acknowledgement: it completes the job only while reservation n
//! holds, so a worker whose lease ran out cannot complete the job another worker now runs. The words
//! `ATTEMPT n` are read as the fence only as the last two of exactly three arguments after the key.
//! `ACKS n` then n pairs fences each of several jobs by its own attempt (a worker that prefetched a batch
//! acknowledges what it finished in one command). A first word ACKS always starts that form (a job whose id is
//! "ACKS" is acknowledged with `ACKS 1 ACKS <attempt>`), so a malformed batch is an error, never an unfenced ACK.

use super::args::{arity, err, int_range, CmdError, CmdResult};
use super::push::check_payload;
use super::{change_by_ids, existing, ByIds};
use crate::core::limits;
use crate::core::queue::Finish;
use crate::core::State;
use crate::rm::{self, Ctx, Key, RStr};
use crate::value::QueueValue;

pub fn ack(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.ACK"));
    }
    let (args, result) = split_result(args)?;
    if let Some(pairs) = fenced_pairs(&args[2..])? {
        if result.is_some() {
            return Err(err("RESULT goes with a single id"));
        }
        let mut key = Key::open(ctx, args[1], true);
        let done = match existing(&mut key)? {
            Some(v) => ack_fenced(ctx, args[1], v, &pairs),
            None => 0,
        };
        rm::reply_u64(ctx, done);
        return Ok(());
    }
    let n = args.len();
    let fenced = n >= 5 && args[n - 2].bytes().eq_ignore_ascii_case(b"ATTEMPT");
    let (ids, attempt) = if fenced {
        if n != 5 {
            let twice = args[2..n - 2].iter().any(|a| a.bytes().eq_ignore_ascii_case(b"ATTEMPT"));
            return Err(err(if twice { "option 'ATTEMPT' given twice" } else { "ATTEMPT goes with a single id" }));
        }
        (&args[2..3], Some(int_range(args[4].bytes(), limits::ATTEMPT)? as u64))
    } else {
        (&args[2..], None)
    };
    if result.is_some() && ids.len() != 1 {
        return Err(err("RESULT goes with a single id"));
    }
    let mut key = Key::open(ctx, args[1], true);
    let done = match existing(&mut key)? {
        Some(v) => ack_ids(ctx, args[1], v, ids, attempt, result),
        None => 0,
    };
    rm::reply_u64(ctx, done);
    Ok(())
}

/// Takes a trailing `RESULT data` off the arguments (the words `RESULT data` are read so only as the last two,
/// after at least one id), checking the result's size as a payload's.
fn split_result<'a>(args: &'a [RStr<'a>]) -> Result<(&'a [RStr<'a>], Option<RStr<'a>>), CmdError> {
    let n = args.len();
    let is_result = |a: &RStr<'_>| a.bytes().eq_ignore_ascii_case(b"RESULT");
    let (rest, result) = if n >= 5 && is_result(&args[n - 2]) {
        check_result(args[n - 1].bytes())?;
        (&args[..n - 2], Some(args[n - 1]))
    } else {
        (args, None)
    };
    // A RESULT anywhere else is a mistake to name, never an id to acknowledge.
    match rest.iter().skip(2).position(is_result) {
        None => Ok((rest, result)),
        Some(_) if result.is_some() => Err(err("option 'RESULT' given twice")),
        Some(i) if i + 3 == rest.len() => Err(err("option 'RESULT' needs a value")),
        Some(_) => Err(err("RESULT goes with a single id, last: ACK queue id [ATTEMPT n] RESULT data")),
    }
}

/// A result is held to the payload limit (once.max-payload-bytes): it is stored and replicated as one.
pub fn check_result(data: &[u8]) -> Result<(), CmdError> {
    check_payload(data).map_err(|e| CmdError(e.0.replacen("payload", "RESULT", 1)))
}

/// Completes the reserved jobs among `ids` (given a fence, only the reservation with that attempt), with the
/// result of a single one. Replicates `ONCE.ACK key <ids completed> [RESULT data]` at the master's time, which
/// is exact on a replica, and wakes the clients waiting on those jobs. Returns how many.
pub fn ack_ids(
    ctx: Ctx<'_>,
    key_name: RStr<'_>,
    v: &mut QueueValue,
    ids: &[RStr<'_>],
    attempt: Option<u64>,
    result: Option<RStr<'_>>,
) -> u64 {
    let data = result.as_ref().map(|a| a.bytes());
    let tail: Vec<rm::OwnedStr> =
        result.map(|r| vec![rm::OwnedStr::new(b"RESULT"), rm::OwnedStr::retain(r)]).unwrap_or_default();
    let ended = |j: &crate::core::Job, now| Finish::ended(j, State::Completed, data, now);
    let how = ByIds { cmd: b"ONCE.ACK\0", tail: &tail, ended: &ended };
    let n = change_by_ids(ctx, how, key_name, v, ids, |q, seq, now, _| {
        attempt.is_none_or(|a| q.holds_reservation(seq, Some(a))) && q.ack(seq, now, data)
    });
    if n > 0 {
        rm::notify(ctx, c"once.ack", key_name);
    }
    n
}
/// `ACKS n id attempt ...` taking all of `args`: the (id, attempt) pairs. None when the first word is not
/// ACKS (then they are ids, as before); an error when the rest is not n pairs with good attempts.
pub fn fenced_pairs<'a>(args: &[RStr<'a>]) -> Result<Option<Vec<(RStr<'a>, u64)>>, CmdError> {
    let (Some(word), Some(count)) = (args.first(), args.get(1)) else { return Ok(None) };
    if !word.bytes().eq_ignore_ascii_case(b"ACKS") {
        return Ok(None);
    }
    let n = int_range(count.bytes(), limits::ACKS)? as usize;
    if args.len() != 2 + 2 * n {
        return Err(err(format!("ACKS {n} needs {n} id attempt pairs after it, got {} words", args.len() - 2)));
    }
    args[2..]
        .chunks(2)
        .map(|p| Ok((p[0], int_range(p[1].bytes(), limits::ATTEMPT)? as u64)))
        .collect::<Result<Vec<_>, CmdError>>()
        .map(Some)
}

/// Completes each named job while the reservation its attempt names holds. Replicates and notifies as
/// `ack_ids` does; returns how many.
pub fn ack_fenced(ctx: Ctx<'_>, key_name: RStr<'_>, v: &mut QueueValue, pairs: &[(RStr<'_>, u64)]) -> u64 {
    let ids: Vec<RStr<'_>> = pairs.iter().map(|p| p.0).collect();
    let ended = |j: &crate::core::Job, now| Finish::ended(j, State::Completed, None, now);
    let how = ByIds { cmd: b"ONCE.ACK\0", tail: &[], ended: &ended };
    let n = change_by_ids(ctx, how, key_name, v, &ids, |q, seq, now, i| {
        q.holds_reservation(seq, Some(pairs[i].1)) && q.ack(seq, now, None)
    });
    if n > 0 {
        rm::notify(ctx, c"once.ack", key_name);
    }
    n
}
