//! Eviction is the one way Redis itself deletes a queue with every job in it: under an `allkeys-*`
//! maxmemory-policy a queue key is as evictable as a cache entry. This module warns when the policy allows
//! it (at load and whenever the policy changes), logs each queue that is evicted with what it held, counts
//! them for INFO, and tells the timer when the server is full under `noeviction`, where a client's push is
//! refused and the timer's own pushes (cron fires) must be held back the same way.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::sync::Mutex;

use lazy_static::lazy_static;
use redis_module::raw;

use crate::core::Stats;
use crate::rm::{self, Ctx};

pub static EVICTED_QUEUES: AtomicU64 = AtomicU64::new(0);
pub static EVICTED_JOBS: AtomicU64 = AtomicU64::new(0);
pub static FIRES_HELD: AtomicU64 = AtomicU64::new(0);
static AT_RISK: AtomicBool = AtomicBool::new(false);

lazy_static! {
    static ref POLICY: Mutex<String> = Mutex::new(String::new());
    /// The queue last unlinked from the keyspace, with what it held: Redis unlinks a key, then raises
    /// `evicted` for it, and by then the value is gone.
    static ref UNLINKED: Mutex<Option<(Vec<u8>, Stats)>> = Mutex::new(None);
}

/// Whether `policy` lets Redis evict keys that have no TTL, as queue keys have.
pub fn evicts_queues(policy: &str) -> bool {
    policy.starts_with("allkeys-")
}

/// The server's maxmemory-policy as last read.
pub fn policy() -> String {
    POLICY.lock().map(|p| p.clone()).unwrap_or_default()
}

pub fn at_risk() -> bool {
    AT_RISK.load(Relaxed)
}

/// Reads the policy (at load, and after any config change) and warns when it starts to allow evicting queues.
pub fn check_policy(ctx: Ctx<'_>) {
    let Some(policy) = rm::server_info_field(ctx, "memory", "maxmemory_policy") else { return };
    let risky = evicts_queues(&policy);
    let changed = POLICY.lock().map(|mut p| std::mem::replace(&mut *p, policy.clone()) != policy).unwrap_or(false);
    let was = AT_RISK.swap(risky, Relaxed);
    if risky && (changed || !was) {
        rm::log(
            ctx,
            "warning",
            &format!(
                "once: maxmemory-policy is {policy}: Redis may evict a whole queue with every job, schedule and \
                 total in it. Queues need maxmemory-policy noeviction (or a volatile-* policy, with no TTL on \
                 queue keys)"
            ),
        );
    }
}

/// A queue left the keyspace (type unlink callback): remember what it held in case it was evicted.
pub fn note_unlinked(key: &[u8], stats: Stats) {
    if let Ok(mut u) = UNLINKED.lock() {
        *u = Some((key.to_vec(), stats));
    }
}

/// The `evicted` keyspace event for `key`: log and count it if it was a queue.
pub fn on_evicted(ctx: Ctx<'_>, db: i32, key: &[u8]) {
    let Some((name, s)) = UNLINKED.lock().ok().and_then(|mut u| u.take()) else { return };
    if name != key {
        return;
    }
    let jobs = s.ready + s.delayed + s.reserved + s.dead;
    EVICTED_QUEUES.fetch_add(1, Relaxed);
    EVICTED_JOBS.fetch_add(jobs, Relaxed);
    rm::log(
        ctx,
        "warning",
        &format!(
            "once: queue '{}' (db {db}) was EVICTED by maxmemory-policy {} with {jobs} jobs (ready {}, delayed {}, \
             reserved {}, dead {}) and {} schedules: they are gone. Set maxmemory-policy noeviction",
            String::from_utf8_lossy(key),
            policy(),
            s.ready,
            s.delayed,
            s.reserved,
            s.dead,
            s.schedules
        ),
    );
}

/// Any other removal of a key: what was remembered is not an eviction.
pub fn forget_unlinked() {
    if let Ok(mut u) = UNLINKED.lock() {
        *u = None;
    }
}

/// Over maxmemory under `noeviction`: a client's PUSH gets OOM, so the timer fires no schedule either.
pub fn server_full(ctx: Ctx<'_>) -> bool {
    let f = rm::flags(ctx);
    f & raw::REDISMODULE_CTX_FLAGS_OOM != 0 && f & raw::REDISMODULE_CTX_FLAGS_EVICT == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_allkeys_policies_evict_queues() {
        for p in ["allkeys-lru", "allkeys-lfu", "allkeys-random"] {
            assert!(evicts_queues(p));
        }
        for p in ["noeviction", "volatile-lru", "volatile-lfu", "volatile-random", "volatile-ttl"] {
            assert!(!evicts_queues(p));
        }
    }
}
