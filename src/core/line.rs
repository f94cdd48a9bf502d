//! One priority's line of ready jobs, first in first out, kept in fixed-size chunks: a line of millions
//! grows a chunk at a time instead of copying itself whole when it doubles (a pause of milliseconds).

use std::collections::VecDeque;

const CHUNK: usize = 4096;

#[derive(Clone, Debug, Default)]
pub struct Line {
    chunks: VecDeque<VecDeque<u64>>,
    len: usize,
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

    pub fn front(&self) -> Option<&u64> {
        self.chunks.front().and_then(|c| c.front())
    }

    pub fn pop_front(&mut self) -> Option<u64> {
        let first = self.chunks.front_mut()?;
        let v = first.pop_front();
        if first.is_empty() {
            self.chunks.pop_front();
        }
        if v.is_some() {
            self.len -= 1;
        }
        v
    }

    /// Removes `seq` wherever it stands (a linear search: only a replica that diverged needs it).
    pub fn remove(&mut self, seq: u64) -> bool {
        for i in 0..self.chunks.len() {
            if let Some(pos) = self.chunks[i].iter().position(|&s| s == seq) {
                self.chunks[i].remove(pos);
                if self.chunks[i].is_empty() {
                    self.chunks.remove(i);
                }
                self.len -= 1;
                return true;
            }
        }
        false
    }

    pub fn iter(&self) -> impl Iterator<Item = &u64> {
        self.chunks.iter().flat_map(|c| c.iter())
    }

    pub fn bytes(&self) -> usize {
        self.chunks.iter().map(|c| c.capacity() * std::mem::size_of::<u64>()).sum::<usize>()
            + self.chunks.capacity() * std::mem::size_of::<VecDeque<u64>>()
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
        assert!(l.remove(5000));
        assert!(!l.remove(5000));
        assert_eq!(l.front(), Some(&1));
        let all: Vec<u64> = l.iter().copied().collect();
        assert_eq!(all.len(), 9_998);
        assert!(all.windows(2).all(|w| w[0] < w[1]) && !all.contains(&5000));
        while l.pop_front().is_some() {}
        assert!(l.is_empty() && l.front().is_none());
    }
}
