//! Randomness for backoff jitter. Only the master draws; the result travels to replicas as a due time.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

static STATE: AtomicU64 = AtomicU64::new(0);

pub fn next() -> u64 {
    let mut x = STATE.load(Relaxed);
    if x == 0 {
        let t = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(1, |d| d.as_nanos() as u64);
        x = t | 1;
    }
    // xorshift64*
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    STATE.store(x, Relaxed);
    x.wrapping_mul(0x2545_F491_4F6C_DD1D)
}
