//! One queue: its jobs in every state, the indexes that order them, its schedules and its totals.
//!
//! Every job has a queue-unique `seq`; all indexes refer to jobs by it. Ready jobs wait in one FIFO per
//! priority; delayed jobs and leases are ordered by (deadline, seq), so the timer finds what is due in
//! O(log n) and ties break by creation.

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet};

use super::backoff::{self, Outcome};
use super::events::{EventLog, Kind};
use super::flow::{Flow, QueueLimits, DEFAULT_GROUP};
use super::histogram::Histogram;
use super::job::{parse_server_id, server_id, Extra, Head, Job, Payload, State};
use super::line::Line;
use super::sample::sampled;
use super::schedule::Schedule;
use super::settings::Settings;
use super::table::{JobRef, JobTable};
pub use purge::{Graveyard, FREE_STEP};

pub mod bulk;
mod deps;
mod finish;
pub mod list;
mod purge;
pub mod rebuild;
pub mod totals;
pub use deps::Told;
pub use finish::{Finish, EXPIRED_BEFORE_START};
pub use totals::Totals;

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Stats {
    pub ready: u64,
    pub delayed: u64,
    pub reserved: u64,
    pub dead: u64,
    pub schedules: u64,
    pub waiting: u64,
    /// Finished jobs kept (KEEP): completed and cancelled.
    pub completed: u64,
    pub cancelled: u64,
    /// Notices and pins held for a queue that is missing (a flow split by a key-by-key slot migration).
    pub held: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailCause {
    Nack,
    LeaseExpired,
}

pub const LEASE_EXPIRED: &[u8] = b"lease expired";

/// Seqs stay below this, so `seq + 1` and every count derived from seqs fit comfortably.
pub const SEQ_LIMIT: u64 = 1 << 62;

/// The id sequence of a queue.
pub const NEXT_SEQ: super::limits::Range = super::limits::Range::new("id sequence", 0, SEQ_LIMIT as i64);

/// What a push asks for; times are absolute and options resolved by the caller.
#[derive(Clone, Debug, Default)]
pub struct NewJob {
    pub custom_id: Option<Box<[u8]>>,
    pub payload: Payload,
    pub due_ms: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    pub lease_ms: u64,
    pub priority: i32,
    /// GROUP (None: the default group).
    pub group: Option<Box<[u8]>>,
    /// KEEP (None: the queue's).
    pub keep_ms: Option<u64>,
    /// TTL as a deadline, and whether it drops the job rather than making it dead.
    pub ttl: Option<crate::job::Ttl>,
    /// CALL … CANCEL: when the job is cancelled if still unfinished.
    pub cancel_at: Option<u64>,
    /// AFTER: what it waits on, each link's outcome as known at the push (`left` counts the pending ones).
    pub waits: Option<Box<crate::deps::Waits>>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Pushed {
    Added(u64),
    /// The id is live already; nothing was added.
    Existing(u64),
    /// The queue has used up its id sequence; nothing was added.
    Exhausted,
}

#[derive(Debug, PartialEq, Eq)]
pub enum InsertError {
    DuplicateSeq(u64),
    DuplicateId,
    SeqOutOfRange(u64),
    NoGroup,
    FinishedInGroup,
}

impl std::fmt::Display for InsertError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InsertError::DuplicateSeq(s) => write!(f, "job seq {s} already exists"),
            InsertError::DuplicateId => write!(f, "job id already exists"),
            InsertError::SeqOutOfRange(s) => write!(f, "job seq {s} is out of range"),
            InsertError::NoGroup => write!(f, "job names no group of this queue"),
            InsertError::FinishedInGroup => write!(f, "a finished job names a group (finished jobs leave theirs)"),
        }
    }
}

/// Ready lines by (group, priority): a group's lines sit together, highest priority first.
pub type ReadyLines = BTreeMap<(u32, Reverse<i32>), Line>;

