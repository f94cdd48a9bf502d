//! Flows inside one queue: a job that waits (AFTER), the pins a waiting job holds on its dependencies'
//! outcomes (so that it can read them while it runs: they go back when it ends), and the backlog the glue works
//! through in bounded steps — notices to the jobs waiting on a job that ended, pins to hand back from jobs that
//! ended, and notices and pins held while their queue is missing. The backlog changes only through the queue's own
//! transitions and the steps that consume it (at the master's time), so a replica replaying the same commands
//! holds the same one, and a step is replicated as "the next n" (`ONCE._NOTIFY`).

use super::super::events::Kind;
use super::super::job::{Job, State};
use super::Queue;
use std::collections::VecDeque;

use crate::deps::{self, Dependents, Held, Link, Notice, NoticeTo, OnFail, Outcome, PinTo, Target, Unpin, Waits};

/// What a notice did to the job it told.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Told {
    /// Nothing: the job is gone, no longer waiting, or that link was settled already.
    Nothing,
    /// The link is settled; the job still waits for others.
    Counted,
    /// That was the last: the job is ready (or delayed) now.
    Released,
    /// A failure under ON-FAIL fail: the job is dead now.
    Died,
}

impl Queue {
    /// Attaches `w` to a job being pushed and decides its state: waiting while links are pending, dead at once
    /// when a link already failed under ON-FAIL fail, else as pushed (ready, or delayed until `due_ms`).
    /// True when it waits.
    pub(super) fn wait_on(&mut self, job: &mut Job, mut w: Box<Waits>, due_ms: u64, now_ms: u64) {
        w.dedup();
        w.left = w.links.iter().filter(|l| l.outcome == Outcome::Pending).count() as u32;
        let failed = w.links.iter().find(|l| l.outcome.is_failure() && w.on_fail == OnFail::Fail);
        let state = match failed {
            Some(l) => {
                job.set_last_error(&deps::failure_text(&l.queue, &l.id, l.outcome));
                // It will never start: it takes no pins (the glue pins only for jobs not finished).
                w.unpinned = true;
                job.deadline_ms = now_ms;
                State::Dead
            }
            None if w.left > 0 => {
                w.due_ms = if due_ms > now_ms { due_ms } else { 0 };
                job.deadline_ms = 0;
                State::Waiting
            }
            None => job.state,
        };
        job.state = state;
        job.edit_extra(|e| e.waits = Some(w));
    }

    /// A job ended (completed, dead, cancelled, dropped): the jobs waiting on it are to be told, and the pins
    /// it holds on its own dependencies go back.
    pub(super) fn ended(&mut self, seq: u64, outcome: Outcome) {
        // Every job that finishes passes here: one look decides, and a job in no flow is not touched.
        let in_flow =
            self.jobs.get(seq).is_some_and(|j| j.waits().is_some_and(|w| !w.unpinned) || j.dependents().is_some());
        if !in_flow {
            return;
        }
        let Some(job) = self.jobs.get_mut(seq) else { return };
        let (mut pinned, mut targets) = (Vec::new(), Vec::new());
        job.edit_extra(|e| {
            if let Some(w) = e.waits.as_mut().filter(|w| !w.unpinned) {
                w.unpinned = true;
                pinned = w.links.iter().map(|l| (l.queue.clone(), l.seq)).collect();
            }
            if let Some(d) = e.dependents.as_mut() {
                targets = std::mem::take(&mut d.targets);
                if d.pins == 0 {
                    e.dependents = None;
                }
            }
        });
        if !pinned.is_empty() {
            self.backlog.unpins.push_back(Unpin { deps: pinned, next: 0 });
        }
        if !targets.is_empty() {
            self.backlog.notices.push_back(Notice { from: seq, outcome, targets, next: 0 });
        }
    }

    /// A job of another queue (or this one) now waits on job `seq`: `pin` keeps its outcome until that job
    /// ends, `target` (for a link still pending) is told when this one ends. False if there is no such job.
    pub fn add_dependent(&mut self, seq: u64, pin: bool, target: Option<Target>) -> bool {
        if self.job(seq).is_none() {
            return false;
        }
        let Some(job) = self.jobs.get_mut(seq) else { return false };
        job.edit_extra(|e| {
            let d = e.dependents.get_or_insert_with(Box::<Dependents>::default);
            if pin {
                d.pins = d.pins.saturating_add(1);
            }
            d.targets.extend(target);
        });
        true
    }

    /// Hands back one pin on job `seq` at `now`. Its last pin gone, a finished job kept for its waiting jobs
    /// goes when its own KEEP says (at once when it has none: the timer frees it).
    pub fn unpin(&mut self, seq: u64) -> bool {
        let Some(job) = self.job(seq) else { return false };
        if job.pins() == 0 {
            return false;
        }
        let (state, at, since) = (job.state, job.deadline_ms, job.since_ms);
        let keep = job.keep_ms().unwrap_or(self.settings.keep_ms);
        let Some(job) = self.jobs.get_mut(seq) else { return false };
        let mut last = false;
        job.edit_extra(|e| {
            if let Some(d) = e.dependents.as_mut() {
                d.pins -= 1;
                last = d.pins == 0;
                if last && d.targets.is_empty() {
                    e.dependents = None;
                }
            }
        });
        if last && state.is_kept() {
            let new_at = since.saturating_add(keep);
            self.unkeep_index(state, at, seq);
            if let Some(job) = self.jobs.get_mut(seq) {
                job.deadline_ms = new_at;
            }
            self.keep_index(state, new_at, seq);
        }
        true
    }

