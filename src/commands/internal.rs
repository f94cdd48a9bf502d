//! The explicit commands a master sends to its replicas and writes to the AOF: each applies one decided
//! change with absolute times and explicit job numbers, so replaying it gives the same state anywhere.
//!
//! Each applies whole or not at all, and once applied propagates verbatim: Redis never propagates a module
//! command by itself, so without that a replica's own AOF and its sub-replicas would miss every change.
//! A client may send them too (they are deterministic): they then replicate like any write.

use super::args::{arity, err, parse_i64, CmdError, CmdResult};
use super::{existing, existing_or_new, settle};
use crate::core::backoff::Outcome;
use crate::core::events::Kind;
use crate::core::histogram::Which;
use crate::core::limits::{self, FIRE_TIME};
use crate::core::FailCause;
use crate::effects;
use crate::persist::encode::{
    decode_events, decode_group, decode_hist, decode_job, decode_meta, decode_schedule, decode_settings, decode_times,
};
use crate::rm::{self, Ctx, Key, OwnedStr, RStr};
use crate::value::QueueValue;

fn all_bytes<'a>(args: &[RStr<'a>]) -> Vec<&'a [u8]> {
    args.iter().map(|a| a.bytes()).collect()
}

fn number(b: &[u8], what: &str) -> Result<u64, CmdError> {
    parse_i64(b)
        .and_then(|v| u64::try_from(v).ok())
        .ok_or_else(|| err(format!("{what} must be a non-negative integer")))
}