#[derive(Clone, Debug, Default)]
pub struct Queue {
    jobs: JobTable,
    /// Client ids. A B-tree, not a hash table: a table of millions doubles in one go (a stall of many ms,
    /// in PUSH or in a cron tick), a B-tree grows and shrinks a node at a time.
    custom_ids: BTreeMap<Box<[u8]>, u64>,
    /// Ready jobs, one FIFO line per group and priority; a ready job's `deadline_ms` is its position in its
    /// line.
    ready: ReadyLines,
    ready_len: usize,
    /// Where a new line starts: past every position any line handed out (an emptied or purged line's too).
    line_floor: u64,
    delayed: BTreeSet<(u64, u64)>,
    leases: BTreeSet<(u64, u64)>,
    /// Dead jobs by (time of death, seq); a dead job's `deadline_ms` is when it died.
    dead: BTreeSet<(u64, u64)>,
    /// Jobs waiting for their dependencies, by (0, seq): a set of pairs, as the other states', so PURGE, LIST
    /// and the graveyard treat it as they treat them.
    waiting: BTreeSet<(u64, u64)>,
    /// Notices and pins still to be handed to other jobs (in steps).
    backlog: crate::deps::Backlog,
    /// Finished jobs kept (KEEP) by (time they go, seq); their `deadline_ms` is that time.
    kept: BTreeSet<(u64, u64)>,
    /// How many of `kept` are cancelled (the rest completed).
    kept_cancelled: usize,
    /// Jobs with a TTL by (deadline, seq): hints the timer checks against the job before it acts.
    ttls: BTreeSet<(u64, u64)>,
    /// CALL … CANCEL jobs by (cancel time, seq): hints, as `ttls`.
    cancels: BTreeSet<(u64, u64)>,
    next_seq: u64,
    pub totals: Totals,
    pub settings: Settings,
    pub paused: bool,
    /// Indexes taken whole by PURGE: their jobs are gone for every reader at once and freed in steps.
    graveyard: Graveyard,
    /// RETRY ALL in progress: dead jobs up to this (time of death, seq) still go back to ready, in steps.
    pub retry_all_upto: Option<(u64, u64)>,
    schedules: BTreeMap<Box<[u8]>, Schedule>,
    /// Schedules by next fire time, so the timer finds the due ones without looking at the rest.
    fires: BTreeSet<(u64, Box<[u8]>)>,
    /// Groups, the round-robin among them, and the rate windows.
    pub flow: Flow,
    /// The last EVENTS-MAX transitions.
    pub events: EventLog,
    /// Ready → reserved, in ms.
    pub wait: Histogram,
    /// Reserved → ACK or NACK, in ms.
    pub run: Histogram,
}

impl Queue {
    pub fn new() -> Self {
        Self::default()
    }

    /// Jobs that readers see (purged ones not yet freed are not counted).
    pub fn len(&self) -> usize {
        self.jobs.len() - self.graveyard.jobs
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// Raises the id sequence (never lowers it). False if `seq` is beyond the limit.
    pub fn set_next_seq(&mut self, seq: u64) -> bool {
        if seq > SEQ_LIMIT {
            return false;
        }
        self.next_seq = self.next_seq.max(seq);
        true
    }

    pub fn stats(&self) -> Stats {
        Stats {
            ready: self.ready_len as u64,
            delayed: self.delayed.len() as u64,
            reserved: self.leases.len() as u64,
            dead: self.dead.len() as u64,
            schedules: self.schedules.len() as u64,
            waiting: self.waiting.len() as u64,
            completed: (self.kept.len() - self.kept_cancelled) as u64,
            cancelled: self.kept_cancelled as u64,
            held: (self.backlog.held_notices.len() + self.backlog.held_pins.len()) as u64,
        }
    }

    /// A job that is in the queue (not one a PURGE took that is still waiting to be freed).
    pub fn job(&self, seq: u64) -> Option<JobRef<'_>> {
        self.jobs.get(seq).filter(|j| self.indexed(j))
    }

    /// Whether the index of the job's state holds it: false only for purged jobs not yet freed.
    fn indexed(&self, j: &Job) -> bool {
        self.indexed_head(Head::of(j))
    }

    fn indexed_head(&self, j: Head) -> bool {
        match j.state {
            State::Ready => {
                self.ready.get(&(j.group, Reverse(j.priority))).and_then(|l| l.at(j.deadline_ms)) == Some(j.seq)
            }
            State::Delayed => self.graveyard.is_empty() || self.delayed.contains(&(j.deadline_ms, j.seq)),
            State::Reserved => true,
            State::Dead => self.graveyard.is_empty() || self.dead.contains(&(j.deadline_ms, j.seq)),
            State::Completed | State::Cancelled => {
                self.graveyard.is_empty() || self.kept.contains(&(j.deadline_ms, j.seq))
            }
            State::Waiting => self.graveyard.is_empty() || self.waiting.contains(&(0, j.seq)),
        }
    }

    fn state_of(&self, seq: u64) -> Option<State> {
        self.job(seq).map(|j| j.state)
    }

    /// Finds a job by its public id.
    pub fn find(&self, id: &[u8]) -> Option<u64> {
        if !self.custom_ids.is_empty() {
            if let Some(&seq) = self.custom_ids.get(id) {
                return self.job(seq).map(|_| seq);
            }
        }
        let (ms, seq) = parse_server_id(id)?;
        let job = self.job(seq)?;
        (job.custom_id().is_none() && job.created_ms == ms).then_some(seq)
    }

