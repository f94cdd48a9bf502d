//! The job table: jobs by seq, in pages of consecutive seqs.
//!
//! Jobs are made with rising seqs and mostly leave in the same order, so keeping neighbours together
//! turns the random memory accesses of a hash table into sequential ones, and a page is freed as soon
//! as its last job leaves. A job that stays for long (dead, say) keeps only its own page alive.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::job::Job;

/// Slots per page: 85 × 96 bytes = 8160, just inside jemalloc's 8 KiB size class (64 × 96 would round
/// 6144 exactly, but 8 KiB pages halve the page count).
const PAGE: u64 = 85;

/// Page numbers are already well spread integers: one multiply is hash enough.
#[derive(Default, Clone, Copy)]
pub struct PageHasher(u64);

impl Hasher for PageHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
    fn write_u64(&mut self, n: u64) {
        self.0 = n.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    }
}

/// The slots alone fill a jemalloc size class with at most 8 bytes to spare (the page's live count lives
/// beside it in the map, where slots + 4 bytes would round up to the next class).
type Slots = [Option<Job>; PAGE as usize];

#[derive(Clone, Debug)]
struct Page {
    slots: Box<Slots>,
    live: u32,
}

#[derive(Clone, Debug, Default)]
pub struct JobTable {
    pages: HashMap<u64, Page, BuildHasherDefault<PageHasher>>,
    len: usize,
}

impl JobTable {
    pub fn len(&self) -> usize {
        self.len
    }

    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    pub fn pages(&self) -> usize {
        self.pages.len()
    }

    pub fn get(&self, seq: u64) -> Option<&Job> {
        self.pages.get(&(seq / PAGE))?.slots[(seq % PAGE) as usize].as_ref()
    }

    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Job> {
        self.pages.get_mut(&(seq / PAGE))?.slots[(seq % PAGE) as usize].as_mut()
    }

    pub fn contains_key(&self, seq: u64) -> bool {
        self.get(seq).is_some()
    }

    /// Stores a job under its seq; false (and nothing changed) if that seq is taken.
    pub fn insert(&mut self, job: Job) -> bool {
        let seq = job.seq;
        let page = self
            .pages
            .entry(seq / PAGE)
            .or_insert_with(|| Page { slots: Box::new(std::array::from_fn(|_| None)), live: 0 });
        let slot = &mut page.slots[(seq % PAGE) as usize];
        if slot.is_some() {
            return false;
        }
        *slot = Some(job);
        page.live += 1;
        self.len += 1;
        true
    }

    pub fn remove(&mut self, seq: u64) -> Option<Job> {
        let page_no = seq / PAGE;
        let page = self.pages.get_mut(&page_no)?;
        let job = page.slots[(seq % PAGE) as usize].take()?;
        page.live -= 1;
        self.len -= 1;
        if page.live == 0 {
            self.pages.remove(&page_no);
        }
        Some(job)
    }

    pub fn values(&self) -> impl Iterator<Item = &Job> {
        self.pages.values().flat_map(|p| p.slots.iter().flatten())
    }

    /// The jobs by seq. Only the page numbers are gathered and sorted (one per 85 jobs), so a save can walk
    /// millions of jobs in order without a list of them.
    pub fn values_by_seq(&self) -> impl Iterator<Item = &Job> {
        let mut pages: Vec<u64> = self.pages.keys().copied().collect();
        pages.sort_unstable();
        pages.into_iter().filter_map(|n| self.pages.get(&n)).flat_map(|p| p.slots.iter().flatten())
    }

    pub fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.values().map(|j| j.seq)
    }

    /// Bytes held by the table itself (not by the jobs' own allocations).
    pub fn table_bytes(&self) -> usize {
        self.pages.capacity() * (std::mem::size_of::<(u64, Page)>() + 1)
            + self.pages.len() * std::mem::size_of::<Slots>()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::State;

    fn job(seq: u64) -> Job {
        Job {
            seq,
            created_ms: 1,
            extra: None,
            payload: Default::default(),
            state: State::Ready,
            attempts: 0,
            retries: 0,
            backoff_ms: 0,
            since_ms: 0,
            group: 0,
            lease_ms: 0,
            priority: 0,
            deadline_ms: 0,
        }
    }

    #[test]
    fn a_page_of_slots_fills_a_jemalloc_size_class() {
        let size = std::mem::size_of::<Slots>();
        assert!(size <= 8192 && 8192 - size <= 32, "{size}");
    }

    #[test]
    fn insert_get_remove_and_pages_freed() {
        let mut t = JobTable::default();
        for s in 0..200 {
            assert!(t.insert(job(s)));
        }
        assert!(!t.insert(job(5)));
        assert_eq!(t.len(), 200);
        assert_eq!(t.pages(), 3);
        assert_eq!(t.get(130).map(|j| j.seq), Some(130));
        for s in 0..PAGE {
            assert!(t.remove(s).is_some());
        }
        assert_eq!(t.pages(), 2);
        assert!(t.get(3).is_none());
        assert!(t.remove(3).is_none());
        assert_eq!(t.values().count(), 200 - PAGE as usize);
        assert!(t.insert(job(u64::MAX >> 1)));
        assert_eq!(t.pages(), 3);
    }
}
