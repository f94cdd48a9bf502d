//! PURGE, RETRY ALL and the dead-set caps, all in bounded steps: nothing here touches more jobs per call
//! than the caller asks for, so a state of millions goes in many short steps, never one long stall.
//!
//! PURGE takes a state's whole index at once (O(1)); from that moment no reader sees those jobs (each read
//! checks that its job is still in its state's index), and the jobs are freed in steps. RETRY ALL marks how
//! far the dead set goes back to ready, and the timer moves it in steps.

use std::collections::BTreeSet;

use super::super::job::State;
use super::Queue;

/// Indexes a PURGE took, waiting to have their jobs freed.
#[derive(Clone, Debug, Default)]
pub struct Graveyard {
    /// Whole ready indexes (every priority's line), taken in O(1) however many priorities there are.
    lines: Vec<super::ReadyLines>,
    sets: Vec<BTreeSet<(u64, u64)>>,
    /// Jobs still in the table that no reader sees.
    pub jobs: usize,
}

impl Graveyard {
    pub fn is_empty(&self) -> bool {
        self.jobs == 0
    }

    fn next_seq(&mut self) -> Option<u64> {
        while let Some(map) = self.lines.last_mut() {
            let Some(mut line) = map.first_entry() else {
                self.lines.pop();
                continue;
            };
            match line.get_mut().pop_front() {
                Some((_, seq)) => return Some(seq),
                None => {
                    line.remove();
                }
            }
        }
        while let Some(set) = self.sets.last_mut() {
            match set.pop_first() {
                Some((_, seq)) => return Some(seq),
                None => {
                    self.sets.pop();
                }
            }
        }
        None
    }
}

/// Jobs freed per step when the caller does not say (one write command frees this many, any node).
pub const FREE_STEP: usize = 64;

impl Queue {
    /// Removes every job in `state` (ready, delayed or dead) for every reader at once; returns how many.
    /// None for reserved jobs: they belong to their workers.
    pub fn purge(&mut self, state: State) -> Option<usize> {
        let n = match state {
            State::Ready => {
                let n = self.ready_len;
                self.graveyard.lines.push(std::mem::take(&mut self.ready));
                self.ready_len = 0;
                n
            }
            State::Delayed => {
                let set = std::mem::take(&mut self.delayed);
                let n = set.len();
                self.graveyard.sets.push(set);
                n
            }
            State::Dead => {
                let set = std::mem::take(&mut self.dead);
                let n = set.len();
                self.graveyard.sets.push(set);
                self.retry_all_upto = None;
                n
            }
            // Every kept job, completed or cancelled: their ids are free again.
            State::Completed | State::Cancelled => {
                let set = std::mem::take(&mut self.kept);
                self.kept_cancelled = 0;
                let n = set.len();
                self.graveyard.sets.push(set);
                n
            }
            State::Waiting => {
                let set = std::mem::take(&mut self.waiting);
                let n = set.len();
                self.graveyard.sets.push(set);
                n
            }
            State::Reserved => return None,
        };
        let limits = self.limits();
        self.flow.purge(state, &limits);
        self.graveyard.jobs += n;
        Some(n)
    }

    /// Frees up to `max` purged jobs; returns how many. Readers saw none of them already.
    pub fn free_some(&mut self, max: usize) -> usize {
        let mut freed = 0;
        while freed < max && !self.graveyard.is_empty() {
            let Some(seq) = self.graveyard.next_seq() else {
                self.graveyard.jobs = 0;
                break;
            };
            if self.free_buried(seq) {
                freed += 1;
            }
        }
        freed
    }

    /// Frees `seq` if it is a purged job still in the table. True if it was.
    pub(super) fn free_buried(&mut self, seq: u64) -> bool {
        match self.jobs.get(seq) {
            Some(j) if !self.indexed(&j) => {}
            _ => return false,
        }
        let Some(job) = self.jobs.remove(seq) else { return false };
        self.unhint_deadlines(&job);
        if let Some(id) = job.custom_id() {
            if self.custom_ids.get(id) == Some(&seq) {
                self.custom_ids.remove(id);
            }
        }

        self.graveyard.jobs = self.graveyard.jobs.saturating_sub(1);
        true
    }

    /// When the timer has housekeeping to do for this queue (purged jobs to free).
    pub(super) fn housekeeping_deadline(&self) -> Option<u64> {
        (!self.graveyard.is_empty()).then_some(0)
    }

    // ---- dead-set caps ----

    /// When the dead set next needs the timer: now when it is over DEAD-MAX or a RETRY ALL is under way,
    /// else when its oldest job passes DEAD-TTL.
    pub(super) fn dead_deadline(&self) -> Option<u64> {
        let s = &self.settings;
        let over = s.dead_max > 0 && self.dead.len() as u64 > s.dead_max;
        if over || self.retry_all_upto.is_some() {
            return Some(0);
        }
        let &(died, _) = self.dead.first()?;
        (s.dead_ttl_ms > 0).then(|| died.saturating_add(s.dead_ttl_ms))
    }

    /// The oldest dead jobs that DEAD-MAX or DEAD-TTL drop at `now_ms`, at most `max`, oldest first.
    pub fn dead_to_drop(&self, now_ms: u64, max: usize) -> Vec<u64> {
        let s = &self.settings;
        let over = if s.dead_max > 0 { (self.dead.len() as u64).saturating_sub(s.dead_max) } else { 0 };
        self.dead
            .iter()
            .enumerate()
            .take_while(|&(i, &(died, _))| {
                (i as u64) < over || (s.dead_ttl_ms > 0 && died.saturating_add(s.dead_ttl_ms) <= now_ms)
            })
            .take(max)
            .map(|(_, &(_, seq))| seq)
            .collect()
    }

    /// Drops dead jobs (DEAD-MAX, DEAD-TTL); counted in `dead_dropped_total`. Returns how many were dead.
    pub fn drop_dead(&mut self, seqs: &[u64], now_ms: u64) -> usize {
        let mut n = 0;
        for &seq in seqs {
            if self.state_of(seq) != Some(State::Dead) {
                continue;
            }
            self.note(super::Kind::Drop, seq, now_ms);
            if self.remove(seq).is_some() {
                self.totals.dead_dropped += 1;
                n += 1;
            }
        }
        n
    }

    // ---- RETRY ALL ----

    /// Starts sending every job dead now back to ready; returns how many that is. The timer moves them.
    pub fn retry_all(&mut self) -> usize {
        self.retry_all_upto = self.dead.last().copied();
        self.dead.len()
    }

    /// The next dead jobs a RETRY ALL under way sends back, at most `max`, oldest death first.
    pub fn retry_all_next(&mut self, max: usize) -> Vec<u64> {
        let Some(upto) = self.retry_all_upto else { return Vec::new() };
        let seqs: Vec<u64> = self.dead.range(..=upto).take(max).map(|&(_, s)| s).collect();
        if seqs.len() < max {
            self.retry_all_upto = None;
        }
        seqs
    }
}
