//! ONCE.NACK queue id [ATTEMPT n] [ERROR message] [DELAY ms | DEAD]

use super::args::{arity, err, CmdResult, Options};
use super::spec::NACK_ARGS;
use super::{existing, settle};
use crate::core::limits;
use crate::core::FailCause;
use crate::effects;
use crate::rm::{self, Ctx, Key, RStr};
use crate::{config, random};

pub fn nack(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.NACK"));
    }
    let mut attempt = None;
    let mut error = None;
    let mut delay = None;
    let mut dead = false;
    let mut opts = Options::new(args, 3, NACK_ARGS);
    while let Some(token) = opts.next_option()? {
        match token {
            "ATTEMPT" => attempt = Some(opts.int(limits::ATTEMPT)? as u64),
            "ERROR" => {
                error = Some(config::cut_error(opts.value("ERROR")?));
            }
            "DELAY" => delay = Some(opts.int(limits::DELAY)? as u64),
            _ => dead = true,
        }
    }
    if delay.is_some() && dead {
        return Err(err("DELAY and DEAD cannot be used together"));
    }
    let mut key = Key::open(ctx, args[1], true);
    let Some(v) = existing(&mut key)? else {
        rm::reply_int(ctx, 0);
        return Ok(());
    };
    let Some(seq) = v.queue.find(args[2].bytes()).filter(|&s| v.queue.holds_reservation(s, attempt)) else {
        rm::reply_int(ctx, 0);
        return Ok(());
    };
    let now = rm::now_ms();
    let before = v.snapshot();
    let outcome = v.queue.decide_failure(seq, now, delay, dead, config::backoff_max_ms(), random::next());
    let done = outcome.is_some_and(|o| effects::fail(ctx, args[1], v, seq, FailCause::Nack, error, o, now));
    if done {
        settle(ctx, args[1], v, before);
    }
    rm::reply_int(ctx, i64::from(done));
    Ok(())
}
