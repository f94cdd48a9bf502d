//! The value Redis stores under a queue key: the core queue plus what the glue tracks about it.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::atomic::{AtomicBool, AtomicPtr};

use crate::core::{Queue, Stats, Totals};
use crate::metrics;

/// The queue type's handle, remembered at load (lib.rs) so the key services need not reach into persist.
static QUEUE_TYPE: AtomicPtr<redis_module::raw::RedisModuleType> = AtomicPtr::new(std::ptr::null_mut());

pub fn set_queue_type(t: *mut redis_module::raw::RedisModuleType) {
    QUEUE_TYPE.store(t, Relaxed);
}

pub fn queue_type() -> *mut redis_module::raw::RedisModuleType {
    QUEUE_TYPE.load(Relaxed)
}

pub struct QueueValue {
    pub queue: Queue,
    /// The deadline this queue last gave the timer registry (u64::MAX: none). Not persisted.
    pub noted_deadline: u64,
    /// Whether INFO once counts this queue: it stops when the key leaves the keyspace, on the main thread,
    /// not when Redis gets round to freeing it (which it may do later, on its lazy-free thread).
    counted: AtomicBool,
}

impl QueueValue {
    pub fn new(queue: Queue) -> Box<QueueValue> {
        metrics::queue_born(&queue.stats());
        Box::new(QueueValue { queue, noted_deadline: u64::MAX, counted: AtomicBool::new(true) })
    }

    /// The key was unlinked from the keyspace (DEL, UNLINK, overwrite, expiry, and the first half of RENAME/MOVE).
    pub fn uncount(&self) {
        if self.counted.swap(false, Relaxed) {
            metrics::queue_gone(&self.queue.stats());
        }
    }

    /// The value is in the keyspace again under another name (the second half of RENAME/MOVE).
    pub fn recount(&self) {
        if !self.counted.swap(true, Relaxed) {
            metrics::queue_born(&self.queue.stats());
        }
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot { stats: self.queue.stats(), totals: self.queue.totals, last_event: self.queue.events.last_id() }
    }
}

impl Drop for QueueValue {
    fn drop(&mut self) {
        self.uncount();
    }
}

/// Counts before a command, so the server-wide figures can follow what it changed.
pub struct Snapshot {
    pub stats: Stats,
    pub totals: Totals,
    /// The event log's last id: readers blocked in ONCE.EVENTS wake when it moves.
    pub last_event: u64,
}

impl Snapshot {
    pub fn report_changes(&self, now: &QueueValue) {
        let after = now.queue.stats();
        if now.counted.load(Relaxed) {
            metrics::shift(&self.stats, &after);
        }
        let t = &now.queue.totals;
        metrics::PUSHED.fetch_add(t.pushed - self.totals.pushed.min(t.pushed), Relaxed);
        metrics::ACKED.fetch_add(t.acked - self.totals.acked.min(t.acked), Relaxed);
        metrics::EXPIRED.fetch_add(t.expired - self.totals.expired.min(t.expired), Relaxed);
        metrics::DEAD_TOTAL.fetch_add(t.dead - self.totals.dead.min(t.dead), Relaxed);
    }
}
