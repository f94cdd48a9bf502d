//! The packed form of a fresh ready job: what such a job needs and nothing else, as bytes.
//!
//! A job that was pushed and is waiting for its first reservation carries no attempts, no lease deadline,
//! no error, no extra options: only its payload, when it was made, its place in its line and its options.
//! Those options (retries, backoff, lease, priority, group) are nearly always shared by thousands of jobs,
//! so a record names them as a *class*, numbered in a table with reference counts. Times are varints:
//! `created` as a delta from its page's first, `since` as a delta from `created` (one byte for a fresh job).
//! Streams keep their entries packed the same way and only their pending entries as structs.
//!
//! Varints are written here rather than taken from a crate: LEB128 with zigzag is a dozen lines, and the
//! core keeps its dependencies to what it cannot write itself.

use std::collections::HashMap;

use super::job::{Extra, Head, Job, Payload, State};

/// Payloads up to this many bytes are packed (larger ones keep their full record: the saving would be
/// a rounding error, and a page's offsets stay within 15 bits).
pub const MAX_PACKED_PAYLOAD: usize = 200;

/// A job's options that many jobs share.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Class {
    pub retries: u16,
    pub backoff_ms: u64,
    pub lease_ms: u32,
    pub priority: i32,
    pub group: u32,
}

impl Class {
    pub fn of(j: &Job) -> Class {
        Class {
            retries: j.retries,
            backoff_ms: j.backoff_ms,
            lease_ms: j.lease_ms,
            priority: j.priority,
            group: j.group,
        }
    }
}

/// Classes by number, each with how many packed records name it; a class no record names is freed, so
/// a queue whose groups come and go does not collect classes.
#[derive(Clone, Debug, Default)]
pub struct Classes {
    by_id: Vec<(Class, u64)>,
    ids: HashMap<Class, u32>,
    free: Vec<u32>,
    /// The class last taken: a run of pushes nearly always repeats it, and a compare is cheaper than a hash.
    last: Option<(Class, u32)>,
}

impl Classes {
    fn take(&mut self, c: Class) -> u32 {
        if let Some((last, id)) = self.last.filter(|(l, _)| *l == c) {
            debug_assert_eq!(self.by_id[id as usize].0, last);
            self.by_id[id as usize].1 += 1;
            return id;
        }
        if let Some(&id) = self.ids.get(&c) {
            self.last = Some((c, id));
            self.by_id[id as usize].1 += 1;
            return id;
        }
        let id = match self.free.pop() {
            Some(id) => {
                self.by_id[id as usize] = (c, 1);
                id
            }
            None => {
                self.by_id.push((c, 1));
                (self.by_id.len() - 1) as u32
            }
        };
        self.ids.insert(c, id);
        self.last = Some((c, id));
        id
    }

    fn put_back(&mut self, id: u32) {
        let Some(entry) = self.by_id.get_mut(id as usize) else { return };
        entry.1 = entry.1.saturating_sub(1);
        if entry.1 == 0 {
            if self.last.is_some_and(|(_, l)| l == id) {
                self.last = None;
            }
            self.ids.remove(&entry.0);
            self.free.push(id);
        }
    }

    fn get(&self, id: u32) -> Option<Class> {
        self.by_id.get(id as usize).filter(|e| e.1 > 0).map(|e| e.0)
    }

    /// The groups of the classes that records name.
    pub fn groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.by_id.iter().filter(|e| e.1 > 0).map(|e| e.0.group)
    }

    pub fn bytes(&self) -> usize {
        self.by_id.capacity() * std::mem::size_of::<(Class, u64)>()
            + self.ids.capacity() * (std::mem::size_of::<(Class, u32)>() + 1)
            + self.free.capacity() * 4
    }
}

/// Whether a job can live as a packed record: fresh, ready, and with nothing out of line but its own id.
pub fn packable(j: &Job) -> bool {
    let plain = match &j.extra {
        None => true,
        Some(e) => e.custom_id.is_some() && **e == Extra { custom_id: e.custom_id.clone(), ..Extra::default() },
    };
    j.state == State::Ready && j.attempts == 0 && plain && j.payload.len() <= MAX_PACKED_PAYLOAD
}

pub fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

pub fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

pub fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// Reads a varint at `*at`, moving past it (None: the bytes end inside it, or it overflows).
pub fn get_varint(b: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *b.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Appends `j`'s record (its page's times counted from `base_ms`), taking a reference to its class. A
/// custom id goes after the place, flagged in the class number's low bit (plain jobs pay no byte for it).
#[cfg(test)]
pub fn encode(j: &Job, base_ms: u64, classes: &mut Classes, out: &mut Vec<u8>) {
    encode_fresh(&Fresh::of(j), Class::of(j), base_ms, classes, out);
}

