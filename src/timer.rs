//! The server timer: promotes due delayed jobs, expires leases and fires cron ticks, with no client
//! command needed. One Redis timer is armed for the earliest deadline in the registry. Each tick works
//! for about a millisecond, then re-arms at once if work is left, so clients are served in between.
//! Every action is replicated as an explicit command; the timer acts only on a master that is not loading.

use std::time::{Duration, Instant};

use crate::core::queue::{NewJob, Pushed};
use crate::core::FailCause;
use crate::effects::{self, Timed};
use crate::registry::registry;
use crate::rm::{self, Ctx, Key, OwnedStr};
use crate::service::{existing, settle};
use crate::value::QueueValue;
use crate::{config, eviction, metrics, migration, random};

const BUDGET: Duration = Duration::from_micros(1000);
/// How often a queue whose schedules are held (server full) is looked at again.
const HOLD_MS: u64 = 100;
/// Jobs handled between two looks at the clock (a look costs ~25 ns; 256 jobs about 0.1 ms).
const SLICE: usize = 256;

/// One tick: what is due in every queue, within the budget. Called by the alarm.
pub fn tick(ctx: Ctx<'_>) {
    if !rm::may_act_on_own(ctx) {
        return;
    }
    let started = Instant::now();
    let stop_at = started + BUDGET;
    let now = rm::now_ms();
    let home_db = rm::selected_db(ctx);
    loop {
        let Some((db, key)) = registry().pop_due(now) else { break };
        if migration::may_act_on(db, &key) && rm::select_db(ctx, db) {
            visit(ctx, &key, now, stop_at);
        }
        if Instant::now() >= stop_at {
            break;
        }
    }
    rm::select_db(ctx, home_db);
    metrics::timer_tick(started.elapsed().as_micros() as u64);
}

/// Does what is due in one queue until the budget runs out; what is left stays due in the registry.
fn visit(ctx: Ctx<'_>, key_bytes: &[u8], now: u64, stop_at: Instant) {
    let key_name = OwnedStr::new(key_bytes);
    let mut key = Key::open(ctx, key_name.as_rstr(), true);
    let Ok(Some(v)) = existing(&mut key) else { return };
    // What one queue's visit changes (promotions, expiries, fires, drops) goes out as one record.
    let began = rm::begin_command();
    let before = v.snapshot();
    v.noted_deadline = u64::MAX;
    // Each step stops early when the budget is spent; the queue stays due and the next tick goes on.
    let hold = eviction::server_full(ctx) && v.queue.first_due_schedule(now).is_some();
    let _done = promote(ctx, &key_name, v, now, stop_at)
        && expire(ctx, &key_name, v, now, stop_at)
        && (hold || fire_schedules(ctx, &key_name, v, now, stop_at))
        && cap_dead(ctx, &key_name, v, now, stop_at)
        && retry_all(ctx, &key_name, v, now, stop_at)
        && sweep_groups(ctx, &key_name, v, now, stop_at)
        && timed_steps(ctx, &key_name, v, now, stop_at)
        && free_purged(v, stop_at);
    settle(ctx, key_name.as_rstr(), v, before);
    if hold {
        hold_schedules(ctx, key_bytes, v, now);
    }
    if began {
        rm::end_command(ctx);
    }
}

/// Over maxmemory under noeviction a client's PUSH is refused, so cron fires are held too: the schedules stay
/// due, and once memory is below the limit their missed ticks follow each one's MISSED rule. The queue is
/// looked at again in HOLD_MS (its other deadlines wait that long at most while the server is full).
fn hold_schedules(ctx: Ctx<'_>, key: &[u8], v: &mut QueueValue, now: u64) {
    eviction::FIRES_HELD.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let db = rm::selected_db(ctx);
    let again = now + HOLD_MS;
    let mut r = registry();
    r.forget(db, key);
    r.note(db, key, again);
    v.noted_deadline = again;
}

/// Frees drained groups whose rate window ended, a slice at a time, each slice replicated.
fn sweep_groups(ctx: Ctx<'_>, key: &OwnedStr, v: &mut QueueValue, now: u64, stop_at: Instant) -> bool {
    while v.queue.flow.idle_deadline().is_some_and(|t| t <= now) {
        let n = v.queue.sweep_groups(now, SLICE);
        effects::swept(ctx, key.as_rstr(), now, n);
        if over(stop_at) {
            return false;
        }
    }
    true
}

fn over(stop_at: Instant) -> bool {
    Instant::now() >= stop_at
}

