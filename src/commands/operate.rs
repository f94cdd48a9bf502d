//! Operating a queue: ONCE.LIST, ONCE.PURGE, ONCE.PAUSE, ONCE.RESUME, ONCE.CONFIGURE.

use super::args::{arity, err, CmdResult, Options};
use super::inspect::reply_job;
use super::spec::{CONFIGURE_ARGS, LIST_ARGS};
use super::{existing, existing_or_new, settle};
use crate::core::events::Kind;
use crate::core::flow::Rate;
use crate::core::glob::Glob;
use crate::core::limits::Range;
use crate::core::limits::{self, LIST_COUNT_DEFAULT};
use crate::core::queue::list::{Budget, Cursor};
use crate::core::settings::Settings;
use crate::core::{Job, State};
use crate::effects;
use crate::rm::{self, Ctx, Key, OwnedStr, RStr};
use crate::text::{parse_i64, shown};

fn state_arg(b: &[u8], allowed: &[State]) -> Result<State, super::args::CmdError> {
    let lower = b.to_ascii_lowercase();
    State::from_name(&lower).filter(|s| allowed.contains(s)).ok_or_else(|| {
        let names: Vec<&str> = allowed.iter().map(|s| s.name()).collect();
        err(format!("state must be {}, got '{}'", names.join("|"), shown(b)))
    })
}

/// A cursor is `0` (the start) or what the previous page returned: `<time>:<seq>`, or for ready jobs
/// `<group>:<priority>:<position>` (a two-part ready cursor from before groups reads as the default group).
fn parse_cursor(b: &[u8]) -> Result<Option<Cursor>, super::args::CmdError> {
    if b == b"0" {
        return Ok(None);
    }
    let bad = || err(format!("invalid cursor '{}'", shown(b)));
    let text = std::str::from_utf8(b).map_err(|_| bad())?;
    let parts: Vec<&str> = text.split(':').collect();
    let unsigned = |t: &str| parse_i64(t.as_bytes()).and_then(|v| u64::try_from(v).ok()).ok_or_else(bad);
    let signed = |t: &str| parse_i64(t.as_bytes()).ok_or_else(bad);
    match parts.as_slice() {
        [a, c] => Ok(Some((0, signed(a)?, unsigned(c)?))),
        [g, a, c] => Ok(Some((unsigned(g)?, signed(a)?, unsigned(c)?))),
        _ => Err(bad()),
    }
}

fn cursor_text(state: State, (g, a, b): Cursor) -> Vec<u8> {
    match state {
        State::Ready => format!("{g}:{a}:{b}").into_bytes(),
        _ => format!("{a}:{b}").into_bytes(),
    }
}

/// ONCE.LIST queue ready|delayed|reserved|dead [CURSOR c] [COUNT n] [WITHPAYLOADS] [MATCH pattern]
pub fn list(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.LIST"));
    }
    let all = [
        State::Ready,
        State::Delayed,
        State::Reserved,
        State::Dead,
        State::Completed,
        State::Cancelled,
        State::Waiting,
    ];
    let state = state_arg(args[2].bytes(), &all)?;
    let mut cursor = None;
    let mut count = LIST_COUNT_DEFAULT;
    let mut payloads = false;
    let mut pattern = None;
    let mut opts = Options::new(args, 3, LIST_ARGS);
    while let Some(token) = opts.next_option()? {
        match token {
            "CURSOR" => cursor = parse_cursor(opts.value("CURSOR")?)?,
            "COUNT" => count = opts.int(limits::LIST_COUNT)? as usize,
            "MATCH" => {
                let p = opts.value("MATCH")?;
                if p.len() > limits::MAX_MATCH_BYTES {
                    return Err(err(format!("MATCH pattern is {} bytes, over {}", p.len(), limits::MAX_MATCH_BYTES)));
                }
                pattern = Some(Glob::new(p));
            }
            _ => payloads = true,
        }
    }
    let mut key = Key::open(ctx, args[1], false);
    let Some(v) = existing(&mut key)? else {
        rm::reply_array(ctx, 2);
        rm::reply_bulk(ctx, b"0");
        rm::reply_array(ctx, 0);
        return Ok(());
    };
    let (seqs, next) = match &pattern {
        None => v.queue.list(state, cursor, count),
        Some(glob) => {
            let jobs = (count * limits::MATCH_EXAMINE_PER_COUNT).min(limits::MATCH_EXAMINE_MAX);
            let budget = Budget { jobs, steps: limits::MATCH_EXAMINE_STEPS };
            v.queue.list_where(state, cursor, count, budget, |job| matches(glob, job))
        }
    };
    rm::reply_array(ctx, 2);
    match next {
        Some(c) => rm::reply_bulk(ctx, &cursor_text(state, c)),
        None => rm::reply_bulk(ctx, b"0"),
    }
    let jobs: Vec<_> = seqs.iter().filter_map(|&s| v.queue.job(s)).collect();
    rm::reply_array(ctx, jobs.len());
    for job in jobs {
        reply_job(ctx, &v.queue, &job, payloads);
    }
    Ok(())
}

