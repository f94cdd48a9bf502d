//! Dependencies between jobs (flows): what a waiting job waits on (`Waits`), what a job others wait on owes
//! them (`Dependents`), and the one byte encoding both travel in (RDB, `ONCE._JOB … LINKS`, the digest).
//!
//! A link names its job by queue (the key's name) and seq. Queues never see each other here: the glue routes
//! each notice to the queue it names. Links name keys, so a RENAME of a queue in a flow breaks its links (as it
//! would any other reference by name); the jobs then wait until cancelled.

/// What a waiting job does when one of its dependencies ends dead or cancelled.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum OnFail {
    /// The waiting job becomes dead, its error naming the dependency.
    #[default]
    Fail,
    /// The dependency is dropped: not done, no longer waited for.
    Ignore,
    /// The dependency counts as done.
    Continue,
}

impl OnFail {
    pub fn name(self) -> &'static str {
        match self {
            OnFail::Fail => "fail",
            OnFail::Ignore => "ignore",
            OnFail::Continue => "continue",
        }
    }

    pub fn from_name(b: &[u8]) -> Option<OnFail> {
        [OnFail::Fail, OnFail::Ignore, OnFail::Continue]
            .into_iter()
            .find(|p| p.name().as_bytes().eq_ignore_ascii_case(b))
    }

    fn code(self) -> u64 {
        self as u64
    }

    fn from_code(c: u64) -> Option<OnFail> {
        [OnFail::Fail, OnFail::Ignore, OnFail::Continue].get(usize::try_from(c).ok()?).copied()
    }
}

/// How a dependency ended, as the job waiting on it learnt it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum Outcome {
    #[default]
    Pending,
    Completed,
    Dead,
    Cancelled,
}

impl Outcome {
    pub fn name(self) -> &'static str {
        match self {
            Outcome::Pending => "pending",
            Outcome::Completed => "completed",
            Outcome::Dead => "dead",
            Outcome::Cancelled => "cancelled",
        }
    }

    pub fn code(self) -> u64 {
        self as u64
    }

    pub fn from_code(c: u64) -> Option<Outcome> {
        [Outcome::Pending, Outcome::Completed, Outcome::Dead, Outcome::Cancelled].get(usize::try_from(c).ok()?).copied()
    }

    /// How a job in `state` has ended so far (Pending while it has not).
    pub fn of(state: crate::State) -> Outcome {
        match state {
            crate::State::Completed => Outcome::Completed,
            crate::State::Dead => Outcome::Dead,
            crate::State::Cancelled => Outcome::Cancelled,
            _ => Outcome::Pending,
        }
    }

    pub fn is_failure(self) -> bool {
        matches!(self, Outcome::Dead | Outcome::Cancelled)
    }
}

/// One dependency of a waiting job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Link {
    /// The dependency's queue.
    pub queue: Box<[u8]>,
    pub seq: u64,
    /// Its public id, shown by DEPS after the job itself is gone.
    pub id: Box<[u8]>,
    pub outcome: Outcome,
}

/// What a job waits on. It stays with the job for its life: DEPS reads it after the job started.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Waits {
    pub on_fail: OnFail,
    pub links: Vec<Link>,
    /// Links still pending.
    pub left: u32,
    /// When the job runs once released (a DELAY or AT still ahead then makes it delayed); 0: at once.
    pub due_ms: u64,
    /// Whether the pins it holds on its dependencies were handed back (it ended).
    pub unpinned: bool,
}

impl Waits {
    /// Drops links that name a job named before (the first stays): a job named twice is waited for once.
    pub fn dedup(&mut self) {
        let mut seen = std::collections::HashSet::with_capacity(self.links.len());
        self.links.retain(|l| seen.insert((l.queue.clone(), l.seq)));
    }

    /// Dependencies that count as done: completed ones, and under `continue` failed ones too (under `ignore` a
    /// failed one is neither done nor waited for).
    pub fn done(&self) -> usize {
        let failures_count = self.on_fail == OnFail::Continue;
        self.links
            .iter()
            .filter(|l| l.outcome == Outcome::Completed || (failures_count && l.outcome.is_failure()))
            .count()
    }

    pub fn failed(&self) -> usize {
        self.links.iter().filter(|l| l.outcome.is_failure()).count()
    }
}

/// A job waiting on this one: where to tell it, and which of its links is this job.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    /// The waiting job's queue.
    pub queue: Box<[u8]>,
    pub seq: u64,
    pub index: u32,
}

/// What a job owes the jobs waiting on it: a notice when it ends, and its outcome kept while they hold pins.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Dependents {
    /// Jobs to tell when this one ends (moved to the queue's notices then).
    pub targets: Vec<Target>,
    /// Jobs waiting on it that have not ended: while any has not, its outcome is kept whatever KEEP says (they
    /// read it while they run).
    pub pins: u32,
}

