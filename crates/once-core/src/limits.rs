//! Every range and size limit of the module, written once. Client commands, internal commands, RDB load
//! and the configs check values against these, so whatever one path accepts every other path loads.

/// An inclusive range of integers with the name a client knows it by.
#[derive(Clone, Copy, Debug)]
pub struct Range {
    pub name: &'static str,
    pub min: i64,
    pub max: i64,
}

impl Range {
    pub const fn new(name: &'static str, min: i64, max: i64) -> Range {
        Range { name, min, max }
    }

    pub fn contains(&self, v: i64) -> bool {
        (self.min..=self.max).contains(&v)
    }

    /// `v` if it lies in the range, for values already read as u64 (RDB, internal commands).
    pub fn check_u64(&self, v: u64) -> Result<u64, String> {
        match i64::try_from(v) {
            Ok(x) if self.contains(x) => Ok(v),
            _ => Err(format!("{} out of range: {v}", self.name)),
        }
    }

    pub fn check_i64(&self, v: i64) -> Result<i64, String> {
        if self.contains(v) {
            Ok(v)
        } else {
            Err(format!("{} out of range: {v}", self.name))
        }
    }
}

/// 10 years in ms: the longest delay, backoff or `@every` interval.
pub const MAX_MS_10Y: i64 = 315_360_000_000;
/// 7 days in ms: the longest lease.
pub const MAX_LEASE_MS: i64 = 604_800_000;
/// A schedule's fire times (next and last): replies, replication and RDB carry them as i64, and RDB stores
/// "last fire + 1" (0: never), hence one below i64::MAX.
pub const FIRE_TIME: Range = Range::new("fire time", 0, i64::MAX - 1);
/// The longest ERROR text an internal command or RDB may carry: the top of once.max-error-bytes. A client's
/// NACK text is cut to the config; the master's decision then replicates as it is.
pub const MAX_ERROR_BYTES: usize = 1 << 20;

/// ERROR text as an internal command or RDB carries it: at most MAX_ERROR_BYTES.
pub fn check_error_text(text: &[u8]) -> Result<&[u8], String> {
    if text.len() > MAX_ERROR_BYTES {
        return Err(format!("ERROR text is {} bytes, over {MAX_ERROR_BYTES}", text.len()));
    }
    Ok(text)
}