    /// Adds a job, or finds the live job that already holds its id.
    pub fn push(&mut self, new: NewJob, now_ms: u64) -> Pushed {
        if let Some(id) = &new.custom_id {
            if let Some(seq) = self.find(id) {
                return Pushed::Existing(seq);
            }
        }
        let mut seq = self.next_seq;
        // A client id may have taken the text a server id would get; skip such numbers.
        while !self.custom_ids.is_empty() && self.custom_ids.contains_key(server_id(now_ms, seq).as_slice()) {
            seq += 1;
        }
        if seq >= SEQ_LIMIT {
            return Pushed::Exhausted;
        }
        let group = match &new.group {
            Some(name) => self.flow.gid_or_new(name),
            None => DEFAULT_GROUP,
        };
        let delayed = new.due_ms > now_ms;
        let mut job = Job {
            seq,
            created_ms: now_ms,
            extra: Extra {
                custom_id: new.custom_id,
                keep_ms: new.keep_ms,
                ttl: new.ttl,
                cancel_at: new.cancel_at,
                ..Extra::default()
            }
            .boxed_if_any(),
            payload: new.payload,
            state: if delayed { State::Delayed } else { State::Ready },
            attempts: 0,
            retries: new.retries.min(u32::from(u16::MAX)) as u16,
            backoff_ms: new.backoff_ms,
            lease_ms: new.lease_ms.min(u64::from(u32::MAX)) as u32,
            priority: new.priority,
            deadline_ms: if delayed { new.due_ms } else { 0 },
            since_ms: now_ms,
            group,
        };
        if let Some(w) = new.waits {
            self.wait_on(&mut job, w, new.due_ms, now_ms);
        }
        // Fails only for a seq at the limit: seq is fresh and the custom id was checked above.
        if self.insert_pushed(job).is_err() {
            self.flow.forget_if_empty(group, &self.limits());
            return Pushed::Exhausted;
        }
        Pushed::Added(seq)
    }

    /// Inserts a job into the group of that name (made if need be; None: the default group), as pushed
    /// (`pushed`: counted and logged) or as it was (a rebuild).
    pub fn insert_in_group(&mut self, mut job: Job, group: Option<&[u8]>, pushed: bool) -> Result<(), InsertError> {
        // `finish` takes a job out of its group, so the group can be freed while the job is kept: a finished
        // job that named one would outlive its name, and save as a group nobody can load.
        if job.state.is_kept() && group.is_some() {
            return Err(InsertError::FinishedInGroup);
        }
        job.group = match group {
            Some(name) => self.flow.gid_or_new(name),
            None => DEFAULT_GROUP,
        };
        let gid = job.group;
        let result = if pushed { self.insert_pushed(job) } else { self.insert(job) };
        if result.is_err() {
            self.flow.forget_if_empty(gid, &self.limits());
        }
        result
    }

    /// The name of a job's group (None: the default group).
    pub fn group_name(&self, job: &Job) -> Option<&[u8]> {
        (job.group != DEFAULT_GROUP).then(|| self.flow.name(job.group))
    }

    /// Inserts a job that was just pushed (here or on the master): counted in pushed_total and logged.
    pub fn insert_pushed(&mut self, job: Job) -> Result<(), InsertError> {
        let (seq, at, state) = (job.seq, job.created_ms, job.state);
        self.insert(job)?;
        self.totals.pushed += 1;
        self.note(Kind::Push, seq, at);
        // A push with AFTER waits, or is dead at once when a dependency failed already (ON-FAIL fail).
        match state {
            State::Waiting => self.note(Kind::Wait, seq, at),
            State::Dead => {
                self.totals.dead += 1;
                self.note(Kind::Dead, seq, at);
            }
            _ => {}
        }
        Ok(())
    }

    /// Logs a transition of job `seq` at `ms` (when the queue keeps an event log).
    fn note(&mut self, kind: Kind, seq: u64, ms: u64) {
        let max = self.settings.events_max;
        if max == 0 {
            return;
        }
        let Some(j) = self.jobs.get(seq) else { return };
        let id = j.id_bytes();
        let attempt = j.attempts;
        let error = match kind {
            Kind::Nack | Kind::Expire | Kind::Dead => j.last_error().map(<[u8]>::to_vec),
            _ => None,
        };
        self.events.record(max, kind, Some(&id), attempt, ms, error.as_deref());
    }

    /// Replaces the queue's settings; a lower EVENTS-MAX trims the log at once (at most EVENTS_MAX events),
    /// and new limits place every group again (O(groups)).
    pub fn set_settings(&mut self, s: Settings) {
        let old = self.settings.limits();
        self.settings = s;
        self.events.trim(s.events_max);
        if s.limits() != old {
            self.flow.replace_all(&s.limits());
        }
    }

    /// Logs a transition of the queue itself (pause, resume).
    pub fn note_queue(&mut self, kind: Kind, ms: u64) {
        let max = self.settings.events_max;
        if max > 0 {
            self.events.record(max, kind, None, 0, ms, None);
        }
    }

    /// The time from `since` to `now` when both are known (older encodings carry no `since`, older AOF
    /// files no time).
    fn elapsed(since: u64, now: u64) -> Option<u64> {
        (since > 0 && now > 0).then(|| now.saturating_sub(since))
    }