    /// The next waiting job to tell that a job of this queue ended: (whom, which job ended, how). Taken off
    /// the backlog.
    pub fn next_notice(&mut self) -> Option<(Target, u64, Outcome)> {
        loop {
            let n = self.backlog.notices.front_mut()?;
            if let Some(t) = n.targets.get(n.next) {
                let told = (t.clone(), n.from, n.outcome);
                n.next += 1;
                if n.next == n.targets.len() {
                    self.backlog.notices.pop_front();
                }
                return Some(told);
            }
            self.backlog.notices.pop_front();
        }
    }

    /// The next dependency to hand a pin back to: (its queue, its seq). Taken off the backlog.
    pub fn next_unpin(&mut self) -> Option<(Box<[u8]>, u64)> {
        loop {
            let u = self.backlog.unpins.front_mut()?;
            if let Some(d) = u.deps.get(u.next) {
                let d = d.clone();
                u.next += 1;
                if u.next == u.deps.len() {
                    self.backlog.unpins.pop_front();
                }
                return Some(d);
            }
            self.backlog.unpins.pop_front();
        }
    }

    /// The queue of the next waiting job to tell (a step opens each queue once for a run of them).
    pub fn next_notice_queue(&self) -> Option<&[u8]> {
        let n = self.backlog.notices.front()?;
        n.targets.get(n.next).map(|t| &*t.queue)
    }

    /// The queue of the next dependency to hand a pin back to.
    pub fn next_unpin_queue(&self) -> Option<&[u8]> {
        let u = self.backlog.unpins.front()?;
        u.deps.get(u.next).map(|d| &*d.0)
    }

    /// Whether notices or pins are still to be handed out (held ones too, whenever they are due).
    pub fn has_backlog(&self) -> bool {
        !self.backlog.is_empty()
    }

    /// Holds a notice back: its waiting job's queue is missing at `now`. Tried again in `HOLD_RETRY_MS`, dropped
    /// once `until` has passed (a missing queue then is a deleted one, not one that is moving). False if dropped.
    pub fn hold_notice(&mut self, entry: NoticeTo, until: u64, now_ms: u64) -> bool {
        hold(&mut self.backlog.held_notices, entry, until, now_ms)
    }

    /// Holds a pin back, as `hold_notice` a notice: its dependency's queue is missing at `now`.
    pub fn hold_pin(&mut self, entry: PinTo, until: u64, now_ms: u64) -> bool {
        hold(&mut self.backlog.held_pins, entry, until, now_ms)
    }

    /// The first held notice, taken off the backlog if it is due at `now`.
    pub fn next_held_notice(&mut self, now_ms: u64) -> Option<Held<NoticeTo>> {
        next_due(&mut self.backlog.held_notices, now_ms)
    }

    /// The first held pin, taken off the backlog if it is due at `now`.
    pub fn next_held_pin(&mut self, now_ms: u64) -> Option<Held<PinTo>> {
        next_due(&mut self.backlog.held_pins, now_ms)
    }

    /// Tells waiting job `seq` that its link `index` — job `from_seq` of queue `from_queue` — ended as
    /// `outcome`, at `now`. Applies its ON-FAIL; the last pending link releases it. A job that no longer waits
    /// (it died of another dependency, or was cancelled) only records the outcome, for DEPS.
    pub fn tell(
        &mut self,
        seq: u64,
        index: u32,
        from_queue: &[u8],
        from_seq: u64,
        outcome: Outcome,
        now_ms: u64,
    ) -> Told {
        let Some(job) = self.job(seq) else { return Told::Nothing };
        let waiting = job.state == State::Waiting;
        let Some(w) = job.waits() else { return Told::Nothing };
        let Some(link) = w.links.get(index as usize) else { return Told::Nothing };
        if link.seq != from_seq || *link.queue != *from_queue || link.outcome != Outcome::Pending {
            return Told::Nothing;
        }
        let policy = w.on_fail;
        let text = deps::failure_text(&link.queue, &link.id, outcome);
        let mut left = 0;
        if let Some(job) = self.jobs.get_mut(seq) {
            job.edit_extra(|e| {
                if let Some(w) = e.waits.as_mut() {
                    if let Some(l) = w.links.get_mut(index as usize) {
                        l.outcome = outcome;
                    }
                    w.left = w.left.saturating_sub(1);
                    left = w.left;
                }
            });
        }
        if !waiting {
            return Told::Nothing;
        }
        if outcome.is_failure() && policy == OnFail::Fail {
            self.fail_waiting(seq, &text, now_ms);
            return Told::Died;
        }
        if left > 0 {
            return Told::Counted;
        }
        self.release_waiting(seq, now_ms);
        Told::Released
    }

