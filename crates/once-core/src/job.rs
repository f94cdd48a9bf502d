//! One job, the names of its states, and its numbers as every encoding writes them (`JOB_FIELDS`).

use super::limits::{self, Range};
use super::schema::Field;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum State {
    Ready,
    Delayed,
    Reserved,
    Dead,
    /// Acknowledged and kept (KEEP) with its result, for RESULT and the dedup window.
    Completed,
    /// Cancelled and kept (KEEP) with its reason.
    Cancelled,
    /// Waits for its dependencies (AFTER) to complete.
    Waiting,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Ready => "ready",
            State::Delayed => "delayed",
            State::Reserved => "reserved",
            State::Dead => "dead",
            State::Completed => "completed",
            State::Cancelled => "cancelled",
            State::Waiting => "waiting",
        }
    }

    pub fn code(self) -> u8 {
        match self {
            State::Ready => 0,
            State::Delayed => 1,
            State::Reserved => 2,
            State::Dead => 3,
            State::Completed => 4,
            State::Cancelled => 5,
            State::Waiting => 6,
        }
    }

    pub fn from_code(code: u64) -> Option<State> {
        match code {
            0 => Some(State::Ready),
            1 => Some(State::Delayed),
            2 => Some(State::Reserved),
            3 => Some(State::Dead),
            4 => Some(State::Completed),
            5 => Some(State::Cancelled),
            6 => Some(State::Waiting),
            _ => None,
        }
    }

    pub fn from_name(name: &[u8]) -> Option<State> {
        match name {
            b"ready" => Some(State::Ready),
            b"delayed" => Some(State::Delayed),
            b"reserved" => Some(State::Reserved),
            b"dead" => Some(State::Dead),
            b"completed" => Some(State::Completed),
            b"cancelled" => Some(State::Cancelled),
            b"waiting" => Some(State::Waiting),
            _ => None,
        }
    }

    /// Finished and kept: it never runs again, and only its outcome and id matter.
    pub fn is_kept(self) -> bool {
        matches!(self, State::Completed | State::Cancelled)
    }

    /// Done for good: what RESULT waits for.
    pub fn is_finished(self) -> bool {
        matches!(self, State::Completed | State::Cancelled | State::Dead)
    }
}

/// Appends `v` in decimal: the hot paths (every PUSH replies an id) avoid the formatting machinery.
pub fn push_decimal(out: &mut Vec<u8>, v: u64) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = v;
    loop {
        i -= 1;
        digits[i] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
}

pub fn push_signed(out: &mut Vec<u8>, v: i64) {
    if v < 0 {
        out.push(b'-');
    }
    push_decimal(out, v.unsigned_abs());
}

/// The server's id of a job: `<created-ms>-<seq>`.
pub fn server_id(created_ms: u64, seq: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(40);
    push_decimal(&mut out, created_ms);
    out.push(b'-');
    push_decimal(&mut out, seq);
    out
}

/// Reads `<ms>-<seq>` in its canonical form only, so that "01-2" is never the same id as "1-2".
pub fn parse_server_id(id: &[u8]) -> Option<(u64, u64)> {
    let dash = id.iter().position(|&b| b == b'-')?;
    let ms = parse_canonical_u64(&id[..dash])?;
    let seq = parse_canonical_u64(&id[dash + 1..])?;
    Some((ms, seq))
}

fn parse_canonical_u64(digits: &[u8]) -> Option<u64> {
    if digits.is_empty() || digits.len() > 20 || (digits.len() > 1 && digits[0] == b'0') {
        return None;
    }
    let mut v: u64 = 0;
    for &d in digits {
        if !d.is_ascii_digit() {
            return None;
        }
        v = v.checked_mul(10)?.checked_add(u64::from(d - b'0'))?;
    }
    Some(v)
}

/// A payload: small ones (most jobs) live inside the job, larger ones on the heap.
#[derive(Clone, PartialEq, Eq)]
pub enum Payload {
    Inline { len: u8, bytes: [u8; Payload::INLINE] },
    Heap(Box<[u8]>),
}

impl Payload {
    pub const INLINE: usize = 22;
}

impl Default for Payload {
    fn default() -> Self {
        Payload::Inline { len: 0, bytes: [0; Payload::INLINE] }
    }
}

impl std::ops::Deref for Payload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        match self {
            Payload::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Payload::Heap(b) => b,
        }
    }
}

impl std::fmt::Debug for Payload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?}", String::from_utf8_lossy(self))
    }
}

