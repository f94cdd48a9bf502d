//! Server-wide figures for INFO once. Atomics, because Redis may free a queue on its lazy-free thread.

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use crate::core::Stats;

pub static QUEUES: AtomicI64 = AtomicI64::new(0);
pub static READY: AtomicI64 = AtomicI64::new(0);
pub static DELAYED: AtomicI64 = AtomicI64::new(0);
pub static RESERVED: AtomicI64 = AtomicI64::new(0);
pub static DEAD: AtomicI64 = AtomicI64::new(0);
pub static WAITING: AtomicI64 = AtomicI64::new(0);
pub static HELD: AtomicI64 = AtomicI64::new(0);

pub static PUSHED: AtomicU64 = AtomicU64::new(0);
pub static ACKED: AtomicU64 = AtomicU64::new(0);
pub static EXPIRED: AtomicU64 = AtomicU64::new(0);
pub static DEAD_TOTAL: AtomicU64 = AtomicU64::new(0);

pub static TIMER_TICKS: AtomicU64 = AtomicU64::new(0);
pub static TIMER_LAST_US: AtomicU64 = AtomicU64::new(0);
pub static TIMER_MAX_US: AtomicU64 = AtomicU64::new(0);

fn signed(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// Moves the job gauges from `before` to `after` for one queue.
pub fn shift(before: &Stats, after: &Stats) {
    if before == after {
        return;
    }
    READY.fetch_add(signed(after.ready) - signed(before.ready), Relaxed);
    DELAYED.fetch_add(signed(after.delayed) - signed(before.delayed), Relaxed);
    RESERVED.fetch_add(signed(after.reserved) - signed(before.reserved), Relaxed);
    DEAD.fetch_add(signed(after.dead) - signed(before.dead), Relaxed);
    WAITING.fetch_add(signed(after.waiting) - signed(before.waiting), Relaxed);
    HELD.fetch_add(signed(after.held) - signed(before.held), Relaxed);
}

pub fn queue_born(stats: &Stats) {
    QUEUES.fetch_add(1, Relaxed);
    shift(&Stats::default(), stats);
}

pub fn queue_gone(stats: &Stats) {
    QUEUES.fetch_sub(1, Relaxed);
    shift(stats, &Stats::default());
}

pub fn timer_tick(us: u64) {
    TIMER_TICKS.fetch_add(1, Relaxed);
    TIMER_LAST_US.store(us, Relaxed);
    TIMER_MAX_US.fetch_max(us, Relaxed);
}
