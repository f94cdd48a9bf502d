//! The job table: jobs by seq, in pages of consecutive seqs.
//!
//! Jobs are made with rising seqs and mostly leave in the same order, so keeping neighbours together
//! turns the random memory accesses of a hash table into sequential ones, and a page is freed as soon
//! as its last job leaves. A job that stays for long (dead, say) keeps only its own page alive.
//!
//! A page holds each job in one of two forms: a fresh ready job as a packed record in the page's byte
//! arena (`packed.rs`), every other job as a full `Job`. Reading a packed job decodes it; changing one
//! turns it into a full job first, so a job is full from its first reservation on.

use std::borrow::Cow;
use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use super::job::{Head, Job};
use super::packed::{self, Classes};

/// Seqs per page: the offsets (2 bytes a job) and the page's own header then cost under 3 bytes a job.
const PAGE: u64 = 128;

/// A slot's value: 0 empty; `FULL | i` the page's full job `i`; else 1 + the record's offset in the arena.
const EMPTY: u16 = 0;
const FULL: u16 = 0x8000;

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

/// A job as the table gives it: borrowed when it is a full job, decoded when it was packed.
pub type JobRef<'a> = Cow<'a, Job>;

#[derive(Clone, Debug)]
struct Page {
    slots: [u16; PAGE as usize],
    /// Packed records' times count from here (the first packed job's creation).
    base_ms: u64,
    arena: Vec<u8>,
    /// Bytes of the arena whose records are gone (squeezed out when they are half of it).
    dead: usize,
    full: Vec<Job>,
    live: u32,
}

impl Page {
    fn new(base_ms: u64) -> Box<Page> {
        Box::new(Page { slots: [EMPTY; PAGE as usize], base_ms, arena: Vec::new(), dead: 0, full: Vec::new(), live: 0 })
    }

    /// What the page holds on the heap, as the allocator sees it.
    fn bytes(&self) -> usize {
        std::mem::size_of::<Page>() + self.arena.capacity() + self.full.capacity() * std::mem::size_of::<Job>()
    }

    fn get(&self, slot: usize, seq: u64, classes: &Classes) -> Option<JobRef<'_>> {
        match self.slots[slot] {
            EMPTY => None,
            v if v & FULL != 0 => self.full.get(usize::from(v & !FULL)).map(Cow::Borrowed),
            v => packed::decode(&self.arena, usize::from(v - 1), seq, self.base_ms, classes).map(Cow::Owned),
        }
    }

    fn add_full(&mut self, slot: usize, job: Job) {
        if self.full.len() == self.full.capacity() {
            // Grows by a quarter, not by half again: a page of delayed jobs stays near its size.
            let room = (self.full.len() / 4).max(4).min(PAGE as usize - self.full.len()).max(1);
            self.full.reserve_exact(room);
        }
        self.slots[slot] = FULL | self.full.len() as u16;
        self.full.push(job);
    }

    /// Packs the job into the arena; false (nothing changed) when the arena has no offset left for it (a page
    /// of long ids and payloads: the job then keeps its full record).
    fn add_packed(&mut self, slot: usize, job: &Job, classes: &mut Classes) -> bool {
        self.add_fresh(slot, &packed::Fresh::of(job), packed::Class::of(job), classes)
    }

    fn add_fresh(&mut self, slot: usize, f: &packed::Fresh<'_>, class: packed::Class, classes: &mut Classes) -> bool {
        let Some(at) = self.room() else { return false };
        packed::encode_fresh(f, class, self.base_ms, classes, &mut self.arena);
        self.slots[slot] = at as u16 + 1;
        true
    }

    /// Where the next record goes, if an offset can still name it.
    fn room(&mut self) -> Option<usize> {
        if self.arena.len() >= usize::from(FULL - 2) {
            self.squeeze();
        }
        Some(self.arena.len()).filter(|&at| at < usize::from(FULL - 2))
    }

    /// Takes the job out of its slot, as a full job.
    fn take(&mut self, slot: usize, seq: u64, classes: &mut Classes) -> Option<Job> {
        let v = self.slots[slot];
        if v == EMPTY {
            return None;
        }
        self.slots[slot] = EMPTY;
        if v & FULL != 0 {
            let i = usize::from(v & !FULL);
            let job = self.full.swap_remove(i);
            if let Some(moved) = self.full.get(i) {
                self.slots[(moved.seq % PAGE) as usize] = FULL | i as u16;
            }
            return Some(job);
        }
        let at = usize::from(v - 1);
        let job = packed::decode(&self.arena, at, seq, self.base_ms, classes);
        if let Some(end) = packed::release(&self.arena, at, classes) {
            self.dead += end - at;
        }
        if self.dead * 2 > self.arena.len() {
            self.squeeze();
        }
        job
    }

    /// Rewrites the arena with only the live records, in slot order.
    fn squeeze(&mut self) {
        let mut arena = Vec::with_capacity(self.arena.len() - self.dead);
        for v in self.slots.iter_mut().filter(|v| **v != EMPTY && **v & FULL == 0) {
            let at = usize::from(*v - 1);
            let end = packed::end_of(&self.arena, at).unwrap_or(at);
            *v = arena.len() as u16 + 1;
            arena.extend_from_slice(&self.arena[at..end]);
        }
        self.arena = arena;
        self.dead = 0;
    }
}