impl From<&[u8]> for Payload {
    fn from(b: &[u8]) -> Self {
        if b.len() <= Payload::INLINE {
            let mut bytes = [0; Payload::INLINE];
            bytes[..b.len()].copy_from_slice(b);
            Payload::Inline { len: b.len() as u8, bytes }
        } else {
            Payload::Heap(b.into())
        }
    }
}

impl From<Box<[u8]>> for Payload {
    fn from(b: Box<[u8]>) -> Self {
        if b.len() <= Payload::INLINE {
            Payload::from(&b[..])
        } else {
            Payload::Heap(b)
        }
    }
}

impl From<Vec<u8>> for Payload {
    fn from(v: Vec<u8>) -> Self {
        Payload::from(v.into_boxed_slice())
    }
}

/// A deadline a job carries before it starts (TTL): not reserved by `at`, it dies (or with `drop`, goes).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Ttl {
    pub at: u64,
    pub drop: bool,
}

/// What few jobs have: a client-chosen id, an error text, a retry budget restarted by ONCE.RETRY, a result,
/// progress, and the options of issue 21 (KEEP, TTL, a CALL's cancel time). Kept out of line so a job stays small.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Extra {
    pub custom_id: Option<Box<[u8]>>,
    pub last_error: Option<Box<[u8]>>,
    /// `attempts` when ONCE.RETRY last sent the job back from dead: reservations before it do not count
    /// against RETRIES, while `attempts` itself (the fencing token) keeps growing.
    pub retry_base: u32,
    /// What ACK RESULT gave (a completed job's outcome).
    pub result: Option<Box<[u8]>>,
    /// What the worker last reported with ONCE.PROGRESS.
    pub progress: Option<Box<[u8]>>,
    /// The job's own KEEP (None: the queue's).
    pub keep_ms: Option<u64>,
    pub ttl: Option<Ttl>,
    /// A CALL … CANCEL: unfinished at this time, the job is cancelled as `call timed out`.
    pub cancel_at: Option<u64>,
    /// What it waits on (AFTER): kept for its life, so DEPS can read it once it runs.
    pub waits: Option<Box<crate::deps::Waits>>,
    /// The jobs waiting on it.
    pub dependents: Option<Box<crate::deps::Dependents>>,
}

impl Extra {
    pub fn boxed(custom_id: Option<Box<[u8]>>, last_error: Option<Box<[u8]>>) -> Option<Box<Extra>> {
        Extra::with_base(custom_id, last_error, 0)
    }

    pub fn with_base(
        custom_id: Option<Box<[u8]>>,
        last_error: Option<Box<[u8]>>,
        retry_base: u32,
    ) -> Option<Box<Extra>> {
        Extra { custom_id, last_error, retry_base, ..Extra::default() }.boxed_if_any()
    }

    pub fn is_empty(&self) -> bool {
        *self == Extra::default()
    }

    /// None when it holds nothing, so a plain job carries no allocation.
    pub fn boxed_if_any(self) -> Option<Box<Extra>> {
        (!self.is_empty()).then(|| Box::new(self))
    }

    /// Whether the options of issue 21 (KEEP, TTL, cancel time) are set: the encodings write them only then.
    pub fn has_times(&self) -> bool {
        self.keep_ms.is_some() || self.ttl.is_some() || self.cancel_at.is_some()
    }
}

/// What the queue's indexes know a job by: enough to find it in them, without its payload (a walk over
/// millions of jobs reads heads, so packed jobs need not be decoded whole).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Head {
    pub seq: u64,
    pub state: State,
    pub group: u32,
    pub priority: i32,
    pub deadline_ms: u64,
}

impl Head {
    pub fn of(j: &Job) -> Head {
        Head { seq: j.seq, state: j.state, group: j.group, priority: j.priority, deadline_ms: j.deadline_ms }
    }
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Job {
    /// Queue-unique sequence number: the handle every index uses.
    pub seq: u64,
    pub created_ms: u64,
    /// When a delayed job falls due, when a reserved job's lease runs out, when a dead job died; a ready
    /// job's place in its line (the queue's own bookkeeping, never stored).
    pub deadline_ms: u64,
    pub backoff_ms: u64,
    /// When the job entered its current state on the master's clock (0: not known, from an older
    /// encoding): a ready job's wait and a reserved job's run are measured from it.
    pub since_ms: u64,
    pub payload: Payload,
    pub extra: Option<Box<Extra>>,
    /// The job's own lease; 0 means the module default at reserve time (at most 7 days).
    pub lease_ms: u32,
    /// Reservations so far.
    pub attempts: u32,
    pub priority: i32,
    /// How many times a failed job is tried again (at most 1000).
    pub retries: u16,
    pub state: State,
    /// Its group in the queue's flow control (0: the default group).
    pub group: u32,
}

impl Job {
    pub fn custom_id(&self) -> Option<&[u8]> {
        self.extra.as_ref().and_then(|e| e.custom_id.as_deref())
    }

