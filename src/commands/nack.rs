//! ONCE.NACK queue id [ATTEMPT n] [ERROR message] [DELAY ms | DEAD]

use super::args::{arity, err, CmdResult, Options};
use super::spec::NACK_ARGS;
use crate::core::limits;
use super::{existing, settle};
use crate::core::backoff::Outcome;
use crate::core::FailCause;
use crate::rm::{self, Ctx, Key, OwnedStr, RStr};
use crate::value::QueueValue;
use crate::{config, random};

pub fn nack(ctx: Ctx, args: &[RStr]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.NACK"));
    }
    let mut attempt = None;
    let mut error = None;
    let mut delay = None;
    let mut dead = false;
    let mut opts = Options::new(args, 3, NACK_ARGS);
    while let Some(token) = opts.next()? {
        match token {
            "ATTEMPT" => attempt = Some(opts.int(limits::ATTEMPT)? as u64),
            "ERROR" => error = Some(opts.value("ERROR")?),
            "DELAY" => delay = Some(opts.int(limits::DELAY)? as u64),
            _ => dead = true,
        }
    }
    if delay.is_some() && dead {
        return Err(err("DELAY and DEAD cannot be used together"));
    }
    let key = Key::open(ctx, args[1], true);
    let Some(v) = existing(&key)? else {
        rm::reply_int(ctx, 0);
        return Ok(());
    };
    let Some(seq) = v.queue.find(rm::bytes(args[2])).filter(|&s| v.queue.holds_reservation(s, attempt)) else {
        rm::reply_int(ctx, 0);
        return Ok(());
    };
    let now = rm::now_ms();
    let before = v.snapshot();
    let outcome = v.queue.decide_failure(seq, now, delay, dead, config::backoff_max_ms(), random::next());
    let done = outcome.is_some_and(|o| fail(ctx, args[1], v, seq, FailCause::Nack, error, o));
    if done {
        settle(ctx, args[1], v, before);
    }
    rm::reply_int(ctx, i64::from(done));
    Ok(())
}

/// Applies a decided failure and replicates it as `ONCE._FAIL key seq NACK|EXPIRE due|-1 error`.
pub fn fail(
    ctx: Ctx,
    key_name: RStr,
    v: &mut QueueValue,
    seq: u64,
    cause: FailCause,
    error: Option<&[u8]>,
    outcome: Outcome,
) -> bool {
    // An empty ERROR text is no text: it keeps any earlier one, as on a replica that reads "" as none.
    let error = error.filter(|e| !e.is_empty());
    if !v.queue.apply_failure(seq, cause, error, outcome) {
        return false;
    }
    let due = match outcome {
        Outcome::RetryAt(t) => i64::try_from(t).unwrap_or(i64::MAX),
        Outcome::Dead => -1,
    };
    let cause_name: &[u8] = match cause {
        FailCause::Nack => b"NACK",
        FailCause::LeaseExpired => b"EXPIRE",
    };
    rm::replicate(
        ctx,
        b"ONCE._FAIL\0",
        &[
            OwnedStr::retain(key_name),
            OwnedStr::int(seq as i64),
            OwnedStr::new(cause_name),
            OwnedStr::int(due),
            OwnedStr::new(error.unwrap_or(b"")),
        ],
    );
    true
}
