//! One description of the numbers each stored thing holds: a job's fields and a queue's totals, each with
//! its name, its range and how to read and write it. RDB save/load, the replicated and AOF encoding, the
//! digest and the STATS reply walk these lists, so a new field is one edit here and every path agrees on
//! its range: nothing can be saved that cannot be loaded.

use super::job::{Job, State};
use super::limits::{self, Range};
use super::queue::{Totals, SEQ_LIMIT};
use super::schedule::{Missed, Schedule};

pub struct Field<T> {
    pub range: Range,
    pub get: fn(&T) -> i64,
    pub set: fn(&mut T, i64),
}

impl<T> Field<T> {
    pub fn name(&self) -> &'static str {
        self.range.name
    }

    /// Checks `v` against the range, then stores it.
    pub fn put(&self, target: &mut T, v: i64) -> Result<(), String> {
        (self.set)(target, self.range.check_i64(v)?);
        Ok(())
    }
}

const U32_MAX: i64 = u32::MAX as i64;

/// A job's numbers, in the order every encoding writes them.
pub static JOB_FIELDS: [Field<Job>; 11] = [
    Field { range: Range::new("seq", 0, SEQ_LIMIT as i64 - 1), get: |j| j.seq as i64, set: |j, v| j.seq = v as u64 },
    Field {
        range: Range::new("created", 0, i64::MAX),
        get: |j| j.created_ms as i64,
        set: |j, v| j.created_ms = v as u64,
    },
    Field {
        range: Range::new("state", 0, 5),
        get: |j| i64::from(j.state.code()),
        set: |j, v| j.state = State::from_code(v as u64).unwrap_or(State::Ready),
    },
    Field {
        range: Range::new("attempts", 0, U32_MAX),
        get: |j| i64::from(j.attempts),
        set: |j, v| j.attempts = v as u32,
    },
    Field {
        range: Range::new("retry_base", 0, U32_MAX),
        get: |j| i64::from(j.retry_base()),
        set: |j, v| j.set_retry_base(v as u32),
    },
    Field { range: limits::RETRIES, get: |j| i64::from(j.retries), set: |j, v| j.retries = v as u16 },
    Field { range: limits::BACKOFF, get: |j| j.backoff_ms as i64, set: |j, v| j.backoff_ms = v as u64 },
    // 0 is the job's "no lease of its own".
    Field {
        range: Range::new("lease", 0, limits::MAX_LEASE_MS),
        get: |j| i64::from(j.lease_ms),
        set: |j, v| j.lease_ms = v as u32,
    },
    Field { range: limits::PRIORITY, get: |j| i64::from(j.priority), set: |j, v| j.priority = v as i32 },
    // A ready job's deadline field holds its place in its line, which only this process knows: written as 0.
    Field {
        range: Range::new("deadline", 0, i64::MAX),
        get: |j| if j.state == State::Ready { 0 } else { j.deadline_ms as i64 },
        set: |j, v| j.deadline_ms = v as u64,
    },
    Field { range: Range::new("since", 0, i64::MAX), get: |j| j.since_ms as i64, set: |j, v| j.since_ms = v as u64 },
];

/// The job fields before `since` (RDB v2, `ONCE._JOB` headers of that time).
pub const V2_JOB_FIELDS: usize = 10;

/// Rules between fields, checked wherever a whole job enters (internal command, RDB).
pub fn check_job(j: &Job) -> Result<(), String> {
    if j.retry_base() > j.attempts {
        return Err(format!("retry_base {} is beyond attempts {}", j.retry_base(), j.attempts));
    }
    if j.state == State::Ready && j.deadline_ms != 0 {
        return Err("a ready job has no deadline".into());
    }
    if j.result().is_some() && j.state != State::Completed {
        return Err("only a completed job has a result".into());
    }
    Ok(())
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

/// A schedule's numbers (its name, spec, zone and payload are text beside them), in the order every encoding
/// writes them. `last_fire` is -1 when the schedule never fired; `missed` 0 is `once`, 1 `skip`.
pub static SCHEDULE_FIELDS: [Field<Schedule>; 7] = [
    Field { range: limits::RETRIES, get: |s| i64::from(s.options.retries), set: |s, v| s.options.retries = v as u32 },
    Field { range: limits::BACKOFF, get: |s| s.options.backoff_ms as i64, set: |s, v| s.options.backoff_ms = v as u64 },
    // 0: the module default at reserve time.
    Field {
        range: Range::new("lease", 0, limits::MAX_LEASE_MS),
        get: |s| s.options.lease_ms as i64,
        set: |s, v| s.options.lease_ms = v as u64,
    },
    Field {
        range: limits::PRIORITY,
        get: |s| i64::from(s.options.priority),
        set: |s, v| s.options.priority = v as i32,
    },
    Field {
        range: Range::new("missed", 0, 1),
        get: |s| i64::from(s.missed == Missed::Skip),
        set: |s, v| s.missed = if v == 1 { Missed::Skip } else { Missed::Once },
    },
    Field { range: limits::FIRE_TIME, get: |s| s.next_fire_ms as i64, set: |s, v| s.next_fire_ms = v as u64 },
    Field {
        range: Range::new("last fire", -1, limits::FIRE_TIME.max),
        get: |s| s.last_fire_ms.map_or(-1, |t| t as i64),
        set: |s, v| s.last_fire_ms = u64::try_from(v).ok(),
    },
];

/// The id sequence of a queue.
pub const NEXT_SEQ: Range = Range::new("id sequence", 0, SEQ_LIMIT as i64);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_job_field_round_trips_at_its_edges() {
        for f in &JOB_FIELDS {
            for v in [f.range.min, f.range.max] {
                let mut j = Job { state: State::Delayed, ..Job::blank() };
                f.put(&mut j, v).unwrap();
                assert_eq!((f.get)(&j), v, "{}", f.name());
            }
            let mut j = Job::blank();
            assert!(f.put(&mut j, f.range.max.saturating_add(1)).is_err() || f.range.max == i64::MAX, "{}", f.name());
            assert!(f.put(&mut j, f.range.min - 1).is_err(), "{}", f.name());
        }
    }

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