    pub fn last_error(&self) -> Option<&[u8]> {
        self.extra.as_ref().and_then(|e| e.last_error.as_deref())
    }

    pub fn set_last_error(&mut self, error: &[u8]) {
        self.extra.get_or_insert_with(Box::default).last_error = Some(error.into());
    }

    pub fn set_custom_id(&mut self, id: Option<Box<[u8]>>) {
        let mut e = self.extra.take().map_or_else(Extra::default, |b| *b);
        e.custom_id = id;
        self.extra = e.boxed_if_any();
    }

    /// Changes the out-of-line part, dropping it when nothing is left in it.
    pub fn edit_extra(&mut self, f: impl FnOnce(&mut Extra)) {
        let mut e = self.extra.take().map_or_else(Extra::default, |b| *b);
        f(&mut e);
        self.extra = e.boxed_if_any();
    }

    pub fn result(&self) -> Option<&[u8]> {
        self.extra.as_ref().and_then(|e| e.result.as_deref())
    }

    pub fn progress(&self) -> Option<&[u8]> {
        self.extra.as_ref().and_then(|e| e.progress.as_deref())
    }

    pub fn keep_ms(&self) -> Option<u64> {
        self.extra.as_ref().and_then(|e| e.keep_ms)
    }

    pub fn ttl(&self) -> Option<Ttl> {
        self.extra.as_ref().and_then(|e| e.ttl)
    }

    pub fn cancel_at(&self) -> Option<u64> {
        self.extra.as_ref().and_then(|e| e.cancel_at)
    }

    pub fn waits(&self) -> Option<&crate::deps::Waits> {
        self.extra.as_ref().and_then(|e| e.waits.as_deref())
    }

    pub fn dependents(&self) -> Option<&crate::deps::Dependents> {
        self.extra.as_ref().and_then(|e| e.dependents.as_deref())
    }

    /// Jobs waiting on this one that have not started yet.
    pub fn pins(&self) -> u32 {
        self.dependents().map_or(0, |d| d.pins)
    }

    /// Whether it carries dependency links of either kind (the encodings write them only then).
    pub fn has_links(&self) -> bool {
        self.waits().is_some() || self.dependents().is_some()
    }

    /// The TTL deadline while it still applies: the job has never been reserved and waits to start.
    pub fn pending_ttl(&self) -> Option<Ttl> {
        self.ttl()
            .filter(|_| self.attempts == 0 && matches!(self.state, State::Ready | State::Delayed | State::Waiting))
    }

    /// The CALL cancel time while it still applies (the job is not finished).
    pub fn pending_cancel(&self) -> Option<u64> {
        self.cancel_at().filter(|_| !self.state.is_finished())
    }

    /// When a finished job finished: a dead job's time of death, a kept job's `since`.
    pub fn finished_ms(&self) -> Option<u64> {
        match self.state {
            State::Dead => Some(self.deadline_ms),
            State::Completed | State::Cancelled => Some(self.since_ms),
            _ => None,
        }
    }

    /// A ready job with every number zero and an empty payload: what decoders fill in field by field.
    pub fn blank() -> Job {
        Job {
            seq: 0,
            created_ms: 0,
            deadline_ms: 0,
            backoff_ms: 0,
            since_ms: 0,
            payload: Payload::default(),
            extra: None,
            lease_ms: 0,
            attempts: 0,
            priority: 0,
            retries: 0,
            state: State::Ready,
            group: 0,
        }
    }

    pub fn set_retry_base(&mut self, base: u32) {
        match &mut self.extra {
            Some(e) => e.retry_base = base,
            None if base > 0 => self.extra = Extra::with_base(None, None, base),
            None => {}
        }
    }

    pub fn retry_base(&self) -> u32 {
        self.extra.as_ref().map_or(0, |e| e.retry_base)
    }

    /// Restarts the retry budget from the reservations made so far (ONCE.RETRY of a dead job).
    pub fn restart_budget(&mut self) {
        if self.attempts > 0 {
            self.extra.get_or_insert_with(Box::default).retry_base = self.attempts;
        }
    }