/// Runs `change` on the queue at args[1]; `create` makes the key when it is missing.
fn with_queue(
    ctx: Ctx<'_>,
    args: &[RStr<'_>],
    create: bool,
    change: impl FnOnce(&mut QueueValue) -> Result<(), CmdError>,
) -> CmdResult {
    apply(ctx, args, create, None, change)
}

/// As `with_queue`, for a command whose effect carries the time it ran (events, latencies): it replicates
/// as `ONCE._AT key now <cmd> ...`, which a replica replays at this very time (verbatim when it already is
/// that `_AT`: `now_ms()` is then the master's time).
fn with_queue_at(
    ctx: Ctx<'_>,
    args: &[RStr<'_>],
    create: bool,
    cmd: &'static [u8],
    change: impl FnOnce(&mut QueueValue, u64) -> Result<(), CmdError>,
) -> CmdResult {
    let now = rm::now_ms();
    apply(ctx, args, create, Some((cmd, now)), |v| change(v, now))
}

fn apply(
    ctx: Ctx<'_>,
    args: &[RStr<'_>],
    create: bool,
    timed: Option<(&'static [u8], u64)>,
    change: impl FnOnce(&mut QueueValue) -> Result<(), CmdError>,
) -> CmdResult {
    let mut key = Key::open(ctx, args[1], true);
    let made = create && existing(&mut key)?.is_none();
    let v =
        if create { existing_or_new(&mut key)? } else { existing(&mut key)?.ok_or_else(|| err("no such queue"))? };
    let before = v.snapshot();
    let result = change(v);
    if result.is_err() && made {
        // Whole or not at all: a refused record leaves no empty queue behind.
        key.delete();
        return result;
    }
    settle(ctx, args[1], v, before);
    result?;
    match timed {
        Some((cmd, now)) => {
            let owned: Vec<OwnedStr> = args[1..].iter().map(|&a| OwnedStr::retain(a)).collect();
            effects::at(ctx, now, cmd, &owned);
        }
        None => rm::replicate_verbatim(ctx, args),
    }
    rm::reply_ok(ctx);
    Ok(())
}

/// `ONCE._AT key ms command [arg ...]`: runs `command key arg ...` as if the clock read `ms`. The master
/// sends this for the commands whose effect carries the time they ran; it replicates as itself.
pub fn at(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 4 {
        return Err(arity("ONCE._AT"));
    }
    let ms = number(args[2].bytes(), "time")?;
    limits::AT.check_u64(ms).map_err(err)?;
    let name = args[3].bytes().to_ascii_lowercase();
    let handler: super::Handler = match name.as_slice() {
        b"once.ack" => super::ack::ack,
        b"once.retry" => super::manage::retry,
        b"once.cancel" => super::manage::cancel,
        b"once._reserve" => reserve,
        b"once._drop" => drop,
        b"once._settings" => settings,
        b"once._sweep" => sweep,
        b"once._timed" => timed,
        b"once.progress" => super::result::progress,
        b"once.after" => super::deps::after,
        b"once._notify" => notify,
        _ => return Err(err(format!("ONCE._AT cannot run '{}'", crate::text::shown(args[3].bytes())))),
    };
    let mut inner = Vec::with_capacity(args.len() - 2);
    inner.push(args[3]);
    inner.push(args[1]);
    match args.get(4) {
        // Today's form names the inner command's key, which must be `_AT`'s own.
        Some(k) if k.bytes() == args[1].bytes() => inner.extend_from_slice(&args[5..]),
        // Records written before the inner key was named: only a master or an AOF replays those.
        _ if rm::is_replayed(ctx) => inner.extend_from_slice(&args[4..]),
        _ => {
            let given = args.get(4).map_or(String::from("nothing"), |k| format!("'{}'", crate::text::shown(k.bytes())));
            return Err(err(format!(
                "ONCE._AT runs a command on its own key only: the inner command's key must be '{}', got {given}",
                crate::text::shown(args[1].bytes())
            )));
        }
    }
    rm::at_time(ms, || handler(ctx, &inner))
}

pub fn job(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 4 {
        return Err(arity("ONCE._JOB"));
    }
    let d = decode_job(&all_bytes(&args[2..])).map_err(|e| err(format!("bad job: {e}")))?;
    let (seq, pushed) = (d.job.seq, d.counted && d.job.waits().is_some());
    with_queue(ctx, args, true, |v| {
        let inserted = v.queue.insert_in_group(d.job, d.group.as_deref(), d.counted);
        inserted.map_err(|e| err(format!("bad job: {e}")))?;
        // A job pushed with AFTER takes its place on its dependencies, as on the master (a rebuilt one, LOAD,
        // finds them holding it already).
        if pushed {
            crate::flows::link(ctx, args[1], v, seq, 0);
        }
        Ok(())
    })
}

/// `ONCE._NOTIFY key n m` (at the master's time): the next n notices and m pins of the queue's backlog.
pub fn notify(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 4 {
        return Err(arity("ONCE._NOTIFY"));
    }
    let n = number(args[2].bytes(), "notice count")? as usize;
    let m = number(args[3].bytes(), "pin count")? as usize;
    with_queue_at(ctx, args, false, b"ONCE._NOTIFY\0", |v, now| {
        crate::flows::drain(ctx, args[1], v, n, m, now);
        Ok(())
    })
}

/// `ONCE._BACKLOG key blob`: the queue's notices and pins under way (AOF rewrite).
pub fn backlog(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 3 {
        return Err(arity("ONCE._BACKLOG"));
    }
    with_queue(ctx, args, true, |v| v.queue.set_backlog(args[2].bytes()).map_err(|e| err(format!("bad backlog: {e}"))))
}

pub fn reserve(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 4 || !args.len().is_multiple_of(2) {
        return Err(arity("ONCE._RESERVE"));
    }
    let pairs: Vec<(u64, u64)> = args[2..]
        .chunks(2)
        .map(|p| Ok((number(p[0].bytes(), "seq")?, number(p[1].bytes(), "deadline")?)))
        .collect::<Result<_, CmdError>>()?;
    with_queue_at(ctx, args, false, b"ONCE._RESERVE\0", |v, now| {
        // All or nothing: every pair must name a distinct ready job before any is reserved.
        let mut seen = std::collections::HashSet::with_capacity(pairs.len());
        if let Some(&(seq, _)) = pairs.iter().find(|&&(seq, _)| !v.queue.is_ready(seq) || !seen.insert(seq)) {
            return Err(err(format!("job {seq} is not ready")));
        }
        for (seq, deadline) in pairs {
            v.queue.reserve_exact(seq, deadline, now);
        }
        Ok(())
    })
}

/// `ONCE._FAIL key seq NACK|EXPIRE due|-1 error [now]` (AOF files from before `now` omit it: time 0).
pub fn fail(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 6 && args.len() != 7 {
        return Err(arity("ONCE._FAIL"));
    }
    let a = all_bytes(args);
    let seq = number(a[2], "seq")?;
    let cause = match a[3] {
        b"NACK" => FailCause::Nack,
        b"EXPIRE" => FailCause::LeaseExpired,
        _ => return Err(err("cause must be NACK or EXPIRE")),
    };
    let outcome = match parse_i64(a[4]) {
        Some(-1) => Outcome::Dead,
        _ => Outcome::RetryAt(number(a[4], "due")?),
    };
    let text = crate::core::limits::check_error_text(a[5]).map_err(err)?;
    let error = (!text.is_empty()).then_some(text);
    let now = match a.get(6) {
        Some(t) => number(t, "time")?,
        None => 0,
    };
    with_queue(ctx, args, false, |v| {
        if v.queue.apply_failure(seq, cause, error, outcome, now) {
            Ok(())
        } else {
            Err(err(format!("job {seq} is not reserved")))
        }
    })
}

pub fn lease(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 4 {
        return Err(arity("ONCE._LEASE"));
    }
    let seq = number(args[2].bytes(), "seq")?;
    let deadline = number(args[3].bytes(), "deadline")?;
    with_queue(ctx, args, false, |v| {
        if v.queue.set_lease(seq, deadline) {
            Ok(())
        } else {
            Err(err(format!("job {seq} is not reserved")))
        }
    })
}

pub fn promote(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 3 {
        return Err(arity("ONCE._PROMOTE"));
    }
    let n = number(args[2].bytes(), "count")? as usize;
    with_queue(ctx, args, false, |v| {
        v.queue.promote_first(n);
        Ok(())
    })
}

pub fn meta(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    // 7 totals before dead caps, 8 before TTL, 9 since.
    if !(10..=12).contains(&args.len()) {
        return Err(arity("ONCE._META"));
    }
    let (next_seq, totals) = decode_meta(&all_bytes(&args[2..])).map_err(|e| err(format!("bad meta: {e}")))?;
    with_queue(ctx, args, true, |v| {
        if !v.queue.set_next_seq(next_seq) {
            return Err(err("id sequence out of range"));
        }
        v.queue.totals = totals;
        Ok(())
    })
}

pub fn sched(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 13 {
        return Err(arity("ONCE._SCHED"));
    }
    let s = decode_schedule(&all_bytes(&args[2..])).map_err(|e| err(format!("bad schedule: {e}")))?;
    with_queue(ctx, args, true, |v| {
        v.queue.put_schedule(s);
        v.noted_deadline = u64::MAX;
        Ok(())
    })
}

pub fn fired(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 5 {
        return Err(arity("ONCE._FIRED"));
    }
    let a = all_bytes(args);
    let fire = match parse_i64(a[3]) {
        Some(-1) => None,
        _ => Some(number(a[3], "fire")?),
    };
    let next = number(a[4], "next fire")?;
    for t in fire.into_iter().chain([next]) {
        FIRE_TIME.check_u64(t).map_err(err)?;
    }
    with_queue(ctx, args, false, |v| {
        if !v.queue.set_fired(a[2], fire, next) {
            return Err(err("no such schedule"));
        }
        v.noted_deadline = u64::MAX;
        Ok(())
    })
}

/// `ONCE._SETTINGS key <settings in schema order>`: the queue's settings and paused flag.
pub fn settings(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    let a = all_bytes(args);
    if args.len() < 3 {
        return Err(arity("ONCE._SETTINGS"));
    }
    let s = decode_settings(&a[2..]).map_err(|e| err(format!("bad settings: {e}")))?;
    with_queue_at(ctx, args, true, b"ONCE._SETTINGS\0", |v, now| {
        if s.paused != v.queue.settings.paused {
            v.queue.note_queue(if s.paused { Kind::Pause } else { Kind::Resume }, now);
        }
        v.queue.set_settings(s);
        v.noted_deadline = u64::MAX;
        Ok(())
    })
}

/// `ONCE._DROP key seq [seq ...]`: dead jobs dropped by DEAD-MAX or DEAD-TTL. Each must be dead.
pub fn drop(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE._DROP"));
    }
    let seqs: Vec<u64> = args[2..].iter().map(|a| number(a.bytes(), "seq")).collect::<Result<_, _>>()?;
    with_queue_at(ctx, args, false, b"ONCE._DROP\0", |v, now| {
        if let Some(&seq) = seqs.iter().find(|&&s| v.queue.job(s).map(|j| j.state) != Some(crate::core::State::Dead)) {
            return Err(err(format!("job {seq} is not dead")));
        }
        v.queue.drop_dead(&seqs, now);
        Ok(())
    })
}

/// `ONCE._EVENTS key last-id [id event job attempt ms error] ...`: events appended as they were (AOF
/// rewrite); ids must follow the log's. The log keeps at most EVENTS-MAX of them.
pub fn events(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE._EVENTS"));
    }
    let (last_id, list) = decode_events(&all_bytes(&args[2..])).map_err(|e| err(format!("bad events: {e}")))?;
    with_queue(ctx, args, true, |v| {
        let mut log = v.queue.events.clone();
        for e in list {
            log.restore(e).map_err(err)?;
        }
        if last_id < log.last_id() {
            return Err(err("the last event id is behind an event"));
        }
        log.set_last_id(last_id);
        log.trim(v.queue.settings.events_max);
        v.queue.events = log;
        Ok(())
    })
}

/// `ONCE._HIST key wait|run sum c0 ... c25`: sets one latency histogram (AOF rewrite).
pub fn hist(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE._HIST"));
    }
    let (which, h) = decode_hist(&all_bytes(&args[2..])).map_err(|e| err(format!("bad histogram: {e}")))?;
    with_queue(ctx, args, true, |v| {
        match which {
            Which::Wait => v.queue.wait = h,
            Which::Run => v.queue.run = h,
        }
        Ok(())
    })
}

/// `ONCE._GROUP key name concurrency rate-n rate-per [window time ...]`: a group's own limits (-1: the
/// queue's apply) and rate window, as they are (ONCE.GROUP, AOF rewrite). The empty name is the default
/// group, which has no limits of its own.
pub fn group(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 6 {
        return Err(arity("ONCE._GROUP"));
    }
    let g = decode_group(&all_bytes(&args[2..])).map_err(|e| err(format!("bad group: {e}")))?;
    if g.name.is_empty() && g.own != crate::core::flow::Limits::default() {
        return Err(err("the default group has no limits of its own"));
    }
    with_queue(ctx, args, true, |v| {
        let limits = v.queue.limits();
        let gid = v.queue.flow.gid_or_new(&g.name);
        v.queue.flow.set_group(gid, g.own, g.window, &limits);
        Ok(())
    })
}

/// `ONCE._WINDOW key [time ...]`: the queue's own rate window (AOF rewrite).
pub fn window(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 2 {
        return Err(arity("ONCE._WINDOW"));
    }
    let times = decode_times(&all_bytes(&args[2..])).map_err(|e| err(format!("bad window: {e}")))?;
    with_queue(ctx, args, true, |v| {
        v.queue.flow.window = crate::core::flow::Window(times);
        Ok(())
    })
}

/// `ONCE._RING key FIRST|NEXT name ...`: the round-robin's order (AOF rewrite): these groups take their
/// turns first, in this order (after those of the FIRST command, for NEXT).
pub fn ring(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE._RING"));
    }
    let first = match args[2].bytes().to_ascii_uppercase().as_slice() {
        b"FIRST" => true,
        b"NEXT" => false,
        _ => return Err(err("ring part must be FIRST or NEXT")),
    };
    let names = all_bytes(&args[3..]);
    with_queue(ctx, args, false, |v| {
        let order: Vec<u32> = names
            .iter()
            .map(|n| v.queue.flow.gid(n).ok_or_else(|| err(format!("no group '{}'", crate::text::shown(n)))))
            .collect::<Result<_, _>>()?;
        let limits = v.queue.limits();
        let mut all = if first { Vec::new() } else { v.queue.flow.ring_order(&limits) };
        all.retain(|g| !order.contains(g));
        all.extend(order);
        v.queue.flow.restore_ring(&all, &limits);
        Ok(())
    })
}