/// A job that ended, and the waiting jobs still to be told: the queue works through them in bounded steps.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Notice {
    pub from: u64,
    pub outcome: Outcome,
    pub targets: Vec<Target>,
    /// How many targets were told already.
    pub next: usize,
}

/// A notice or a pin whose queue was missing when it was due — most likely its slot is half way through a
/// key-by-key migration, that queue already on the other node and this one not yet. It is tried again every
/// `HOLD_RETRY_MS` (it moves with this queue's backlog) and dropped at `until`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Held<T> {
    pub entry: T,
    pub retry_at: u64,
    pub until: u64,
}

/// A held notice: waiting job `target` is to be told that job `from` of this queue ended as `outcome`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoticeTo {
    pub target: Target,
    pub from: u64,
    pub outcome: Outcome,
}

/// A held pin: (the dependency's queue, its seq).
pub type PinTo = (Box<[u8]>, u64);

/// How long a notice or pin is held for a missing queue before it is dropped: longer than a slot's keys take to
/// move.
pub const HOLD_MS: u64 = 3_600_000;
/// How often a held entry looks for its queue again.
pub const HOLD_RETRY_MS: u64 = 1_000;

/// What a queue still has to hand out to other jobs, worked through in bounded steps by the glue.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Backlog {
    /// Jobs that ended with others waiting on them, and the waiting jobs still to be told.
    pub notices: std::collections::VecDeque<Notice>,
    /// Jobs that ended, and the dependencies whose pins they still hand back.
    pub unpins: std::collections::VecDeque<Unpin>,
    /// Notices and pins whose queue was missing, each in the order they are tried again.
    pub held_notices: std::collections::VecDeque<Held<NoticeTo>>,
    pub held_pins: std::collections::VecDeque<Held<PinTo>>,
}

impl Backlog {
    pub fn is_empty(&self) -> bool {
        self.notices.is_empty() && self.unpins.is_empty() && self.held_notices.is_empty() && self.held_pins.is_empty()
    }

    /// When the glue should next work on it: now for notices and pins, the first held entry's retry time
    /// otherwise.
    pub fn deadline(&self) -> Option<u64> {
        if !self.notices.is_empty() || !self.unpins.is_empty() {
            return Some(0);
        }
        [self.held_notices.front().map(|h| h.retry_at), self.held_pins.front().map(|h| h.retry_at)]
            .into_iter()
            .flatten()
            .min()
    }

    /// A rough size in bytes, for MEMORY USAGE.
    pub fn mem(&self) -> usize {
        self.notices.iter().map(|n| n.targets.len() * 48).sum::<usize>()
            + self.unpins.iter().map(|u| u.deps.len() * 40).sum::<usize>()
            + self.held_notices.len() * 80
            + self.held_pins.len() * 56
    }
}

/// A job that ended, and the dependencies whose pins it still has to hand back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Unpin {
    pub deps: Vec<(Box<[u8]>, u64)>,
    pub next: usize,
}

// ---- the byte encoding ----

fn put_u(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn put_b(out: &mut Vec<u8>, b: &[u8]) {
    put_u(out, b.len() as u64);
    out.extend_from_slice(b);
}

/// Reads what `put_u`/`put_b` wrote, refusing anything malformed (the input may be a crafted RESTORE).
pub struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf }
    }

    pub fn u(&mut self) -> Result<u64, String> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let (&b, rest) = self.buf.split_first().ok_or("dependency record ends early")?;
            self.buf = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err("dependency record has a bad number".into())
    }

    fn upto(&mut self, what: &str, max: u64) -> Result<u64, String> {
        let v = self.u()?;
        if v > max {
            return Err(format!("dependency record's {what} is out of range: {v}"));
        }
        Ok(v)
    }

    pub fn b(&mut self, max: usize) -> Result<Box<[u8]>, String> {
        let n = usize::try_from(self.u()?).map_err(|_| "dependency record has a bad length")?;
        if n > max || n > self.buf.len() {
            return Err("dependency record has a bad length".into());
        }
        let (b, rest) = self.buf.split_at(n);
        self.buf = rest;
        Ok(b.into())
    }

    pub fn end(&self) -> Result<(), String> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err("dependency record has bytes past its end".into())
        }
    }
}

/// The longest queue name or job id a link holds (Redis keys may be longer; such queues cannot be linked).
pub const MAX_NAME: usize = 64 * 1024;
/// Most dependencies one job may have, and most jobs one job may have waiting on it.
pub const MAX_LINKS: u64 = 1_000_000;
const SEQ_MAX: u64 = crate::queue::SEQ_LIMIT;

fn count(n: usize) -> Result<usize, String> {
    if n as u64 > MAX_LINKS {
        return Err("too many dependency links".into());
    }
    Ok(n)
}

