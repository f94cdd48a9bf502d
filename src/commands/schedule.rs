//! ONCE.SCHEDULE queue name spec payload [RETRIES n] [BACKOFF ms] [LEASE ms] [PRIORITY n] [TZ zone] [MISSED once|skip]
//! ONCE.UNSCHEDULE queue name
//! ONCE.SCHEDULES queue

use super::args::{arity, err, CmdResult, Options};
use super::spec::SCHEDULE_ARGS;
use super::{existing, existing_or_new, settle};
use crate::config;
use crate::core::limits::{self, MAX_SCHEDULES, MAX_SCHEDULE_NAME, MAX_SPEC_BYTES};
use crate::core::schedule::{JobOptions, Missed, Schedule};
use crate::effects;
use crate::rm::{self, Ctx, Key, OwnedStr, RStr};

pub fn schedule(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 5 {
        return Err(arity("ONCE.SCHEDULE"));
    }
    let name = args[2].bytes();
    if name.is_empty() || name.len() > MAX_SCHEDULE_NAME {
        return Err(err(format!("schedule name must be 1 to {MAX_SCHEDULE_NAME} bytes")));
    }
    let spec_bytes = args[3].bytes();
    if spec_bytes.len() > MAX_SPEC_BYTES {
        return Err(err(format!("schedule spec is {} bytes, over the limit of {MAX_SPEC_BYTES}", spec_bytes.len())));
    }
    let spec = std::str::from_utf8(spec_bytes).map_err(|_| err("invalid schedule spec: not UTF-8"))?;
    let payload = args[4].bytes();
    let mut options = JobOptions {
        retries: config::default_retries(),
        backoff_ms: config::default_backoff_ms(),
        lease_ms: 0,
        priority: 0,
    };
    let mut tz = "UTC";
    let mut missed = Missed::Once;
    let mut opts = Options::new(args, 5, SCHEDULE_ARGS);
    while let Some(token) = opts.next_option()? {
        match token {
            "RETRIES" => options.retries = opts.int(limits::RETRIES)? as u32,
            "BACKOFF" => options.backoff_ms = opts.int(limits::BACKOFF)? as u64,
            "LEASE" => options.lease_ms = opts.int(limits::LEASE)? as u64,
            "PRIORITY" => options.priority = opts.int(limits::PRIORITY)? as i32,
            "TZ" => {
                let zone = opts.value("TZ")?;
                if zone.len() > MAX_SPEC_BYTES {
                    return Err(err("TZ must be an IANA zone name"));
                }
                tz = std::str::from_utf8(zone).map_err(|_| err("TZ must be an IANA zone name"))?;
            }
            _ => {
                let v = opts.value("MISSED")?;
                missed = Missed::from_name(v).ok_or_else(|| err("MISSED must be 'once' or 'skip'"))?;
            }
        }
    }
    let limit = config::max_payload_bytes();
    if payload.len() as u64 > limit {
        return Err(err(format!(
            "payload is {} bytes, over the limit of {limit} (once.max-payload-bytes)",
            payload.len()
        )));
    }
    let mut key = Key::open(ctx, args[1], true);
    if let Some(v) = existing(&mut key)? {
        if v.queue.schedule_count() >= MAX_SCHEDULES && v.queue.schedule(name).is_none() {
            return Err(err(format!("the queue has {MAX_SCHEDULES} schedules, the most one queue may hold")));
        }
    }
    let last_fire = existing(&mut key)?.and_then(|v| v.queue.schedule(name).and_then(|s| s.last_fire_ms));
    let now = rm::now_ms();
    let sched = Schedule::new(name.into(), spec, tz, payload.into(), options, missed, last_fire, now)
        .map_err(|e| err(format!("invalid schedule: {e}")))?;
    let next = sched.next_fire_ms;
    let v = existing_or_new(&mut key)?;
    let before = v.snapshot();
    effects::schedule(ctx, args[1], &sched);
    v.queue.put_schedule(sched);
    // A replaced schedule may fire later than before: let the timer look again from the new time.
    v.noted_deadline = u64::MAX;
    settle(ctx, args[1], v, before);
    rm::reply_u64(ctx, next);
    Ok(())
}

pub fn unschedule(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 3 {
        return Err(arity("ONCE.UNSCHEDULE"));
    }
    let mut key = Key::open(ctx, args[1], true);
    let Some(v) = existing(&mut key)? else {
        rm::reply_int(ctx, 0);
        return Ok(());
    };
    let before = v.snapshot();
    let removed = v.queue.remove_schedule(args[2].bytes());
    if removed {
        effects::as_itself(ctx, b"ONCE.UNSCHEDULE\0", &[OwnedStr::retain(args[1]), OwnedStr::retain(args[2])]);
        settle(ctx, args[1], v, before);
    }
    rm::reply_int(ctx, i64::from(removed));
    Ok(())
}

pub fn schedules(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 2 {
        return Err(arity("ONCE.SCHEDULES"));
    }
    let mut key = Key::open(ctx, args[1], false);
    let Some(v) = existing(&mut key)? else {
        rm::reply_array(ctx, 0);
        return Ok(());
    };
    rm::reply_array(ctx, v.queue.schedule_count());
    for s in v.queue.schedules() {
        rm::reply_map(ctx, 11);
        rm::reply_bulk(ctx, b"name");
        rm::reply_bulk(ctx, &s.name);
        rm::reply_bulk(ctx, b"spec");
        rm::reply_bulk(ctx, s.spec_text.as_bytes());
        rm::reply_bulk(ctx, b"tz");
        rm::reply_bulk(ctx, s.tz_name.as_bytes());
        rm::reply_bulk(ctx, b"next_fire");
        rm::reply_u64(ctx, s.next_fire_ms);
        rm::reply_bulk(ctx, b"last_fire");
        match s.last_fire_ms {
            Some(t) => rm::reply_u64(ctx, t),
            None => rm::reply_null(ctx),
        }
        rm::reply_bulk(ctx, b"payload");
        rm::reply_bulk(ctx, &s.payload);
        rm::reply_bulk(ctx, b"retries");
        rm::reply_int(ctx, i64::from(s.options.retries));
        rm::reply_bulk(ctx, b"backoff");
        rm::reply_u64(ctx, s.options.backoff_ms);
        rm::reply_bulk(ctx, b"lease");
        if s.options.lease_ms > 0 {
            rm::reply_u64(ctx, s.options.lease_ms);
        } else {
            rm::reply_null(ctx);
        }
        rm::reply_bulk(ctx, b"priority");
        rm::reply_int(ctx, i64::from(s.options.priority));
        rm::reply_bulk(ctx, b"missed");
        rm::reply_bulk(ctx, s.missed.name().as_bytes());
    }
    Ok(())
}
