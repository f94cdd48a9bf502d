//! The replicated effects: each explicit command a master sends to its replicas and its AOF for a change it
//! decided (absolute times, explicit seqs), so replaying it gives the same state anywhere. Commands and the
//! timer call these; the internal commands (commands/internal.rs) apply them on the other side.

use std::ffi::CStr;

use crate::core::backoff::Outcome;
use crate::core::schedule::Schedule;
use crate::core::{FailCause, Job};
use crate::persist::encode::{job_header, schedule_args, settings_args};
use crate::rm::{self, Ctx, OwnedStr, RStr};
use crate::value::QueueValue;

/// `ONCE._JOB key header payload [ID id] [ERROR text] [GROUP g]`, reusing the client's key and payload
/// strings (`group` is empty for the default group).
pub fn job(ctx: Ctx<'_>, key: RStr<'_>, mode: &str, job: &Job, group: &[u8], payload: RStr<'_>) {
    crate::config::write_fault_point("a PUSH");
    let header = job_header(mode, job);
    let mut extra: Vec<(&CStr, &[u8])> = Vec::with_capacity(3);
    if let Some(id) = job.custom_id() {
        extra.push((c"ID", id));
    }
    if !group.is_empty() {
        extra.push((c"GROUP", group));
    }
    if let Some(e) = job.last_error() {
        extra.push((c"ERROR", e));
    }
    let more = crate::persist::encode::finish_options(job);
    extra.extend(more.iter().map(|(name, value)| (*name, value.as_slice())));
    rm::replicate_header_payload(ctx, b"ONCE._JOB\0", key, &header, payload, &extra);
    rm::notify(ctx, c"once.push", key);
}

/// Applies a decided failure and replicates it as `ONCE._FAIL key seq NACK|EXPIRE due|-1 error now`
/// (`now` is a dead job's time of death).
// The failure as the core decided it, and where it happened: bundling them would only name them twice.
#[allow(clippy::too_many_arguments)]
pub fn fail(
    ctx: Ctx<'_>,
    key_name: RStr<'_>,
    v: &mut QueueValue,
    seq: u64,
    cause: FailCause,
    error: Option<&[u8]>,
    outcome: Outcome,
    now_ms: u64,
) -> bool {
    // An empty ERROR text is no text: it keeps any earlier one, as on a replica that reads "" as none.
    let error = error.filter(|e| !e.is_empty());
    let watch = crate::waiters::before(ctx, key_name, &v.queue, seq);
    if !v.queue.apply_failure(seq, cause, error, outcome, now_ms) {
        return false;
    }
    // A death finishes the job (it stays in the dead set, where its waiters read it); a retry does not.
    crate::waiters::after(ctx, key_name, &v.queue, seq, watch, |j| {
        crate::core::queue::Finish::ended(j, crate::core::State::Dead, error, now_ms)
    });
    rm::notify(ctx, if cause == FailCause::Nack { c"once.nack" } else { c"once.expire" }, key_name);
    rm::notify(ctx, if outcome == Outcome::Dead { c"once.dead" } else { c"once.retry" }, key_name);
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
            OwnedStr::int(now_ms as i64),
        ],
    );
    true
}

/// `ONCE._PROMOTE key n`: the first n delayed jobs (by due time) became ready.
pub fn promoted(ctx: Ctx<'_>, key: RStr<'_>, n: usize) {
    rm::replicate(ctx, b"ONCE._PROMOTE\0", &[OwnedStr::retain(key), OwnedStr::int(n as i64)]);
}

/// `ONCE._RESERVE key seq deadline [seq deadline ...]` at `now`: these ready jobs were reserved until
/// these times.
pub fn reserved(ctx: Ctx<'_>, key: RStr<'_>, now_ms: u64, leases: &[(u64, u64)]) {
    let mut args = Vec::with_capacity(1 + 2 * leases.len());
    args.push(OwnedStr::retain(key));
    for &(seq, deadline) in leases {
        args.push(OwnedStr::int(seq as i64));
        args.push(OwnedStr::int(deadline as i64));
    }
    at(ctx, now_ms, b"ONCE._RESERVE\0", &args);
    rm::notify(ctx, c"once.reserve", key);
}

/// `ONCE._LEASE key seq deadline`: a reserved job's lease now ends at `deadline`.
pub fn lease(ctx: Ctx<'_>, key: RStr<'_>, seq: u64, deadline: u64) {
    rm::replicate(
        ctx,
        b"ONCE._LEASE\0",
        &[OwnedStr::retain(key), OwnedStr::int(seq as i64), OwnedStr::int(deadline as i64)],
    );
}