    /// Places a complete job (from a push, a replica stream, AOF or RDB) into the indexes of its state.
    /// A ready job joins the back of its priority's line.
    pub fn insert(&mut self, job: Job) -> Result<(), InsertError> {
        self.check_new(job.seq, job.created_ms, job.custom_id())?;
        if self.flow.group(job.group).is_none() {
            return Err(InsertError::NoGroup);
        }
        let seq = job.seq;
        let mut job = job;
        let limits = self.limits();
        match job.state {
            State::Ready => job.deadline_ms = self.enqueue_ready(seq, job.group, job.priority),
            State::Delayed => {
                self.delayed.insert((job.deadline_ms, seq));
                self.flow.count_waiting(job.group, false, 1);
            }
            State::Reserved => {
                self.leases.insert((job.deadline_ms, seq));
                self.flow.add_reserved(job.group, &limits);
            }
            State::Dead => {
                self.dead.insert((job.deadline_ms, seq));
                self.flow.count_waiting(job.group, true, 1);
            }
            State::Completed | State::Cancelled => self.keep_index(job.state, job.deadline_ms, seq),
            State::Waiting => {
                self.waiting.insert((0, seq));
                self.flow.count_dependent(job.group, 1);
            }
        }
        self.hint_deadlines(&job);
        if let Some(id) = job.custom_id() {
            self.custom_ids.insert(id.into(), seq);
        }
        self.next_seq = self.next_seq.max(seq + 1);
        self.jobs.insert(job);
        Ok(())
    }

    /// What every job entering the queue must be: a seq in range and free (a purged job still holding it is
    /// freed now), an id no other job has (a server id included: a custom id may spell one).
    fn check_new(&mut self, seq: u64, created_ms: u64, custom_id: Option<&[u8]>) -> Result<(), InsertError> {
        if seq >= SEQ_LIMIT {
            return Err(InsertError::SeqOutOfRange(seq));
        }
        if self.jobs.contains_key(seq) {
            if self.job(seq).is_some() {
                return Err(InsertError::DuplicateSeq(seq));
            }
            self.free_buried(seq);
        }
        let taken = match custom_id {
            Some(id) => self.find(id).is_some(),
            None => !self.custom_ids.is_empty() && self.custom_ids.contains_key(server_id(created_ms, seq).as_slice()),
        };
        if taken {
            return Err(InsertError::DuplicateId);
        }
        Ok(())
    }

    /// Puts `seq` at the back of its group's line for its priority; returns its position there (the job's
    /// `deadline_ms`).
    fn enqueue_ready(&mut self, seq: u64, group: u32, priority: i32) -> u64 {
        self.ready_len += 1;
        let floor = self.line_floor;
        let pos =
            self.ready.entry((group, Reverse(priority))).or_insert_with(|| Line::starting_at(floor)).push_back(seq);
        self.line_floor = self.line_floor.max(pos + 1);
        let limits = self.limits();
        self.flow.add_ready(group, &limits);
        pos
    }

    /// The limits of the queue's settings, as flow control reads them.
    pub fn limits(&self) -> QueueLimits {
        self.settings.limits()
    }

    /// Makes a job already in the table ready (since `since_ms`), at the back of its line.
    fn make_ready(&mut self, seq: u64, since_ms: u64) {
        let Some((group, priority)) = self.jobs.get(seq).map(|j| (j.group, j.priority)) else { return };
        let pos = self.enqueue_ready(seq, group, priority);
        if let Some(job) = self.jobs.get_mut(seq) {
            job.state = State::Ready;
            job.deadline_ms = pos;
            job.since_ms = since_ms;
        }
        self.jobs.repack(seq);
    }

    /// Takes the job out of the index of its current state (the job itself stays in the table).
    fn unindex(&mut self, seq: u64) -> Option<State> {
        let job = self.job(seq)?;
        let state = job.state;
        match state {
            State::Ready => {
                let group = job.group;
                self.take_ready(seq);
                self.flow.remove_ready(group);
            }
            State::Delayed => {
                let group = job.group;
                self.delayed.remove(&(job.deadline_ms, seq));
                self.flow.count_waiting(group, false, -1);
            }
            // The reservation's end is counted where it ends (release).
            State::Reserved => {
                self.leases.remove(&(job.deadline_ms, seq));
            }
            State::Dead => {
                let group = job.group;
                self.dead.remove(&(job.deadline_ms, seq));
                self.flow.count_waiting(group, true, -1);
            }
            State::Completed | State::Cancelled => {
                let at = job.deadline_ms;
                self.unkeep_index(state, at, seq);
            }
            State::Waiting => {
                let group = job.group;
                self.waiting.remove(&(0, seq));
                self.flow.count_dependent(group, -1);
            }
        }
        Some(state)
    }

    fn remove(&mut self, seq: u64) -> Option<Job> {
        self.unindex(seq)?;
        self.drop_unindexed(seq)
    }

    /// Takes a job that is in no state index out of the table, its id map and its deadline hints.
    fn drop_unindexed(&mut self, seq: u64) -> Option<Job> {
        let job = self.jobs.remove(seq)?;
        self.unhint_deadlines(&job);
        if let Some(id) = job.custom_id() {
            self.custom_ids.remove(id);
        }
        let limits = self.limits();
        self.flow.forget_if_empty(job.group, &limits);
        Some(job)
    }

    /// Takes a ready job out of its line (no group bookkeeping). False if it is not in one.
    fn take_ready(&mut self, seq: u64) -> bool {
        let Some(job) = self.job(seq).filter(|j| j.state == State::Ready) else { return false };
        let key = (job.group, Reverse(job.priority));
        let pos = job.deadline_ms;
        let Some(line) = self.ready.get_mut(&key) else { return false };
        let removed = line.remove_at(pos, seq);
        if line.is_empty() {
            self.ready.remove(&key);
        }
        if removed {
            self.ready_len -= 1;
        }
        removed
    }