#[derive(Clone, Debug, Default)]
pub struct JobTable {
    pages: HashMap<u64, Box<Page>, BuildHasherDefault<PageHasher>>,
    classes: Classes,
    len: usize,
    full_len: usize,
    /// The pages' own heap bytes, kept as they change so that MEMORY USAGE need not walk them.
    page_bytes: usize,
}

pub struct TableReader<'a> {
    table: &'a JobTable,
    last: Option<(u64, &'a Page)>,
}

impl<'a> TableReader<'a> {
    /// The page of `seq`, looked up only when it is not the last one read.
    fn page(&mut self, seq: u64) -> Option<&'a Page> {
        let no = seq / PAGE;
        if let Some((_, p)) = self.last.filter(|(n, _)| *n == no) {
            return Some(p);
        }
        let p: &'a Page = self.table.pages.get(&no)?;
        self.last = Some((no, p));
        Some(p)
    }

    pub fn get(&mut self, seq: u64) -> Option<JobRef<'a>> {
        self.page(seq)?.get(slot_of(seq), seq, &self.table.classes)
    }

    /// The parts of job `seq` if it is packed (None: a full job, or none).
    pub fn packed(&mut self, seq: u64) -> Option<packed::Parts<'a>> {
        let page = self.page(seq)?;
        match page.slots[slot_of(seq)] {
            EMPTY => None,
            v if v & FULL != 0 => None,
            v => packed::parts(&page.arena, usize::from(v - 1), page.base_ms),
        }
    }

    pub fn class(&self, id: u32) -> Option<packed::Class> {
        packed::class_of(&self.table.classes, id)
    }
}