fn put_target(out: &mut Vec<u8>, t: &Target) {
    put_b(out, &t.queue);
    put_u(out, t.seq);
    put_u(out, u64::from(t.index));
}

fn read_target(r: &mut Reader<'_>) -> Result<Target, String> {
    Ok(Target { queue: r.b(MAX_NAME)?, seq: r.upto("seq", SEQ_MAX)?, index: r.upto("link index", MAX_LINKS)? as u32 })
}

/// A job's waits and dependents as one blob (either may be absent).
pub fn encode_links(waits: Option<&Waits>, dependents: Option<&Dependents>) -> Vec<u8> {
    let mut out = Vec::new();
    match waits {
        None => put_u(&mut out, 0),
        Some(w) => {
            put_u(&mut out, 1);
            put_u(&mut out, w.on_fail.code());
            put_u(&mut out, w.due_ms);
            put_u(&mut out, u64::from(w.unpinned));
            put_u(&mut out, w.links.len() as u64);
            for l in &w.links {
                put_b(&mut out, &l.queue);
                put_u(&mut out, l.seq);
                put_b(&mut out, &l.id);
                put_u(&mut out, l.outcome.code());
            }
        }
    }
    match dependents {
        None => put_u(&mut out, 0),
        Some(d) => {
            put_u(&mut out, 1);
            put_u(&mut out, u64::from(d.pins));
            put_u(&mut out, d.targets.len() as u64);
            d.targets.iter().for_each(|t| put_target(&mut out, t));
        }
    }
    out
}

type Links = (Option<Box<Waits>>, Option<Box<Dependents>>);

/// Reads `encode_links`'s blob; `left` is counted from the links, never trusted.
pub fn decode_links(blob: &[u8]) -> Result<Links, String> {
    let mut r = Reader::new(blob);
    let waits = match r.upto("flag", 1)? {
        0 => None,
        _ => {
            let on_fail = OnFail::from_code(r.u()?).ok_or("dependency record has a bad ON-FAIL")?;
            let due_ms = r.upto("due time", i64::MAX as u64)?;
            let unpinned = r.upto("flag", 1)? == 1;
            let n = count(r.u()? as usize)?;
            let mut links = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                let queue = r.b(MAX_NAME)?;
                let seq = r.upto("seq", SEQ_MAX)?;
                let id = r.b(MAX_NAME)?;
                if id.is_empty() {
                    return Err("dependency record has an empty id".into());
                }
                let outcome = Outcome::from_code(r.u()?).ok_or("dependency record has a bad outcome")?;
                links.push(Link { queue, seq, id, outcome });
            }
            let left = links.iter().filter(|l| l.outcome == Outcome::Pending).count() as u32;
            Some(Box::new(Waits { on_fail, links, left, due_ms, unpinned }))
        }
    };
    let dependents = match r.upto("flag", 1)? {
        0 => None,
        _ => {
            let pins = r.upto("pins", MAX_LINKS)? as u32;
            let n = count(r.u()? as usize)?;
            let mut targets = Vec::with_capacity(n.min(4096));
            for _ in 0..n {
                targets.push(read_target(&mut r)?);
            }
            Some(Box::new(Dependents { targets, pins }))
        }
    };
    r.end()?;
    Ok((waits, dependents))
}

/// A queue's notices and unpins under way, as one blob.
pub fn encode_backlog(b: &Backlog) -> Vec<u8> {
    let mut out = Vec::new();
    put_u(&mut out, b.notices.len() as u64);
    for n in &b.notices {
        put_u(&mut out, n.from);
        put_u(&mut out, n.outcome.code());
        let rest = &n.targets[n.next.min(n.targets.len())..];
        put_u(&mut out, rest.len() as u64);
        rest.iter().for_each(|t| put_target(&mut out, t));
    }
    put_u(&mut out, b.unpins.len() as u64);
    for u in &b.unpins {
        let rest = &u.deps[u.next.min(u.deps.len())..];
        put_u(&mut out, rest.len() as u64);
        for (q, s) in rest {
            put_b(&mut out, q);
            put_u(&mut out, *s);
        }
    }
    // Held entries are a trailing section, absent when there are none.
    if !b.held_notices.is_empty() || !b.held_pins.is_empty() {
        put_u(&mut out, b.held_notices.len() as u64);
        for h in &b.held_notices {
            put_target(&mut out, &h.entry.target);
            put_u(&mut out, h.entry.from);
            put_u(&mut out, h.entry.outcome.code());
            put_u(&mut out, h.retry_at);
            put_u(&mut out, h.until);
        }
        put_u(&mut out, b.held_pins.len() as u64);
        for h in &b.held_pins {
            put_b(&mut out, &h.entry.0);
            put_u(&mut out, h.entry.1);
            put_u(&mut out, h.retry_at);
            put_u(&mut out, h.until);
        }
    }
    out
}