    /// The ready jobs that RESERVE would hand out next, best first.
    pub fn peek_ready(&self, count: usize) -> Vec<u64> {
        self.ready.values().flat_map(|line| line.iter()).take(count).collect()
    }

    /// Takes the best ready job of `group` off the front of its line (it is no longer indexed as ready).
    fn take_best_of(&mut self, group: u32) -> Option<u64> {
        let key = *self.ready.range((group, Reverse(i32::MAX))..=(group, Reverse(i32::MIN))).next()?.0;
        let line = self.ready.get_mut(&key)?;
        let seq = line.pop_front().map(|(_, s)| s);
        if line.is_empty() {
            self.ready.remove(&key);
        }
        if seq.is_some() {
            self.ready_len -= 1;
        }
        seq
    }

    /// The next job flow control lets go at `now`: the queue's limits, then the group whose turn it is.
    fn take_next(&mut self, now_ms: u64) -> Option<u64> {
        let limits = self.limits();
        if !self.flow.queue_allows(self.leases.len(), now_ms, &limits) {
            return None;
        }
        let group = self.flow.next_group(now_ms, &limits)?;
        self.take_best_of(group)
    }

    /// When a RESERVE that the limits turned away could be served (None: not by time alone).
    pub fn wake_at(&self, now_ms: u64) -> Option<u64> {
        if self.ready_len == 0 {
            return None;
        }
        self.flow.wake_at(self.leases.len(), now_ms, &self.limits())
    }

    /// Reserves up to `count` ready jobs, as flow control serves them (without limits or groups: best
    /// first). `lease_of` gives each job's lease length.
    pub fn reserve(&mut self, count: usize, now_ms: u64, lease_of: impl Fn(&Job) -> u64) -> Vec<u64> {
        let mut chosen = Vec::with_capacity(count.min(self.ready_len));
        while chosen.len() < count {
            let Some(seq) = self.take_next(now_ms) else { break };
            let lease = self.jobs.get(seq).map_or(0, |j| lease_of(&j));
            self.mark_reserved(seq, now_ms.saturating_add(lease), now_ms);
            chosen.push(seq);
        }
        chosen
    }

    /// True when `seq` names a ready job.
    pub fn is_ready(&self, seq: u64) -> bool {
        self.state_of(seq) == Some(State::Ready)
    }

    /// Reserves one named ready job at `now_ms` with an explicit lease deadline. False if it is not ready.
    pub fn reserve_exact(&mut self, seq: u64, deadline_ms: u64, now_ms: u64) -> bool {
        if !self.take_ready(seq) {
            return false;
        }
        self.mark_reserved(seq, deadline_ms, now_ms);
        true
    }

    /// A job just taken out of the ready index becomes reserved at `now_ms` until `deadline_ms`.
    fn mark_reserved(&mut self, seq: u64, deadline_ms: u64, now_ms: u64) {
        if let Some(t) = self.jobs.get(seq).and_then(|j| j.pending_ttl()) {
            self.ttls.remove(&(t.at, seq));
        }
        if let Some(job) = self.jobs.get_mut(seq) {
            job.state = State::Reserved;
            job.attempts = job.attempts.saturating_add(1);
            job.deadline_ms = deadline_ms;
            if let Some(waited) = Self::elapsed(job.since_ms, now_ms) {
                self.wait.record(waited);
            }
            job.since_ms = now_ms;
        }
        self.leases.insert((deadline_ms, seq));
        self.totals.reserved += 1;
        if let Some(group) = self.jobs.get(seq).map(|j| j.group) {
            let limits = self.limits();
            self.flow.took(group, now_ms, &limits);
        }
        self.note(Kind::Reserve, seq, now_ms);
    }

    /// A reservation of `seq` ends at `now_ms` (its group has room again).
    fn release(&mut self, seq: u64, now_ms: u64) {
        if let Some(group) = self.jobs.get(seq).map(|j| j.group) {
            let limits = self.limits();
            self.flow.released(group, now_ms, &limits);
        }
    }

    /// Completes a reserved job at `now_ms`, with its result; kept for its KEEP, else removed. False if the
    /// job is not reserved.
    pub fn ack(&mut self, seq: u64, now_ms: u64, result: Option<&[u8]>) -> bool {
        let Some(job) = self.job(seq).filter(|j| j.state == State::Reserved) else { return false };
        if let Some(ran) = Self::elapsed(job.since_ms, now_ms) {
            self.run.record(ran);
        }
        self.note(Kind::Ack, seq, now_ms);
        self.finish(seq, State::Completed, now_ms, result);
        self.totals.acked += 1;
        true
    }

    /// Sends a dead job back to the end of its ready line with a fresh retry budget; its attempt number
    /// keeps growing, so a fence from an earlier reservation never matches again. False if not dead.
    pub fn retry_dead(&mut self, seq: u64, now_ms: u64) -> bool {
        if self.state_of(seq) != Some(State::Dead) {
            return false;
        }
        self.unindex(seq);
        if let Some(job) = self.jobs.get_mut(seq) {
            job.restart_budget();
            // An operator's retry starts the job afresh: a TTL or a CALL's cancel time no longer holds.
            job.edit_extra(|e| {
                e.ttl = None;
                e.cancel_at = None;
            });
        }
        self.make_ready(seq, now_ms);
        self.note(Kind::Retry, seq, now_ms);
        true
    }

