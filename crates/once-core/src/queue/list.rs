//! ONCE.LIST: a walk over one state in the order the contract names, a page at a time, from a cursor that
//! survives writes in between. A page costs O(log n + COUNT): the cursor names where the next page starts —
//! (group, priority, position in its line) for ready jobs, (time, seq) in the index for the others — and
//! those never change while a job stays in its state, so such a job is returned exactly once. With groups,
//! ready jobs are listed group by group (each in the order RESERVE serves it), not interleaved. A filtered
//! walk (MATCH) examines a bounded number of jobs per call and goes on from the first it did not examine.

use std::cmp::Reverse;
use std::ops::Bound::{Included, Unbounded};

use super::super::job::{Job, State};
use super::Queue;

/// Where a page starts: the first job it returns, as the index of the state orders it: (group, priority,
/// position) for ready jobs, (0, time, seq) for the others.
pub type Cursor = (u64, i64, u64);

/// How much a walk may look at: jobs, and the steps a filter takes over them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Budget {
    pub jobs: usize,
    pub steps: usize,
}

impl Budget {
    pub const UNLIMITED: Budget = Budget { jobs: usize::MAX, steps: usize::MAX };
}

impl Queue {
    /// Up to `count` jobs of `state` from `from` on (None: from the start), and where the next page starts
    /// (None: the walk is done).
    pub fn list(&self, state: State, from: Option<Cursor>, count: usize) -> (Vec<u64>, Option<Cursor>) {
        self.list_where(state, from, count, Budget::UNLIMITED, |_| (true, 0))
    }

    /// As `list`, keeping only the jobs `keep` accepts; `keep` says whether it does and how many steps it took.
    /// The walk stops once `budget` is spent (after one job at least, so every call moves on), and the cursor
    /// then names the first job not examined: a page may hold fewer than `count` jobs, or none, before the end.
    pub fn list_where(
        &self,
        state: State,
        from: Option<Cursor>,
        count: usize,
        budget: Budget,
        mut keep: impl FnMut(&Job) -> (bool, usize),
    ) -> (Vec<u64>, Option<Cursor>) {
        let mut out = Vec::with_capacity(count.min(1024));
        let (mut jobs, mut steps) = (0usize, 0usize);
        for (cursor, seq) in self.walk(state, from) {
            if out.len() >= count || jobs >= budget.jobs || steps >= budget.steps {
                return (out, Some(cursor));
            }
            jobs += 1;
            if let Some(job) = self.jobs.get(seq) {
                let (kept, took) = keep(&job);
                steps = steps.saturating_add(took);
                if kept {
                    out.push(seq);
                }
            }
        }
        (out, None)
    }

    /// The jobs of `state` in its order from `from` on, each with the cursor that names it.
    fn walk(&self, state: State, from: Option<Cursor>) -> Box<dyn Iterator<Item = (Cursor, u64)> + '_> {
        match state {
            State::Ready => {
                let clamp = |p: i64| p.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
                let start = from
                    .map_or(Unbounded, |(g, p, _)| Included((g.min(u64::from(u32::MAX)) as u32, Reverse(clamp(p)))));
                Box::new(self.ready.range((start, Unbounded)).flat_map(move |(&(g, Reverse(p)), line)| {
                    let pos = match from {
                        Some((fg, fp, fpos)) if fg == u64::from(g) && fp == i64::from(p) => fpos,
                        _ => line.head(),
                    };
                    line.iter_from(pos).map(move |(pos, s)| ((u64::from(g), i64::from(p), pos), s))
                }))
            }
            State::Delayed | State::Reserved | State::Waiting => {
                let set = match state {
                    State::Delayed => &self.delayed,
                    State::Waiting => &self.waiting,
                    _ => &self.leases,
                };
                let start = from.map_or(Unbounded, |(_, t, s)| Included((t as u64, s)));
                Box::new(set.range((start, Unbounded)).map(|&(t, s)| ((0, t as i64, s), s)))
            }
            State::Dead => {
                let end = from.map_or(Unbounded, |(_, t, s)| Included((t as u64, s)));
                Box::new(self.dead.range((Unbounded, end)).rev().map(|&(t, s)| ((0, t as i64, s), s)))
            }
            // Kept jobs by the time they go; completed and cancelled share the index.
            State::Completed | State::Cancelled => {
                let start = from.map_or(Unbounded, |(_, t, s)| Included((t as u64, s)));
                Box::new(
                    self.kept
                        .range((start, Unbounded))
                        .filter(move |&&(_, s)| self.jobs.get(s).is_some_and(|j| j.state == state))
                        .map(|&(t, s)| ((0, t as i64, s), s)),
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::{NewJob, Pushed};
    use super::*;

    fn queue_of(n: u64) -> Queue {
        let mut q = Queue::new();
        for i in 0..n {
            let new = NewJob {
                custom_id: None,
                payload: format!("job-{i}").into_bytes().into(),
                due_ms: 0,
                retries: 0,
                backoff_ms: 0,
                lease_ms: 0,
                priority: (i % 3) as i32,
                group: None,
                keep_ms: None,
                ttl: None,
                cancel_at: None,
                waits: None,
            };
            assert!(matches!(q.push(new, 1000 + i), Pushed::Added(_)));
        }
        q
    }

    fn is_7(j: &Job) -> (bool, usize) {
        (j.payload.ends_with(b"7"), j.payload.len())
    }

    #[test]
    fn a_filtered_walk_stops_at_its_budget_and_goes_on_from_the_first_job_not_examined() {
        let q = queue_of(100);
        let budget = Budget { jobs: 15, steps: usize::MAX };
        let (mut found, mut cursor, mut calls) = (Vec::new(), None, 0);
        loop {
            let (page, next) = q.list_where(State::Ready, cursor, 3, budget, is_7);
            assert!(page.len() <= 3);
            found.extend(page);
            calls += 1;
            match next {
                Some(c) => cursor = Some(c),
                None => break,
            }
        }
        let want: Vec<u64> =
            q.list(State::Ready, None, 1000).0.into_iter().filter(|&s| is_7(&q.job(s).unwrap()).0).collect();
        assert_eq!(found, want, "every match once, in LIST's order");
        assert!(calls >= 100 / 15, "{calls}");
    }

    #[test]
    fn a_page_may_be_empty_before_the_end_and_the_step_budget_stops_after_one_job_at_least() {
        let q = queue_of(50);
        let (page, next) = q.list_where(State::Ready, None, 10, Budget { jobs: 5, steps: usize::MAX }, |_| (false, 1));
        assert!(page.is_empty() && next.is_some());
        let (page, next) = q.list_where(State::Ready, None, 10, Budget { jobs: 100, steps: 1 }, |_| (true, 1000));
        assert_eq!(page.len(), 1);
        let (rest, _) = q.list(State::Ready, next, 1000);
        assert_eq!(rest.len(), 49);
        assert!(!rest.contains(&page[0]));
    }

    #[test]
    fn unfiltered_pages_are_unchanged() {
        let q = queue_of(10);
        let (a, next) = q.list(State::Ready, None, 4);
        let (b, next2) = q.list(State::Ready, next, 4);
        let (c, end) = q.list(State::Ready, next2, 4);
        assert_eq!((a.len(), b.len(), c.len(), end), (4, 4, 2, None));
        let all: Vec<u64> = a.into_iter().chain(b).chain(c).collect();
        assert_eq!(all, q.peek_ready(10));
        assert_eq!(q.list(State::Ready, None, 10).1, None, "exactly COUNT left: the walk is done");
    }
}
