//! A run: fresh ready jobs that stand one after another in one line and share their options, as the RDB
//! encoding (version 6) writes them: one header and one blob, where each job used to be thirteen values.
//! Saves and loads in bulk what `packed.rs` holds in memory; the blob's layout is its own, so a change to the
//! in-memory records never changes what a file holds.
//!
//! Each job in the blob: seq as a delta from the previous job's, created as a delta from the previous job's,
//! since as a delta from its own created (all zigzag varints), its custom id's length (0: none) and bytes,
//! then the payload's length and bytes.

use super::job::Job;
use super::limits::{self, Range};
use super::packed::{get_varint, put_varint, unzigzag, zigzag, Class, Fresh, MAX_PACKED_PAYLOAD};

/// A run ends at this many jobs or bytes, so that saving builds at most one small blob at a time.
pub const RUN_MAX_JOBS: u64 = 1024;
pub const RUN_MAX_BYTES: usize = 64 * 1024;
/// What a loaded blob may hold: the last job may take it past RUN_MAX_BYTES.
pub const RUN_BLOB_LIMIT: usize = RUN_MAX_BYTES + 1024;

const LEASE: Range = Range::new("lease", 0, limits::MAX_LEASE_MS);
const TIME: Range = Range::new("time", 0, i64::MAX);

/// The options every job of a run shares (its group is the line's, written beside it).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RunHead {
    pub priority: i32,
    pub retries: u16,
    pub backoff_ms: u64,
    pub lease_ms: u32,
}

impl RunHead {
    /// The class of the run's jobs in group `group`.
    pub fn class(&self, group: u32) -> Class {
        Class {
            retries: self.retries,
            backoff_ms: self.backoff_ms,
            lease_ms: self.lease_ms,
            priority: self.priority,
            group,
        }
    }

    /// The head of a class's run (its group is written beside it).
    pub fn of_class(c: &Class) -> RunHead {
        RunHead { priority: c.priority, retries: c.retries, backoff_ms: c.backoff_ms, lease_ms: c.lease_ms }
    }

    pub fn of(j: &Job) -> RunHead {
        RunHead::of_class(&Class::of(j))
    }

    /// The head from an encoding's numbers, each in its range.
    pub fn checked(priority: i64, retries: u64, backoff_ms: u64, lease_ms: u64) -> Result<RunHead, String> {
        Ok(RunHead {
            priority: limits::PRIORITY.check_i64(priority)? as i32,
            retries: limits::RETRIES.check_u64(retries)? as u16,
            backoff_ms: limits::BACKOFF.check_u64(backoff_ms)?,
            lease_ms: LEASE.check_u64(lease_ms)? as u32,
        })
    }
}

pub struct RunWriter {
    pub head: RunHead,
    pub group: u32,
    pub count: u64,
    last_seq: u64,
    last_created: u64,
    pub bytes: Vec<u8>,
}

impl RunWriter {
    /// An empty run for jobs of this head and group.
    pub fn new(head: RunHead, group: u32) -> RunWriter {
        RunWriter { head, group, count: 0, last_seq: 0, last_created: 0, bytes: Vec::new() }
    }

    /// Whether another job may join (a run ends at RUN_MAX_JOBS jobs or RUN_MAX_BYTES bytes).
    pub fn has_room(&self) -> bool {
        self.count < RUN_MAX_JOBS && self.bytes.len() < RUN_MAX_BYTES
    }

    /// Adds a job of this run by its parts (a save reads them from the packed record, without a `Job`).
    pub fn push(&mut self, seq: u64, created_ms: u64, since_ms: u64, id: Option<&[u8]>, payload: &[u8]) {
        put_varint(&mut self.bytes, zigzag(seq.wrapping_sub(self.last_seq) as i64));
        put_varint(&mut self.bytes, zigzag(created_ms.wrapping_sub(self.last_created) as i64));
        put_varint(&mut self.bytes, zigzag(since_ms.wrapping_sub(created_ms) as i64));
        let id = id.unwrap_or_default();
        put_varint(&mut self.bytes, id.len() as u64);
        self.bytes.extend_from_slice(id);
        put_varint(&mut self.bytes, payload.len() as u64);
        self.bytes.extend_from_slice(payload);
        (self.last_seq, self.last_created, self.count) = (seq, created_ms, self.count + 1);
    }
}

