//! How jobs finish and what is left of them: KEEP (a finished job kept with its outcome, which also holds
//! its id: the dedup window), TTL (a job not started in time), a CALL's cancel time, and PROGRESS.
//!
//! TTL and cancel times are indexed as hints: every transition that ends them removes its entry when it
//! can, and the timer checks each entry against its job before it acts, so a stale one costs a lookup, never
//! a wrong change.

use super::super::events::Kind;
use super::super::flow::DEFAULT_GROUP;
use super::super::job::{Job, State, Ttl};
use super::Queue;
use crate::deps::Outcome;

/// The longest a finished job is kept for the jobs waiting on it that have not started: a bound, so a waiting
/// job that never starts (PURGE took it) cannot hold the outcome forever.
pub const PIN_MAX_MS: u64 = 7 * 24 * 3_600_000;

/// The error of a job whose TTL ran out before any reservation.
pub const EXPIRED_BEFORE_START: &[u8] = b"expired before start";

/// A job's outcome as RESULT shows it: its state, the result or error, attempts, when it finished.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Finish {
    pub state: State,
    pub result: Option<Box<[u8]>>,
    pub error: Option<Box<[u8]>>,
    pub attempts: u32,
    pub finished_ms: Option<u64>,
    pub progress: Option<Box<[u8]>>,
}

impl Finish {
    /// The outcome a job shows now (unfinished jobs show their state, attempts and progress).
    pub fn of(job: &Job) -> Finish {
        let error = match job.state {
            State::Dead | State::Cancelled => job.last_error().map(Into::into),
            _ => None,
        };
        Finish {
            state: job.state,
            result: job.result().filter(|_| job.state == State::Completed).map(Into::into),
            error,
            attempts: job.attempts,
            finished_ms: job.finished_ms(),
            progress: job.progress().map(Into::into),
        }
    }

    /// The outcome of a job that finished as `state` at `now` with `text` (result or reason) and is not
    /// kept: built from the job as it was just before, for the clients that were waiting on it.
    pub fn ended(before: &Job, state: State, text: Option<&[u8]>, now_ms: u64) -> Finish {
        let mut f = Finish::of(before);
        f.state = state;
        f.finished_ms = Some(now_ms);
        match state {
            State::Completed => f.result = text.map(Into::into),
            _ => f.error = text.map(Into::into).or(f.error),
        }
        f
    }
}

impl Queue {
    /// The outcome of job `seq` as RESULT shows it.
    pub fn outcome(&self, seq: u64) -> Option<Finish> {
        self.job(seq).map(|j| Finish::of(&j))
    }

    pub(super) fn keep_index(&mut self, state: State, at: u64, seq: u64) {
        self.kept.insert((at, seq));
        if state == State::Cancelled {
            self.kept_cancelled += 1;
        }
    }

    pub(super) fn unkeep_index(&mut self, state: State, at: u64, seq: u64) {
        if self.kept.remove(&(at, seq)) && state == State::Cancelled {
            self.kept_cancelled -= 1;
        }
    }

    /// Indexes a job's TTL and cancel time while they still apply.
    pub(super) fn hint_deadlines(&mut self, job: &Job) {
        if let Some(t) = job.pending_ttl() {
            self.ttls.insert((t.at, job.seq));
        }
        if let Some(at) = job.pending_cancel() {
            self.cancels.insert((at, job.seq));
        }
    }

    pub(super) fn unhint_deadlines(&mut self, job: &Job) {
        if let Some(t) = job.ttl() {
            self.ttls.remove(&(t.at, job.seq));
        }
        if let Some(at) = job.cancel_at() {
            self.cancels.remove(&(at, job.seq));
        }
    }

    /// Ends an unfinished job as `state` (Completed or Cancelled) at `now` with `text` (its result, or the
    /// reason it was cancelled). Kept for its KEEP (the job's, else the queue's), else removed; a kept job
    /// past KEEP-MAX pushes out the kept job nearest its end.
    pub(super) fn finish(&mut self, seq: u64, state: State, now_ms: u64, text: Option<&[u8]>) {
        let Some(job) = self.job(seq) else { return };
        let was = job.state;
        let keep = job.keep_ms().unwrap_or(self.settings.keep_ms);
        let pinned = job.pins() > 0;
        if was == State::Reserved {
            self.release(seq, now_ms);
        }
        self.ended(seq, Outcome::of(state));
        self.unindex(seq);
        if keep == 0 && !pinned {
            self.drop_unindexed(seq);
            return;
        }
        let Some(job) = self.jobs.get(seq) else { return };
        let (old_group, ttl, cancel_at) = (job.group, job.ttl(), job.cancel_at());
        if let Some(t) = ttl {
            self.ttls.remove(&(t.at, seq));
        }
        if let Some(c) = cancel_at {
            self.cancels.remove(&(c, seq));
        }
        // Jobs waiting on it read its outcome while they run: kept until they ended (or PIN_MAX_MS at most).
        let at = now_ms.saturating_add(if pinned { keep.max(PIN_MAX_MS) } else { keep });
        if let Some(job) = self.jobs.get_mut(seq) {
            job.state = state;
            // A finished job runs no more: its group no longer matters, and the group may go.
            job.group = DEFAULT_GROUP;
            job.since_ms = now_ms;
            job.deadline_ms = at;
            job.edit_extra(|e| {
                e.ttl = None;
                e.cancel_at = None;
                match state {
                    State::Completed => e.result = text.map(Into::into),
                    _ => e.last_error = text.map(Into::into),
                }
            });
        }
        self.keep_index(state, at, seq);
        let limits = self.limits();
        self.flow.forget_if_empty(old_group, &limits);
        let max = self.settings.keep_max;
        while max > 0 && self.kept.len() as u64 > max {
            let Some(&(_, first)) = self.kept.first() else { break };
            self.remove(first);
        }
    }

