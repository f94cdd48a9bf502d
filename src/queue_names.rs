//! The names of the queue keys, with the databases each is a queue in, so that a command filter — which runs
//! before a command is looked up and knows neither its database nor any value — can tell in one hash lookup
//! whether `RPUSH name ...` is meant for a queue.
//!
//! A name may be listed where it is no longer a queue (an overwrite by RENAME, SET, a restore of another
//! type): the rewritten command finds out and runs the list command itself. What must never happen is a queue
//! that is not listed; so every way a queue comes into a keyspace adds its name (created by a command, loaded
//! from an RDB or RESTORE, renamed, moved or copied in), and only its leaving (DEL, expiry, eviction, rename or
//! move away, a flush) takes it out.

use std::collections::HashMap;
use std::sync::Mutex;

use lazy_static::lazy_static;

lazy_static! {
    static ref NAMES: Mutex<HashMap<Vec<u8>, u64>> = Mutex::new(HashMap::new());
}

/// Databases as bits; 63 and above share the last bit, which is then only ever set (a false "maybe").
fn bit(db: i32) -> u64 {
    1u64 << db.clamp(0, 63)
}

fn names() -> std::sync::MutexGuard<'static, HashMap<Vec<u8>, u64>> {
    NAMES.lock().unwrap_or_else(|e| e.into_inner())
}

pub fn add(db: i32, name: &[u8]) {
    let mut n = names();
    match n.get_mut(name) {
        Some(dbs) => *dbs |= bit(db),
        None => {
            n.insert(name.to_vec(), bit(db));
        }
    }
}

pub fn remove(db: i32, name: &[u8]) {
    if db >= 63 {
        return;
    }
    let mut n = names();
    if let Some(dbs) = n.get_mut(name) {
        *dbs &= !bit(db);
        if *dbs == 0 {
            n.remove(name);
        }
    }
}

/// FLUSHDB of `db`, or FLUSHALL for -1.
pub fn forget_db(db: i32) {
    let mut n = names();
    if db < 0 {
        n.clear();
    } else if db < 63 {
        n.retain(|_, dbs| {
            *dbs &= !bit(db);
            *dbs != 0
        });
    }
}

/// SWAPDB a b.
pub fn swap(a: i32, b: i32) {
    let (ba, bb) = (bit(a), bit(b));
    for dbs in names().values_mut() {
        let (has_a, has_b) = (*dbs & ba != 0, *dbs & bb != 0);
        *dbs &= !(ba | bb);
        if has_a {
            *dbs |= bb;
        }
        if has_b {
            *dbs |= ba;
        }
    }
}

/// Whether `name` is (or may be) a queue in some database.
pub fn contains(name: &[u8]) -> bool {
    names().contains_key(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tracks_names_per_database() {
        add(0, b"qn-a");
        add(3, b"qn-a");
        remove(0, b"qn-a");
        assert!(contains(b"qn-a"));
        swap(3, 4);
        remove(3, b"qn-a");
        assert!(contains(b"qn-a"));
        forget_db(4);
        assert!(!contains(b"qn-a"));
        add(70, b"qn-b");
        remove(70, b"qn-b");
        assert!(contains(b"qn-b"), "a high database is only ever a maybe");
    }
}
