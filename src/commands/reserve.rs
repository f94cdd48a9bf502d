//! ONCE.RESERVE queue [COUNT n] [BLOCK ms] [LEASE ms] [ACK id [ATTEMPT n]] [WITHACK]
//!
//! With BLOCK the client waits on the key (no polling) and is served first come, first served when a push,
//! a promotion or a retry makes a job ready. `ACK id` completes the worker's previous job first, so a worker
//! loop costs one round trip per job. WITHACK makes the reply `[acked, jobs-or-nil]`: a worker whose fenced
//! ACK was refused (its lease ran out, another worker may hold the job) learns it from `acked` = 0.

use std::ffi::{c_int, c_void};

use super::ack::ack_ids;
use super::args::{arity, err, CmdError, CmdResult, Options};
use super::spec::RESERVE_ARGS;
use crate::core::limits;
use super::{existing, settle};
use crate::config;
use crate::service;
use crate::effects;
use crate::rm::{self, Ctx, Key, RStr};

/// Upper bound on delayed jobs one RESERVE promotes itself; the timer promotes the rest in slices.
const PROMOTE_IN_RESERVE: usize = 1024;

#[derive(Clone, Copy)]
struct Want {
    count: usize,
    lease: Option<u64>,
    /// With WITHACK: how many jobs the ACK part completed, replied first.
    acked: Option<u64>,
}

pub fn reserve(ctx: Ctx, args: &[RStr]) -> CmdResult {
    if args.len() < 2 {
        return Err(arity("ONCE.RESERVE"));
    }
    let mut want = Want { count: 1, lease: None, acked: None };
    let mut with_ack = false;
    let mut block = None;
    let mut ack = None;
    let mut attempt = None;
    let mut opts = Options::new(args, 2, RESERVE_ARGS);
    while let Some(token) = opts.next()? {
        match token {
            "COUNT" => want.count = opts.int(limits::COUNT)? as usize,
            "BLOCK" => block = Some(opts.int(limits::BLOCK)?),
            "LEASE" => want.lease = Some(opts.int(limits::LEASE)? as u64),
            "ACK" => ack = Some(opts.raw_value("ACK")?),
            "WITHACK" => with_ack = true,
            _ => attempt = Some(opts.int(limits::ATTEMPT)? as u64),
        }
    }
    if attempt.is_some() && ack.is_none() {
        return Err(err("ATTEMPT goes with ACK (it fences the job acknowledged)"));
    }
    let key_name = args[1];
    {
        let mut key = Key::open(ctx, key_name, true);
        let acked = match (ack, existing(&mut key)?) {
            (Some(id), Some(v)) => ack_ids(ctx, key_name, v, &[id], attempt),
            _ => 0,
        };
        if with_ack {
            want.acked = Some(acked);
        }
        if serve(ctx, key_name, &mut key, want)? {
            return Ok(());
        }
    }
    match block {
        Some(ms) if !rm::may_not_block(ctx) => block_on(ctx, key_name, ms, want),
        _ => reply_none(ctx, want),
    }
    Ok(())
}

/// Nothing to serve: a null array, led by the ACK count with WITHACK.
fn reply_none(ctx: Ctx, want: Want) {
    if let Some(n) = want.acked {
        rm::reply_array(ctx, 2);
        rm::reply_u64(ctx, n);
    }
    rm::reply_null_array(ctx);
}

/// Reserves and replies if the queue has ready jobs (promoting due ones first). False: nothing replied.
fn serve(ctx: Ctx, key_name: RStr, key: &mut Key, want: Want) -> Result<bool, CmdError> {
    let Some(v) = existing(key)? else { return Ok(false) };
    let before = v.snapshot();
    let now = rm::now_ms();
    let promoted = v.queue.promote_due(now, PROMOTE_IN_RESERVE.max(want.count));
    if promoted > 0 {
        effects::promoted(ctx, key_name, promoted);
    }
    // RESERVE's LEASE, else the job's own, else the queue's setting, else the module config.
    let default_lease = v.queue.settings.lease_ms.unwrap_or_else(config::default_lease_ms);
    let lease_of = |j: &crate::core::Job| want.lease.unwrap_or(if j.lease_ms > 0 { u64::from(j.lease_ms) } else { default_lease });
    let seqs = if v.queue.settings.paused { Vec::new() } else { v.queue.reserve(want.count, now, lease_of) };
    // Turned away by a rate limit: the timer signals the key when the rate allows (a blocked client, or
    // the next one, is then served without polling).
    if !v.queue.settings.paused {
        if let Some(t) = v.queue.wake_at(now) {
            service::note_wake(ctx, key_name, v, t);
        }
    }
    if seqs.is_empty() {
        if promoted > 0 {
            settle(ctx, key_name, v, before);
        }
        return Ok(false);
    }
    let mut leases = Vec::with_capacity(seqs.len());
    if let Some(n) = want.acked {
        rm::reply_array(ctx, 2);
        rm::reply_u64(ctx, n);
    }
    rm::reply_array(ctx, seqs.len());
    for &seq in &seqs {
        let Some(job) = v.queue.job(seq) else {
            rm::reply_null(ctx);
            continue;
        };
        leases.push((seq, job.deadline_ms));
        rm::reply_array(ctx, 3);
        rm::reply_bulk(ctx, &job.id_bytes());
        rm::reply_bulk(ctx, &job.payload);
        rm::reply_int(ctx, i64::from(job.attempts));
    }
    effects::reserved(ctx, key_name, now, &leases);
    settle(ctx, key_name, v, before);
    Ok(true)
}

fn block_on(ctx: Ctx, key_name: RStr, ms: i64, want: Want) {
    rm::block_on_key(ctx, key_name, ms, on_ready, on_timeout, free_want, Box::new(want));
}

/// Called each time the key is signalled: serve the client, or return ERR to keep it waiting.
extern "C" fn on_ready(ctx: Ctx, _argv: *mut RStr, _argc: c_int) -> c_int {
    super::serve_blocked(ctx, || {
        let Some(&want) = rm::blocked_data::<Want>(ctx) else { return Ok(false) };
        let key_name = rm::blocked_ready_key(ctx);
        let mut key = Key::open(ctx, key_name, true);
        serve(ctx, key_name, &mut key, want)
    })
}

extern "C" fn on_timeout(ctx: Ctx, _argv: *mut RStr, _argc: c_int) -> c_int {
    let want = rm::blocked_data::<Want>(ctx).copied().unwrap_or(Want { count: 1, lease: None, acked: None });
    reply_none(ctx, want);
    rm::OK
}

extern "C" fn free_want(_ctx: Ctx, privdata: *mut c_void) {
    rm::free_blocked::<Want>(privdata);
}