fn slot_of(seq: u64) -> usize {
    (seq % PAGE) as usize
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

    /// Jobs held as full records (the rest are packed).
    pub fn full_len(&self) -> usize {
        self.full_len
    }

    pub fn get(&self, seq: u64) -> Option<JobRef<'_>> {
        self.pages.get(&(seq / PAGE))?.get(slot_of(seq), seq, &self.classes)
    }

    /// The job to change, as a full job (a packed one is unpacked first: it is about to stop being fresh).
    pub fn get_mut(&mut self, seq: u64) -> Option<&mut Job> {
        let page = self.pages.get_mut(&(seq / PAGE))?;
        let slot = slot_of(seq);
        let v = page.slots[slot];
        if v == EMPTY {
            return None;
        }
        if v & FULL == 0 {
            let before = page.bytes();
            let job = page.take(slot, seq, &mut self.classes)?;
            page.add_full(slot, job);
            self.full_len += 1;
            self.page_bytes = self.page_bytes + page.bytes() - before;
        }
        let i = usize::from(page.slots[slot] & !FULL);
        page.full.get_mut(i)
    }

    /// Packs the job again if it is a full job that has become a fresh ready one (a delayed job that fell due
    /// before any reservation): a million jobs pushed with DELAY cost, once due, what pushed ones cost.
    pub fn repack(&mut self, seq: u64) {
        let Some(page) = self.pages.get_mut(&(seq / PAGE)) else { return };
        let slot = slot_of(seq);
        let v = page.slots[slot];
        if v & FULL == 0 || !page.full.get(usize::from(v & !FULL)).is_some_and(packed::packable) {
            return;
        }
        let before = page.bytes();
        if let Some(job) = page.take(slot, seq, &mut self.classes) {
            if page.add_packed(slot, &job, &mut self.classes) {
                self.full_len -= 1;
            } else {
                page.add_full(slot, job);
            }
        }
        self.page_bytes = self.page_bytes + page.bytes() - before;
    }

    pub fn contains_key(&self, seq: u64) -> bool {
        self.pages.get(&(seq / PAGE)).is_some_and(|p| p.slots[slot_of(seq)] != EMPTY)
    }

    /// Stores a job under its seq (packed when it is a fresh ready job); false (and nothing changed) if that
    /// seq is taken.
    pub fn insert(&mut self, job: Job) -> bool {
        if packed::packable(&job) {
            return self.insert_fresh(&packed::Fresh::of(&job), packed::Class::of(&job));
        }
        self.place(job.seq, job.created_ms, |page, slot, _| {
            page.add_full(slot, job);
            false
        })
    }

    /// Stores a fresh ready job given by its parts (a run being loaded, or a packable job), packed unless its
    /// page has no offset left; false if that seq is taken.
    pub fn insert_fresh(&mut self, f: &packed::Fresh<'_>, class: packed::Class) -> bool {
        let packable = f.payload.len() <= packed::MAX_PACKED_PAYLOAD;
        self.place(f.seq, f.created_ms, |page, slot, classes| {
            if packable && page.add_fresh(slot, f, class, classes) {
                if slot == PAGE as usize - 1 {
                    // The page's last seq: no more jobs will be pushed into it, so its arena stops growing.
                    page.arena.shrink_to_fit();
                }
                return true;
            }
            page.add_full(slot, f.job(class));
            false
        })
    }

    /// Puts a job into the free slot of `seq` with `put`, which says whether it packed it; keeps the counts
    /// and the page bytes. False (`put` not called) if the slot is taken.
    fn place(&mut self, seq: u64, created_ms: u64, put: impl FnOnce(&mut Page, usize, &mut Classes) -> bool) -> bool {
        let slot = slot_of(seq);
        let page = self.pages.entry(seq / PAGE).or_insert_with(|| Page::new(created_ms));
        if page.slots[slot] != EMPTY {
            return false;
        }
        let before = if page.live == 0 { 0 } else { page.bytes() };
        if !put(page, slot, &mut self.classes) {
            self.full_len += 1;
        }
        page.live += 1;
        self.len += 1;
        self.page_bytes = self.page_bytes + page.bytes() - before;
        true
    }

    pub fn remove(&mut self, seq: u64) -> Option<Job> {
        let page_no = seq / PAGE;
        let page = self.pages.get_mut(&page_no)?;
        let before = page.bytes();
        let was_full = page.slots[slot_of(seq)] & FULL != 0;
        let job = page.take(slot_of(seq), seq, &mut self.classes)?;
        if was_full {
            self.full_len -= 1;
        }
        page.live -= 1;
        self.len -= 1;
        if page.live == 0 {
            self.page_bytes -= before;
            self.pages.remove(&page_no);
        } else {
            self.page_bytes = self.page_bytes + page.bytes() - before;
        }
        Some(job)
    }

    fn page_jobs<'a>(&'a self, no: u64, page: &'a Page) -> impl Iterator<Item = JobRef<'a>> + 'a {
        (0..PAGE as usize).filter_map(move |s| page.get(s, no * PAGE + s as u64, &self.classes))
    }

    pub fn values(&self) -> impl Iterator<Item = JobRef<'_>> {
        self.pages.iter().flat_map(|(&no, p)| self.page_jobs(no, p))
    }

    /// Every job's head, in no order.
    pub fn heads(&self) -> impl Iterator<Item = Head> + '_ {
        self.pages.iter().flat_map(move |(&no, p)| {
            (0..PAGE as usize).filter_map(move |s| {
                let seq = no * PAGE + s as u64;
                match p.slots[s] {
                    EMPTY => None,
                    v if v & FULL != 0 => p.full.get(usize::from(v & !FULL)).map(Head::of),
                    v => packed::head(&p.arena, usize::from(v - 1), seq, &self.classes),
                }
            })
        })
    }

    /// The groups that packed jobs name (through their classes).
    pub fn packed_groups(&self) -> impl Iterator<Item = u32> + '_ {
        self.classes.groups()
    }

    /// The full jobs (what holds allocations of its own beyond the pages).
    pub fn full_values(&self) -> impl Iterator<Item = &Job> {
        self.pages.values().flat_map(|p| p.full.iter())
    }

    /// The jobs by seq. Only the page numbers are gathered and sorted (one per 128 jobs), so a save can walk
    /// millions of jobs in order without a list of them.
    pub fn values_by_seq(&self) -> impl Iterator<Item = JobRef<'_>> {
        let mut pages: Vec<u64> = self.pages.keys().copied().collect();
        pages.sort_unstable();
        pages.into_iter().filter_map(|n| self.pages.get(&n).map(|p| (n, p))).flat_map(|(n, p)| self.page_jobs(n, p))
    }

    /// The full jobs by seq (packed jobs are all ready and never reserved: a walk for the others skips them
    /// without decoding them).
    pub fn full_by_seq(&self) -> impl Iterator<Item = &Job> {
        let mut pages: Vec<u64> = self.pages.iter().filter(|(_, p)| !p.full.is_empty()).map(|(&n, _)| n).collect();
        pages.sort_unstable();
        pages.into_iter().filter_map(|n| self.pages.get(&n)).flat_map(|p| {
            p.slots.iter().filter(|&&v| v != EMPTY && v & FULL != 0).filter_map(|&v| p.full.get(usize::from(v & !FULL)))
        })
    }

    /// A reader that remembers the page it read last: a walk over jobs of neighbouring seqs (a ready line)
    /// looks each page up once.
    pub fn reader(&self) -> TableReader<'_> {
        TableReader { table: self, last: None }
    }

    pub fn seqs(&self) -> impl Iterator<Item = u64> + '_ {
        self.pages
            .iter()
            .flat_map(|(&no, p)| (0..PAGE).filter(move |&s| p.slots[s as usize] != EMPTY).map(move |s| no * PAGE + s))
    }

    /// Bytes held by the table itself: the page index, the pages, their arenas and full jobs, the classes
    /// (not what full jobs hold on the heap of their own).
    pub fn table_bytes(&self) -> usize {
        self.pages.capacity() * (std::mem::size_of::<(u64, Box<Page>)>() + 1) + self.page_bytes + self.classes.bytes()
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

    fn payload_of(t: &JobTable, seq: u64) -> Vec<u8> {
        t.get(seq).map(|j| j.payload.to_vec()).unwrap_or_default()
    }

    #[test]
    fn fresh_ready_jobs_pack_and_a_change_unpacks_them() {
        let mut t = JobTable::default();
        for s in 0..300 {
            let mut j = job(s);
            j.payload = format!("payload {s}").as_bytes().into();
            assert!(t.insert(j));
        }
        assert_eq!((t.len(), t.full_len()), (300, 0), "all packed");
        let mut taken = t.get(7).map(Cow::into_owned).unwrap();
        if let Some(j) = t.get_mut(7) {
            j.attempts = 1;
        }
        taken.attempts = 1;
        assert_eq!(t.full_len(), 1);
        assert_eq!(t.get(7).as_deref(), Some(&taken), "the unpacked job is the packed one, changed");
        t.repack(7);
        assert_eq!(t.full_len(), 1, "a job once reserved stays full");
        if let Some(j) = t.get_mut(8) {
            j.state = crate::State::Delayed;
        }
        t.repack(8);
        assert_eq!(t.full_len(), 2, "only a ready job packs");
        if let Some(j) = t.get_mut(8) {
            j.state = crate::State::Ready;
        }
        t.repack(8);
        assert_eq!((t.full_len(), t.get(8).map(|j| j.state)), (1, Some(crate::State::Ready)), "ready again: packed");
        for s in (0..300).filter(|s| s % 3 == 0) {
            assert_eq!(t.remove(s).map(|j| j.seq), Some(s));
        }
        for s in (0..300).filter(|s| s % 3 != 0) {
            assert_eq!(payload_of(&t, s), format!("payload {s}").into_bytes(), "seq {s} after the squeezes");
        }
        let by_seq: Vec<u64> = t.values_by_seq().map(|j| j.seq).collect();
        assert_eq!(by_seq, (0..300).filter(|s| s % 3 != 0).collect::<Vec<_>>());
        let before = t.table_bytes();
        for s in 0..300 {
            t.remove(s);
        }
        assert!(t.is_empty() && t.pages() == 0 && t.table_bytes() < before);
    }

    #[test]
    fn a_page_of_full_jobs_fills_every_slot() {
        let mut t = JobTable::default();
        for s in 0..PAGE {
            assert!(t.insert(Job { attempts: 1, ..job(s) }));
        }
        assert_eq!((t.len(), t.full_len(), t.pages()), (PAGE as usize, PAGE as usize, 1));
        assert!((0..PAGE).all(|s| t.get(s).is_some_and(|j| j.seq == s && j.attempts == 1)));
    }

    #[test]
    fn a_page_of_large_payloads_keeps_its_offsets_in_range() {
        let mut t = JobTable::default();
        for round in 0..3u64 {
            for s in 0..PAGE {
                let mut j = job(round * 1000 + s);
                j.payload = vec![s as u8; packed::MAX_PACKED_PAYLOAD].into_boxed_slice().into();
                t.insert(j);
            }
            // Unpack and remove in an order that leaves holes, so squeezes run between inserts.
            for s in (0..PAGE).step_by(2) {
                t.get_mut(round * 1000 + s);
                t.remove(round * 1000 + s);
            }
            for s in (1..PAGE).step_by(2) {
                assert_eq!(payload_of(&t, round * 1000 + s), vec![s as u8; packed::MAX_PACKED_PAYLOAD]);
            }
        }
    }

    #[test]
    fn insert_get_remove_and_pages_freed() {
        let mut t = JobTable::default();
        for s in 0..300 {
            assert!(t.insert(job(s)));
        }
        assert!(!t.insert(job(5)));
        assert_eq!(t.len(), 300);
        assert_eq!(t.pages(), 3);
        assert_eq!(t.get(130).map(|j| j.seq), Some(130));
        for s in 0..PAGE {
            assert!(t.remove(s).is_some());
        }
        assert_eq!(t.pages(), 2);
        assert!(t.get(3).is_none());
        assert!(t.remove(3).is_none());
        assert_eq!(t.values().count(), 300 - PAGE as usize);
        assert!(t.insert(job(u64::MAX >> 1)));
        assert_eq!(t.pages(), 3);
    }
}