fn promote(ctx: Ctx<'_>, key: &OwnedStr, v: &mut QueueValue, now: u64, stop_at: Instant) -> bool {
    loop {
        let n = v.queue.promote_due(now, SLICE);
        if n > 0 {
            effects::promoted(ctx, key.as_rstr(), n);
        }
        if n < SLICE {
            return true;
        }
        if over(stop_at) {
            return false;
        }
    }
}

fn expire(ctx: Ctx<'_>, key: &OwnedStr, v: &mut QueueValue, now: u64, stop_at: Instant) -> bool {
    let max = config::backoff_max_ms();
    while let Some(seq) = v.queue.first_expired(now) {
        let Some(outcome) = v.queue.decide_failure(seq, now, None, false, max, random::next()) else { break };
        if !effects::fail(ctx, key.as_rstr(), v, seq, FailCause::LeaseExpired, None, outcome, now) {
            break;
        }
        if over(stop_at) {
            return false;
        }
    }
    true
}

/// Drops dead jobs over DEAD-MAX or past DEAD-TTL, oldest first, a slice at a time.
fn cap_dead(ctx: Ctx<'_>, key: &OwnedStr, v: &mut QueueValue, now: u64, stop_at: Instant) -> bool {
    loop {
        let seqs = v.queue.dead_to_drop(now, SLICE);
        if seqs.is_empty() {
            return true;
        }
        effects::drop_dead(ctx, key.as_rstr(), v, &seqs, now);
        if over(stop_at) {
            return false;
        }
    }
}

/// Moves a RETRY ALL under way along, a slice at a time.
fn retry_all(ctx: Ctx<'_>, key: &OwnedStr, v: &mut QueueValue, now: u64, stop_at: Instant) -> bool {
    while v.queue.retry_all_upto.is_some() {
        let seqs = v.queue.retry_all_next(SLICE);
        effects::retry_dead(ctx, key.as_rstr(), v, &seqs, now);
        if over(stop_at) {
            return false;
        }
    }
    true
}

/// TTLs that ran out, CALLs to cancel, kept jobs to free: a slice at a time, each slice one record.
fn timed_steps(ctx: Ctx<'_>, key: &OwnedStr, v: &mut QueueValue, now: u64, stop_at: Instant) -> bool {
    for kind in [Timed::Ttl, Timed::Call, Timed::Forget] {
        loop {
            let seqs = match kind {
                Timed::Ttl => v.queue.ttl_due(now, SLICE),
                Timed::Call => v.queue.cancels_due(now, SLICE),
                Timed::Forget => v.queue.kept_to_forget(now, SLICE),
            };
            if seqs.is_empty() {
                break;
            }
            effects::timed(ctx, key.as_rstr(), v, kind, &seqs, now);
            if over(stop_at) {
                return false;
            }
        }
    }
    true
}

/// Frees jobs a PURGE took, a slice at a time (nothing to replicate: no reader saw them already).
fn free_purged(v: &mut QueueValue, stop_at: Instant) -> bool {
    while v.queue.free_some(SLICE) > 0 {
        if over(stop_at) {
            return false;
        }
    }
    true
}

/// Fires the due schedules in order of their fire time, one at a time, until none is due or the budget is spent.
fn fire_schedules(ctx: Ctx<'_>, key: &OwnedStr, v: &mut QueueValue, now: u64, stop_at: Instant) -> bool {
    while let Some(s) = v.queue.first_due_schedule(now) {
        let name = s.name.clone();
        let Some(plan) = s.plan(now) else { break };
        let jobs: Vec<NewJob> = s
            .fires(now)
            .iter()
            .map(|&fire| NewJob {
                custom_id: Some(s.job_id(fire)),
                payload: s.payload[..].into(),
                due_ms: 0,
                retries: s.options.retries,
                backoff_ms: s.options.backoff_ms,
                lease_ms: s.options.lease_ms,
                priority: s.options.priority,
                ..NewJob::default()
            })
            .collect();
        for new in jobs {
            if let Pushed::Added(seq) = v.queue.push(new, now) {
                if let Some(job) = v.queue.job(seq) {
                    let payload = OwnedStr::new(&job.payload);
                    effects::job(ctx, key.as_rstr(), "PUSH", &job, b"", payload.as_rstr());
                }
            }
        }
        v.queue.set_fired(&name, plan.fire_ms, plan.next_fire_ms);
        effects::fired(ctx, key.as_rstr(), &name, plan.fire_ms, plan.next_fire_ms);
        if over(stop_at) {
            return false;
        }
    }
    true
}
