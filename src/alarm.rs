//! The one Redis timer, armed for the earliest deadline in the registry. Each firing runs the tick that
//! lib.rs installed (timer.rs: promotions, lease expiry, cron) and re-arms for what is left; a replica or a
//! paused master looks again every IDLE_CHECK_MS. The tick is installed rather than called by name so the
//! key services, which arm the alarm, never depend on the timer's work.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::{Mutex, OnceLock};

use lazy_static::lazy_static;
use redis_module::raw;

use crate::registry::registry;
use crate::rm::{self, Ctx, RawCtx};

/// How often a replica looks whether it became a master.
const IDLE_CHECK_MS: u64 = 100;

/// The longest the timer is armed for. Redis adds the delay, in microseconds, to the clock: a deadline
/// centuries away (`AT 4611686018427387904` is a valid time) overflowed into the past, the timer fired at once
/// and re-armed at once, and Redis's timer loop never returned. A far deadline now wakes the timer once a day,
/// which finds nothing due and arms again.
const MAX_DELAY_MS: u64 = 86_400_000;

static TICK: OnceLock<fn(Ctx<'_>)> = OnceLock::new();

/// Installs the work a firing does (once, at load).
pub fn install(tick: fn(Ctx<'_>)) {
    let _ = TICK.set(tick);
}

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
pub fn note(ctx: Ctx<'_>, db: i32, key: &[u8], deadline: u64) {
    registry().note(db, key, deadline);
    arm_by(ctx, deadline);
}

fn arm_by(ctx: Ctx<'_>, at: u64) {
    let mut a = armed();
    if at >= a.at {
        return;
    }
    if let Some(id) = a.id.take() {
        rm::stop_timer(ctx, id);
    }
    let delay = at.saturating_sub(rm::now_ms()).min(MAX_DELAY_MS) as i64;
    let id = rm::create_timer(ctx, delay, on_timer);
    a.id = Some(id);
    a.at = at;
}

extern "C" fn on_timer(ctx: RawCtx, _data: *mut c_void) {
    rm::callback(ctx, fire)
}

fn fire(ctx: Ctx<'_>) {
    {
        let mut a = armed();
        a.id = None;
        a.at = u64::MAX;
    }
    let work = TICK.get().copied();
    if catch_unwind(AssertUnwindSafe(|| work.map(|f| f(ctx)))).is_err() {
        rm::log(ctx, "warning", "once: a timer tick failed; the timer carries on");
    }
    let next = registry().first_deadline();
    if let Some(next) = next {
        let floor = if rm::may_act_on_own(ctx) { 0 } else { rm::now_ms() + IDLE_CHECK_MS };
        arm_by(ctx, next.max(floor));
    }
}

/// Starts the timer after a load or a restart, for whatever the registry already holds.
pub fn kick(ctx: Ctx<'_>) {
    if let Some(next) = registry().first_deadline() {
        arm_by(ctx, next);
    }
}
