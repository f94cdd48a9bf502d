//! The server timer: promotes due delayed jobs, expires leases and fires cron ticks, with no client
//! command needed. One Redis timer is armed for the earliest deadline in the registry. Each tick works
//! for about a millisecond, then re-arms at once if work is left, so clients are served in between.
//! Every action is replicated as an explicit command; the timer acts only on a master that is not loading.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use lazy_static::lazy_static;
use redis_module::raw;

use crate::commands::nack::fail;
use crate::commands::{existing, settle};
use crate::core::queue::{NewJob, Pushed};
use crate::core::FailCause;
use crate::persist::encode::replicate_job;
use crate::registry::registry;
use crate::rm::{self, Ctx, Key, OwnedStr};
use crate::value::QueueValue;
use crate::{config, metrics, random};

const BUDGET: Duration = Duration::from_micros(1000);
/// Promotions between two looks at the clock.
const SLICE: usize = 2048;
/// How often a replica looks whether it became a master.
const IDLE_CHECK_MS: u64 = 100;

struct Armed {
    id: Option<raw::RedisModuleTimerID>,
    at: u64,
}

lazy_static! {
    static ref ARMED: Mutex<Armed> = Mutex::new(Armed { id: None, at: u64::MAX });
}

fn armed() -> std::sync::MutexGuard<'static, Armed> {
    ARMED.lock().unwrap_or_else(|e| e.into_inner())
}

/// Records that (db, key) needs the timer at `deadline`, arming it sooner if needed.
pub fn note(ctx: Ctx, db: i32, key: &[u8], deadline: u64) {
    registry().note(db, key, deadline);
    arm_by(ctx, deadline);
}

fn arm_by(ctx: Ctx, at: u64) {
    let mut a = armed();
    if at >= a.at {
        return;
    }
    if let Some(id) = a.id.take() {
        let mut data: *mut c_void = std::ptr::null_mut();
        unsafe { raw::RedisModule_StopTimer.unwrap()(ctx, id, &mut data) };
    }
    let delay = at.saturating_sub(rm::now_ms()).min(i64::MAX as u64) as i64;
    let id = unsafe { raw::RedisModule_CreateTimer.unwrap()(ctx, delay, Some(on_timer), std::ptr::null_mut()) };
    a.id = Some(id);
    a.at = at;
}

extern "C" fn on_timer(ctx: Ctx, _data: *mut c_void) {
    {
        let mut a = armed();
        a.id = None;
        a.at = u64::MAX;
    }
    if catch_unwind(AssertUnwindSafe(|| tick(ctx))).is_err() {
        rm::log(ctx, "warning", "once: a timer tick failed; the timer carries on");
    }
    let next = registry().first_deadline();
    if let Some(next) = next {
        let floor = if rm::may_act_on_own(ctx) { 0 } else { rm::now_ms() + IDLE_CHECK_MS };
        arm_by(ctx, next.max(floor));
    }
}

fn tick(ctx: Ctx) {
    if !rm::may_act_on_own(ctx) {
        return;
    }
    let started = Instant::now();
    let stop_at = started + BUDGET;
    let now = rm::now_ms();
    let home_db = rm::selected_db(ctx);
    loop {
        let Some((db, key)) = registry().pop_due(now) else { break };
        if rm::select_db(ctx, db) {
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
fn visit(ctx: Ctx, key_bytes: &[u8], now: u64, stop_at: Instant) {
    let key_name = OwnedStr::new(key_bytes);
    let key = Key::open(ctx, key_name.0, true);
    let Ok(Some(v)) = existing(&key) else { return };
    let before = v.snapshot();
    v.noted_deadline = u64::MAX;
    // Each step stops early when the budget is spent; the queue stays due and the next tick goes on.
    if promote(ctx, &key_name, v, now, stop_at) && expire(ctx, &key_name, v, now, stop_at) {
        fire_schedules(ctx, &key_name, v, now);
    }
    settle(ctx, key_name.0, v, before);
}

fn over(stop_at: Instant) -> bool {
    Instant::now() >= stop_at
}

fn promote(ctx: Ctx, key: &OwnedStr, v: &mut QueueValue, now: u64, stop_at: Instant) -> bool {
    loop {
        let n = v.queue.promote_due(now, SLICE);
        if n > 0 {
            rm::replicate(ctx, b"ONCE._PROMOTE\0", &[OwnedStr::retain(key.0), OwnedStr::int(n as i64)]);
        }
        if n < SLICE {
            return true;
        }
        if over(stop_at) {
            return false;
        }
    }
}

fn expire(ctx: Ctx, key: &OwnedStr, v: &mut QueueValue, now: u64, stop_at: Instant) -> bool {
    let max = config::backoff_max_ms();
    while let Some(seq) = v.queue.first_expired(now) {
        let Some(outcome) = v.queue.decide_failure(seq, now, None, false, max, random::next()) else { break };
        if !fail(ctx, key.0, v, seq, FailCause::LeaseExpired, None, outcome) {
            break;
        }
        if over(stop_at) {
            return false;
        }
    }
    true
}

fn fire_schedules(ctx: Ctx, key: &OwnedStr, v: &mut QueueValue, now: u64) {
    let plans: Vec<_> =
        v.queue.schedules.values().filter_map(|s| s.plan(now).map(|p| (s.name.clone(), p, s.fires(now)))).collect();
    for (name, plan, fires) in plans {
        let Some(s) = v.queue.schedules.get(&name) else { continue };
        let jobs: Vec<NewJob> = fires
            .iter()
            .map(|&fire| NewJob {
                custom_id: Some(s.job_id(fire)),
                payload: s.payload[..].into(),
                due_ms: 0,
                retries: s.options.retries,
                backoff_ms: s.options.backoff_ms,
                lease_ms: s.options.lease_ms,
                priority: s.options.priority,
            })
            .collect();
        for new in jobs {
            if let Pushed::Added(seq) = v.queue.push(new, now) {
                if let Some(job) = v.queue.job(seq) {
                    let payload = OwnedStr::new(&job.payload);
                    replicate_job(ctx, key.0, "PUSH", job, payload.0);
                }
            }
        }
        if let Some(s) = v.queue.schedules.get_mut(&name) {
            if plan.fire_ms.is_some() {
                s.last_fire_ms = plan.fire_ms;
            }
            s.next_fire_ms = plan.next_fire_ms;
        }
        let fired = plan.fire_ms.map_or(-1, |f| f as i64);
        rm::replicate(
            ctx,
            b"ONCE._FIRED\0",
            &[OwnedStr::retain(key.0), OwnedStr::new(&name), OwnedStr::int(fired), OwnedStr::int(plan.next_fire_ms as i64)],
        );
    }
}

/// Starts the timer after a load or a restart, for whatever the registry already holds.
pub fn kick(ctx: Ctx) {
    if let Some(next) = registry().first_deadline() {
        arm_by(ctx, next);
    }
}
