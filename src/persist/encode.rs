//! A queue's contents as explicit commands: one encoding shared by replication (every state change the
//! master decides) and AOF rewrite (the whole queue), and the decoding the internal commands use.
//!
//! `ONCE._JOB key PUSH|LOAD seq created state attempts retries backoff lease priority deadline payload id last_error`
//! (`id` and `last_error` empty when absent; PUSH counts the job in pushed_total, LOAD does not).

use crate::commands::args::parse_i64;
use crate::core::schedule::{JobOptions, Missed, Schedule};
use crate::core::{Extra, Job, State, Totals};
use std::ffi::{c_char, c_longlong};

use redis_module::raw;

use crate::rm::{Ctx, OwnedStr, RStr};

pub const JOB_ARGC: usize = 15;

fn int(v: u64) -> OwnedStr {
    OwnedStr::int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Arguments of `ONCE._JOB` after the command name.
pub fn job_args(key: RStr, mode: &[u8], job: &Job) -> Vec<OwnedStr> {
    vec![
        OwnedStr::new(crate::rm::bytes(key)),
        OwnedStr::new(mode),
        int(job.seq),
        int(job.created_ms),
        OwnedStr::new(job.state.name().as_bytes()),
        int(u64::from(job.attempts)),
        int(u64::from(job.retries)),
        int(job.backoff_ms),
        int(u64::from(job.lease_ms)),
        OwnedStr::int(i64::from(job.priority)),
        int(job.deadline_ms),
        OwnedStr::new(&job.payload),
        OwnedStr::new(job.custom_id().unwrap_or(b"")),
        OwnedStr::new(job.last_error().unwrap_or(b"")),
    ]
}

/// Sends `ONCE._JOB` to replicas and the AOF. One typed call instead of a vector of strings: the server
/// builds the arguments itself and shares small integers, which keeps PUSH cheap.
pub fn replicate_job(ctx: Ctx, key: RStr, mode: &'static [u8], job: &Job, payload: RStr) {
    let id = job.custom_id().unwrap_or(b"");
    let error = job.last_error().unwrap_or(b"");
    let state: &'static [u8] = match job.state {
        State::Ready => b"ready\0",
        State::Delayed => b"delayed\0",
        State::Reserved => b"reserved\0",
        State::Dead => b"dead\0",
    };
    let i = |v: u64| i64::try_from(v).unwrap_or(i64::MAX) as c_longlong;
    unsafe {
        raw::RedisModule_Replicate.unwrap()(
            ctx,
            b"ONCE._JOB\0".as_ptr().cast::<c_char>(),
            b"scllcllllllsbb\0".as_ptr().cast::<c_char>(),
            key,
            mode.as_ptr().cast::<c_char>(),
            i(job.seq),
            i(job.created_ms),
            state.as_ptr().cast::<c_char>(),
            i(u64::from(job.attempts)),
            i(u64::from(job.retries)),
            i(job.backoff_ms),
            i(u64::from(job.lease_ms)),
            c_longlong::from(job.priority),
            i(job.deadline_ms),
            payload,
            id.as_ptr().cast::<c_char>(),
            id.len(),
            error.as_ptr().cast::<c_char>(),
            error.len(),
        );
    }
}

fn num(b: &[u8], what: &str, max: u64) -> Result<u64, String> {
    parse_i64(b)
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v <= max)
        .ok_or_else(|| format!("bad {what} '{}'", crate::commands::args::shown(b)))
}

/// Reads the fields of `ONCE._JOB` from `seq` on (args[3..] of the command).
pub fn decode_job(a: &[&[u8]]) -> Result<Job, String> {
    if a.len() != JOB_ARGC - 3 {
        return Err("wrong number of job fields".into());
    }
    let state = State::from_name(a[2]).ok_or("bad state")?;
    let priority = parse_i64(a[7]).filter(|p| (-1_000_000..=1_000_000).contains(p)).ok_or("bad priority")?;
    let id = a[10];
    if id.len() > 256 {
        return Err("bad id".into());
    }
    let job = Job {
        seq: num(a[0], "seq", u64::MAX >> 1)?,
        created_ms: num(a[1], "created", i64::MAX as u64)?,
        state,
        attempts: num(a[3], "attempts", u64::from(u32::MAX))? as u32,
        retries: num(a[4], "retries", 1000)? as u16,
        backoff_ms: num(a[5], "backoff", 315_360_000_000)?,
        lease_ms: num(a[6], "lease", 604_800_000)? as u32,
        priority: priority as i32,
        deadline_ms: num(a[8], "deadline", i64::MAX as u64)?,
        payload: a[9].into(),
        extra: Extra::boxed((!id.is_empty()).then(|| id.into()), (!a[11].is_empty()).then(|| a[11].into())),
    };
    Ok(job)
}

/// `ONCE._META key next_seq pushed reserved acked nacked expired retried dead`
pub fn meta_args(key: RStr, next_seq: u64, t: &Totals) -> Vec<OwnedStr> {
    let mut v = vec![OwnedStr::new(crate::rm::bytes(key)), int(next_seq)];
    for x in [t.pushed, t.reserved, t.acked, t.nacked, t.expired, t.retried, t.dead] {
        v.push(int(x));
    }
    v
}

pub fn decode_meta(a: &[&[u8]]) -> Result<(u64, Totals), String> {
    if a.len() != 8 {
        return Err("wrong number of meta fields".into());
    }
    let mut n = [0u64; 8];
    for (i, b) in a.iter().enumerate() {
        n[i] = num(b, "counter", i64::MAX as u64)?;
    }
    let totals = Totals { pushed: n[1], reserved: n[2], acked: n[3], nacked: n[4], expired: n[5], retried: n[6], dead: n[7] };
    Ok((n[0], totals))
}

/// `ONCE._SCHED key name spec tz payload retries backoff lease priority missed next_fire last_fire(-1: never)`
pub fn schedule_args(key: RStr, s: &Schedule) -> Vec<OwnedStr> {
    vec![
        OwnedStr::new(crate::rm::bytes(key)),
        OwnedStr::new(&s.name),
        OwnedStr::new(s.spec_text.as_bytes()),
        OwnedStr::new(s.tz_name.as_bytes()),
        OwnedStr::new(&s.payload),
        int(u64::from(s.options.retries)),
        int(s.options.backoff_ms),
        int(s.options.lease_ms),
        OwnedStr::int(i64::from(s.options.priority)),
        OwnedStr::new(s.missed.name().as_bytes()),
        int(s.next_fire_ms),
        s.last_fire_ms.map_or_else(|| OwnedStr::int(-1), int),
    ]
}

pub fn decode_schedule(a: &[&[u8]]) -> Result<Schedule, String> {
    if a.len() != 11 {
        return Err("wrong number of schedule fields".into());
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| "spec and zone must be UTF-8".to_string());
    let options = JobOptions {
        retries: num(a[4], "retries", 1000)? as u32,
        backoff_ms: num(a[5], "backoff", 315_360_000_000)?,
        lease_ms: num(a[6], "lease", 604_800_000)?,
        priority: parse_i64(a[7]).filter(|p| (-1_000_000..=1_000_000).contains(p)).ok_or("bad priority")? as i32,
    };
    let missed = Missed::from_name(a[8]).ok_or("bad missed policy")?;
    let next = num(a[9], "next fire", i64::MAX as u64)?;
    let last = match parse_i64(a[10]) {
        Some(-1) => None,
        _ => Some(num(a[10], "last fire", i64::MAX as u64)?),
    };
    Schedule::restore(a[0].into(), &text(a[1])?, &text(a[2])?, a[3].into(), options, missed, next, last)
}
