//! ONCE.LIST: a walk over one state in the order the contract names, a page at a time, from a cursor that
//! survives writes in between. A page costs O(log n + COUNT): the cursor names where the next page starts —
//! (group, priority, position in its line) for ready jobs, (time, seq) in the index for the others — and
//! those never change while a job stays in its state, so such a job is returned exactly once. With groups,
//! ready jobs are listed group by group (each in the order RESERVE serves it), not interleaved.

use std::cmp::Reverse;
use std::ops::Bound::{Included, Unbounded};

use super::super::job::State;
use super::Queue;

/// Where a page starts: the first job it returns, as the index of the state orders it: (group, priority,
/// position) for ready jobs, (0, time, seq) for the others.
pub type Cursor = (u64, i64, u64);

impl Queue {
    /// Up to `count` jobs of `state` from `from` on (None: from the start), and where the next page starts
    /// (None: the walk is done).
    pub fn list(&self, state: State, from: Option<Cursor>, count: usize) -> (Vec<u64>, Option<Cursor>) {
        let mut out: Vec<(Cursor, u64)> = Vec::with_capacity(count + 1);
        let want = count + 1;
        match state {
            State::Ready => {
                let clamp = |p: i64| p.clamp(i64::from(i32::MIN), i64::from(i32::MAX)) as i32;
                let start = from.map_or(Unbounded, |(g, p, _)| Included((g.min(u64::from(u32::MAX)) as u32, Reverse(clamp(p)))));
                for (&(g, Reverse(p)), line) in self.ready.range((start, Unbounded)) {
                    let pos = match from {
                        Some((fg, fp, fpos)) if fg == u64::from(g) && fp == i64::from(p) => fpos,
                        _ => line.head(),
                    };
                    out.extend(
                        line.iter_from(pos).take(want - out.len()).map(|(pos, s)| ((u64::from(g), i64::from(p), pos), s)),
                    );
                    if out.len() >= want {
                        break;
                    }
                }
            }
            State::Delayed | State::Reserved => {
                let set = if state == State::Delayed { &self.delayed } else { &self.leases };
                let start = from.map_or(Unbounded, |(_, t, s)| Included((t as u64, s)));
                out.extend(set.range((start, Unbounded)).take(want).map(|&(t, s)| ((0, t as i64, s), s)));
            }
            State::Dead => {
                let end = from.map_or(Unbounded, |(_, t, s)| Included((t as u64, s)));
                out.extend(self.dead.range((Unbounded, end)).rev().take(want).map(|&(t, s)| ((0, t as i64, s), s)));
            }
        }
        let next = (out.len() > count).then(|| out[count].0);
        out.truncate(count);
        (out.into_iter().map(|(_, s)| s).collect(), next)
    }
}
