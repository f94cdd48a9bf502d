//! ONCE.RESERVE queue [COUNT n] [BLOCK ms] [LEASE ms] [ACK id [ATTEMPT n] [RESULT data]] [WITHACK] [ALSO queue ...]
//!
//! With BLOCK the client waits on the key (no polling) and is served first come, first served when a push,
//! a promotion or a retry makes a job ready. `ACK id` completes the worker's previous job first, so a worker
//! loop costs one round trip per job. WITHACK makes the reply `[acked, jobs-or-nil]`: a worker whose fenced
//! ACK was refused (its lease ran out, another worker may hold the job) learns it from `acked` = 0.
//! ALSO names more queues, served in strict order after the first (each job's reply then names its queue);
//! a blocked client wakes when any of them gets a job. The ACK applies to the first queue.

use std::ffi::{c_int, c_void};

use super::ack::{ack_fenced, ack_ids, check_result};
use super::args::{arity, err, CmdError, CmdResult, Options};
use super::spec::RESERVE_ARGS;
use super::{existing, settle};
use crate::config;
use crate::core::limits;
use crate::core::slot::key_slot;
use crate::effects;
use crate::rm::{self, Ctx, Key, OwnedStr, RStr, RawCtx, RawStr};
use crate::service;
use crate::value::{QueueValue, Snapshot};

/// Upper bound on delayed jobs one RESERVE promotes itself; the timer promotes the rest in slices.
const PROMOTE_IN_RESERVE: usize = 1024;

#[derive(Clone, Copy)]
struct Want {
    count: usize,
    lease: Option<u64>,
    /// With WITHACK: how many jobs the ACK part completed, replied first.
    acked: Option<u64>,
}

/// What a blocked RESERVE waits with: what it wants, and with ALSO the queues in their order (the first
/// included), since a signal names only the key that woke it and the client must be served in order.
struct Blocked {
    want: Want,
    queues: Vec<OwnedStr>,
}

pub fn reserve(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 2 {
        return Err(arity("ONCE.RESERVE"));
    }
    let mut want = Want { count: 1, lease: None, acked: None };
    let mut with_ack = false;
    let mut block = None;
    let mut ack = None;
    let mut attempt = None;
    let mut acks = None;
    let mut result = None;
    let mut also: &[RStr<'_>] = &[];
    let mut opts = Options::new(args, 2, RESERVE_ARGS);
    while let Some(token) = opts.next_option()? {
        match token {
            "COUNT" => want.count = opts.int(limits::COUNT)? as usize,
            "BLOCK" => block = Some(opts.int(limits::BLOCK)?),
            "LEASE" => want.lease = Some(opts.int(limits::LEASE)? as u64),
            "ACK" => ack = Some(opts.raw_value("ACK")?),
            "RESULT" => {
                let r = opts.raw_value("RESULT")?;
                check_result(r.bytes())?;
                result = Some(r);
            }
            "ACKS" => acks = Some(acks_value(&mut opts)?),
            "WITHACK" => with_ack = true,
            // ALSO takes every argument after it: the other queues, in the order they are served.
            "ALSO" => {
                also = opts.rest();
                if also.is_empty() {
                    return Err(err("ALSO needs at least one queue"));
                }
                if also.len() > limits::ALSO_QUEUES {
                    return Err(err(format!("ALSO takes at most {} queues", limits::ALSO_QUEUES)));
                }
            }
            _ => attempt = Some(opts.int(limits::ATTEMPT)? as u64),
        }
    }
    if attempt.is_some() && ack.is_none() {
        return Err(err("ATTEMPT goes with ACK (it fences the job acknowledged)"));
    }
    if result.is_some() && ack.is_none() {
        return Err(err("RESULT goes with ACK (it is the acknowledged job's result)"));
    }
    if ack.is_some() && acks.is_some() {
        return Err(err("ACK and ACKS cannot be used together"));
    }
    let key_name = args[1];
    if rm::in_cluster(ctx) {
        let slot = key_slot(key_name.bytes());
        if also.iter().any(|q| key_slot(q.bytes()) != slot) {
            return Err(CmdError("CROSSSLOT Keys in request don't hash to the same slot".into()));
        }
    }
    // Every queue is checked before anything changes: a WRONGTYPE among them fails the whole command.
    for &q in also {
        existing(&mut Key::open(ctx, q, false))?;
    }
    {
        let mut key = Key::open(ctx, key_name, true);
        let acked = match (ack, &acks, existing(&mut key)?) {
            (Some(id), _, Some(v)) => ack_ids(ctx, key_name, v, &[id], attempt, result),
            (_, Some(pairs), Some(v)) => ack_fenced(ctx, key_name, v, pairs),
            _ => 0,
        };
        if with_ack {
            want.acked = Some(acked);
        }
    }
    let queues: Vec<RStr<'_>> = std::iter::once(key_name).chain(also.iter().copied()).collect();
    if serve(ctx, &queues, want, !also.is_empty())? {
        return Ok(());
    }
    match block {
        Some(ms) if !rm::may_not_block(ctx) => {
            let blocked = Blocked { want, queues: queues.iter().map(|&q| OwnedStr::retain(q)).collect() };
            rm::block_on_keys(ctx, &queues, ms, on_ready, on_timeout, free_blocked, Box::new(blocked));
        }
        _ => reply_none(ctx, want),
    }
    Ok(())
}

/// `ACKS n id attempt [id attempt ...]`: n finished reservations acknowledged before reserving (a prefetching
/// worker's batch), each fenced by its attempt.
fn acks_value<'a>(opts: &mut Options<'a>) -> Result<Vec<(RStr<'a>, u64)>, CmdError> {
    let n = opts.int(limits::ACKS)? as usize;
    let mut pairs = Vec::with_capacity(n);
    for _ in 0..n {
        let id = opts.raw_value("ACKS")?;
        let attempt = opts.int(limits::ATTEMPT)? as u64;
        pairs.push((id, attempt));
    }
    Ok(pairs)
}