/// `ONCE._SWEEP key n`: frees up to n drained groups whose rate window ended by the time it runs at (the
/// timer's step; replayed at the master's time through `ONCE._AT`).
pub fn sweep(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 3 {
        return Err(arity("ONCE._SWEEP"));
    }
    let n = number(args[2].bytes(), "count")? as usize;
    with_queue_at(ctx, args, false, b"ONCE._SWEEP\0", |v, now| {
        v.queue.sweep_groups(now, n);
        Ok(())
    })
}

/// `ONCE._TIMED key TTL|CALL|FORGET seq [seq ...]` (at the master's time): a timer step on these jobs.
pub fn timed(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 4 {
        return Err(arity("ONCE._TIMED"));
    }
    let kind = effects::Timed::from_name(args[2].bytes())
        .ok_or_else(|| err(format!("unknown timed step '{}'", crate::text::shown(args[2].bytes()))))?;
    let seqs: Vec<u64> = args[3..].iter().map(|a| number(a.bytes(), "seq")).collect::<Result<_, _>>()?;
    with_queue_at(ctx, args, false, b"ONCE._TIMED\0", |v, now| {
        effects::apply_timed(ctx, args[1], v, kind, &seqs, now);
        Ok(())
    })
}

/// `ONCE._MANY key n argc cmd arg... [argc cmd arg...]`: the records one client command made (an ack-and-fetch's
/// ACK, promotion and reservation, say), replayed in order as one entry. Only a master's stream or an AOF sends
/// it (each record would reply on its own); it replicates again as one record, so a replica's own AOF and its
/// replicas get one entry too.
pub fn many(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if !rm::is_replayed(ctx) {
        return Err(err("ONCE._MANY is replayed from a master or an AOF only"));
    }
    let records = split_many(args)?;
    for rec in &records {
        let name = rec[0].bytes();
        let cmd = super::table::COMMANDS
            .iter()
            .find(|c| c.name.as_bytes().eq_ignore_ascii_case(name) && c.name != "ONCE._MANY")
            .ok_or_else(|| err(format!("ONCE._MANY cannot run '{}'", crate::text::shown(name))))?;
        (cmd.handler)(ctx, rec)?;
    }
    rm::reply_ok(ctx);
    Ok(())
}

/// The records of `ONCE._MANY`, each checked to fit before any runs.
fn split_many<'a>(args: &'a [RStr<'a>]) -> Result<Vec<&'a [RStr<'a>]>, CmdError> {
    if args.len() < 4 {
        return Err(arity("ONCE._MANY"));
    }
    let n = number(args[2].bytes(), "record count")? as usize;
    let mut out = Vec::with_capacity(n.min(64));
    let mut i = 3;
    for _ in 0..n {
        let argc = number(args.get(i).ok_or_else(|| err("ONCE._MANY ends early"))?.bytes(), "record length")? as usize;
        let rec = args
            .get(i + 1..i + 1 + argc)
            .filter(|r| argc >= 2 && !r.is_empty())
            .ok_or_else(|| err("ONCE._MANY ends early"))?;
        out.push(rec);
        i += 1 + argc;
    }
    if i != args.len() {
        return Err(err("ONCE._MANY has arguments past its records"));
    }
    Ok(out)
}