/// Reads the `n` jobs of a run's blob in line order, handing each to `each` by its parts (its place in its
/// line is for the queue to give). Refuses a blob that holds more or fewer, a time out of range, or an id or a
/// payload too long to have been packed.
pub fn read_run(n: u64, b: &[u8], mut each: impl FnMut(Fresh<'_>) -> Result<(), String>) -> Result<(), String> {
    if n == 0 || n > RUN_MAX_JOBS || b.len() > RUN_BLOB_LIMIT {
        return Err("a run's size is out of range".into());
    }
    let bad = || "a run's blob is cut short".to_string();
    let field = |at: &mut usize, max: usize, what: &str| -> Result<&[u8], String> {
        let len = get_varint(b, at).ok_or_else(bad)?;
        if len > max as u64 {
            return Err(format!("a run's {what} is too long"));
        }
        let s = b.get(*at..*at + len as usize).ok_or_else(bad)?;
        *at += len as usize;
        Ok(s)
    };
    let (mut at, mut seq, mut created) = (0usize, 0u64, 0u64);
    for _ in 0..n {
        seq = seq.wrapping_add(unzigzag(get_varint(b, &mut at).ok_or_else(bad)?) as u64);
        created = created.wrapping_add(unzigzag(get_varint(b, &mut at).ok_or_else(bad)?) as u64);
        let since = created.wrapping_add(unzigzag(get_varint(b, &mut at).ok_or_else(bad)?) as u64);
        let id = field(&mut at, limits::MAX_ID_BYTES, "job id")?;
        let payload = field(&mut at, MAX_PACKED_PAYLOAD, "payload")?;
        each(Fresh {
            seq,
            created_ms: TIME.check_u64(created)?,
            since_ms: TIME.check_u64(since)?,
            pos: 0,
            id: (!id.is_empty()).then_some(id),
            payload,
        })?;
    }
    if at != b.len() {
        return Err("a run's blob has bytes after its last job".into());
    }
    Ok(())
}

/// The jobs of a run, whole (the tests' view of `read_run`).
#[cfg(test)]
fn decode_run(head: RunHead, n: u64, b: &[u8]) -> Result<Vec<Job>, String> {
    let class = head.class(0);
    let mut jobs = Vec::new();
    read_run(n, b, |f| {
        jobs.push(f.job(class));
        Ok(())
    })?;
    Ok(jobs)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(seq: u64, created: u64, payload: &[u8]) -> Job {
        Job {
            seq,
            created_ms: created,
            since_ms: created,
            payload: payload.into(),
            retries: 3,
            backoff_ms: 1000,
            ..Job::blank()
        }
    }

    #[test]
    fn a_run_gives_back_its_jobs_in_order() {
        let mut with_id = job(9, 1_000, b"");
        with_id.set_custom_id(Some(b"order-9".to_vec().into()));
        let jobs = [job(7, 1_000, b"a"), with_id, job(8, 999, b"sixteen bytes ok"), job(20, 5_000, b"z")];
        let mut w = RunWriter::new(RunHead::of(&jobs[0]), 0);
        for j in &jobs {
            w.push(j.seq, j.created_ms, j.since_ms, j.custom_id(), &j.payload);
        }
        assert_eq!(decode_run(w.head, w.count, &w.bytes), Ok(jobs.to_vec()));
        assert!(w.bytes.len() < jobs.iter().map(|j| j.payload.len() + 8).sum::<usize>());
    }

    #[test]
    fn a_run_stops_at_its_limit() {
        let mut w = RunWriter::new(RunHead::of(&job(0, 1, b"x")), 0);
        let mut s = 0;
        while w.has_room() {
            w.push(s, 1, 1, None, b"x");
            s += 1;
        }
        assert_eq!(w.count, RUN_MAX_JOBS);
    }

    #[test]
    fn bad_blobs_are_refused() {
        let mut w = RunWriter::new(RunHead::of(&job(1, 1, b"payload")), 0);
        w.push(1, 1, 1, None, b"payload");
        let mut cut = w.bytes.clone();
        cut.pop();
        assert!(decode_run(w.head, 1, &cut).is_err());
        assert!(decode_run(w.head, 2, &w.bytes).is_err(), "fewer jobs than it says");
        let mut more = w.bytes.clone();
        more.push(0);
        assert!(decode_run(w.head, 1, &more).is_err(), "bytes after the last");
        assert!(decode_run(w.head, 0, &[]).is_err());
        assert!(RunHead::checked(0, 1001, 0, 0).is_err());
        assert!(RunHead::checked(0, 3, 0, limits::MAX_LEASE_MS as u64 + 1).is_err());
        // A created time past i64::MAX would save but not load as a job field.
        let mut huge = Vec::new();
        for v in [zigzag(1), zigzag(-1), 0, 0, 0] {
            put_varint(&mut huge, v);
        }
        assert!(decode_run(w.head, 1, &huge).is_err());
    }
}
