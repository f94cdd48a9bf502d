//! RDB save and load. The encoding is versioned; every older version stays loadable.
//!
//! Loading never trusts its input (RESTORE hands us whatever a client sent): short reads come back as
//! errors (HANDLE_IO_ERRORS), every field is range-checked, and the rebuilt queue's indexes are checked
//! against its job table before Redis gets it. Any failure returns null, which Redis reports as a load error.

use std::ffi::{c_int, c_void};
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::raw::{self, RedisModuleIO};

use crate::core::flow::{Limits, Window};
use crate::core::job::Ttl;
use crate::core::job::{check_job, JOB_FIELDS, V2_JOB_FIELDS};
use crate::core::limits::{check_error_text, KEEP, MAX_ID_BYTES};
use crate::core::limits::{MAX_GROUP_BYTES, RATE_N};
use crate::core::queue::rebuild::Item;
use crate::core::queue::totals::{LEGACY_TOTALS, TOTAL_FIELDS, V4_TOTALS};
use crate::core::queue::Queue;
use crate::core::run::{RunHead, RunWriter, RUN_MAX_JOBS};
use crate::core::schedule::SCHEDULE_FIELDS;
use crate::core::schedule::{JobOptions, Missed, Schedule};
use crate::core::schema::Field;
use crate::core::settings::{SETTING_FIELDS, V2_SETTINGS, V3_SETTINGS, V4_SETTINGS};
use crate::core::{events, histogram};
use crate::core::{Extra, Job, State};
use crate::persist::encode::{own_limits, own_numbers};
use crate::rm;
use crate::service;
use crate::value::QueueValue;

/// A job's out-of-line part and its group name as an RDB holds them.
type ExtraGroup = (Extra, Option<Box<[u8]>>);

/// Version 7: adds the state waiting, a job's dependency links (flag 64: one blob, core/deps.rs) and the
/// queue's backlog of notices and pins (item ITEM_BACKLOG).
/// Version 6: the jobs are a list of items ended by ITEM_END: a job as version 5 writes it, or a run of fresh
/// ready jobs (`core/run.rs`: one header and one blob for up to 1,024 jobs).
/// Version 5: adds a job's result, progress, KEEP, TTL and CALL cancel time (flags 8, 16, 32), the states
/// completed and cancelled, the KEEP and KEEP-MAX settings and the `expired_unstarted_total` total.
/// Version 4: adds a job's group, the flow-control settings, the rate windows, the groups' own limits and
/// the round-robin's order.
/// Version 3: adds a job's `since`, the EVENTS-MAX setting, the event log and the latency histograms.
/// Version 2: numbers as the schema lists them (core/schema.rs), signed; adds a job's retry base.
/// Version 1 (the first encoding) still loads through `load_v1`; version 2 through `load_v2`.
pub const ENCODING_VERSION: i32 = 7;

/// Version 6's item kinds.
const ITEM_END: u64 = 0;
const ITEM_JOB: u64 = 1;
const ITEM_RUN: u64 = 2;
const ITEM_BACKLOG: u64 = 3;

const HAS_ID: u64 = 1;
const HAS_ERROR: u64 = 2;
const HAS_GROUP: u64 = 4;
/// Version 5: a job's result, progress, and its KEEP, TTL and CALL cancel time.
const HAS_RESULT: u64 = 8;
const HAS_PROGRESS: u64 = 16;
const HAS_TIMES: u64 = 32;
/// Version 7: waits and dependents (flows).
const HAS_LINKS: u64 = 64;

/// One value the encoding writes, in order, handed to Redis as it is made: a save streams the queue rather
/// than building it again in memory, and a panic part way fails the whole save (`fail_io`).
enum Put<'a> {
    U(u64),
    I(i64),
    B(&'a [u8]),
}