/// `ONCE._SCHED key <schedule>`: a schedule was added or replaced, with its next fire time decided.
pub fn schedule(ctx: Ctx<'_>, key: RStr<'_>, s: &Schedule) {
    rm::replicate(ctx, b"ONCE._SCHED\0", &schedule_args(key, s));
}

/// `ONCE._FIRED key name fire|-1 next`: a schedule ticked (or skipped a missed tick) and fires next at `next`.
pub fn fired(ctx: Ctx<'_>, key: RStr<'_>, name: &[u8], fire: Option<u64>, next: u64) {
    let fire = fire.map_or(-1, |f| f as i64);
    rm::replicate(
        ctx,
        b"ONCE._FIRED\0",
        &[OwnedStr::retain(key), OwnedStr::new(name), OwnedStr::int(fire), OwnedStr::int(next as i64)],
    );
}

/// `ONCE._DROP key seq...` at `now`: these dead jobs were dropped by DEAD-MAX or DEAD-TTL.
pub fn drop_dead(ctx: Ctx<'_>, key: RStr<'_>, v: &mut QueueValue, seqs: &[u64], now_ms: u64) {
    if v.queue.drop_dead(seqs, now_ms) == 0 {
        return;
    }
    let mut args = Vec::with_capacity(1 + seqs.len());
    args.push(OwnedStr::retain(key));
    args.extend(seqs.iter().map(|&s| OwnedStr::int(s as i64)));
    at(ctx, now_ms, b"ONCE._DROP\0", &args);
    rm::notify(ctx, c"once.drop", key);
}

/// Sends dead jobs back to ready at `now` (a step of RETRY ALL), replicated as `ONCE.RETRY key id...`.
pub fn retry_dead(ctx: Ctx<'_>, key: RStr<'_>, v: &mut QueueValue, seqs: &[u64], now_ms: u64) {
    let mut args = vec![OwnedStr::retain(key)];
    for &seq in seqs {
        let id = v.queue.job(seq).map(|j| j.id_bytes());
        if let (Some(id), true) = (id, v.queue.retry_dead(seq, now_ms)) {
            args.push(OwnedStr::new(&id));
        }
    }
    if args.len() > 1 {
        at(ctx, now_ms, b"ONCE.RETRY\0", &args);
        rm::notify(ctx, c"once.retry", key);
    }
}

/// `ONCE._SWEEP key n` at `now`: the timer freed the first n drained groups whose rate window had ended.
pub fn swept(ctx: Ctx<'_>, key: RStr<'_>, now_ms: u64, n: usize) {
    at(ctx, now_ms, b"ONCE._SWEEP\0", &[OwnedStr::retain(key), OwnedStr::int(n as i64)]);
}

/// `ONCE._SETTINGS key <settings>` at `now`: the queue's settings (and paused flag) as they now are.
pub fn settings(ctx: Ctx<'_>, key: RStr<'_>, v: &QueueValue, now_ms: u64) {
    at(ctx, now_ms, b"ONCE._SETTINGS\0", &settings_args(key, &v.queue.settings));
}

/// A deterministic client command that took effect (PURGE, UNSCHEDULE), sent as itself.
pub fn as_itself(ctx: Ctx<'_>, cmd: &'static [u8], args: &[OwnedStr]) {
    rm::replicate(ctx, cmd, args);
}

/// A command whose effect depends only on the time it ran (ACK, RETRY, CANCEL, and internal ones such as
/// `_RESERVE`, `_DROP`, `_SETTINGS`, whose events and latencies carry that time), sent as
/// `ONCE._AT key now <cmd> key <args after the key>`: the replica replays it at the master's time. `cmd` is
/// NUL-terminated; `args` start with the key.
pub fn at(ctx: Ctx<'_>, now_ms: u64, cmd: &'static [u8], args: &[OwnedStr]) {
    let Some(key) = args.first() else { return };
    let name = cmd.strip_suffix(b"\0").unwrap_or(cmd);
    let mut all = Vec::with_capacity(args.len() + 3);
    all.push(OwnedStr::retain(key.as_rstr()));
    all.push(OwnedStr::int(i64::try_from(now_ms).unwrap_or(i64::MAX)));
    all.push(OwnedStr::new(name));
    all.extend(args.iter().map(|a| OwnedStr::retain(a.as_rstr())));
    rm::replicate(ctx, b"ONCE._AT\0", &all);
}

