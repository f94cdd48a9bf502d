//! A queue's totals since it was made, named as STATS shows them, and how every encoding carries them.

use super::super::limits::Range;
use super::super::schema::Field;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    pub pushed: u64,
    pub reserved: u64,
    pub acked: u64,
    pub nacked: u64,
    pub expired: u64,
    pub retried: u64,
    pub dead: u64,
    /// Dead jobs dropped by DEAD-MAX or DEAD-TTL (not by PURGE or CANCEL).
    pub dead_dropped: u64,
    /// Jobs whose TTL ran out before any reservation (dead or dropped).
    pub expired_unstarted: u64,
}

const COUNTER: i64 = i64::MAX;

/// A total as every encoding carries it: counting goes on past i64::MAX in memory (it never will in
/// practice, but a client can set one there with ONCE._META), and what is written stays loadable.
fn counter(v: u64) -> i64 {
    v.min(COUNTER as u64) as i64
}

/// A queue's totals, named as STATS shows them.
pub static TOTAL_FIELDS: [Field<Totals>; 9] = [
    Field {
        range: Range::new("pushed_total", 0, COUNTER),
        get: |t| counter(t.pushed),
        set: |t, v| t.pushed = v as u64,
    },
    Field {
        range: Range::new("reserved_total", 0, COUNTER),
        get: |t| counter(t.reserved),
        set: |t, v| t.reserved = v as u64,
    },
    Field { range: Range::new("acked_total", 0, COUNTER), get: |t| counter(t.acked), set: |t, v| t.acked = v as u64 },
    Field {
        range: Range::new("nacked_total", 0, COUNTER),
        get: |t| counter(t.nacked),
        set: |t, v| t.nacked = v as u64,
    },
    Field {
        range: Range::new("expired_total", 0, COUNTER),
        get: |t| counter(t.expired),
        set: |t, v| t.expired = v as u64,
    },
    Field {
        range: Range::new("retried_total", 0, COUNTER),
        get: |t| counter(t.retried),
        set: |t, v| t.retried = v as u64,
    },
    Field { range: Range::new("dead_total", 0, COUNTER), get: |t| counter(t.dead), set: |t, v| t.dead = v as u64 },
    Field {
        range: Range::new("dead_dropped_total", 0, COUNTER),
        get: |t| counter(t.dead_dropped),
        set: |t, v| t.dead_dropped = v as u64,
    },
    Field {
        range: Range::new("expired_unstarted_total", 0, COUNTER),
        get: |t| counter(t.expired_unstarted),
        set: |t, v| t.expired_unstarted = v as u64,
    },
];

/// The totals before TTL (RDB v4, `ONCE._META` of that time).
pub const V4_TOTALS: usize = 8;

/// The totals the first encodings carried (RDB v1, `ONCE._META` before dead caps).
pub const LEGACY_TOTALS: usize = 7;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_round_trip() {
        let mut t = Totals::default();
        for (i, f) in TOTAL_FIELDS.iter().enumerate() {
            f.put(&mut t, i as i64 + 1).unwrap();
        }
        let back: Vec<i64> = TOTAL_FIELDS.iter().map(|f| (f.get)(&t)).collect();
        assert_eq!(back, (1..=TOTAL_FIELDS.len() as i64).collect::<Vec<i64>>());
    }
}