/// Whether MATCH's pattern matches the job's id, payload or last error, and the matcher's steps.
fn matches(glob: &Glob, job: &Job) -> (bool, usize) {
    let mut steps = 0;
    let id = job.id_bytes();
    let error = job.last_error();
    for text in [Some(&id[..]), Some(&job.payload[..]), error] {
        let Some(text) = text else { continue };
        let (matched, n) = glob.matches_counting(text);
        steps += n;
        if matched {
            return (true, steps);
        }
    }
    (false, steps)
}

/// ONCE.PURGE queue ready|delayed|dead|completed (completed: every kept job, cancelled ones too)
pub fn purge(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 3 {
        return Err(arity("ONCE.PURGE"));
    }
    let state =
        state_arg(args[2].bytes(), &[State::Ready, State::Delayed, State::Dead, State::Completed, State::Waiting])?;
    let mut key = Key::open(ctx, args[1], true);
    let Some(v) = existing(&mut key)? else {
        rm::reply_int(ctx, 0);
        return Ok(());
    };
    let before = v.snapshot();
    let n = v.queue.purge(state).unwrap_or(0);
    if n > 0 {
        effects::as_itself(ctx, b"ONCE.PURGE\0", &[OwnedStr::retain(args[1]), OwnedStr::new(state.name().as_bytes())]);
        v.noted_deadline = u64::MAX;
        settle(ctx, args[1], v, before);
    }
    rm::reply_u64(ctx, n as u64);
    Ok(())
}

/// ONCE.PAUSE queue / ONCE.RESUME queue: 1 if the state changed.
pub fn pause(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    set_paused(ctx, args, true, "ONCE.PAUSE")
}

pub fn resume(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    set_paused(ctx, args, false, "ONCE.RESUME")
}

fn set_paused(ctx: Ctx<'_>, args: &[RStr<'_>], paused: bool, name: &str) -> CmdResult {
    if args.len() != 2 {
        return Err(arity(name));
    }
    let mut key = Key::open(ctx, args[1], true);
    // Both create the key, as CONFIGURE does: an operator who pauses a queue before its first push (a deploy)
    // expects the pause to hold when jobs arrive.
    let created = existing(&mut key)?.is_none();
    let v = existing_or_new(&mut key)?;
    let now = rm::now_ms();
    if v.queue.settings.paused == paused {
        if created {
            effects::settings(ctx, args[1], v, now);
        }
        rm::reply_int(ctx, 0);
        return Ok(());
    }
    let before = v.snapshot();
    v.queue.settings.paused = paused;
    v.queue.note_queue(if paused { Kind::Pause } else { Kind::Resume }, now);
    effects::settings(ctx, args[1], v, now);
    rm::notify(ctx, if paused { c"once.pause" } else { c"once.resume" }, args[1]);
    settle(ctx, args[1], v, before);
    rm::reply_int(ctx, 1);
    Ok(())
}

