//! A queue's contents as explicit commands: one encoding shared by replication (every state change the
//! master decides) and AOF rewrite (the whole queue), and the decoding the internal commands use.
//!
//! `ONCE._JOB key "<mode> <the job's numbers in schema order (core/schema.rs)>" payload [ID id] [ERROR text]`
//! The numbers travel as one space-separated header: every argument costs Redis two allocations when it
//! replicates, and this is the command every PUSH sends. `mode` is PUSH (counted in pushed_total) or LOAD.

use crate::core::job::push_signed;
use crate::core::limits;
use crate::core::schedule::{Missed, Schedule};
use crate::text::{parse_i64, shown};
use std::collections::VecDeque;

use crate::core::events::{Event, EventLog, Kind};
use crate::core::flow::{Group, Limits, Rate, Window};
use crate::core::histogram::{Histogram, Which, BUCKETS};
use crate::core::job::{check_job, JOB_FIELDS, V2_JOB_FIELDS};
use crate::core::queue::bulk::Bulk;
use crate::core::queue::totals::{LEGACY_TOTALS, TOTAL_FIELDS, V4_TOTALS};
use crate::core::queue::{NEXT_SEQ, SEQ_LIMIT};
use crate::core::schedule::SCHEDULE_FIELDS;
use crate::core::settings::{Settings, SETTING_FIELDS, V2_SETTINGS, V3_SETTINGS, V4_SETTINGS};
use crate::core::{Extra, Job, State, Totals};
use crate::rm::{OwnedStr, RStr};

