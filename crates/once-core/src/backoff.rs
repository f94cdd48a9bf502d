//! What happens to a job after a failed attempt: retried after a jittered exponential backoff, or dead.

/// The decision for one failed attempt. Decided once (on the master) and then applied as data.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    RetryAt(u64),
    Dead,
}

/// Delay before retry `k` (1 for the first retry): d = min(max, base × 2^(k−1)), then uniform in [d/2, d].
/// `random` is any u64; the same input gives the same delay.
pub fn retry_delay(base_ms: u64, max_ms: u64, k: u32, random: u64) -> u64 {
    let shift = k.saturating_sub(1).min(63);
    let grown = base_ms.checked_shl(shift).filter(|v| v >> shift == base_ms).unwrap_or(u64::MAX);
    let d = grown.min(max_ms);
    let low = d / 2;
    let span = d - low;
    if span == 0 {
        return d;
    }
    low + random % (span + 1)
}

/// Decides a failure of a job that has had `attempts` reservations and may be retried `retries` times.
// Each argument is one number of the rule; a struct would only name them twice.
#[allow(clippy::too_many_arguments)]
pub fn decide(
    attempts: u32,
    retries: u32,
    base_ms: u64,
    max_ms: u64,
    now_ms: u64,
    delay_override: Option<u64>,
    force_dead: bool,
    random: u64,
) -> Outcome {
    if force_dead || attempts > retries {
        return Outcome::Dead;
    }
    let delay = match delay_override {
        Some(d) => d,
        None => retry_delay(base_ms, max_ms, attempts.max(1), random),
    };
    Outcome::RetryAt(now_ms.saturating_add(delay))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delay_doubles_and_stays_within_half_to_full() {
        for k in 1..=6u32 {
            let d = 1000u64 << (k - 1);
            for r in [0u64, 1, 7, 499, 12345, u64::MAX] {
                let v = retry_delay(1000, 3_600_000, k, r);
                assert!(v >= d / 2 && v <= d, "k={k} r={r} v={v}");
            }
        }
        assert_eq!(retry_delay(1000, 3_600_000, 1, 0), 500);
        assert_eq!(retry_delay(1000, 3_600_000, 1, 500), 1000);
    }

    #[test]
    fn delay_is_capped_and_never_overflows() {
        for r in [0u64, 3, u64::MAX] {
            let v = retry_delay(315_360_000_000, 3_600_000, 1000, r);
            assert!((1_800_000..=3_600_000).contains(&v));
        }
        assert_eq!(retry_delay(0, 3_600_000, 5, 99), 0);
    }

    #[test]
    fn jitter_covers_the_range() {
        let vals: Vec<u64> = (0..1000u64).map(|r| retry_delay(100, 10_000, 1, r * 7919)).collect();
        assert!(vals.iter().any(|&v| v <= 55));
        assert!(vals.iter().any(|&v| v >= 95));
    }

    #[test]
    fn retries_then_dead() {
        // RETRIES 2: attempts 1 and 2 fail into retries, attempt 3 fails into dead.
        assert!(matches!(decide(1, 2, 100, 1000, 0, None, false, 0), Outcome::RetryAt(50)));
        assert!(matches!(decide(2, 2, 100, 1000, 0, None, false, 0), Outcome::RetryAt(100)));
        assert_eq!(decide(3, 2, 100, 1000, 0, None, false, 0), Outcome::Dead);
        assert_eq!(decide(1, 0, 100, 1000, 0, None, false, 0), Outcome::Dead);
    }

    #[test]
    fn override_and_dead_flag() {
        assert_eq!(decide(1, 3, 100, 1000, 10, Some(7), false, 0), Outcome::RetryAt(17));
        assert_eq!(decide(1, 3, 100, 1000, 10, Some(7), true, 0), Outcome::Dead);
        assert_eq!(decide(4, 3, 100, 1000, 10, Some(7), false, 0), Outcome::Dead);
    }
}