pub fn decode_backlog(blob: &[u8]) -> Result<Backlog, String> {
    let mut r = Reader::new(blob);
    let mut b = Backlog::default();
    let outcome = |code: u64| Outcome::from_code(code).filter(|o| *o != Outcome::Pending).ok_or("bad notice outcome");
    for _ in 0..count(r.u()? as usize)? {
        let from = r.upto("seq", SEQ_MAX)?;
        let outcome = outcome(r.u()?)?;
        let n = count(r.u()? as usize)?;
        let mut targets = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            targets.push(read_target(&mut r)?);
        }
        b.notices.push_back(Notice { from, outcome, targets, next: 0 });
    }
    for _ in 0..count(r.u()? as usize)? {
        let n = count(r.u()? as usize)?;
        let mut deps = Vec::with_capacity(n.min(4096));
        for _ in 0..n {
            deps.push((r.b(MAX_NAME)?, r.upto("seq", SEQ_MAX)?));
        }
        b.unpins.push_back(Unpin { deps, next: 0 });
    }
    if !r.buf.is_empty() {
        for _ in 0..count(r.u()? as usize)? {
            let target = read_target(&mut r)?;
            let from = r.upto("seq", SEQ_MAX)?;
            let outcome = outcome(r.u()?)?;
            let (retry_at, until) = (r.u()?, r.u()?);
            b.held_notices.push_back(Held { entry: NoticeTo { target, from, outcome }, retry_at, until });
        }
        for _ in 0..count(r.u()? as usize)? {
            let entry = (r.b(MAX_NAME)?, r.upto("seq", SEQ_MAX)?);
            let (retry_at, until) = (r.u()?, r.u()?);
            b.held_pins.push_back(Held { entry, retry_at, until });
        }
    }
    r.end()?;
    Ok(b)
}

/// The error a waiting job dies with when a dependency fails and its policy is `fail`.
pub fn failure_text(queue: &[u8], id: &[u8], outcome: Outcome) -> Vec<u8> {
    let mut t = b"dependency ".to_vec();
    t.extend_from_slice(queue);
    t.push(b' ');
    t.extend_from_slice(id);
    t.extend_from_slice(if outcome == Outcome::Cancelled { b" was cancelled" } else { b" died" });
    t
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_and_backlogs_round_trip_and_refuse_garbage() {
        let w = Waits {
            on_fail: OnFail::Continue,
            links: vec![
                Link { queue: b"".to_vec().into(), seq: 3, id: b"1-3".to_vec().into(), outcome: Outcome::Completed },
                Link { queue: b"{t}:b".to_vec().into(), seq: 9, id: b"x".to_vec().into(), outcome: Outcome::Pending },
            ],
            left: 1,
            due_ms: 77,
            unpinned: false,
        };
        let d = Dependents { targets: vec![Target { queue: b"{t}:c".to_vec().into(), seq: 5, index: 2 }], pins: 4 };
        let blob = encode_links(Some(&w), Some(&d));
        let (w2, d2) = decode_links(&blob).unwrap();
        assert_eq!(*w2.unwrap(), w);
        assert_eq!(*d2.unwrap(), d);
        for cut in 0..blob.len() {
            assert!(decode_links(&blob[..cut]).is_err(), "a record cut at {cut} must not load");
        }
        let mut b = Backlog::default();
        b.notices.push_back(Notice { from: 4, outcome: Outcome::Dead, targets: d.targets.clone(), next: 0 });
        b.unpins.push_back(Unpin { deps: vec![(b"".to_vec().into(), 1), (b"q".to_vec().into(), 2)], next: 1 });
        let without_held = encode_backlog(&b);
        let b2 = decode_backlog(&without_held).unwrap();
        assert_eq!(b2.notices, b.notices);
        assert_eq!(b2.unpins[0].deps, vec![(b"q".to_vec().into(), 2)], "what was handed back already is not written");
        assert!(b2.held_notices.is_empty() && b2.held_pins.is_empty());
        let target = d.targets[0].clone();
        let entry = NoticeTo { target, from: 9, outcome: Outcome::Cancelled };
        b.held_notices.push_back(Held { entry, retry_at: 1_500, until: 3_601_000 });
        b.held_pins.push_back(Held { entry: (b"{t}:a".to_vec().into(), 3), retry_at: 1_700, until: 3_601_200 });
        let blob = encode_backlog(&b);
        let b3 = decode_backlog(&blob).unwrap();
        assert_eq!((b3.held_notices, b3.held_pins), (b.held_notices, b.held_pins));
        for cut in without_held.len() + 1..blob.len() {
            assert!(decode_backlog(&blob[..cut]).is_err(), "a held section cut at {cut} must not load");
        }
    }
}