/// ONCE.CONFIGURE queue [RETRIES n] [BACKOFF ms] [LEASE ms] [DEAD-MAX n] [DEAD-TTL ms] ...: the settings.
pub fn configure(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 2 {
        return Err(arity("ONCE.CONFIGURE"));
    }
    let mut key = Key::open(ctx, args[1], true);
    let current = existing(&mut key)?.map(|v| v.queue.settings);
    let mut s = current.unwrap_or_default();
    let mut opts = Options::new(args, 2, CONFIGURE_ARGS);
    let mut changed = false;
    while let Some(token) = opts.next_option()? {
        changed = true;
        match token {
            "RETRIES" => s.retries = Some(opts.int(limits::RETRIES)? as u32),
            "BACKOFF" => s.backoff_ms = Some(opts.int(limits::BACKOFF)? as u64),
            "LEASE" => s.lease_ms = Some(opts.int(limits::LEASE)? as u64),
            "DEAD-MAX" => s.dead_max = opts.int(limits::DEAD_MAX)? as u64,
            "DEAD-TTL" => s.dead_ttl_ms = opts.int(limits::DEAD_TTL)? as u64,
            "EVENTS-MAX" => s.events_max = opts.int(limits::EVENTS_MAX)? as u64,
            "CONCURRENCY" => s.concurrency = opts.int(limits::CONCURRENCY)? as u32,
            "GROUP-CONCURRENCY" => s.group_concurrency = opts.int(limits::CONCURRENCY)? as u32,
            "RATE" => s.rate = rate_value(&mut opts, "RATE")?,
            "KEEP" => s.keep_ms = opts.int(limits::KEEP)? as u64,
            "KEEP-MAX" => s.keep_max = opts.int(limits::KEEP_MAX)? as u64,
            _ => s.group_rate = rate_value(&mut opts, "GROUP-RATE")?,
        }
    }
    if !changed && current.is_none() {
        reply_settings(ctx, &s);
        return Ok(());
    }
    let v = existing_or_new(&mut key)?;
    // A key this call made is replicated even when the settings it got are the defaults: else the master holds a
    // queue its replicas and its AOF never heard of.
    if changed && (current.is_none() || s != v.queue.settings) {
        let before = v.snapshot();
        v.queue.set_settings(s);
        v.noted_deadline = u64::MAX;
        effects::settings(ctx, args[1], v, rm::now_ms());
        settle(ctx, args[1], v, before);
    }
    reply_settings(ctx, &v.queue.settings);
    Ok(())
}

/// `n PER ms` after RATE or GROUP-RATE (n 0: no limit).
pub fn rate_value(opts: &mut Options<'_>, name: &'static str) -> Result<Rate, super::args::CmdError> {
    let n = opts.int(Range { name, ..limits::RATE_N })? as u32;
    match opts.value(name) {
        Ok(w) if w.eq_ignore_ascii_case(b"PER") => {}
        _ => return Err(err(format!("{name} needs PER ms: {name} n PER ms"))),
    }
    let per = opts.int(limits::RATE_PER)? as u64;
    Ok(Rate { n, per_ms: per })
}

/// The settings as a map: `nil` where the module config applies.
pub fn reply_settings(ctx: Ctx<'_>, s: &Settings) {
    rm::reply_map(ctx, SETTINGS_PAIRS);
    reply_setting_pairs(ctx, s);
}

/// How many field/value pairs `reply_setting_pairs` writes.
pub const SETTINGS_PAIRS: usize = 15;

/// The settings' field/value pairs, inside a map the caller opened (CONFIGURE's own, or STATS').
pub fn reply_setting_pairs(ctx: Ctx<'_>, s: &Settings) {
    let opt = |v: Option<u64>| match v {
        Some(x) => rm::reply_u64(ctx, x),
        None => rm::reply_null(ctx),
    };
    rm::reply_bulk(ctx, b"paused");
    rm::reply_int(ctx, i64::from(s.paused));
    rm::reply_bulk(ctx, b"retries");
    opt(s.retries.map(u64::from));
    rm::reply_bulk(ctx, b"backoff");
    opt(s.backoff_ms);
    rm::reply_bulk(ctx, b"lease");
    opt(s.lease_ms);
    rm::reply_bulk(ctx, b"dead_max");
    rm::reply_u64(ctx, s.dead_max);
    rm::reply_bulk(ctx, b"dead_ttl");
    rm::reply_u64(ctx, s.dead_ttl_ms);
    rm::reply_bulk(ctx, b"events_max");
    rm::reply_u64(ctx, s.events_max);
    let flow: [(&[u8], u64); 8] = [
        (b"concurrency", u64::from(s.concurrency)),
        (b"rate", u64::from(s.rate.n)),
        (b"rate_per", s.rate.per_ms),
        (b"group_concurrency", u64::from(s.group_concurrency)),
        (b"group_rate", u64::from(s.group_rate.n)),
        (b"group_rate_per", s.group_rate.per_ms),
        (b"keep", s.keep_ms),
        (b"keep_max", s.keep_max),
    ];
    for (name, v) in flow {
        rm::reply_bulk(ctx, name);
        rm::reply_u64(ctx, v);
    }
}