    /// A waiting job with nothing left to wait for becomes ready, or delayed while its DELAY/AT is ahead.
    fn release_waiting(&mut self, seq: u64, now_ms: u64) {
        let Some(due) = self.job(seq).and_then(|j| j.waits().map(|w| w.due_ms)) else { return };
        self.unindex(seq);
        if due > now_ms {
            let Some(job) = self.jobs.get_mut(seq) else { return };
            job.state = State::Delayed;
            job.deadline_ms = due;
            job.since_ms = now_ms;
            let group = job.group;
            self.delayed.insert((due, seq));
            self.flow.count_waiting(group, false, 1);
        } else {
            self.make_ready(seq, now_ms);
        }
        self.note(Kind::Release, seq, now_ms);
    }

    /// A waiting job whose dependency failed under ON-FAIL fail: dead at `now`, with `error`.
    pub fn fail_waiting(&mut self, seq: u64, error: &[u8], now_ms: u64) {
        self.unindex(seq);
        let Some(job) = self.jobs.get_mut(seq) else { return };
        job.set_last_error(error);
        job.state = State::Dead;
        job.deadline_ms = now_ms;
        job.since_ms = now_ms;
        let (group, ttl, cancel) = (job.group, job.ttl(), job.cancel_at());
        if let Some(t) = ttl {
            self.ttls.remove(&(t.at, seq));
        }
        if let Some(c) = cancel {
            self.cancels.remove(&(c, seq));
        }
        self.dead.insert((now_ms, seq));
        self.flow.count_waiting(group, true, 1);
        self.totals.dead += 1;
        self.note(Kind::Dead, seq, now_ms);
        self.ended(seq, Outcome::Dead);
    }

    /// ONCE.AFTER: more dependencies for waiting job `seq` (links already named are skipped). Returns how many
    /// were added and, when one of them failed already under ON-FAIL fail, the error the job is to die with
    /// (`fail_waiting`, once the new links hold their pins), or None when the job does not wait.
    pub fn add_links(&mut self, seq: u64, links: Vec<Link>) -> Option<(usize, Option<Vec<u8>>)> {
        let w = self.job(seq).filter(|j| j.state == State::Waiting)?.waits()?.clone();
        let have: std::collections::HashSet<(&[u8], u64)> = w.links.iter().map(|l| (&*l.queue, l.seq)).collect();
        let mut fresh: Vec<Link> = links.into_iter().filter(|l| !have.contains(&(&*l.queue, l.seq))).collect();
        drop(have);
        // An id named twice in this call counts once, as in a push.
        let mut seen = std::collections::HashSet::with_capacity(fresh.len());
        fresh.retain(|l| seen.insert((l.queue.clone(), l.seq)));
        let added = fresh.len();
        let failed =
            fresh.iter().find(|l| l.outcome.is_failure()).map(|l| deps::failure_text(&l.queue, &l.id, l.outcome));
        let pending = fresh.iter().filter(|l| l.outcome == Outcome::Pending).count() as u32;
        let job = self.jobs.get_mut(seq)?;
        job.edit_extra(|e| {
            if let Some(w) = e.waits.as_mut() {
                w.links.extend(fresh);
                w.left += pending;
            }
        });
        Some((added, failed.filter(|_| w.on_fail == OnFail::Fail)))
    }

    /// Every pending dependency of waiting job `seq` (to walk for cycles).
    pub fn pending_links(&self, seq: u64) -> Vec<(Box<[u8]>, u64)> {
        match self.job(seq) {
            Some(j) if j.state == State::Waiting => j
                .waits()
                .map(|w| {
                    w.links.iter().filter(|l| l.outcome == Outcome::Pending).map(|l| (l.queue.clone(), l.seq)).collect()
                })
                .unwrap_or_default(),
            _ => Vec::new(),
        }
    }

    /// The backlog as one blob (RDB, AOF rewrite, digest); None when it is empty.
    pub fn backlog_blob(&self) -> Option<Vec<u8>> {
        self.has_backlog().then(|| deps::encode_backlog(&self.backlog))
    }

    /// Restores the backlog from `backlog_blob`'s blob (replacing any).
    pub fn set_backlog(&mut self, blob: &[u8]) -> Result<(), String> {
        self.backlog = deps::decode_backlog(blob)?;
        Ok(())
    }
}

fn hold<T>(held: &mut VecDeque<Held<T>>, entry: T, until: u64, now_ms: u64) -> bool {
    if now_ms >= until {
        return false;
    }
    let retry_at = now_ms.saturating_add(deps::HOLD_RETRY_MS).min(until);
    held.push_back(Held { entry, retry_at, until });
    true
}

fn next_due<T>(held: &mut VecDeque<Held<T>>, now_ms: u64) -> Option<Held<T>> {
    if held.front()?.retry_at > now_ms {
        return None;
    }
    held.pop_front()
}

#[cfg(test)]
#[path = "deps_tests.rs"]
mod tests;
