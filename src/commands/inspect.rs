//! ONCE.INSPECT queue id, and the job map that INSPECT and LIST reply.

use super::args::{arity, CmdResult};
use super::existing;
use crate::core::{Job, Queue};
use crate::rm::{self, Ctx, Key, RStr};

pub fn inspect(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 3 {
        return Err(arity("ONCE.INSPECT"));
    }
    let mut key = Key::open(ctx, args[1], false);
    let v = existing(&mut key)?;
    let found =
        v.as_ref().and_then(|v| v.queue.find(args[2].bytes()).and_then(|s| v.queue.job(s)).map(|j| (&v.queue, j)));
    match found {
        Some((q, job)) => reply_job(ctx, q, &job, true),
        None => rm::reply_null(ctx),
    }
    Ok(())
}

/// One job as INSPECT shows it (LIST too; `with_payload` false leaves the payload out).
pub fn reply_job(ctx: Ctx<'_>, q: &Queue, job: &Job, with_payload: bool) {
    let opt = |ctx, v: Option<u64>| match v {
        Some(x) => rm::reply_u64(ctx, x),
        None => rm::reply_null(ctx),
    };
    let waits = job.waits();
    let dependents = job.dependents();
    let extra = if waits.is_some() { 5 } else { 0 } + if dependents.is_some() { 2 } else { 0 };
    rm::reply_map(ctx, extra + if with_payload { 18 } else { 17 });
    rm::reply_bulk(ctx, b"id");
    rm::reply_bulk(ctx, &job.id_bytes());
    rm::reply_bulk(ctx, b"state");
    rm::reply_bulk(ctx, job.state.name().as_bytes());
    if with_payload {
        rm::reply_bulk(ctx, b"payload");
        rm::reply_bulk(ctx, &job.payload);
    }
    rm::reply_bulk(ctx, b"attempts");
    rm::reply_int(ctx, i64::from(job.attempts));
    rm::reply_bulk(ctx, b"retries");
    rm::reply_int(ctx, i64::from(job.retries));
    rm::reply_bulk(ctx, b"priority");
    rm::reply_int(ctx, i64::from(job.priority));
    rm::reply_bulk(ctx, b"created");
    rm::reply_u64(ctx, job.created_ms);
    rm::reply_bulk(ctx, b"due");
    opt(ctx, job.due_ms());
    rm::reply_bulk(ctx, b"lease_deadline");
    opt(ctx, job.lease_deadline_ms());
    rm::reply_bulk(ctx, b"last_error");
    match job.last_error() {
        Some(e) => rm::reply_bulk(ctx, e),
        None => rm::reply_null(ctx),
    }
    rm::reply_bulk(ctx, b"backoff");
    rm::reply_u64(ctx, job.backoff_ms);
    rm::reply_bulk(ctx, b"lease");
    opt(ctx, (job.lease_ms > 0).then_some(u64::from(job.lease_ms)));
    rm::reply_bulk(ctx, b"tries");
    rm::reply_int(ctx, i64::from(job.tries()));
    rm::reply_bulk(ctx, b"died");
    opt(ctx, job.died_ms());
    rm::reply_bulk(ctx, b"group");
    match q.group_name(job) {
        Some(g) => rm::reply_bulk(ctx, g),
        None => rm::reply_null(ctx),
    }
    let text = |t: Option<&[u8]>| match t {
        Some(b) => rm::reply_bulk(ctx, b),
        None => rm::reply_null(ctx),
    };
    rm::reply_bulk(ctx, b"result");
    text(job.result());
    rm::reply_bulk(ctx, b"progress");
    text(job.progress());
    rm::reply_bulk(ctx, b"finished");
    opt(ctx, job.finished_ms());
    if let Some(w) = waits {
        for (name, n) in [
            (&b"deps_total"[..], w.links.len()),
            (b"deps_done", w.done()),
            (b"deps_failed", w.failed()),
            (b"deps_left", w.left as usize),
        ] {
            rm::reply_bulk(ctx, name);
            rm::reply_u64(ctx, n as u64);
        }
        rm::reply_bulk(ctx, b"on_fail");
        rm::reply_bulk(ctx, w.on_fail.name().as_bytes());
    }
    if let Some(d) = dependents {
        // Jobs still to be told when it ends, and those that have not ended (they keep its outcome).
        rm::reply_bulk(ctx, b"dependents");
        rm::reply_u64(ctx, d.targets.len() as u64);
        rm::reply_bulk(ctx, b"pinned_by");
        rm::reply_u64(ctx, u64::from(d.pins));
    }
}