pub extern "C" fn save(io: *mut RedisModuleIO, value: *mut c_void) {
    let Some(v) = rm::queue_ref(value) else {
        fail_io(io);
        return;
    };
    let put = |p: Put<'_>| match p {
        Put::U(x) => raw::save_unsigned(io, x),
        Put::I(x) => raw::save_signed(io, x),
        Put::B(b) => raw::save_slice(io, b),
    };
    // Written as it is encoded: a failure part way still fails the whole save (Redis keeps the previous file).
    match catch_unwind(AssertUnwindSafe(|| encode_queue(&v.queue, put))) {
        Ok(Ok(())) => {}
        Ok(Err(e)) => {
            log_io(
                io,
                &format!("once: a queue could not be encoded ({e}); this save fails and the previous file stays"),
            );
            fail_io(io);
        }
        Err(_) => {
            log_io(io, "once: a queue could not be encoded; this save fails and the previous file stays");
            fail_io(io);
        }
    }
}

/// Marks the save as failed: Redis then drops the file it was writing (SAVE, BGSAVE, AOF rewrite, a full
/// sync) and keeps the previous one. The module API has no call for this; a read on a save stream fails and,
/// with HANDLE_IO_ERRORS set, sets the IO's error flag instead of aborting, which is what Redis checks.
pub fn fail_io(io: *mut RedisModuleIO) {
    let _ = raw::load_unsigned(io);
}

