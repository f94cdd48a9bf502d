//! One priority's line of ready jobs, first in first out, kept in fixed-size chunks: a line of millions
//! grows a chunk at a time instead of copying itself whole when it doubles (a pause of milliseconds).
//!
//! Every entry has an absolute position that never changes while the line lives (the line counts what left
//! its front), and a ready job remembers its position. So removal from anywhere (CANCEL, an exact reserve) is
//! O(1) — the entry becomes a tombstone, dropped when it reaches the front — and a walk can resume from a
//! position (ONCE.LIST's cursor) in O(1) whatever happened before it.

use std::collections::VecDeque;

const CHUNK: usize = 4096;
const TOMB: u64 = u64::MAX;

#[derive(Clone, Debug, Default)]
pub struct Line {
    /// Every chunk but the first and the last is full, so a position maps to its chunk by division.
    chunks: VecDeque<VecDeque<u64>>,
    /// Absolute position of the first entry.
    head: u64,
    /// Live entries (tombstones not counted).
    len: usize,
}

impl Line {
    /// An empty line whose first entry will stand at `pos` (a line that replaces an emptied or purged one goes
    /// on from where that one ended, so a cursor from before never skips what joins later).
    pub fn starting_at(pos: u64) -> Line {
        Line { head: pos, ..Line::default() }
    }

    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Appends `seq`; returns its position.
    pub fn push_back(&mut self, seq: u64) -> u64 {
        let pos = self.head + self.raw_len() as u64;
        match self.chunks.back_mut() {
            Some(last) if last.len() < CHUNK => last.push_back(seq),
            _ => {
                // The first chunk of a line grows as it fills (most lines are short: one per group and
                // priority); later ones start full size, since their line is long already.
                let mut chunk = if self.chunks.is_empty() { VecDeque::new() } else { VecDeque::with_capacity(CHUNK) };
                chunk.push_back(seq);
                self.chunks.push_back(chunk);
            }
        }
        self.len += 1;
        pos
    }

    fn raw_len(&self) -> usize {
        match self.chunks.len() {
            0 => 0,
            n => {
                self.chunks[0].len() + (n.saturating_sub(2)) * CHUNK + if n > 1 { self.chunks[n - 1].len() } else { 0 }
            }
        }
    }

    fn slot(&self, pos: u64) -> Option<(usize, usize)> {
        let i = usize::try_from(pos.checked_sub(self.head)?).ok()?;
        let first = self.chunks.front()?.len();
        let (c, o) = if i < first { (0, i) } else { (1 + (i - first) / CHUNK, (i - first) % CHUNK) };
        (c < self.chunks.len() && o < self.chunks[c].len()).then_some((c, o))
    }

    /// The live seq at `pos`, if any.
    pub fn at(&self, pos: u64) -> Option<u64> {
        let (c, o) = self.slot(pos)?;
        let v = self.chunks[c][o];
        (v != TOMB).then_some(v)
    }

    fn pop_raw(&mut self) -> Option<u64> {
        let first = self.chunks.front_mut()?;
        let v = first.pop_front();
        if first.is_empty() {
            self.chunks.pop_front();
        }
        if v.is_some() {
            self.head += 1;
        }
        v
    }

    /// Drops tombstones at the front, so the front is live.
    fn settle_front(&mut self) {
        while self.chunks.front().and_then(|c| c.front()) == Some(&TOMB) {
            self.pop_raw();
        }
    }

    pub fn front(&self) -> Option<u64> {
        self.iter_from(self.head).next().map(|(_, s)| s)
    }

    /// Takes the first live entry: (position, seq).
    pub fn pop_front(&mut self) -> Option<(u64, u64)> {
        self.settle_front();
        let pos = self.head;
        let v = self.pop_raw()?;
        self.len -= 1;
        self.settle_front();
        Some((pos, v))
    }

    /// Takes out `seq` at `pos`. False if it is not there.
    pub fn remove_at(&mut self, pos: u64, seq: u64) -> bool {
        let Some((c, o)) = self.slot(pos) else { return false };
        if self.chunks[c][o] != seq || seq == TOMB {
            return false;
        }
        self.chunks[c][o] = TOMB;
        self.len -= 1;
        self.settle_front();
        if self.len == 0 {
            // Positions keep growing: a walk resumed from an older position finds nothing, never a newcomer.
            self.head += self.raw_len() as u64;
            self.chunks.clear();
        }
        true
    }

    /// The live entries from `pos` on, as (position, seq), front first.
    pub fn iter_from(&self, pos: u64) -> impl Iterator<Item = (u64, u64)> + '_ {
        let start = pos.max(self.head);
        let skip = usize::try_from(start - self.head).unwrap_or(usize::MAX);
        self.chunks
            .iter()
            .flat_map(|c| c.iter().copied())
            .skip(skip)
            .zip(start..)
            .filter(|&(s, _)| s != TOMB)
            .map(|(s, p)| (p, s))
    }

    /// The live seqs, front first.
    pub fn iter(&self) -> impl Iterator<Item = u64> + '_ {
        self.iter_from(self.head).map(|(_, s)| s)
    }

    /// Where the line starts (the first position a walk may ask for).
    pub fn head(&self) -> u64 {
        self.head
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
    fn fifo_across_chunks_with_removal_anywhere() {
        let mut l = Line::default();
        for s in 0..10_000u64 {
            assert_eq!(l.push_back(s), s);
        }
        assert_eq!(l.len(), 10_000);
        assert_eq!(l.pop_front(), Some((0, 0)));
        assert!(l.remove_at(5000, 5000));
        assert!(!l.remove_at(5000, 5000));
        assert!(!l.remove_at(5001, 7), "the seq must match its position");
        assert_eq!(l.front(), Some(1));
        assert_eq!(l.at(4999), Some(4999));
        assert_eq!(l.at(5000), None);
        let all: Vec<u64> = l.iter().collect();
        assert_eq!(all.len(), 9_998);
        assert!(all.windows(2).all(|w| w[0] < w[1]) && !all.contains(&5000));
        assert_eq!(l.iter_from(9_998).collect::<Vec<_>>(), vec![(9_998, 9_998), (9_999, 9_999)]);
        while l.pop_front().is_some() {}
        assert!(l.is_empty() && l.front().is_none());
    }

    #[test]
    fn positions_stay_put_while_the_front_moves_and_tombstones_pass() {
        let mut l = Line::default();
        for s in 0..(3 * CHUNK as u64 + 10) {
            l.push_back(100 + s);
        }
        for p in 1..=CHUNK as u64 + 5 {
            assert!(l.remove_at(p, 100 + p));
        }
        assert_eq!(l.pop_front(), Some((0, 100)));
        // The front skipped every tombstone; later positions still name the same seqs.
        assert_eq!(l.front(), Some(100 + CHUNK as u64 + 6));
        let p = 2 * CHUNK as u64 + 3;
        assert_eq!(l.at(p), Some(100 + p));
        assert_eq!(l.iter_from(p).next(), Some((p, 100 + p)));
        assert_eq!(l.push_back(7), 3 * CHUNK as u64 + 10);
    }

    #[test]
    fn an_emptied_line_never_reuses_a_position() {
        let mut l = Line::default();
        let a = l.push_back(1);
        assert!(l.remove_at(a, 1));
        assert!(l.is_empty());
        let b = l.push_back(2);
        assert!(b > a);
        assert_eq!(l.at(a), None);
        assert_eq!(l.iter_from(a).collect::<Vec<_>>(), vec![(b, 2)]);
    }
}