#[cfg(test)]
mod model {
    //! The table against a plain map of the same jobs, under random inserts, changes, repacks and removes.
    use super::*;
    use crate::State;
    use std::collections::BTreeMap;

    /// xorshift64*: the test needs repeatable choices, not good ones.
    struct Rng(u64);
    impl Rng {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 >> 12;
            self.0 ^= self.0 << 25;
            self.0 ^= self.0 >> 27;
            self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
        }
        fn below(&mut self, n: u64) -> u64 {
            self.next() % n
        }
    }

    fn random_job(rng: &mut Rng, seq: u64) -> Job {
        let len = match rng.below(4) {
            0 => 0,
            1 => rng.below(23),
            2 => rng.below(packed::MAX_PACKED_PAYLOAD as u64 + 1),
            _ => rng.below(400),
        } as usize;
        let mut j = Job {
            seq,
            created_ms: 1_700_000_000_000 + rng.below(1_000_000),
            since_ms: if rng.below(8) == 0 { 0 } else { 1_700_000_000_000 + rng.below(1_000_000) },
            payload: vec![seq as u8; len].into_boxed_slice().into(),
            retries: rng.below(4) as u16,
            backoff_ms: 1000 * rng.below(3),
            lease_ms: rng.below(2) as u32 * 30_000,
            priority: rng.below(3) as i32 - 1,
            group: rng.below(3) as u32,
            deadline_ms: rng.below(1 << 40),
            attempts: if rng.below(6) == 0 { 1 } else { 0 },
            state: if rng.below(5) == 0 { State::Delayed } else { State::Ready },
            ..Job::blank()
        };
        if rng.below(3) == 0 {
            let id_len = 1 + rng.below(256) as usize;
            j.set_custom_id(Some(vec![b'i'; id_len].into_boxed_slice()));
        }
        if rng.below(10) == 0 {
            j.set_last_error(b"boom");
        }
        j
    }

    #[test]
    fn the_table_holds_what_a_map_holds() {
        for seed in 1..=20u64 {
            let mut rng = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let (mut t, mut m) = (JobTable::default(), BTreeMap::<u64, Job>::new());
            for _ in 0..4000 {
                let seq = rng.below(700);
                match rng.below(5) {
                    0 | 1 => {
                        let j = random_job(&mut rng, seq);
                        assert_eq!(t.insert(j.clone()), !m.contains_key(&seq), "seed {seed}: insert {seq}");
                        m.entry(seq).or_insert(j);
                    }
                    2 => {
                        let (a, b) = (t.get_mut(seq), m.get_mut(&seq));
                        assert_eq!(a.is_some(), b.is_some());
                        if let (Some(a), Some(b)) = (a, b) {
                            let state = if rng.below(2) == 0 { State::Ready } else { State::Reserved };
                            (a.state, b.state) = (state, state);
                        }
                    }
                    3 => t.repack(seq),
                    _ => assert_eq!(t.remove(seq), m.remove(&seq), "seed {seed}: remove {seq}"),
                }
            }
            assert_eq!(t.len(), m.len());
            let by_seq: Vec<Job> = t.values_by_seq().map(Cow::into_owned).collect();
            assert_eq!(by_seq, m.values().cloned().collect::<Vec<_>>(), "seed {seed}");
            let heads: std::collections::BTreeSet<_> = t.heads().map(|h| (h.seq, h.group, h.priority)).collect();
            assert_eq!(heads, m.values().map(|j| (j.seq, j.group, j.priority)).collect());
            assert!(t.full_len() <= t.len());
        }
    }
}