fn int(v: u64) -> OwnedStr {
    OwnedStr::int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// The header of `ONCE._JOB`: the mode, then every number of the job in schema order.
pub fn job_header(mode: &str, job: &Job) -> Vec<u8> {
    let mut h = Vec::with_capacity(96);
    h.extend_from_slice(mode.as_bytes());
    for f in &JOB_FIELDS {
        h.push(b' ');
        push_signed(&mut h, (f.get)(job));
    }
    h
}

/// Arguments of `ONCE._JOB` after the command name (for AOF rewrite); `group` empty for the default group.
pub fn job_args(key: RStr<'_>, mode: &str, job: &Job, group: &[u8]) -> Vec<OwnedStr> {
    let mut v = vec![OwnedStr::new(key.bytes()), OwnedStr::new(&job_header(mode, job)), OwnedStr::new(&job.payload)];
    if let Some(id) = job.custom_id() {
        v.push(OwnedStr::new(b"ID"));
        v.push(OwnedStr::new(id));
    }
    if let Some(e) = job.last_error() {
        v.push(OwnedStr::new(b"ERROR"));
        v.push(OwnedStr::new(e));
    }
    if !group.is_empty() {
        v.push(OwnedStr::new(b"GROUP"));
        v.push(OwnedStr::new(group));
    }
    for (name, value) in finish_options(job) {
        v.push(OwnedStr::new(name.to_bytes()));
        v.push(OwnedStr::new(&value));
    }
    v
}

/// The options of issue 21 a job carries in `ONCE._JOB` (after ID, ERROR and GROUP): RESULT, PROGRESS, KEEP,
/// TTL (with TTL-DROP 1 for DROP) and CANCEL-AT, each only when set.
pub fn finish_options(job: &Job) -> Vec<(&'static std::ffi::CStr, Vec<u8>)> {
    let mut v = Vec::new();
    let num = |n: u64| n.to_string().into_bytes();
    if let Some(r) = job.result() {
        v.push((c"RESULT", r.to_vec()));
    }
    if let Some(p) = job.progress() {
        v.push((c"PROGRESS", p.to_vec()));
    }
    if let Some(k) = job.keep_ms() {
        v.push((c"KEEP", num(k)));
    }
    if let Some(t) = job.ttl() {
        v.push((c"TTL", num(t.at)));
        if t.drop {
            v.push((c"TTL-DROP", b"1".to_vec()));
        }
    }
    if let Some(c) = job.cancel_at() {
        v.push((c"CANCEL-AT", num(c)));
    }
    if job.has_links() {
        v.push((c"LINKS", crate::core::deps::encode_links(job.waits(), job.dependents())));
    }
    v
}

fn num(b: &[u8], what: &str, max: u64) -> Result<u64, String> {
    parse_i64(b)
        .and_then(|v| u64::try_from(v).ok())
        .filter(|&v| v <= max)
        .ok_or_else(|| format!("bad {what} '{}'", shown(b)))
}

/// A job as `ONCE._JOB` carries it: the job, whether it counts as pushed, and its group's name (None: the
/// default group).
pub struct DecodedJob {
    pub job: Job,
    pub counted: bool,
    pub group: Option<Box<[u8]>>,
}

/// Reads `ONCE._JOB`'s arguments after the key: header, payload, then optional ID, ERROR and GROUP.
pub fn decode_job(a: &[&[u8]]) -> Result<DecodedJob, String> {
    let (header, payload) = match a {
        [h, p, ..] => (*h, *p),
        _ => return Err("wrong number of arguments".into()),
    };
    let mut custom_id = None;
    let mut last_error = None;
    let mut group = None;
    let mut more = Extra::default();
    let mut ttl_drop = false;
    let mut rest = a[2..].chunks(2);
    let time = |v: &[u8], what: &str| num(v, what, i64::MAX as u64);
    for pair in &mut rest {
        match pair {
            // Results and progress are as long as a payload may be (no limit of their own here).
            [name, value] if name.eq_ignore_ascii_case(b"RESULT") && more.result.is_none() => {
                more.result = Some((*value).into());
            }
            [name, value] if name.eq_ignore_ascii_case(b"PROGRESS") && more.progress.is_none() => {
                more.progress = Some((*value).into());
            }
            [name, value] if name.eq_ignore_ascii_case(b"KEEP") && more.keep_ms.is_none() => {
                more.keep_ms = Some(num(value, "KEEP", limits::KEEP.max as u64)?);
            }
            [name, value] if name.eq_ignore_ascii_case(b"TTL") && more.ttl.is_none() => {
                more.ttl = Some(crate::core::job::Ttl { at: time(value, "TTL")?, drop: false });
            }
            [name, value] if name.eq_ignore_ascii_case(b"TTL-DROP") && *value == b"1" && !ttl_drop => ttl_drop = true,
            [name, value] if name.eq_ignore_ascii_case(b"CANCEL-AT") && more.cancel_at.is_none() => {
                more.cancel_at = Some(time(value, "CANCEL-AT")?);
            }
            [name, value]
                if name.eq_ignore_ascii_case(b"LINKS") && more.waits.is_none() && more.dependents.is_none() =>
            {
                (more.waits, more.dependents) = crate::core::deps::decode_links(value)?;
            }
            [name, value] if name.eq_ignore_ascii_case(b"ID") && custom_id.is_none() => {
                if value.is_empty() || value.len() > 256 {
                    return Err("ID must be 1 to 256 bytes".into());
                }
                custom_id = Some((*value).into());
            }
            [name, value] if name.eq_ignore_ascii_case(b"ERROR") && last_error.is_none() => {
                // An empty text is no text (as NACK ERROR ""), so that it reloads the same.
                let text = limits::check_error_text(value)?;
                last_error = (!text.is_empty()).then(|| text.into());
            }
            [name, value] if name.eq_ignore_ascii_case(b"GROUP") && group.is_none() => {
                if value.is_empty() || value.len() > limits::MAX_GROUP_BYTES {
                    return Err("GROUP must be 1 to 256 bytes".into());
                }
                group = Some((*value).into());
            }
            _ => return Err(format!("unexpected argument '{}'", shown(pair[0]))),
        }
    }
    let f: Vec<&[u8]> = header.split(|&b| b == b' ').collect();
    let counted = match f.first().copied() {
        Some(b"PUSH") => true,
        Some(b"LOAD") => false,
        _ => return Err("mode must be PUSH or LOAD".into()),
    };
    let mut job = match f.len() - 1 {
        // The fields of the schema, or those before `since` (AOF files of that time).
        n if n == JOB_FIELDS.len() || n == V2_JOB_FIELDS => {
            let mut job = Job::blank();
            for (field, text) in JOB_FIELDS.iter().zip(&f[1..]) {
                let v = parse_i64(text).ok_or_else(|| format!("bad {} '{}'", field.name(), shown(text)))?;
                field.put(&mut job, v)?;
            }
            job
        }
        9 => decode_legacy_header(&f[1..])?,
        _ => return Err(format!("the header needs {} fields", JOB_FIELDS.len() + 1)),
    };
    job.payload = payload.into();
    match (&mut more.ttl, ttl_drop) {
        (Some(t), true) => t.drop = true,
        (None, true) => return Err("TTL-DROP without TTL".into()),
        _ => {}
    }
    more.retry_base = job.retry_base();
    more.custom_id = custom_id;
    more.last_error = last_error;
    job.extra = more.boxed_if_any();
    check_job(&job)?;
    Ok(DecodedJob { job, counted, group })
}

/// The header written before the schema (AOF files of that time still replay): the state by name, no
/// retry base.
fn decode_legacy_header(f: &[&[u8]]) -> Result<Job, String> {
    let priority = parse_i64(f[7]).filter(|p| limits::PRIORITY.contains(*p)).ok_or("bad priority")?;
    Ok(Job {
        seq: num(f[0], "seq", SEQ_LIMIT - 1)?,
        created_ms: num(f[1], "created", i64::MAX as u64)?,
        state: State::from_name(f[2]).ok_or("bad state")?,
        attempts: num(f[3], "attempts", u64::from(u32::MAX))? as u32,
        retries: num(f[4], "retries", limits::RETRIES.max as u64)? as u16,
        backoff_ms: num(f[5], "backoff", limits::BACKOFF.max as u64)?,
        lease_ms: num(f[6], "lease", limits::MAX_LEASE_MS as u64)? as u32,
        priority: priority as i32,
        deadline_ms: num(f[8], "deadline", i64::MAX as u64)?,
        ..Job::blank()
    })
}

/// `ONCE._META key next_seq <totals in schema order>`
pub fn meta_args(key: RStr<'_>, next_seq: u64, t: &Totals) -> Vec<OwnedStr> {
    let mut v = vec![OwnedStr::new(key.bytes()), int(next_seq)];
    v.extend(TOTAL_FIELDS.iter().map(|f| OwnedStr::int((f.get)(t))));
    v
}

pub fn decode_meta(a: &[&[u8]]) -> Result<(u64, Totals), String> {
    if ![TOTAL_FIELDS.len(), V4_TOTALS, LEGACY_TOTALS].contains(&(a.len().wrapping_sub(1))) {
        return Err("wrong number of meta fields".into());
    }
    let next = parse_i64(a[0]).ok_or_else(|| format!("bad id sequence '{}'", shown(a[0])))?;
    let next_seq = NEXT_SEQ.check_i64(next)? as u64;
    let mut totals = Totals::default();
    for (f, text) in TOTAL_FIELDS.iter().zip(&a[1..]) {
        let v = parse_i64(text).ok_or_else(|| format!("bad {} '{}'", f.name(), shown(text)))?;
        f.put(&mut totals, v)?;
    }
    Ok((next_seq, totals))
}

/// `ONCE._SCHED key name spec tz payload retries backoff lease priority missed next_fire last_fire(-1: never)`
pub fn schedule_args(key: RStr<'_>, s: &Schedule) -> Vec<OwnedStr> {
    let mut v = vec![
        OwnedStr::new(key.bytes()),
        OwnedStr::new(&s.name),
        OwnedStr::new(s.spec_text.as_bytes()),
        OwnedStr::new(s.tz_name.as_bytes()),
        OwnedStr::new(&s.payload),
    ];
    for (i, f) in SCHEDULE_FIELDS.iter().enumerate() {
        // The policy travels by name (as it always has, so older AOF files replay).
        v.push(if i == MISSED_AT { OwnedStr::new(s.missed.name().as_bytes()) } else { OwnedStr::int((f.get)(s)) });
    }
    v
}

/// Where the MISSED policy stands among SCHEDULE_FIELDS.
const MISSED_AT: usize = 4;

pub fn decode_schedule(a: &[&[u8]]) -> Result<Schedule, String> {
    if a.len() != 4 + SCHEDULE_FIELDS.len() {
        return Err("wrong number of schedule fields".into());
    }
    let text = |b: &[u8]| String::from_utf8(b.to_vec()).map_err(|_| "spec and zone must be UTF-8".to_string());
    let mut values = [0i64; SCHEDULE_FIELDS.len()];
    for (i, (f, t)) in SCHEDULE_FIELDS.iter().zip(&a[4..]).enumerate() {
        values[i] = match (i, Missed::from_name(t)) {
            (MISSED_AT, Some(m)) => i64::from(m == Missed::Skip),
            (MISSED_AT, None) => return Err("bad missed policy".into()),
            _ => parse_i64(t).ok_or_else(|| format!("bad {} '{}'", f.name(), shown(t)))?,
        };
    }
    Schedule::from_numbers(a[0].into(), &text(a[1])?, &text(a[2])?, a[3].into(), &values)
}

/// `ONCE._SETTINGS key <the queue's settings in schema order>` (CONFIGURE, PAUSE, RESUME, AOF rewrite).
pub fn settings_args(key: RStr<'_>, s: &Settings) -> Vec<OwnedStr> {
    let mut v = vec![OwnedStr::new(key.bytes())];
    v.extend(SETTING_FIELDS.iter().map(|f| OwnedStr::int((f.get)(s))));
    v
}

pub fn decode_settings(a: &[&[u8]]) -> Result<Settings, String> {
    // Before EVENTS-MAX and before flow control there were fewer (AOF files of those times).
    if ![SETTING_FIELDS.len(), V4_SETTINGS, V3_SETTINGS, V2_SETTINGS].contains(&a.len()) {
        return Err("wrong number of settings".into());
    }
    let mut s = Settings::default();
    for (f, text) in SETTING_FIELDS.iter().zip(a) {
        let v = parse_i64(text).ok_or_else(|| format!("bad {} '{}'", f.name(), shown(text)))?;
        f.put(&mut s, v)?;
    }
    Ok(s)
}

/// Events per `ONCE._EVENTS` command of an AOF rewrite.
const EVENTS_PER_COMMAND: usize = 1000;

/// `ONCE._EVENTS key last-id [id event job attempt ms error] ...`, as many commands as the log needs
/// (`job` and `error` are "" when there is none): the log as it is, for AOF rewrite.
pub fn events_args(key: RStr<'_>, log: &EventLog) -> Vec<Vec<OwnedStr>> {
    let all: Vec<&Event> = log.iter().collect();
    let mut out = Vec::new();
    let chunks = all.len().div_ceil(EVENTS_PER_COMMAND);
    for (i, chunk) in all.chunks(EVENTS_PER_COMMAND).enumerate() {
        // Each record raises the last id only as far as its own events go (the next record's must follow it);
        // the last one carries the log's own, which may be past its last event.
        let last = if i + 1 == chunks { log.last_id() } else { chunk.last().map_or(0, |e| e.id) };
        let mut v = vec![OwnedStr::new(key.bytes()), int(last)];
        for e in chunk {
            v.push(int(e.id));
            v.push(OwnedStr::new(e.kind.name().as_bytes()));
            v.push(OwnedStr::new(e.job.as_deref().unwrap_or(b"")));
            v.push(int(u64::from(e.attempt)));
            v.push(int(e.ms));
            v.push(OwnedStr::new(e.error.as_deref().unwrap_or(b"")));
        }
        out.push(v);
    }
    if out.is_empty() && log.last_id() > 0 {
        out.push(vec![OwnedStr::new(key.bytes()), int(log.last_id())]);
    }
    out
}

/// Reads `ONCE._EVENTS`' arguments after the key: the last id handed out, then the events.
pub fn decode_events(a: &[&[u8]]) -> Result<(u64, Vec<Event>), String> {
    let Some((last, rest)) = a.split_first() else { return Err("wrong number of arguments".into()) };
    if rest.len() % 6 != 0 {
        return Err("each event has 6 fields".into());
    }
    let last_id = num(last, "last event id", i64::MAX as u64)?;
    let opt = |b: &[u8]| (!b.is_empty()).then(|| Box::<[u8]>::from(b));
    let mut events = Vec::with_capacity(rest.len() / 6);
    for e in rest.chunks(6) {
        if e[2].len() > limits::MAX_ID_BYTES {
            return Err("an event's job id is over 256 bytes".into());
        }
        events.push(Event {
            id: num(e[0], "event id", i64::MAX as u64)?,
            kind: Kind::from_name(e[1]).ok_or_else(|| format!("bad event '{}'", shown(e[1])))?,
            job: opt(e[2]),
            attempt: num(e[3], "attempt", u64::from(u32::MAX))? as u32,
            ms: num(e[4], "event time", i64::MAX as u64)?,
            error: opt(limits::check_error_text(e[5])?),
        });
    }
    Ok((last_id, events))
}

/// `ONCE._HIST key wait|run sum c0 ... c25`: one histogram as it is (AOF rewrite).
pub fn hist_args(key: RStr<'_>, which: Which, h: &Histogram) -> Vec<OwnedStr> {
    let mut v = vec![OwnedStr::new(key.bytes()), OwnedStr::new(which.name().as_bytes()), int(h.sum_ms)];
    v.extend(h.counts.iter().map(|&c| int(c)));
    v
}

pub fn decode_hist(a: &[&[u8]]) -> Result<(Which, Histogram), String> {
    if a.len() != 2 + BUCKETS {
        return Err(format!("a histogram has {BUCKETS} buckets"));
    }
    let which = Which::from_name(a[0]).ok_or("histogram must be wait or run")?;
    let mut h = Histogram { sum_ms: num(a[1], "sum", i64::MAX as u64)?, ..Histogram::default() };
    for (c, t) in h.counts.iter_mut().zip(&a[2..]) {
        *c = num(t, "bucket count", i64::MAX as u64)?;
    }
    Ok((which, h))
}

/// A group's own limits as three numbers: concurrency, rate n, rate per (-1 for the first two: not set).
pub fn own_numbers(own: &Limits) -> [i64; 3] {
    [
        own.concurrency.map_or(-1, i64::from),
        own.rate.map_or(-1, |r| i64::from(r.n)),
        own.rate.map_or(0, |r| r.per_ms as i64),
    ]
}

pub fn own_limits(v: [i64; 3]) -> Result<Limits, String> {
    let [c, n, per] = v;
    let concurrency = match c {
        -1 => None,
        c => Some(limits::CONCURRENCY.check_i64(c)? as u32),
    };
    let per = limits::RATE_STORED_PER.check_i64(per)? as u64;
    let rate = match n {
        -1 => None,
        n => Some(Rate { n: limits::RATE_N.check_i64(n)? as u32, per_ms: per }),
    };
    Ok(Limits { concurrency, rate })
}

/// `ONCE._GROUP key name concurrency rate-n rate-per [window time ...]`: one group's own limits and rate
/// window as they are (ONCE.GROUP, AOF rewrite).
pub fn group_args(key: RStr<'_>, g: &Group) -> Vec<OwnedStr> {
    let mut v = vec![OwnedStr::new(key.bytes()), OwnedStr::new(&g.name)];
    v.extend(own_numbers(&g.own).iter().map(|&x| OwnedStr::int(x)));
    v.extend(g.window.0.iter().map(|&t| int(t)));
    v
}

pub struct DecodedGroup {
    pub name: Box<[u8]>,
    pub own: Limits,
    pub window: VecDeque<u64>,
}

pub fn decode_group(a: &[&[u8]]) -> Result<DecodedGroup, String> {
    if a.len() < 4 {
        return Err("wrong number of group fields".into());
    }
    // The empty name is the default group (its window; it has no limits of its own).
    if a[0].len() > limits::MAX_GROUP_BYTES {
        return Err("a group name is at most 256 bytes".into());
    }
    let mut v = [0i64; 3];
    for (x, t) in v.iter_mut().zip(&a[1..4]) {
        *x = parse_i64(t).ok_or_else(|| format!("bad group limit '{}'", shown(t)))?;
    }
    Ok(DecodedGroup { name: a[0].into(), own: own_limits(v)?, window: decode_times(&a[4..])? })
}

/// Times of a rate window, oldest first (at most RATE's top n).
pub fn decode_times(a: &[&[u8]]) -> Result<VecDeque<u64>, String> {
    if a.len() > limits::RATE_N.max as usize {
        return Err("a rate window holds at most 100000 times".into());
    }
    a.iter().map(|t| num(t, "window time", i64::MAX as u64)).collect()
}

/// `ONCE._WINDOW key [time ...]`: the queue's own rate window (AOF rewrite).
pub fn window_args(key: RStr<'_>, w: &Window) -> Vec<OwnedStr> {
    let mut v = vec![OwnedStr::new(key.bytes())];
    v.extend(w.0.iter().map(|&t| int(t)));
    v
}

/// Group names per `ONCE._RING` command.
const RING_PER_COMMAND: usize = 1000;

/// `ONCE._RING key FIRST|NEXT name ...`: the round-robin's order, in as many commands as it needs (FIRST
/// starts it again; AOF rewrite).
pub fn ring_args(key: RStr<'_>, names: &[&[u8]]) -> Vec<Vec<OwnedStr>> {
    names
        .chunks(RING_PER_COMMAND)
        .enumerate()
        .map(|(i, chunk)| {
            let mut v = vec![OwnedStr::new(key.bytes()), OwnedStr::new(if i == 0 { b"FIRST" } else { b"NEXT" })];
            v.extend(chunk.iter().map(|n| OwnedStr::new(n)));
            v
        })
        .collect()
}

/// The numbers of `ONCE._BULK`'s header, in order, with their ranges: the first seq, then what every job of
/// the call shares (lease 0: none of its own).
const BULK_FIELDS: [limits::Range; 7] = [
    limits::Range::new("seq", 0, SEQ_LIMIT as i64 - 1),
    limits::Range::new("created", 0, i64::MAX),
    limits::Range::new("due", 0, i64::MAX),
    limits::RETRIES,
    limits::BACKOFF,
    limits::Range::new("lease", 0, limits::MAX_LEASE_MS),
    limits::PRIORITY,
];

/// `ONCE._BULK`'s header: "<first-seq> <created> <due> <retries> <backoff> <lease> <priority>", one argument.
pub fn bulk_header(b: &Bulk) -> Vec<u8> {
    let values = [b.first_seq, b.created_ms, b.due_ms, u64::from(b.retries), b.backoff_ms, b.lease_ms];
    let mut h = Vec::with_capacity(80);
    for v in values {
        push_signed(&mut h, i64::try_from(v).unwrap_or(i64::MAX));
        h.push(b' ');
    }
    push_signed(&mut h, i64::from(b.priority));
    h
}

pub fn decode_bulk_header(h: &[u8]) -> Result<Bulk, String> {
    let f: Vec<&[u8]> = h.split(|&c| c == b' ').collect();
    if f.len() != BULK_FIELDS.len() {
        return Err(format!("the header needs {} numbers", BULK_FIELDS.len()));
    }
    let mut v = [0i64; 7];
    for ((range, text), out) in BULK_FIELDS.iter().zip(&f).zip(&mut v) {
        let n = parse_i64(text).ok_or_else(|| format!("bad {} '{}'", range.name, shown(text)))?;
        *out = range.check_i64(n)?;
    }
    Ok(Bulk {
        first_seq: v[0] as u64,
        created_ms: v[1] as u64,
        due_ms: v[2] as u64,
        retries: v[3] as u32,
        backoff_ms: v[4] as u64,
        lease_ms: v[5] as u64,
        priority: v[6] as i32,
    })
}