/// Writes the queue through `put`, value by value, in the order the loader reads.
fn encode_queue(q: &Queue, mut put: impl FnMut(Put<'_>)) -> Result<(), String> {
    crate::config::fault_point("save");
    put(Put::U(q.next_seq()));
    TOTAL_FIELDS.iter().for_each(|f| put(Put::I((f.get)(&q.totals))));
    // Items in the order that rebuilds the queue: fresh ready jobs in runs, every other job on its own.
    let walked = q.each_rebuild_item(&mut |item| match item {
        Item::Run(r) => put_run(q, r, &mut put),
        Item::Job(j) => {
            put(Put::U(ITEM_JOB));
            put_job(q, &j, &mut put);
        }
    });
    walked?;
    if let Some(blob) = q.backlog_blob() {
        put(Put::U(ITEM_BACKLOG));
        put(Put::B(&blob));
    }
    put(Put::U(ITEM_END));
    put(Put::U(q.schedule_count() as u64));
    for s in q.schedules() {
        put(Put::B(&s.name));
        put(Put::B(s.spec_text.as_bytes()));
        put(Put::B(s.tz_name.as_bytes()));
        put(Put::B(&s.payload));
        SCHEDULE_FIELDS.iter().for_each(|f| put(Put::I((f.get)(s))));
    }
    SETTING_FIELDS.iter().for_each(|f| put(Put::I((f.get)(&q.settings))));
    put(Put::U(q.events.last_id()));
    put(Put::U(q.events.len() as u64));
    for e in q.events.iter() {
        put(Put::U(e.id));
        put(Put::U(e.kind.code()));
        put(Put::B(e.job.as_deref().unwrap_or(b"")));
        put(Put::U(u64::from(e.attempt)));
        put(Put::U(e.ms));
        put(Put::B(e.error.as_deref().unwrap_or(b"")));
    }
    for h in [&q.wait, &q.run] {
        put(Put::U(h.sum_ms));
        h.counts.iter().for_each(|&c| put(Put::U(c)));
    }
    let window = |put: &mut dyn FnMut(Put<'_>), w: &Window| {
        put(Put::U(w.0.len() as u64));
        w.0.iter().for_each(|&t| put(Put::U(t)));
    };
    window(&mut put, &q.flow.window);
    let groups: Vec<_> = q.flow.all().filter(|(_, g)| g.own != Limits::default() || !g.window.0.is_empty()).collect();
    put(Put::U(groups.len() as u64));
    for (_, g) in groups {
        put(Put::B(&g.name));
        for v in own_numbers(&g.own) {
            put(Put::I(v));
        }
        window(&mut put, &g.window);
    }
    let ring = q.flow.ring_order(&q.limits());
    put(Put::U(ring.len() as u64));
    ring.into_iter().for_each(|g| put(Put::B(q.flow.name(g))));
    Ok(())
}

fn put_job(q: &Queue, j: &Job, put: &mut impl FnMut(Put<'_>)) {
    JOB_FIELDS.iter().for_each(|f| put(Put::I((f.get)(j))));
    put(Put::B(&j.payload));
    let group = q.group_name(j);
    let has_times = j.extra.as_ref().is_some_and(|e| e.has_times());
    let flags = if j.custom_id().is_some() { HAS_ID } else { 0 }
        | if j.last_error().is_some() { HAS_ERROR } else { 0 }
        | if group.is_some() { HAS_GROUP } else { 0 }
        | if j.result().is_some() { HAS_RESULT } else { 0 }
        | if j.progress().is_some() { HAS_PROGRESS } else { 0 }
        | if has_times { HAS_TIMES } else { 0 }
        | if j.has_links() { HAS_LINKS } else { 0 };
    put(Put::U(flags));
    if let Some(id) = j.custom_id() {
        put(Put::B(id));
    }
    if let Some(e) = j.last_error() {
        put(Put::B(e));
    }
    if let Some(g) = group {
        put(Put::B(g));
    }
    if let Some(r) = j.result() {
        put(Put::B(r));
    }
    if let Some(p) = j.progress() {
        put(Put::B(p));
    }
    if has_times {
        // -1: not set (0 is a real KEEP).
        put(Put::I(j.keep_ms().map_or(-1, |k| k as i64)));
        put(Put::I(j.ttl().map_or(-1, |t| t.at as i64)));
        put(Put::U(u64::from(j.ttl().is_some_and(|t| t.drop))));
        put(Put::I(j.cancel_at().map_or(-1, |c| c as i64)));
    }
    if j.has_links() {
        put(Put::B(&crate::core::deps::encode_links(j.waits(), j.dependents())));
    }
}

fn put_run(q: &Queue, r: &RunWriter, put: &mut impl FnMut(Put<'_>)) {
    put(Put::U(ITEM_RUN));
    put(Put::B(q.flow.name(r.group)));
    put(Put::I(i64::from(r.head.priority)));
    put(Put::U(u64::from(r.head.retries)));
    put(Put::U(r.head.backoff_ms));
    put(Put::U(u64::from(r.head.lease_ms)));
    put(Put::U(r.count));
    put(Put::B(&r.bytes));
}

type Load<T> = Result<T, String>;

struct Reader(*mut RedisModuleIO);

impl Reader {
    fn u(&self) -> Load<u64> {
        raw::load_unsigned(self.0).map_err(|_| "short read".to_string())
    }
    fn upto(&self, what: &str, max: u64) -> Load<u64> {
        let v = self.u()?;
        if v > max {
            return Err(format!("{what} out of range: {v}"));
        }
        Ok(v)
    }
    fn i(&self) -> Load<i64> {
        raw::load_signed(self.0).map_err(|_| "short read".to_string())
    }
    fn b(&self) -> Load<Box<[u8]>> {
        let buf = raw::load_string_buffer(self.0).map_err(|_| "short read".to_string())?;
        Ok(buf.as_ref().into())
    }
    fn text(&self) -> Load<String> {
        String::from_utf8(self.b()?.into_vec()).map_err(|_| "text is not UTF-8".to_string())
    }
    /// A job's flags word, then what the flags say it has: client id, error text, group, result, progress,
    /// and KEEP, TTL and cancel time.
    fn extra_and_group(&self, version: i32) -> Load<ExtraGroup> {
        let max = match version {
            7.. => HAS_ID | HAS_ERROR | HAS_GROUP | HAS_RESULT | HAS_PROGRESS | HAS_TIMES | HAS_LINKS,
            5..=6 => HAS_ID | HAS_ERROR | HAS_GROUP | HAS_RESULT | HAS_PROGRESS | HAS_TIMES,
            4 => HAS_ID | HAS_ERROR | HAS_GROUP,
            _ => HAS_ID | HAS_ERROR,
        };
        let flags = self.upto("flags", max)?;
        let custom_id = if flags & HAS_ID != 0 {
            let id = self.b()?;
            if id.is_empty() || id.len() > MAX_ID_BYTES {
                return Err("bad job id length".into());
            }
            Some(id)
        } else {
            None
        };
        // An empty error text is no text, as a client's NACK ERROR "" is: kept as "", it would come back as none.
        let last_error = match flags & HAS_ERROR {
            0 => None,
            _ => Some(self.b()?).filter(|e| !e.is_empty()),
        };
        if let Some(e) = &last_error {
            check_error_text(e)?;
        }
        let group = match flags & HAS_GROUP {
            0 => None,
            _ => Some(self.group_name()?),
        };
        let mut e = Extra { custom_id, last_error, ..Extra::default() };
        if flags & HAS_RESULT != 0 {
            e.result = Some(self.b()?);
        }
        if flags & HAS_PROGRESS != 0 {
            e.progress = Some(self.b()?);
        }
        if flags & HAS_TIMES != 0 {
            let opt = |v: i64, what: &str| match v {
                -1 => Ok(None),
                v if v >= 0 => Ok(Some(v as u64)),
                v => Err(format!("{what} out of range: {v}")),
            };
            e.keep_ms = opt(self.i()?, "KEEP")?;
            if e.keep_ms.is_some_and(|k| k > KEEP.max as u64) {
                return Err("KEEP out of range".into());
            }
            let ttl = opt(self.i()?, "TTL")?;
            let drop = self.upto("TTL drop", 1)? == 1;
            e.ttl = ttl.map(|at| Ttl { at, drop });
            e.cancel_at = opt(self.i()?, "cancel time")?;
        }
        if flags & HAS_LINKS != 0 {
            (e.waits, e.dependents) = crate::core::deps::decode_links(&self.b()?)?;
        }
        Ok((e, group))
    }

    fn group_name(&self) -> Load<Box<[u8]>> {
        let name = self.b()?;
        if name.is_empty() || name.len() > MAX_GROUP_BYTES {
            return Err("bad group name length".into());
        }
        Ok(name)
    }

    /// A group's name where the default group (the empty name) may stand too.
    fn any_group_name(&self) -> Load<Box<[u8]>> {
        let name = self.b()?;
        if name.len() > MAX_GROUP_BYTES {
            return Err("bad group name length".into());
        }
        Ok(name)
    }

    fn window(&self) -> Load<std::collections::VecDeque<u64>> {
        let n = self.upto("window length", RATE_N.max as u64)?;
        let mut times = std::collections::VecDeque::with_capacity(n as usize);
        for _ in 0..n {
            times.push_back(self.upto("window time", i64::MAX as u64)?);
        }
        Ok(times)
    }

    fn priority(&self) -> Load<i32> {
        let p = self.i()?;
        if !(-1_000_000..=1_000_000).contains(&p) {
            return Err(format!("priority out of range: {p}"));
        }
        Ok(p as i32)
    }
}

pub extern "C" fn load(io: *mut RedisModuleIO, encver: c_int) -> *mut c_void {
    let result = catch_unwind(AssertUnwindSafe(|| match encver {
        1 => load_v1(&Reader(io)),
        v @ 2..=7 => load_v2(&Reader(io), v),
        v => Err(format!("unknown encoding version {v}")),
    }));
    match result {
        Ok(Ok(queue)) => {
            let mut value = QueueValue::new(queue);
            note_loaded(io, &mut value);
            Box::into_raw(value).cast::<c_void>()
        }
        Ok(Err(e)) => {
            log_io(io, &format!("once: cannot load a queue: {e}"));
            std::ptr::null_mut()
        }
        Err(_) => {
            log_io(io, "once: cannot load a queue: internal error");
            std::ptr::null_mut()
        }
    }
}

/// Versions 2 to 4: version 2 has fewer job fields and settings, and nothing after the settings; version 3
/// has no groups and fewer settings.
fn load_v2(r: &Reader, version: i32) -> Load<Queue> {
    let (job_fields, settings, totals) = match version {
        2 => (&JOB_FIELDS[..V2_JOB_FIELDS], &SETTING_FIELDS[..V2_SETTINGS], &TOTAL_FIELDS[..V4_TOTALS]),
        3 => (&JOB_FIELDS[..], &SETTING_FIELDS[..V3_SETTINGS], &TOTAL_FIELDS[..V4_TOTALS]),
        4 => (&JOB_FIELDS[..], &SETTING_FIELDS[..V4_SETTINGS], &TOTAL_FIELDS[..V4_TOTALS]),
        _ => (&JOB_FIELDS[..], &SETTING_FIELDS[..], &TOTAL_FIELDS[..]),
    };
    let mut q = Queue::new();
    let next_seq = r.u()?;
    for f in totals {
        f.put(&mut q.totals, r.i()?)?;
    }
    if version >= 6 {
        load_items(r, version, &mut q)?;
    } else {
        for _ in 0..r.u()? {
            load_job(r, version, job_fields, &mut q)?;
        }
    }
    let mut q = finish(r, q, next_seq, load_schedules_v2)?;
    let mut s = q.settings;
    for f in settings {
        f.put(&mut s, r.i()?)?;
    }
    q.set_settings(s);
    if version >= 3 {
        load_events(r, &mut q)?;
        for h in [&mut q.wait, &mut q.run] {
            h.sum_ms = r.upto("histogram sum", histogram::CAP)?;
            for c in h.counts.iter_mut() {
                *c = r.upto("histogram count", histogram::CAP)?;
            }
        }
    }
    if version >= 4 {
        load_flow(r, &mut q)?;
    }
    q.check_groups()?;
    Ok(q)
}

fn load_job(r: &Reader, version: i32, job_fields: &[Field<Job>], q: &mut Queue) -> Load<()> {
    let mut job = Job::blank();
    for f in job_fields {
        f.put(&mut job, r.i()?)?;
    }
    job.payload = r.b()?.into();
    let (mut extra, group) = r.extra_and_group(version)?;
    extra.retry_base = job.retry_base();
    job.extra = extra.boxed_if_any();
    check_job(&job)?;
    q.insert_in_group(job, group.as_deref(), false).map_err(|e| e.to_string())
}

/// Version 6's items, up to ITEM_END.
fn load_items(r: &Reader, version: i32, q: &mut Queue) -> Load<()> {
    loop {
        match r.u()? {
            ITEM_END => return Ok(()),
            ITEM_JOB => load_job(r, version, &JOB_FIELDS, q)?,
            ITEM_BACKLOG if version >= 7 => q.set_backlog(&r.b()?)?,
            ITEM_RUN => {
                let group = r.any_group_name()?;
                let head = RunHead::checked(r.i()?, r.u()?, r.u()?, r.u()?)?;
                let n = r.upto("run length", RUN_MAX_JOBS)?;
                let blob = r.b()?;
                q.insert_run(head, (!group.is_empty()).then_some(&*group), n, &blob)?;
            }
            k => return Err(format!("unknown item kind {k}")),
        }
    }
}

fn load_flow(r: &Reader, q: &mut Queue) -> Load<()> {
    let limits = q.limits();
    q.flow.window = Window(r.window()?);
    let groups = r.u()?;
    for _ in 0..groups {
        let name = r.any_group_name()?;
        let mut numbers = [0i64; 3];
        for n in numbers.iter_mut() {
            *n = r.i()?;
        }
        let own = own_limits(numbers)?;
        // As ONCE._GROUP refuses it: else a value would load here and fail to load from its own AOF rewrite.
        if name.is_empty() && own != Limits::default() {
            return Err("the default group has no limits of its own".into());
        }
        let window = r.window()?;
        let gid = q.flow.gid_or_new(&name);
        q.flow.set_group(gid, own, window, &limits);
    }
    let ring = r.u()?;
    let mut order = Vec::new();
    for _ in 0..ring {
        let name = r.any_group_name()?;
        order.push(q.flow.gid(&name).ok_or("the ring names a group with no jobs")?);
    }
    q.flow.restore_ring(&order, &limits);
    Ok(())
}

fn load_events(r: &Reader, q: &mut Queue) -> Load<()> {
    let last_id = r.upto("event id", events::ID_MAX)?;
    let count = r.upto("event count", q.settings.events_max)?;
    for _ in 0..count {
        let id = r.upto("event id", events::ID_MAX)?;
        let kind = events::Kind::from_code(r.u()?).ok_or("bad event kind")?;
        let job = r.b()?;
        if job.len() > MAX_ID_BYTES {
            return Err("bad event job id".into());
        }
        let attempt = r.upto("event attempt", u64::from(u32::MAX))? as u32;
        let ms = r.upto("event time", i64::MAX as u64)?;
        let error = r.b()?;
        check_error_text(&error)?;
        let opt = |b: Box<[u8]>| (!b.is_empty()).then_some(b);
        q.events.restore(events::Event { id, kind, job: opt(job), attempt, ms, error: opt(error) })?;
    }
    if last_id < q.events.last_id() {
        return Err("event id sequence is behind an event".into());
    }
    q.events.set_last_id(last_id);
    Ok(())
}

fn load_v1(r: &Reader) -> Load<Queue> {
    let mut q = Queue::new();
    let next_seq = r.u()?;
    for f in &TOTAL_FIELDS[..LEGACY_TOTALS] {
        let v = f.range.check_u64(r.u()?)?;
        (f.set)(&mut q.totals, v as i64);
    }
    let count = r.u()?;
    for _ in 0..count {
        let job = Job {
            seq: r.upto("seq", u64::MAX >> 1)?,
            created_ms: r.upto("created", i64::MAX as u64)?,
            state: State::from_code(r.u()?).ok_or("bad job state")?,
            attempts: r.upto("attempts", u64::from(u32::MAX))? as u32,
            retries: r.upto("retries", 1000)? as u16,
            backoff_ms: r.upto("backoff", 315_360_000_000)?,
            lease_ms: r.upto("lease", 604_800_000)? as u32,
            priority: r.priority()?,
            deadline_ms: r.upto("deadline", i64::MAX as u64)?,
            since_ms: 0,
            group: 0,
            payload: r.b()?.into(),
            extra: None,
        };
        let mut job = job;
        let (extra, _) = r.extra_and_group(1)?;
        job.extra = extra.boxed_if_any();
        q.insert(job).map_err(|e| e.to_string())?;
    }
    finish(r, q, next_seq, load_schedules_v1)
}

/// What every version ends with: the id sequence checked, the schedules, and the indexes checked.
fn finish(r: &Reader, mut q: Queue, next_seq: u64, schedules: fn(&Reader, &mut Queue) -> Load<()>) -> Load<Queue> {
    if !q.set_next_seq(next_seq) {
        return Err(format!("id sequence out of range: {next_seq}"));
    }
    schedules(r, &mut q)?;
    q.check_invariants()?;
    Ok(q)
}

fn load_schedules_v2(r: &Reader, q: &mut Queue) -> Load<()> {
    let schedules = r.u()?;
    for _ in 0..schedules {
        let (name, spec, tz, payload) = (r.b()?, r.text()?, r.text()?, r.b()?);
        let mut values = [0i64; SCHEDULE_FIELDS.len()];
        for v in &mut values {
            *v = r.i()?;
        }
        q.put_schedule(Schedule::from_numbers(name, &spec, &tz, payload, &values)?);
    }
    Ok(())
}

/// Version 1 wrote a schedule's numbers unsigned, its last fire as +1 (0: never).
fn load_schedules_v1(r: &Reader, q: &mut Queue) -> Load<()> {
    let schedules = r.u()?;
    for _ in 0..schedules {
        let name = r.b()?;
        let spec = r.text()?;
        let tz = r.text()?;
        let payload = r.b()?;
        let options = JobOptions {
            retries: r.upto("retries", 1000)? as u32,
            backoff_ms: r.upto("backoff", 315_360_000_000)?,
            lease_ms: r.upto("lease", 604_800_000)?,
            priority: r.priority()?,
        };
        let missed = if r.upto("missed", 1)? == 1 { Missed::Skip } else { Missed::Once };
        let next = r.upto("next fire", i64::MAX as u64)?;
        let last = r.upto("last fire", i64::MAX as u64)?.checked_sub(1);
        let s = Schedule::restore(name, &spec, &tz, payload, options, missed, next, last)?;
        q.put_schedule(s);
    }
    Ok(())
}

/// Tells the timer about a queue that just came from an RDB or RESTORE (its key name and db come with the IO).
fn note_loaded(io: *mut RedisModuleIO, value: &mut QueueValue) {
    if let Some((key, db)) = rm::io_key_and_db(io) {
        service::note_loaded(db, key, value);
    }
}

fn log_io(io: *mut RedisModuleIO, msg: &str) {
    rm::log_io(io, msg);
}
