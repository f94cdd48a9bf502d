//! One priority's line of ready jobs, first in first out, kept in fixed-size chunks: a line of millions
//! grows a chunk at a time instead of copying itself whole when it doubles (a pause of milliseconds).

use std::collections::{HashMap, VecDeque};

const CHUNK: usize = 4096;

/// Removal from the middle (CANCEL, PURGE) is O(1): the entry stays where it is, counted in `stale`, and is
/// dropped when it reaches the front or skipped when the line is walked. A seq may stand in the line more
/// than once (it left and came back): its stale occurrences are always the earliest ones.
#[derive(Clone, Debug, Default)]
pub struct Line {
    chunks: VecDeque<VecDeque<u64>>,
    /// Live entries.
    len: usize,
    stale: HashMap<u64, u32>,
}

impl Line {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn push_back(&mut self, seq: u64) {
        match self.chunks.back_mut() {
            Some(last) if last.len() < CHUNK => last.push_back(seq),
            _ => {
                let mut chunk = VecDeque::with_capacity(CHUNK);
                chunk.push_back(seq);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
    }

    fn pop_raw(&mut self) -> Option<u64> {
        let first = self.chunks.front_mut()?;
        let v = first.pop_front();
        if first.is_empty() {
            self.chunks.pop_front();
        }
        v
    }

    /// Drops stale entries at the front, so the front is live.
    fn settle_front(&mut self) {
        while let Some(&seq) = self.chunks.front().and_then(|c| c.front()) {
            match self.stale.get_mut(&seq) {
                Some(n) => {
                    *n -= 1;
                    if *n == 0 {
                        self.stale.remove(&seq);
                    }
                    self.pop_raw();
                }
                None => break,
            }
        }
    }

    pub fn front(&mut self) -> Option<u64> {
        self.settle_front();
        self.chunks.front().and_then(|c| c.front()).copied()
    }

    pub fn pop_front(&mut self) -> Option<u64> {
        self.settle_front();
        let v = self.pop_raw();
        if v.is_some() {
            self.len -= 1;
        }
        v
    }

    /// Takes out `seq`, which the caller knows to be live in this line: O(1) wherever it stands.
    pub fn remove(&mut self, seq: u64) {
        if self.front() == Some(seq) {
            self.pop_front();
            return;
        }
        *self.stale.entry(seq).or_insert(0) += 1;
        self.len -= 1;
        if self.len == 0 {
            self.chunks.clear();
            self.stale.clear();
        }
    }

    /// The live entries, front first.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        let mut skip = self.stale.clone();
        self.chunks.iter().flat_map(|c| c.iter().copied()).filter(move |s| match skip.get_mut(s) {
            Some(n) if *n > 0 => {
                *n -= 1;
                false
            }
            _ => true,
        })
    }

    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity() * std::mem::size_of::<u64>()).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<VecDeque<u64>>()
            + self.stale.capacity() * 16
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fifo_across_chunks_with_removal() {
        let mut l = Line::default();
        for s in 0..10_000u64 {
            l.push_back(s);
        }
        assert_eq!(l.len(), 10_000);
        assert_eq!(l.pop_front(), Some(0));
        l.remove(5000);
        assert_eq!(l.front(), Some(1));
        let all: Vec<u64> = l.iter().collect();
        assert_eq!(all.len(), 9_998);
        assert!(all.windows(2).all(|w| w[0] < w[1]) && !all.contains(&5000));
        while l.pop_front().is_some() {}
        assert!(l.is_empty() && l.front().is_none());
    }

    #[test]
    fn a_seq_that_left_the_middle_and_came_back_is_served_at_its_new_place() {
        let mut l = Line::default();
        for s in [1, 2, 3] {
            l.push_back(s);
        }
        l.remove(2);
        l.push_back(2);
        l.remove(1);
        assert_eq!(l.len(), 2);
        assert_eq!(l.iter().collect::<Vec<_>>(), vec![3, 2]);
        assert_eq!((l.pop_front(), l.pop_front(), l.pop_front()), (Some(3), Some(2), None));
        assert!(l.is_empty());
    }
}
