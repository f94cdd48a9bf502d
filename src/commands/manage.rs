//! ONCE.RETRY queue id [id ...] | ALL: dead jobs back to ready, with a fresh retry budget.
//! ONCE.CANCEL queue id [id ...]: finishes unfinished jobs, reserved ones too, as cancelled (kept for KEEP).
//! Both are deterministic given the time, so they replicate as themselves (at the master's time, ONCE._AT)
//! with the ids that took effect.

use super::args::{arity, CmdResult};
use super::{change_by_ids, existing, settle, ByIds};
use crate::core::queue::Finish;
use crate::core::{Queue, State};
use crate::effects;
use crate::rm::{self, Ctx, Key, RStr};

/// `ONCE.RETRY queue ALL` starts sending every dead job back; this call moves the first slice, the timer the
/// rest (each slice replicates as `ONCE.RETRY queue id...`). The reply counts them all.
pub fn retry(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() == 3 && args[2].bytes().eq_ignore_ascii_case(b"ALL") {
        let mut key = Key::open(ctx, args[1], true);
        let n = match existing(&mut key)? {
            Some(v) => {
                let before = v.snapshot();
                let n = v.queue.retry_all();
                let first = v.queue.retry_all_next(RETRY_ALL_NOW);
                effects::retry_dead(ctx, args[1], v, &first, rm::now_ms());
                v.noted_deadline = u64::MAX;
                settle(ctx, args[1], v, before);
                n
            }
            None => 0,
        };
        rm::reply_u64(ctx, n as u64);
        return Ok(());
    }
    by_ids(ctx, args, "ONCE.RETRY", b"ONCE.RETRY\0", Queue::retry_dead)
}

/// The error a job cancelled by ONCE.CANCEL shows.
pub const CANCELLED: &[u8] = b"cancelled";

/// Dead jobs RETRY ALL moves itself before leaving the rest to the timer.
const RETRY_ALL_NOW: usize = 1024;

pub fn cancel(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    by_ids(ctx, args, "ONCE.CANCEL", b"ONCE.CANCEL\0", |q, seq, now| q.cancel(seq, now, CANCELLED))
}

fn by_ids(
    ctx: Ctx<'_>,
    args: &[RStr<'_>],
    name: &str,
    cname: &'static [u8],
    change: fn(&mut Queue, u64, u64) -> bool,
) -> CmdResult {
    if args.len() < 3 {
        return Err(arity(name));
    }
    let mut key = Key::open(ctx, args[1], true);
    let n = match existing(&mut key)? {
        Some(v) => {
            let ended = |j: &crate::core::Job, now| Finish::ended(j, State::Cancelled, Some(CANCELLED), now);
            let how = ByIds { cmd: cname, tail: &[], ended: &ended };
            change_by_ids(ctx, how, args[1], v, &args[2..], |q, seq, now, _| change(q, seq, now))
        }
        None => 0,
    };
    if n > 0 {
        rm::notify(ctx, if name == "ONCE.CANCEL" { c"once.cancel" } else { c"once.retry" }, args[1]);
    }
    rm::reply_u64(ctx, n);
    Ok(())
}