/// Nothing to serve: a null array, led by the ACK count with WITHACK.
fn reply_none(ctx: Ctx<'_>, want: Want) {
    if let Some(n) = want.acked {
        rm::reply_array(ctx, 2);
        rm::reply_u64(ctx, n);
    }
    rm::reply_null_array(ctx);
}

/// One queue's part of a reservation: its open key and the jobs it gave.
struct Taken<'a> {
    name: RStr<'a>,
    key: Key<'a>,
    seqs: Vec<u64>,
    before: Snapshot,
    /// Whether anything changed (jobs reserved or promoted): only then is the queue settled, since settling
    /// signals a key with ready jobs, and a paused or limited queue would wake its blocked readers forever.
    changed: bool,
    /// The time the jobs were reserved at, which their replicated record carries.
    now: u64,
}

/// Reserves and replies if the queues have ready jobs, taking from each in order until COUNT is reached
/// (strict priority). False: nothing reserved, nothing replied. `named`: each job's reply names its queue.
fn serve(ctx: Ctx<'_>, queues: &[RStr<'_>], want: Want, named: bool) -> Result<bool, CmdError> {
    let mut taken: Vec<Taken> = Vec::new();
    let mut total = 0;
    for &name in queues {
        if total == want.count {
            break;
        }
        let mut key = Key::open(ctx, name, true);
        let Some(v) = existing(&mut key)? else { continue };
        let before = v.snapshot();
        let now = rm::now_ms();
        let (seqs, promoted) = take(ctx, name, v, want.count - total, want.lease, now);
        total += seqs.len();
        let changed = promoted || !seqs.is_empty();
        taken.push(Taken { name, key, seqs, before, changed, now });
    }
    if total > 0 {
        if let Some(n) = want.acked {
            rm::reply_array(ctx, 2);
            rm::reply_u64(ctx, n);
        }
        rm::reply_array(ctx, total);
    }
    for t in taken.iter_mut().filter(|t| t.changed) {
        let Ok(Some(v)) = existing(&mut t.key) else { continue };
        let mut leases = Vec::with_capacity(t.seqs.len());
        for &seq in &t.seqs {
            let Some(job) = v.queue.job(seq) else {
                rm::reply_null(ctx);
                continue;
            };
            leases.push((seq, job.deadline_ms));
            rm::reply_array(ctx, if named { 4 } else { 3 });
            rm::reply_bulk(ctx, &job.id_bytes());
            rm::reply_bulk(ctx, &job.payload);
            rm::reply_int(ctx, i64::from(job.attempts));
            if named {
                rm::reply_str(ctx, t.name);
            }
        }
        if !leases.is_empty() {
            effects::reserved(ctx, t.name, t.now, &leases);
        }
        let before = std::mem::replace(&mut t.before, v.snapshot());
        settle(ctx, t.name, v, before);
    }
    Ok(total > 0)
}

/// Reserves up to `count` ready jobs of one queue (promoting due ones first, replicated); empty when it is
/// paused or its limits allow none. Also says whether it promoted any.
fn take(
    ctx: Ctx<'_>,
    key_name: RStr<'_>,
    v: &mut QueueValue,
    count: usize,
    lease: Option<u64>,
    now: u64,
) -> (Vec<u64>, bool) {
    let promoted = v.queue.promote_due(now, PROMOTE_IN_RESERVE.max(count));
    if promoted > 0 {
        effects::promoted(ctx, key_name, promoted);
    }
    if v.queue.settings.paused {
        return (Vec::new(), promoted > 0);
    }
    // RESERVE's LEASE, else the job's own, else the queue's setting, else the module config.
    let default_lease = v.queue.settings.lease_ms.unwrap_or_else(config::default_lease_ms);
    let lease_of =
        |j: &crate::core::Job| lease.unwrap_or(if j.lease_ms > 0 { u64::from(j.lease_ms) } else { default_lease });
    let seqs = v.queue.reserve(count, now, lease_of);
    // Turned away by a rate limit: the timer signals the key when the rate allows (a blocked client, or
    // the next one, is then served without polling).
    if let Some(t) = v.queue.wake_at(now) {
        service::note_wake(ctx, key_name, v, t);
    }
    (seqs, promoted > 0)
}

/// Called each time a key is signalled: serve the client, or return ERR to keep it waiting.
extern "C" fn on_ready(ctx: RawCtx, _argv: *mut RawStr, _argc: c_int) -> c_int {
    super::serve_blocked(ctx, true, |ctx| {
        let Some(b) = rm::blocked_data::<Blocked>(ctx) else { return Ok(false) };
        let queues: Vec<RStr<'_>> = b.queues.iter().map(OwnedStr::as_rstr).collect();
        serve(ctx, &queues, b.want, queues.len() > 1)
    })
}

extern "C" fn on_timeout(ctx: RawCtx, _argv: *mut RawStr, _argc: c_int) -> c_int {
    rm::callback(ctx, |ctx| {
        let want = rm::blocked_data::<Blocked>(ctx).map_or(Want { count: 1, lease: None, acked: None }, |b| b.want);
        reply_none(ctx, want);
    });
    rm::OK
}

extern "C" fn free_blocked(_ctx: RawCtx, privdata: *mut c_void) {
    drop(rm::take_blocked::<Blocked>(privdata));
}