    /// Cancels a job that has not finished, reserved or not, with `reason` as its error: kept for its KEEP
    /// as cancelled, else removed. A reserved job's holder learns it when its next EXTEND, PROGRESS, ACK or
    /// NACK finds nothing to act on. False for a finished or unknown job.
    pub fn cancel(&mut self, seq: u64, now_ms: u64, reason: &[u8]) -> bool {
        match self.state_of(seq) {
            None => false,
            Some(s) if s.is_kept() => false,
            Some(_) => {
                self.note(Kind::Cancel, seq, now_ms);
                self.finish(seq, State::Cancelled, now_ms, Some(reason));
                true
            }
        }
    }

    /// True when `seq` is reserved, and (given a fence) in exactly that attempt.
    pub fn holds_reservation(&self, seq: u64, attempt: Option<u64>) -> bool {
        match self.job(seq) {
            Some(j) if j.state == State::Reserved => attempt.is_none_or(|a| a == u64::from(j.attempts)),
            _ => false,
        }
    }

    /// Decides what a failed attempt of a reserved job leads to; nothing changes yet.
    #[allow(clippy::too_many_arguments)]
    pub fn decide_failure(
        &self,
        seq: u64,
        now_ms: u64,
        delay_override: Option<u64>,
        force_dead: bool,
        backoff_max_ms: u64,
        random: u64,
    ) -> Option<Outcome> {
        let job = self.job(seq).filter(|j| j.state == State::Reserved)?;
        Some(backoff::decide(
            job.tries(),
            u32::from(job.retries),
            job.backoff_ms,
            backoff_max_ms,
            now_ms,
            delay_override,
            force_dead,
            random,
        ))
    }

    /// Applies a decided failure to a reserved job at `now_ms` (a dead job keeps it as its time of death).
    /// False if the job is not reserved.
    pub fn apply_failure(
        &mut self,
        seq: u64,
        cause: FailCause,
        error: Option<&[u8]>,
        outcome: Outcome,
        now_ms: u64,
    ) -> bool {
        if self.state_of(seq) != Some(State::Reserved) {
            return false;
        }
        self.release(seq, now_ms);
        self.unindex(seq);
        match cause {
            FailCause::Nack => self.totals.nacked += 1,
            FailCause::LeaseExpired => self.totals.expired += 1,
        }
        let error = match cause {
            FailCause::LeaseExpired => Some(LEASE_EXPIRED),
            FailCause::Nack => error,
        };
        let Some(job) = self.jobs.get_mut(seq) else { return false };
        if let Some(e) = error {
            job.set_last_error(e);
        }
        let ran = Self::elapsed(job.since_ms, now_ms).filter(|_| cause == FailCause::Nack);
        job.since_ms = now_ms;
        let group = job.group;
        match outcome {
            Outcome::RetryAt(due) => {
                job.state = State::Delayed;
                job.deadline_ms = due;
                self.delayed.insert((due, seq));
                self.totals.retried += 1;
            }
            Outcome::Dead => {
                job.state = State::Dead;
                job.deadline_ms = now_ms;
                if let Some(at) = job.cancel_at() {
                    self.cancels.remove(&(at, seq));
                }
                self.dead.insert((now_ms, seq));
                self.totals.dead += 1;
                self.ended(seq, crate::deps::Outcome::Dead);
            }
        }
        self.flow.count_waiting(group, outcome == Outcome::Dead, 1);
        if let Some(ran) = ran {
            self.run.record(ran);
        }
        self.note(if cause == FailCause::Nack { Kind::Nack } else { Kind::Expire }, seq, now_ms);
        self.note(if outcome == Outcome::Dead { Kind::Dead } else { Kind::Retry }, seq, now_ms);
        true
    }

    /// Moves a reserved job's lease deadline. False if it is not reserved.
    pub fn set_lease(&mut self, seq: u64, deadline_ms: u64) -> bool {
        let Some(job) = self.jobs.get_mut(seq).filter(|j| j.state == State::Reserved) else {
            return false;
        };
        self.leases.remove(&(job.deadline_ms, seq));
        job.deadline_ms = deadline_ms;
        self.leases.insert((deadline_ms, seq));
        true
    }

    /// How many delayed jobs are due at `now_ms`, counting at most `max`.
    pub fn due_count(&self, now_ms: u64, max: usize) -> usize {
        self.delayed.iter().take_while(|&&(due, _)| due <= now_ms).take(max).count()
    }

    /// Makes the first `n` delayed jobs (by due time, then seq) ready; they join the back of their lines.
    pub fn promote_first(&mut self, n: usize) -> usize {
        let mut done = 0;
        while done < n {
            let Some((due, seq)) = self.delayed.pop_first() else { break };
            if let Some(group) = self.jobs.get(seq).map(|j| j.group) {
                self.flow.count_waiting(group, false, -1);
            }
            // Waiting is counted from when the job fell due, however late the timer got to it.
            self.make_ready(seq, due);
            done += 1;
        }
        done
    }