/// A fresh ready job by its parts (what a run on disk holds, with its place in its line).
#[derive(Clone, Copy)]
pub struct Fresh<'a> {
    pub seq: u64,
    pub created_ms: u64,
    pub since_ms: u64,
    pub pos: u64,
    pub id: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

impl<'a> Fresh<'a> {
    /// The parts of a packable job.
    pub fn of(j: &'a Job) -> Fresh<'a> {
        Fresh {
            seq: j.seq,
            created_ms: j.created_ms,
            since_ms: j.since_ms,
            pos: j.deadline_ms,
            id: j.custom_id(),
            payload: &j.payload,
        }
    }

    /// The job, whole (for a page with no room left to pack it).
    pub fn job(&self, c: Class) -> Job {
        Job {
            seq: self.seq,
            created_ms: self.created_ms,
            since_ms: self.since_ms,
            deadline_ms: self.pos,
            payload: Payload::from(self.payload),
            extra: self.id.map(|id| Box::new(Extra { custom_id: Some(id.into()), ..Extra::default() })),
            retries: c.retries,
            backoff_ms: c.backoff_ms,
            lease_ms: c.lease_ms,
            priority: c.priority,
            group: c.group,
            ..Job::blank()
        }
    }
}

/// Appends a fresh job's record, taking a reference to its class.
pub fn encode_fresh(f: &Fresh<'_>, class: Class, base_ms: u64, classes: &mut Classes, out: &mut Vec<u8>) {
    put_varint(out, zigzag(f.created_ms.wrapping_sub(base_ms) as i64));
    put_varint(out, zigzag(f.since_ms.wrapping_sub(f.created_ms) as i64));
    put_varint(out, u64::from(classes.take(class)) << 1 | u64::from(f.id.is_some()));
    put_varint(out, f.pos);
    if let Some(id) = f.id {
        put_varint(out, id.len() as u64);
        out.extend_from_slice(id);
    }
    put_varint(out, f.payload.len() as u64);
    out.extend_from_slice(f.payload);
}

/// The parts of a record, and where it ends.
struct Record<'a> {
    created_ms: u64,
    since_ms: u64,
    class: u32,
    pos: u64,
    id: Option<&'a [u8]>,
    payload: &'a [u8],
    end: usize,
}

fn bytes<'a>(b: &'a [u8], i: &mut usize) -> Option<&'a [u8]> {
    let len = usize::try_from(get_varint(b, i)?).ok()?;
    let s = b.get(*i..i.checked_add(len)?)?;
    *i += len;
    Some(s)
}

fn read(b: &[u8], at: usize, base_ms: u64) -> Option<Record<'_>> {
    let mut i = at;
    let created_ms = base_ms.wrapping_add(unzigzag(get_varint(b, &mut i)?) as u64);
    let since_ms = created_ms.wrapping_add(unzigzag(get_varint(b, &mut i)?) as u64);
    let class_and_id = get_varint(b, &mut i)?;
    let class = u32::try_from(class_and_id >> 1).ok()?;
    let pos = get_varint(b, &mut i)?;
    let id = if class_and_id & 1 == 1 { Some(bytes(b, &mut i)?) } else { None };
    let payload = bytes(b, &mut i)?;
    Some(Record { created_ms, since_ms, class, pos, id, payload, end: i })
}

/// The job whose record starts at `at` (None only if the bytes are not a record this module wrote).
pub fn decode(b: &[u8], at: usize, seq: u64, base_ms: u64, classes: &Classes) -> Option<Job> {
    let r = read(b, at, base_ms)?;
    let c = classes.get(r.class)?;
    let fresh = Fresh { seq, created_ms: r.created_ms, since_ms: r.since_ms, pos: r.pos, id: r.id, payload: r.payload };
    Some(fresh.job(c))
}

/// A packed job's own parts, borrowed from its record (its options are its class's).
pub struct Parts<'a> {
    pub class: u32,
    pub created_ms: u64,
    pub since_ms: u64,
    pub id: Option<&'a [u8]>,
    pub payload: &'a [u8],
}

pub fn parts(b: &[u8], at: usize, base_ms: u64) -> Option<Parts<'_>> {
    let r = read(b, at, base_ms)?;
    Some(Parts { class: r.class, created_ms: r.created_ms, since_ms: r.since_ms, id: r.id, payload: r.payload })
}

