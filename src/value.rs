//! The value Redis stores under a queue key: the core queue plus what the glue tracks about it.

use std::sync::atomic::Ordering::Relaxed;

use crate::core::{Queue, Stats, Totals};
use crate::metrics;

pub struct QueueValue {
    pub queue: Queue,
    /// The deadline this queue last gave the timer registry (u64::MAX: none). Not persisted.
    pub noted_deadline: u64,
}

impl QueueValue {
    pub fn new(queue: Queue) -> Box<QueueValue> {
        metrics::queue_born(&queue.stats());
        Box::new(QueueValue { queue, noted_deadline: u64::MAX })
    }

    pub fn snapshot(&self) -> Snapshot {
        Snapshot { stats: self.queue.stats(), totals: self.queue.totals }
    }
}

impl Drop for QueueValue {
    fn drop(&mut self) {
        metrics::queue_gone(&self.queue.stats());
    }
}

/// Counts before a command, so the server-wide figures can follow what it changed.
pub struct Snapshot {
    pub stats: Stats,
    pub totals: Totals,
}

impl Snapshot {
    pub fn report_changes(&self, now: &QueueValue) {
        let after = now.queue.stats();
        metrics::shift(&self.stats, &after);
        let t = &now.queue.totals;
        metrics::PUSHED.fetch_add(t.pushed - self.totals.pushed.min(t.pushed), Relaxed);
        metrics::ACKED.fetch_add(t.acked - self.totals.acked.min(t.acked), Relaxed);
        metrics::EXPIRED.fetch_add(t.expired - self.totals.expired.min(t.expired), Relaxed);
        metrics::DEAD_TOTAL.fetch_add(t.dead - self.totals.dead.min(t.dead), Relaxed);
    }
}