    /// Promotes every delayed job due at `now_ms`, at most `max`. Returns how many.
    pub fn promote_due(&mut self, now_ms: u64, max: usize) -> usize {
        let n = self.due_count(now_ms, max);
        self.promote_first(n)
    }

    /// The reserved job whose lease ran out first, if any ran out by `now_ms`.
    pub fn first_expired(&self, now_ms: u64) -> Option<u64> {
        self.leases.first().filter(|&&(deadline, _)| deadline <= now_ms).map(|&(_, seq)| seq)
    }

    /// The earliest moment at which the timer has something to do for this queue.
    pub fn next_deadline(&self) -> Option<u64> {
        let delayed = self.delayed.first().map(|&(d, _)| d);
        let lease = self.leases.first().map(|&(d, _)| d);
        let cron = self.fires.first().map(|(t, _)| *t);
        let idle = self.flow.idle_deadline();
        let flows = self.backlog.deadline();
        [delayed, lease, cron, idle, self.dead_deadline(), self.housekeeping_deadline(), self.finish_deadline(), flows]
            .into_iter()
            .flatten()
            .min()
    }

    /// Frees up to `max` drained groups whose rate window ended by `now` (the timer's step, replicated as
    /// `ONCE._SWEEP`); returns how many it looked at.
    pub fn sweep_groups(&mut self, now_ms: u64, max: usize) -> usize {
        let limits = self.limits();
        self.flow.sweep_idle(now_ms, max, &limits)
    }

    /// Every job in an order that rebuilds this queue when inserted again: ready jobs in the order RESERVE
    /// hands them out (so each priority's line comes back the same), then the rest by seq.
    ///
    /// A walk, not a list: RDB save, AOF rewrite and the digest stream a queue of millions without building it
    /// a second time in memory (in a save child every byte built is a byte not shared with the server).
    pub fn jobs_in_rebuild_order(&self) -> impl Iterator<Item = JobRef<'_>> + '_ {
        let ready = self.lines_in_rebuild_order().flat_map(move |line| {
            let mut reader = self.jobs.reader();
            line.iter().filter_map(move |s| reader.get(s))
        });
        ready.chain(self.others_in_rebuild_order().map(JobRef::Borrowed))
    }