/// The options of class `id`, as a run's head and its group.
pub fn class_of(classes: &Classes, id: u32) -> Option<Class> {
    classes.get(id)
}

/// The head of the job whose record starts at `at` (no payload copied).
pub fn head(b: &[u8], at: usize, seq: u64, classes: &Classes) -> Option<Head> {
    let r = read(b, at, 0)?;
    let c = classes.get(r.class)?;
    Some(Head { seq, state: State::Ready, group: c.group, priority: c.priority, deadline_ms: r.pos })
}

/// Where the record at `at` ends; drops its reference to its class (the record is going).
pub fn release(b: &[u8], at: usize, classes: &mut Classes) -> Option<usize> {
    let r = read(b, at, 0)?;
    classes.put_back(r.class);
    Some(r.end)
}

/// Where the record at `at` ends.
pub fn end_of(b: &[u8], at: usize) -> Option<usize> {
    read(b, at, 0).map(|r| r.end)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(seq: u64, payload: &[u8]) -> Job {
        Job {
            seq,
            created_ms: 1_700_000_000_123,
            since_ms: 1_700_000_000_123,
            payload: payload.into(),
            retries: 3,
            backoff_ms: 1000,
            deadline_ms: 77,
            priority: -2,
            group: 9,
            ..Job::blank()
        }
    }

    #[test]
    fn a_record_gives_back_the_job_it_was_made_from() {
        let mut classes = Classes::default();
        let mut b = Vec::new();
        let j = job(5, b"sixteen bytes ok");
        encode(&j, 1_700_000_000_000, &mut classes, &mut b);
        assert!(b.len() <= 16 + 7, "a fresh job's record is its payload and a few bytes: {}", b.len());
        assert_eq!(decode(&b, 0, 5, 1_700_000_000_000, &classes), Some(j));
        assert_eq!(end_of(&b, 0), Some(b.len()));
    }

    #[test]
    fn classes_are_shared_and_freed_with_their_last_record() {
        let mut classes = Classes::default();
        let mut b = Vec::new();
        encode(&job(1, b"a"), 0, &mut classes, &mut b);
        let second = b.len();
        encode(&job(2, b"b"), 0, &mut classes, &mut b);
        assert_eq!(classes.ids.len(), 1);
        release(&b, 0, &mut classes);
        assert!(decode(&b, second, 2, 0, &classes).is_some(), "still named by the second record");
        release(&b, second, &mut classes);
        assert!(classes.ids.is_empty() && classes.free == vec![0]);
    }

    #[test]
    fn times_before_the_base_and_a_since_of_zero_round_trip() {
        let mut classes = Classes::default();
        let mut b = Vec::new();
        let j = Job { since_ms: 0, created_ms: 5, ..job(1, b"") };
        encode(&j, 1_000, &mut classes, &mut b);
        assert_eq!(decode(&b, 0, 1, 1_000, &classes), Some(j));
    }

    #[test]
    fn only_fresh_ready_jobs_with_nothing_but_an_id_pack() {
        assert!(packable(&job(1, b"x")));
        assert!(!packable(&Job { attempts: 1, ..job(1, b"x") }));
        assert!(!packable(&Job { state: State::Delayed, ..job(1, b"x") }));
        assert!(!packable(&job(1, &[0; MAX_PACKED_PAYLOAD + 1])));
        let mut with_id = job(1, b"x");
        with_id.set_custom_id(Some(b"id".to_vec().into()));
        assert!(packable(&with_id));
        with_id.set_last_error(b"boom");
        assert!(!packable(&with_id), "an error text keeps the full record");
    }

    #[test]
    fn a_record_with_an_id_gives_it_back() {
        let mut classes = Classes::default();
        let mut b = Vec::new();
        let mut j = job(5, b"payload");
        j.set_custom_id(Some(b"order-17".to_vec().into()));
        encode(&j, 0, &mut classes, &mut b);
        let plain_at = b.len();
        encode(&job(6, b"payload"), 0, &mut classes, &mut b);
        assert_eq!(decode(&b, 0, 5, 0, &classes), Some(j));
        assert_eq!(decode(&b, plain_at, 6, 0, &classes), Some(job(6, b"payload")));
        assert_eq!(b.len() - plain_at + 9, plain_at, "the id costs its bytes and its length, nothing more");
    }

    #[test]
    fn a_cut_record_reads_as_none() {
        let mut classes = Classes::default();
        let mut b = Vec::new();
        encode(&job(1, b"payload"), 0, &mut classes, &mut b);
        b.pop();
        assert!(decode(&b, 0, 1, 0, &classes).is_none());
    }
}
