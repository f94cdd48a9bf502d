//! A queue's own settings (ONCE.CONFIGURE): a job's option wins over them, and they win over the module
//! configs. Each is described once in `SETTING_FIELDS` for every encoding and reply.

use super::flow::{QueueLimits, Rate};
use super::limits::{self, Range};
use super::schema::Field;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Settings {
    pub retries: Option<u32>,
    pub backoff_ms: Option<u64>,
    pub lease_ms: Option<u64>,
    /// 0: keep every dead job.
    pub dead_max: u64,
    /// 0: dead jobs never expire.
    pub dead_ttl_ms: u64,
    pub paused: bool,
    /// Events the queue keeps for ONCE.EVENTS; 0: none.
    pub events_max: u64,
    /// Jobs reserved at once; 0: no limit.
    pub concurrency: u32,
    /// Reservations per window (`n` 0: no limit).
    pub rate: Rate,
    /// What every group gets unless ONCE.GROUP set its own.
    pub group_concurrency: u32,
    pub group_rate: Rate,
    /// How long finished jobs are kept (a job's KEEP wins); 0: not kept.
    pub keep_ms: u64,
    /// Kept jobs at most; 0: no cap.
    pub keep_max: u64,
}

impl Settings {
    pub fn limits(&self) -> QueueLimits {
        QueueLimits {
            concurrency: self.concurrency,
            rate: self.rate,
            group_concurrency: self.group_concurrency,
            group_rate: self.group_rate,
        }
    }
}

const UNSET: i64 = -1;

fn opt_u32(v: Option<u32>) -> i64 {
    v.map_or(UNSET, i64::from)
}

fn opt_u64(v: Option<u64>) -> i64 {
    v.map_or(UNSET, |x| x as i64)
}

/// -1 stands for "not set" where 0 is a real value.
pub static SETTING_FIELDS: [Field<Settings>; 15] = [
    Field {
        range: Range::new("retries", UNSET, limits::RETRIES.max),
        get: |s| opt_u32(s.retries),
        set: |s, v| s.retries = u32::try_from(v).ok(),
    },
    Field {
        range: Range::new("backoff", UNSET, limits::BACKOFF.max),
        get: |s| opt_u64(s.backoff_ms),
        set: |s, v| s.backoff_ms = u64::try_from(v).ok(),
    },
    Field {
        range: Range::new("lease", UNSET, limits::LEASE.max),
        get: |s| opt_u64(s.lease_ms),
        set: |s, v| s.lease_ms = u64::try_from(v).ok().filter(|&x| x > 0),
    },
    Field { range: limits::DEAD_MAX, get: |s| s.dead_max as i64, set: |s, v| s.dead_max = v as u64 },
    Field { range: limits::DEAD_TTL, get: |s| s.dead_ttl_ms as i64, set: |s, v| s.dead_ttl_ms = v as u64 },
    Field { range: Range::new("paused", 0, 1), get: |s| i64::from(s.paused), set: |s, v| s.paused = v == 1 },
    Field { range: limits::EVENTS_MAX, get: |s| s.events_max as i64, set: |s, v| s.events_max = v as u64 },
    Field { range: limits::CONCURRENCY, get: |s| i64::from(s.concurrency), set: |s, v| s.concurrency = v as u32 },
    Field { range: limits::RATE_N, get: |s| i64::from(s.rate.n), set: |s, v| s.rate.n = v as u32 },
    Field { range: limits::RATE_STORED_PER, get: |s| s.rate.per_ms as i64, set: |s, v| s.rate.per_ms = v as u64 },
    Field {
        range: limits::CONCURRENCY,
        get: |s| i64::from(s.group_concurrency),
        set: |s, v| s.group_concurrency = v as u32,
    },
    Field { range: limits::RATE_N, get: |s| i64::from(s.group_rate.n), set: |s, v| s.group_rate.n = v as u32 },
    Field {
        range: limits::RATE_STORED_PER,
        get: |s| s.group_rate.per_ms as i64,
        set: |s, v| s.group_rate.per_ms = v as u64,
    },
    Field { range: limits::KEEP, get: |s| s.keep_ms as i64, set: |s, v| s.keep_ms = v as u64 },
    Field { range: limits::KEEP_MAX, get: |s| s.keep_max as i64, set: |s, v| s.keep_max = v as u64 },
];

/// The settings before KEEP (RDB v4, `ONCE._SETTINGS` of that time).
pub const V4_SETTINGS: usize = 13;

/// The settings before flow control (RDB v3, `ONCE._SETTINGS` of that time).
pub const V3_SETTINGS: usize = 7;

/// The settings before the event log (RDB v2, `ONCE._SETTINGS` of that time).
pub const V2_SETTINGS: usize = 6;
