//! The replicated effects: each explicit command a master sends to its replicas and its AOF for a change it
//! decided (absolute times, explicit seqs), so replaying it gives the same state anywhere. Commands and the
//! timer call these; the internal commands (commands/internal.rs) apply them on the other side.

use std::ffi::{c_char, CStr};

use redis_module::raw;

use crate::core::backoff::Outcome;
use crate::core::schedule::Schedule;
use crate::core::{FailCause, Job};
use crate::persist::encode::{job_header, schedule_args};
use crate::rm::{self, Ctx, OwnedStr, RStr};
use crate::value::QueueValue;

/// Sends `ONCE._JOB` to replicas and the AOF in one typed call, reusing the client's key and payload strings.
pub fn job(ctx: Ctx, key: RStr, mode: &str, job: &Job, payload: RStr) {
    let header = job_header(mode, job);
    let cmd = b"ONCE._JOB\0".as_ptr().cast::<c_char>();
    let (h, hl) = (header.as_ptr().cast::<c_char>(), header.len());
    let id_word: &CStr = c"ID";
    let err_word: &CStr = c"ERROR";
    let replicate = unsafe { raw::RedisModule_Replicate.unwrap() };
    unsafe {
        match (job.custom_id(), job.last_error()) {
            (None, None) => replicate(ctx, cmd, c"sbs".as_ptr(), key, h, hl, payload),
            (Some(id), None) => {
                replicate(ctx, cmd, c"sbscb".as_ptr(), key, h, hl, payload, id_word.as_ptr(), id.as_ptr(), id.len())
            }
            (None, Some(e)) => {
                replicate(ctx, cmd, c"sbscb".as_ptr(), key, h, hl, payload, err_word.as_ptr(), e.as_ptr(), e.len())
            }
            (Some(id), Some(e)) => replicate(
                ctx,
                cmd,
                c"sbscbcb".as_ptr(),
                key,
                h,
                hl,
                payload,
                id_word.as_ptr(),
                id.as_ptr(),
                id.len(),
                err_word.as_ptr(),
                e.as_ptr(),
                e.len(),
            ),
        };
    }
}

/// Applies a decided failure and replicates it as `ONCE._FAIL key seq NACK|EXPIRE due|-1 error`.
pub fn fail(
    ctx: Ctx,
    key_name: RStr,
    v: &mut QueueValue,
    seq: u64,
    cause: FailCause,
    error: Option<&[u8]>,
    outcome: Outcome,
) -> bool {
    // An empty ERROR text is no text: it keeps any earlier one, as on a replica that reads "" as none.
    let error = error.filter(|e| !e.is_empty());
    if !v.queue.apply_failure(seq, cause, error, outcome) {
        return false;
    }
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
        ],
    );
    true
}

/// `ONCE._PROMOTE key n`: the first n delayed jobs (by due time) became ready.
pub fn promoted(ctx: Ctx, key: RStr, n: usize) {
    rm::replicate(ctx, b"ONCE._PROMOTE\0", &[OwnedStr::retain(key), OwnedStr::int(n as i64)]);
}

/// `ONCE._RESERVE key seq deadline [seq deadline ...]`: these ready jobs were reserved until these times.
pub fn reserved(ctx: Ctx, key: RStr, leases: &[(u64, u64)]) {
    let mut args = Vec::with_capacity(1 + 2 * leases.len());
    args.push(OwnedStr::retain(key));
    for &(seq, deadline) in leases {
        args.push(OwnedStr::int(seq as i64));
        args.push(OwnedStr::int(deadline as i64));
    }
    rm::replicate(ctx, b"ONCE._RESERVE\0", &args);
}

/// `ONCE._LEASE key seq deadline`: a reserved job's lease now ends at `deadline`.
pub fn lease(ctx: Ctx, key: RStr, seq: u64, deadline: u64) {
    rm::replicate(ctx, b"ONCE._LEASE\0", &[OwnedStr::retain(key), OwnedStr::int(seq as i64), OwnedStr::int(deadline as i64)]);
}

/// `ONCE._SCHED key <schedule>`: a schedule was added or replaced, with its next fire time decided.
pub fn schedule(ctx: Ctx, key: RStr, s: &Schedule) {
    rm::replicate(ctx, b"ONCE._SCHED\0", &schedule_args(key, s));
}

/// `ONCE._FIRED key name fire|-1 next`: a schedule ticked (or skipped a missed tick) and fires next at `next`.
pub fn fired(ctx: Ctx, key: RStr, name: &[u8], fire: Option<u64>, next: u64) {
    let fire = fire.map_or(-1, |f| f as i64);
    rm::replicate(
        ctx,
        b"ONCE._FIRED\0",
        &[OwnedStr::retain(key), OwnedStr::new(name), OwnedStr::int(fire), OwnedStr::int(next as i64)],
    );
}

/// A deterministic client command that took effect (ACK, RETRY, CANCEL, UNSCHEDULE), sent as itself.
pub fn as_itself(ctx: Ctx, cmd: &'static [u8], args: &[OwnedStr]) {
    rm::replicate(ctx, cmd, args);
}
