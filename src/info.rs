//! INFO once: queues, jobs by state over all queues, the timer's work, and totals.

use std::sync::atomic::Ordering::Relaxed;

use redis_module::raw;

use crate::metrics::*;
use crate::registry::registry;
use crate::{eviction, rm};

pub extern "C" fn info(ctx: *mut raw::RedisModuleInfoCtx, _for_crash_report: std::ffi::c_int) {
    let signed = [
        ("queues", QUEUES.load(Relaxed)),
        ("jobs_ready", READY.load(Relaxed)),
        ("jobs_delayed", DELAYED.load(Relaxed)),
        ("jobs_reserved", RESERVED.load(Relaxed)),
        ("jobs_dead", DEAD.load(Relaxed)),
        ("jobs_waiting", WAITING.load(Relaxed)),
        ("flow_entries_held", HELD.load(Relaxed)),
        ("timer_queues_waiting", registry().len() as i64),
    ];
    let unsigned = [
        ("timer_ticks", TIMER_TICKS.load(Relaxed)),
        ("timer_last_tick_us", TIMER_LAST_US.load(Relaxed)),
        ("timer_max_tick_us", TIMER_MAX_US.load(Relaxed)),
        ("pushed_total", PUSHED.load(Relaxed)),
        ("acked_total", ACKED.load(Relaxed)),
        ("expired_total", EXPIRED.load(Relaxed)),
        ("dead_total", DEAD_TOTAL.load(Relaxed)),
        ("eviction_risk", u64::from(eviction::at_risk())),
        ("evicted_queues", eviction::EVICTED_QUEUES.load(Relaxed)),
        ("evicted_jobs", eviction::EVICTED_JOBS.load(Relaxed)),
        ("schedule_fires_held", eviction::FIRES_HELD.load(Relaxed)),
    ];
    rm::info_fields(ctx, &signed, &unsigned);
    rm::info_text_field(ctx, "eviction_policy", &eviction::policy());
}