    /// When finished jobs next need the timer: a kept job's end (or now, past KEEP-MAX), a TTL, a cancel time.
    pub(super) fn finish_deadline(&self) -> Option<u64> {
        let max = self.settings.keep_max;
        let kept = if max > 0 && self.kept.len() as u64 > max { Some(0) } else { self.kept.first().map(|&(t, _)| t) };
        let ttl = self.ttls.first().map(|&(t, _)| t);
        let cancel = self.cancels.first().map(|&(t, _)| t);
        [kept, ttl, cancel].into_iter().flatten().min()
    }

    /// The kept jobs whose time is up at `now`, or that KEEP-MAX pushes out, at most `max`, nearest end first.
    pub fn kept_to_forget(&self, now_ms: u64, max: usize) -> Vec<u64> {
        let cap = self.settings.keep_max;
        let over = if cap > 0 { (self.kept.len() as u64).saturating_sub(cap) } else { 0 };
        self.kept
            .iter()
            .enumerate()
            .take_while(|&(i, &(at, _))| (i as u64) < over || at <= now_ms)
            .take(max)
            .map(|(_, &(_, seq))| seq)
            .collect()
    }

    /// Frees kept jobs (their KEEP ended, or KEEP-MAX); their ids are free again. Returns how many.
    pub fn forget_kept(&mut self, seqs: &[u64]) -> usize {
        seqs.iter().filter(|&&seq| self.state_of(seq).is_some_and(State::is_kept) && self.remove(seq).is_some()).count()
    }

    /// The jobs whose TTL ran out by `now` before they started, at most `max`. Stale hints met on the way
    /// are dropped.
    pub fn ttl_due(&mut self, now_ms: u64, max: usize) -> Vec<u64> {
        let mut due = Vec::new();
        while due.len() < max {
            let Some(&(at, seq)) = self.ttls.first() else { break };
            if at > now_ms {
                break;
            }
            if self.job(seq).and_then(|j| j.pending_ttl()).is_some_and(|t| t.at == at) {
                due.push(seq);
                // Taken off now, so that the next call goes on past it; expire_unstarted acts on the job.
            }
            self.ttls.remove(&(at, seq));
        }
        due
    }

    /// A job whose TTL ran out before it started: dead with `expired before start`, or removed with DROP.
    /// False if its TTL no longer applies.
    pub fn expire_unstarted(&mut self, seq: u64, now_ms: u64) -> bool {
        let Some(Ttl { drop, at }) = self.job(seq).and_then(|j| j.pending_ttl()) else { return false };
        self.ttls.remove(&(at, seq));
        self.totals.expired_unstarted += 1;
        self.ended(seq, Outcome::Dead);
        if drop {
            self.note(Kind::Drop, seq, now_ms);
            self.remove(seq);
            return true;
        }
        let Some(group) = self.job(seq).map(|j| j.group) else { return false };
        self.unindex(seq);
        if let Some(job) = self.jobs.get_mut(seq) {
            job.set_last_error(EXPIRED_BEFORE_START);
            job.state = State::Dead;
            job.deadline_ms = now_ms;
            job.since_ms = now_ms;
        }
        if let Some(c) = self.jobs.get(seq).and_then(|j| j.cancel_at()) {
            self.cancels.remove(&(c, seq));
        }
        self.dead.insert((now_ms, seq));
        self.flow.count_waiting(group, true, 1);
        self.totals.dead += 1;
        self.note(Kind::Dead, seq, now_ms);
        true
    }

    /// The CALL jobs whose cancel time came by `now` unfinished, at most `max`; stale hints are dropped.
    pub fn cancels_due(&mut self, now_ms: u64, max: usize) -> Vec<u64> {
        let mut due = Vec::new();
        while due.len() < max {
            let Some(&(at, seq)) = self.cancels.first() else { break };
            if at > now_ms {
                break;
            }
            if self.job(seq).and_then(|j| j.pending_cancel()) == Some(at) {
                due.push(seq);
            }
            self.cancels.remove(&(at, seq));
        }
        due
    }

    /// Records a reserved job's progress (in that attempt, given a fence). False if it is not held so.
    pub fn set_progress(&mut self, seq: u64, attempt: Option<u64>, data: &[u8], now_ms: u64) -> bool {
        if !self.holds_reservation(seq, attempt) {
            return false;
        }
        if let Some(job) = self.jobs.get_mut(seq) {
            job.edit_extra(|e| e.progress = Some(data.into()));
        }
        self.note(Kind::Progress, seq, now_ms);
        true
    }
}