/// `ONCE._BULK key header [GROUP g] [IDS id ...] PAYLOADS payload ...`: the jobs a BULK added, reusing the
/// client's strings. One record for the whole call, whose header (encode.rs) carries the first seq, the time
/// and the options the jobs share.
pub fn bulk(ctx: Ctx<'_>, key: RStr<'_>, header: &[u8], group: Option<&[u8]>, ids: &[RStr<'_>], payloads: &[RStr<'_>]) {
    let mut args = Vec::with_capacity(payloads.len() + ids.len() + 6);
    args.push(OwnedStr::retain(key));
    args.push(OwnedStr::new(header));
    if let Some(g) = group {
        args.push(OwnedStr::new(b"GROUP"));
        args.push(OwnedStr::new(g));
    }
    if !ids.is_empty() {
        args.push(OwnedStr::new(b"IDS"));
        args.extend(ids.iter().map(|&id| OwnedStr::retain(id)));
    }
    args.push(OwnedStr::new(b"PAYLOADS"));
    args.extend(payloads.iter().map(|&p| OwnedStr::retain(p)));
    rm::replicate(ctx, b"ONCE._BULK\0", &args);
    rm::notify(ctx, c"once.push", key);
}

/// What the timer does to finished and unstarted jobs, replicated as `ONCE._TIMED key KIND seq...` at its time.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Timed {
    /// TTLs that ran out before a reservation: dead (`expired before start`), or dropped.
    Ttl,
    /// CALL … CANCEL jobs unfinished at their timeout: cancelled (`call timed out`).
    Call,
    /// Kept jobs whose KEEP ended or that KEEP-MAX pushes out: freed.
    Forget,
}

impl Timed {
    pub fn name(self) -> &'static [u8] {
        match self {
            Timed::Ttl => b"TTL",
            Timed::Call => b"CALL",
            Timed::Forget => b"FORGET",
        }
    }

    pub fn from_name(b: &[u8]) -> Option<Timed> {
        [Timed::Ttl, Timed::Call, Timed::Forget].into_iter().find(|t| t.name().eq_ignore_ascii_case(b))
    }
}

/// Applies a timed step to these jobs at `now` (on the master and on the replicas, the same), waking the
/// clients waiting on a job it finished. Returns the seqs it acted on.
pub fn apply_timed(
    ctx: Ctx<'_>,
    key: RStr<'_>,
    v: &mut QueueValue,
    kind: Timed,
    seqs: &[u64],
    now_ms: u64,
) -> Vec<u64> {
    use crate::core::queue::{Finish, EXPIRED_BEFORE_START};
    use crate::core::State;
    let mut done = Vec::with_capacity(seqs.len());
    for &seq in seqs {
        let watch = crate::waiters::before(ctx, key, &v.queue, seq);
        let acted = match kind {
            Timed::Ttl => v.queue.expire_unstarted(seq, now_ms),
            Timed::Call => v.queue.cancel(seq, now_ms, crate::commands::result::CALL_TIMED_OUT),
            Timed::Forget => v.queue.forget_kept(&[seq]) == 1,
        };
        if acted {
            done.push(seq);
            crate::waiters::after(ctx, key, &v.queue, seq, watch, |j| match kind {
                Timed::Call => {
                    Finish::ended(j, State::Cancelled, Some(crate::commands::result::CALL_TIMED_OUT), now_ms)
                }
                _ => Finish::ended(j, State::Dead, Some(EXPIRED_BEFORE_START), now_ms),
            });
        }
    }
    done
}

/// The timer's step: applied, then replicated with the jobs it acted on.
pub fn timed(ctx: Ctx<'_>, key: RStr<'_>, v: &mut QueueValue, kind: Timed, seqs: &[u64], now_ms: u64) {
    let done = apply_timed(ctx, key, v, kind, seqs, now_ms);
    if done.is_empty() {
        return;
    }
    let mut args = Vec::with_capacity(2 + done.len());
    args.push(OwnedStr::retain(key));
    args.push(OwnedStr::new(kind.name()));
    args.extend(done.iter().map(|&s| OwnedStr::int(s as i64)));
    at(ctx, now_ms, b"ONCE._TIMED\0", &args);
    rm::notify(
        ctx,
        match kind {
            Timed::Ttl => c"once.dead",
            Timed::Call => c"once.cancel",
            Timed::Forget => c"once.drop",
        },
        key,
    );
}