    /// Reservations that count against RETRIES: those since the last ONCE.RETRY.
    pub fn tries(&self) -> u32 {
        self.attempts.saturating_sub(self.retry_base())
    }

    pub fn id_bytes(&self) -> Vec<u8> {
        match self.custom_id() {
            Some(c) => c.to_vec(),
            None => server_id(self.created_ms, self.seq),
        }
    }

    pub fn due_ms(&self) -> Option<u64> {
        (self.state == State::Delayed).then_some(self.deadline_ms)
    }

    pub fn lease_deadline_ms(&self) -> Option<u64> {
        (self.state == State::Reserved).then_some(self.deadline_ms)
    }

    /// When a dead job died (0: loaded from an encoding that did not keep it).
    pub fn died_ms(&self) -> Option<u64> {
        (self.state == State::Dead).then_some(self.deadline_ms)
    }

    /// Heap bytes owned by this job beyond its slot, for MEMORY USAGE.
    pub fn heap_bytes(&self) -> usize {
        let payload = match &self.payload {
            Payload::Heap(b) => b.len(),
            Payload::Inline { .. } => 0,
        };
        let extra = self.extra.as_ref().map_or(0, |e| {
            std::mem::size_of::<Extra>()
                + [&e.custom_id, &e.last_error, &e.result, &e.progress]
                    .iter()
                    .map(|t| t.as_ref().map_or(0, |c| c.len()))
                    .sum::<usize>()
                + e.waits.as_ref().map_or(0, |w| {
                    std::mem::size_of::<crate::deps::Waits>()
                        + w.links.iter().map(|l| std::mem::size_of_val(l) + l.queue.len() + l.id.len()).sum::<usize>()
                })
                + e.dependents.as_ref().map_or(0, |d| {
                    std::mem::size_of::<crate::deps::Dependents>()
                        + d.targets.iter().map(|t| std::mem::size_of_val(t) + t.queue.len()).sum::<usize>()
                })
        });
        payload + extra
    }
}

const U32_MAX: i64 = u32::MAX as i64;

/// A job's numbers, in the order every encoding writes them.
pub static JOB_FIELDS: [Field<Job>; 11] = [
    Field {
        range: Range::new("seq", 0, crate::queue::SEQ_LIMIT as i64 - 1),
        get: |j| j.seq as i64,
        set: |j, v| j.seq = v as u64,
    },
    Field {
        range: Range::new("created", 0, i64::MAX),
        get: |j| j.created_ms as i64,
        set: |j, v| j.created_ms = v as u64,
    },
    Field {
        range: Range::new("state", 0, 6),
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
    if j.state == State::Waiting {
        if j.waits().is_none_or(|w| w.left == 0) {
            return Err("a waiting job has nothing left to wait for".into());
        }
        if j.deadline_ms != 0 || j.attempts != 0 {
            return Err("a waiting job has no deadline and no attempts".into());
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_ids_parse_only_in_canonical_form() {
        assert_eq!(parse_server_id(b"17-3"), Some((17, 3)));
        assert_eq!(parse_server_id(b"017-3"), None);
        assert_eq!(parse_server_id(b"17-"), None);
        assert_eq!(parse_server_id(b"-3"), None);
        assert_eq!(parse_server_id(b"1a-3"), None);
        assert_eq!(parse_server_id(b"99999999999999999999999-1"), None);
        assert_eq!(server_id(5, 0), b"5-0".to_vec());
        assert_eq!(server_id(u64::MAX, 1234567), format!("{}-1234567", u64::MAX).into_bytes());
        let mut v = Vec::new();
        push_signed(&mut v, -1_000_000);
        push_signed(&mut v, i64::MIN);
        assert_eq!(v, format!("-1000000{}", i64::MIN).into_bytes());
    }

    #[test]
    fn a_job_stays_small_and_payloads_round_trip() {
        // 96: `since_ms` (latency histograms) and `group` (flow control) took the job from 80.
        assert!(std::mem::size_of::<Job>() <= 96, "Job is {} bytes", std::mem::size_of::<Job>());
        for n in [0usize, 1, 22, 23, 1000] {
            let v: Vec<u8> = (0..n).map(|i| i as u8).collect();
            assert_eq!(&*Payload::from(&v[..]), &v[..]);
            assert_eq!(matches!(Payload::from(v.clone()), Payload::Inline { .. }), n <= Payload::INLINE);
        }
    }

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
}