pub const DELAY: Range = Range::new("DELAY", 0, MAX_MS_10Y);
pub const AT: Range = Range::new("AT", 0, i64::MAX);
pub const RETRIES: Range = Range::new("RETRIES", 0, 1000);
pub const BACKOFF: Range = Range::new("BACKOFF", 0, MAX_MS_10Y);
pub const LEASE: Range = Range::new("LEASE", 1, MAX_LEASE_MS);
pub const PRIORITY: Range = Range::new("PRIORITY", -1_000_000, 1_000_000);
pub const COUNT: Range = Range::new("COUNT", 1, 10_000);
/// How many finished reservations one ACK or RESERVE may acknowledge with ACKS.
/// Ids one AFTER list may name (PUSH's clauses together, or one ONCE.AFTER), and so one clause.
pub const MAX_AFTER_IDS: usize = 100_000;
pub const AFTER_IDS: Range = Range::new("AFTER's id count", 1, MAX_AFTER_IDS as i64);
/// DEPS's FROM and COUNT.
pub const DEPS_FROM: Range = Range::new("FROM", 0, 1_000_000);
pub const DEPS_COUNT: Range = Range::new("COUNT", 1, 1_000_000);
pub const ACKS: Range = Range::new("ACKS", 1, 10_000);
/// How many more queues one RESERVE may name with ALSO (each is looked at in order, so the work stays bounded).
pub const ALSO_QUEUES: usize = 64;
pub const BLOCK: Range = Range::new("BLOCK", 0, i32::MAX as i64);
pub const ATTEMPT: Range = Range::new("ATTEMPT", 1, i64::MAX);
pub const EXTEND_MS: Range = Range::new("ms", 1, MAX_LEASE_MS);
pub const DEAD_MAX: Range = Range::new("DEAD-MAX", 0, 1_000_000_000);
pub const DEAD_TTL: Range = Range::new("DEAD-TTL", 0, MAX_MS_10Y);
/// Events a queue keeps (EVENTS-MAX): trimming after lowering it is bounded by this.
pub const EVENTS_MAX: Range = Range::new("EVENTS-MAX", 0, 100_000);
/// ONCE.EVENTS' page size.
pub const EVENTS_COUNT: Range = Range::new("COUNT", 1, 10_000);
pub const EVENTS_COUNT_DEFAULT: usize = 100;
/// Flow control: jobs reserved at once (0: no limit), and `RATE n PER ms` (n 0: no limit).
pub const CONCURRENCY: Range = Range::new("CONCURRENCY", 0, 1_000_000);
pub const RATE_N: Range = Range::new("RATE", 0, 100_000);
pub const RATE_PER: Range = Range::new("PER", 1, 86_400_000);
/// A stored window length (0 where no rate was ever set).
pub const RATE_STORED_PER: Range = Range::new("PER", 0, 86_400_000);
/// Bytes of a group name.
pub const MAX_GROUP_BYTES: usize = 256;
/// ONCE.GROUPS' page size.
pub const GROUPS_COUNT: Range = Range::new("COUNT", 1, 1000);
/// ONCE.LIST's page size.
pub const LIST_COUNT: Range = Range::new("COUNT", 1, 1000);
pub const LIST_COUNT_DEFAULT: usize = 100;
/// ONCE.LIST ... MATCH examines at most this many jobs per COUNT asked for, as SCAN does: a page may hold
/// fewer matches than COUNT, and the cursor goes on from the first job not examined.
pub const MATCH_EXAMINE_PER_COUNT: usize = 10;
/// ...and at most this many jobs in one call, whatever COUNT is.
pub const MATCH_EXAMINE_MAX: usize = 10_000;
/// ...and stops once matching took this many steps (a step per byte of id, payload and error read, more for a
/// pattern that backtracks; a job at least), so large payloads cannot make one call long.
pub const MATCH_EXAMINE_STEPS: usize = 4 << 20;
/// Bytes of a MATCH pattern: matching costs O(text × pattern) at worst.
pub const MAX_MATCH_BYTES: usize = 1024;
/// Payloads in one ONCE.BULK (each also within once.max-payload-bytes).
pub const BULK_PAYLOADS: Range = Range::new("PAYLOADS", 1, 10_000);

/// Bytes of a client-chosen job id.
pub const MAX_ID_BYTES: usize = 256;
/// Bytes of a schedule name: leaves room for `@<fire ms>` within the id limit.
pub const MAX_SCHEDULE_NAME: usize = 200;
/// Bytes of a schedule spec or time zone name.
pub const MAX_SPEC_BYTES: usize = 256;
/// Schedules one queue may hold.
pub const MAX_SCHEDULES: usize = 10_000;
/// Bytes of client input an error reply quotes.
pub const QUOTE_BYTES: usize = 64;

/// How long a finished job is kept (PUSH KEEP, CONFIGURE KEEP); 0: not kept.
pub const KEEP: Range = Range::new("KEEP", 0, MAX_MS_10Y);
/// Kept jobs at most per queue (CONFIGURE KEEP-MAX); 0: no cap.
pub const KEEP_MAX: Range = Range::new("KEEP-MAX", 0, 1_000_000_000);
/// How long a job may wait for its first reservation (PUSH TTL).
pub const TTL: Range = Range::new("TTL", 1, MAX_MS_10Y);
/// How long ONCE.CALL waits for its job.
pub const CALL_TIMEOUT: Range = Range::new("TIMEOUT", 1, i32::MAX as i64);