    /// The ready lines group by group by name (group numbers are each node's own), each group's lines in the
    /// order they serve, which rebuilds them; the ring's order travels on its own.
    fn lines_in_rebuild_order(&self) -> impl Iterator<Item = &Line> + '_ {
        self.flow.gids_by_name().flat_map(move |gid| {
            self.ready.range((gid, Reverse(i32::MAX))..=(gid, Reverse(i32::MIN))).map(|(_, line)| line)
        })
    }

    /// The jobs that are not ready, by seq (packed jobs are all ready: the walk skips them undecoded).
    fn others_in_rebuild_order(&self) -> impl Iterator<Item = &Job> + '_ {
        self.jobs.full_by_seq().filter(move |j| j.state != State::Ready && self.indexed(j))
    }

    /// An estimate of the bytes this queue holds, for MEMORY USAGE.
    /// Per-job parts are measured on at most MEMORY_SAMPLE items and scaled, as Redis's own MEMORY USAGE
    /// samples aggregates: a queue of millions answers in microseconds, not in a stall of milliseconds.
    pub fn memory_bytes(&self) -> usize {
        use std::mem::size_of;
        let table = self.jobs.table_bytes();
        let heap = sampled(self.jobs.full_len(), self.jobs.full_values().map(Job::heap_bytes));
        // A B-tree entry: the key box and the seq, plus a share of its node (about half as much again).
        let custom = sampled(
            self.custom_ids.len(),
            self.custom_ids.keys().map(|k| k.len() + size_of::<(Box<[u8]>, u64)>() * 3 / 2),
        );
        let ready = sampled(self.ready.len(), self.ready.values().map(|l| l.bytes() + 64));
        // A B-tree entry of (u64, u64) costs about its size plus a share of node overhead.
        let deadlines =
            (self.delayed.len() + self.leases.len() + self.kept.len() + self.ttls.len() + self.waiting.len()) * 24;
        let backlog = self.backlog.mem();
        let schedules: usize = self.schedules.values().map(|s| 256 + s.payload.len() + s.spec_text.len()).sum();
        let events = sampled(self.events.len(), self.events.iter().map(super::events::Event::bytes));
        size_of::<Self>() + table + heap + custom + ready + deadlines + backlog + schedules + events + self.flow.bytes()
    }

    pub fn schedules(&self) -> impl Iterator<Item = &Schedule> {
        self.schedules.values()
    }

    pub fn schedule(&self, name: &[u8]) -> Option<&Schedule> {
        self.schedules.get(name)
    }

    pub fn schedule_count(&self) -> usize {
        self.schedules.len()
    }

    /// Adds or replaces a schedule (by name).
    pub fn put_schedule(&mut self, s: Schedule) {
        self.remove_schedule(&s.name);
        self.fires.insert((s.next_fire_ms, s.name.clone()));
        self.schedules.insert(s.name.clone(), s);
    }

    pub fn remove_schedule(&mut self, name: &[u8]) -> bool {
        match self.schedules.remove(name) {
            Some(old) => {
                self.fires.remove(&(old.next_fire_ms, old.name));
                true
            }
            None => false,
        }
    }

    /// Records a tick: the fire time (None: none fired) and the next one. False if there is no such schedule.
    pub fn set_fired(&mut self, name: &[u8], fire_ms: Option<u64>, next_fire_ms: u64) -> bool {
        let Some(s) = self.schedules.get_mut(name) else { return false };
        self.fires.remove(&(s.next_fire_ms, s.name.clone()));
        if fire_ms.is_some() {
            s.last_fire_ms = fire_ms;
        }
        s.next_fire_ms = next_fire_ms;
        self.fires.insert((next_fire_ms, s.name.clone()));
        true
    }

    /// The schedule that falls due first, if it is due at `now_ms`.
    pub fn first_due_schedule(&self, now_ms: u64) -> Option<&Schedule> {
        let (t, name) = self.fires.first()?;
        if *t > now_ms {
            return None;
        }
        self.schedules.get(name)
    }

    /// Checks that every job that runs names a group that exists: used after loading untrusted input, once its
    /// groups and their limits are loaded (a crafted value could otherwise leave a job naming a freed group, which
    /// would save as a group without a name and never load again).
    pub fn check_groups(&self) -> Result<(), String> {
        // Packed jobs name their group through their class: the classes stand for them.
        if self.jobs.packed_groups().any(|g| self.flow.group(g).is_none()) {
            return Err("a ready job names a group that does not exist".into());
        }
        match self.jobs.full_values().find(|j| !j.state.is_kept() && self.flow.group(j.group).is_none()) {
            Some(j) => Err(format!("job seq {} names a group that does not exist", j.seq)),
            None => Ok(()),
        }
    }

    /// Checks that every index agrees with the job table: used after loading untrusted input.
    ///
    /// One walk over the jobs (a packed job is decoded on each read, and a load checks millions). The ready
    /// lines need no walk of their own: each ready job is found at its place in its line, and as many ready
    /// jobs as live line entries means every entry is one of them.
    pub fn check_invariants(&self) -> Result<(), String> {
        let mut by_state = [0usize; 7];
        let mut counts: std::collections::HashMap<u32, [u64; 5]> = std::collections::HashMap::new();
        // The line of the last ready job: neighbours in the table mostly stand in one line.
        let mut line: Option<((u32, i32), Option<&Line>)> = None;
        for j in self.jobs.heads() {
            if j.seq >= self.next_seq {
                return Err("id sequence is behind a job".into());
            }
            let indexed = if j.state == State::Ready {
                let l = match line {
                    Some((k, l)) if k == (j.group, j.priority) => l,
                    _ => {
                        let l = self.ready.get(&(j.group, Reverse(j.priority)));
                        line = Some(((j.group, j.priority), l));
                        l
                    }
                };
                l.and_then(|l| l.at(j.deadline_ms)) == Some(j.seq)
            } else {
                self.indexed_head(j)
            };
            if !indexed {
                continue;
            }
            let code = usize::from(j.state.code());
            by_state[code] += 1;
            if !j.state.is_kept() {
                // The group's counts are (ready, delayed, reserved, dead, waiting).
                counts.entry(j.group).or_default()[code.min(4)] += 1;
            }
        }
        let count = |s: State| by_state[usize::from(s.code())];
        if count(State::Ready) != self.ready_len
            || self.ready.values().map(|l| l.len()).sum::<usize>() != self.ready_len
        {
            return Err("ready index disagrees with jobs".into());
        }
        if count(State::Delayed) != self.delayed.len() || count(State::Reserved) != self.leases.len() {
            return Err("deadline index disagrees with jobs".into());
        }
        if count(State::Dead) != self.dead.len() {
            return Err("dead index disagrees with jobs".into());
        }
        if count(State::Waiting) != self.waiting.len() {
            return Err("waiting index disagrees with jobs".into());
        }
        if count(State::Completed) + count(State::Cancelled) != self.kept.len()
            || count(State::Cancelled) != self.kept_cancelled
        {
            return Err("kept index disagrees with jobs".into());
        }
        let waiting = self.waiting.iter();
        for &(d, s) in
            self.delayed.iter().chain(self.leases.iter()).chain(self.dead.iter()).chain(self.kept.iter()).chain(waiting)
        {
            match self.jobs.get(s) {
                Some(j) if j.deadline_ms == d => {}
                _ => return Err(format!("deadline index names job seq {s} wrongly")),
            }
        }
        if self.fires.len() != self.schedules.len()
            || self.fires.iter().any(|(t, n)| self.schedules.get(n).is_none_or(|s| s.next_fire_ms != *t))
        {
            return Err("fire index disagrees with schedules".into());
        }
        self.flow.check(&counts)
    }
}

#[cfg(test)]
mod tests;
