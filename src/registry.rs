//! Which queue keys have timer work, and when: a deadline index across all databases, so a timer tick
//! costs O(due × log n) and never scans the keyspace.
//!
//! Entries are hints by (db, key name). The timer opens the key and acts on whatever queue it finds there,
//! so an entry left behind by DEL, FLUSHDB or EXPIRE costs one lookup and is dropped; renames, moves and
//! copies re-register under the new name from keyspace notifications.

use std::collections::{BTreeSet, HashMap};
use std::sync::Mutex;

use lazy_static::lazy_static;

#[derive(Default)]
pub struct Registry {
    by_key: HashMap<(i32, Vec<u8>), u64>,
    by_time: BTreeSet<(u64, i32, Vec<u8>)>,
}

impl Registry {
    /// Records that (db, key) has work at `deadline`. Keeps the earlier of an existing entry and this one.
    pub fn note(&mut self, db: i32, key: &[u8], deadline: u64) {
        let k = (db, key.to_vec());
        if let Some(&old) = self.by_key.get(&k) {
            if old <= deadline {
                return;
            }
            self.by_time.remove(&(old, db, k.1.clone()));
        }
        self.by_time.insert((deadline, db, k.1.clone()));
        self.by_key.insert(k, deadline);
    }

    /// Drops (db, key): the key was deleted, renamed away or moved, so its deadline (maybe years ahead) goes.
    pub fn forget(&mut self, db: i32, key: &[u8]) {
        if let Some(t) = self.by_key.remove(&(db, key.to_vec())) {
            self.by_time.remove(&(t, db, key.to_vec()));
        }
    }

    /// Drops the entries whose (db, key) matches (slot migration: the slot's keys left this node).
    pub fn forget_where(&mut self, gone: impl Fn(i32, &[u8]) -> bool) {
        self.by_time.retain(|(_, d, k)| !gone(*d, k));
        self.by_key.retain(|(d, k), _| !gone(*d, k));
    }

    /// Drops every entry of `db` (FLUSHDB), or of every database for -1 (FLUSHALL).
    pub fn forget_db(&mut self, db: i32) {
        self.by_time.retain(|(_, d, _)| db != -1 && *d != db);
        self.by_key.retain(|(d, _), _| db != -1 && *d != db);
    }

    pub fn first_deadline(&self) -> Option<u64> {
        self.by_time.first().map(|e| e.0)
    }

    /// Takes the earliest entry if it is due at `now`.
    pub fn pop_due(&mut self, now: u64) -> Option<(i32, Vec<u8>)> {
        if self.by_time.first()?.0 > now {
            return None;
        }
        let (_, db, key) = self.by_time.pop_first()?;
        self.by_key.remove(&(db, key.clone()));
        Some((db, key))
    }

    /// SWAPDB exchanges whole databases, and the queues in them with their names.
    pub fn swap_dbs(&mut self, a: i32, b: i32) {
        let swap = |db: i32| {
            if db == a {
                b
            } else if db == b {
                a
            } else {
                db
            }
        };
        let entries: Vec<(u64, i32, Vec<u8>)> = std::mem::take(&mut self.by_time).into_iter().collect();
        self.by_key.clear();
        for (t, db, key) in entries {
            let db = swap(db);
            self.by_key.insert((db, key.clone()), t);
            self.by_time.insert((t, db, key));
        }
    }

    pub fn len(&self) -> usize {
        self.by_key.len()
    }

    pub fn is_empty(&self) -> bool {
        self.by_key.is_empty()
    }
}

lazy_static! {
    pub static ref REGISTRY: Mutex<Registry> = Mutex::new(Registry::default());
}

/// The registry, even if an earlier panic poisoned its lock (its data stays consistent: each call is atomic).
pub fn registry() -> std::sync::MutexGuard<'static, Registry> {
    REGISTRY.lock().unwrap_or_else(|e| e.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_earliest_deadline_per_key_and_pops_in_time_order() {
        let mut r = Registry::default();
        r.note(0, b"a", 50);
        r.note(0, b"a", 70);
        r.note(0, b"b", 10);
        r.note(1, b"a", 30);
        r.note(0, b"a", 20);
        assert_eq!(r.len(), 3);
        assert_eq!(r.first_deadline(), Some(10));
        assert_eq!(r.pop_due(5), None);
        assert_eq!(r.pop_due(100), Some((0, b"b".to_vec())));
        assert_eq!(r.pop_due(100), Some((0, b"a".to_vec())));
        assert_eq!(r.pop_due(100), Some((1, b"a".to_vec())));
        assert!(r.is_empty());
    }

    #[test]
    fn swapdb_moves_entries() {
        let mut r = Registry::default();
        r.note(0, b"a", 5);
        r.note(1, b"b", 6);
        r.note(2, b"c", 7);
        r.swap_dbs(0, 1);
        assert_eq!(r.pop_due(10), Some((1, b"a".to_vec())));
        assert_eq!(r.pop_due(10), Some((0, b"b".to_vec())));
        assert_eq!(r.pop_due(10), Some((2, b"c".to_vec())));
    }
}
