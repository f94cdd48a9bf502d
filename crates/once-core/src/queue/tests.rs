//! Unit tests of `Queue` with a fake clock: every `now` is a plain u64 and every random choice an argument.

use super::*;

const DEFAULT_LEASE: u64 = 30_000;
const BACKOFF_MAX: u64 = 3_600_000;

fn nj(payload: &str) -> NewJob {
    NewJob {
        custom_id: None,
        payload: payload.as_bytes().into(),
        due_ms: 0,
        retries: 3,
        backoff_ms: 1000,
        lease_ms: 0,
        priority: 0,
        group: None,
        ..NewJob::default()
    }
}

fn with_id(payload: &str, id: &str) -> NewJob {
    NewJob { custom_id: Some(id.as_bytes().into()), ..nj(payload) }
}

fn with_prio(payload: &str, priority: i32) -> NewJob {
    NewJob { priority, ..nj(payload) }
}

fn due_at(payload: &str, due_ms: u64) -> NewJob {
    NewJob { due_ms, ..nj(payload) }
}

fn added(p: Pushed) -> u64 {
    match p {
        Pushed::Added(seq) => seq,
        other => panic!("expected Added, got {other:?}"),
    }
}

/// RESERVE's lease rule without a RESERVE LEASE: the job's own lease, else the module default.
fn lease_of(j: &Job) -> u64 {
    if j.lease_ms == 0 {
        DEFAULT_LEASE
    } else {
        u64::from(j.lease_ms)
    }
}

fn reserve(q: &mut Queue, count: usize, now: u64) -> Vec<u64> {
    q.reserve(count, now, lease_of)
}

fn state(q: &Queue, seq: u64) -> State {
    q.job(seq).expect("job exists").state
}

fn id_str(q: &Queue, seq: u64) -> String {
    String::from_utf8(q.job(seq).unwrap().id_bytes()).unwrap()
}

fn payloads(q: &Queue, seqs: &[u64]) -> Vec<String> {
    seqs.iter().map(|&s| String::from_utf8(q.job(s).unwrap().payload.to_vec()).unwrap()).collect()
}

fn stats(ready: u64, delayed: u64, reserved: u64, dead: u64) -> Stats {
    Stats { ready, delayed, reserved, dead, ..Stats::default() }
}

/// Fails a reserved job as NACK would (no override, not forced), returning the decided outcome.
fn nack(q: &mut Queue, seq: u64, now: u64, error: Option<&[u8]>, random: u64) -> Outcome {
    let outcome = q.decide_failure(seq, now, None, false, BACKOFF_MAX, random).expect("reserved");
    assert!(q.apply_failure(seq, FailCause::Nack, error, outcome, now));
    outcome
}

// ---------------------------------------------------------------------------------------------------------
// Lifecycle transitions
// ---------------------------------------------------------------------------------------------------------

#[test]
fn push_without_delay_is_ready() {
    let mut q = Queue::new();
    let seq = added(q.push(nj("a"), 1000));
    let j = q.job(seq).unwrap();
    assert_eq!(j.state, State::Ready);
    assert_eq!(j.created_ms, 1000);
    assert_eq!(j.attempts, 0);
    assert_eq!(j.due_ms(), None);
    assert_eq!(j.lease_deadline_ms(), None);
    assert_eq!(&*j.payload, b"a");
    assert_eq!(q.stats(), stats(1, 0, 0, 0));
    assert_eq!(q.totals.pushed, 1);
    assert_eq!(q.next_deadline(), None);
    q.check_invariants().unwrap();
}

#[test]
fn push_due_now_or_in_the_past_is_ready() {
    let mut q = Queue::new();
    let now_due = added(q.push(due_at("now", 1000), 1000));
    let past_due = added(q.push(due_at("past", 10), 1000));
    assert_eq!(state(&q, now_due), State::Ready);
    assert_eq!(state(&q, past_due), State::Ready);
    assert_eq!(q.job(past_due).unwrap().due_ms(), None);
    assert_eq!(q.stats(), stats(2, 0, 0, 0));
}

#[test]
fn push_with_future_due_is_delayed_until_promoted() {
    let mut q = Queue::new();
    let seq = added(q.push(due_at("d", 1500), 1000));
    let j = q.job(seq).unwrap();
    assert_eq!(j.state, State::Delayed);
    assert_eq!(j.due_ms(), Some(1500));
    assert_eq!(q.stats(), stats(0, 1, 0, 0));
    assert_eq!(q.next_deadline(), Some(1500));
    // Not reservable while delayed.
    assert!(reserve(&mut q, 10, 1200).is_empty());

    assert_eq!(q.due_count(1499, 100), 0);
    assert_eq!(q.promote_due(1499, 100), 0);
    assert_eq!(state(&q, seq), State::Delayed);

    assert_eq!(q.due_count(1500, 100), 1);
    assert_eq!(q.promote_due(1500, 100), 1);
    let j = q.job(seq).unwrap();
    assert_eq!(j.state, State::Ready);
    assert_eq!(j.due_ms(), None);
    assert_eq!(j.deadline_ms, 0);
    assert_eq!(q.stats(), stats(1, 0, 0, 0));
    assert_eq!(q.next_deadline(), None);
    assert_eq!(reserve(&mut q, 10, 1500), vec![seq]);
    q.check_invariants().unwrap();
}

#[test]
fn promote_due_honours_max_and_due_order() {
    let mut q = Queue::new();
    let late = added(q.push(due_at("late", 300), 0));
    let early = added(q.push(due_at("early", 100), 0));
    let mid = added(q.push(due_at("mid", 200), 0));
    let tie = added(q.push(due_at("tie", 200), 0));
    let future = added(q.push(due_at("future", 10_000), 0));
    assert_eq!(q.due_count(500, 100), 4);
    assert_eq!(q.due_count(500, 2), 2);
    assert_eq!(q.promote_due(500, 2), 2);
    assert_eq!(state(&q, early), State::Ready);
    assert_eq!(state(&q, mid), State::Ready);
    assert_eq!(state(&q, tie), State::Delayed);
    assert_eq!(state(&q, late), State::Delayed);
    assert_eq!(q.promote_due(500, 100), 2);
    assert_eq!(state(&q, future), State::Delayed);
    // Ready order = promotion order: due time, then seq for equal due times.
    assert_eq!(reserve(&mut q, 10, 500), vec![early, mid, tie, late]);
    q.check_invariants().unwrap();
}

#[test]
fn reserve_counts_attempts_and_sets_lease_deadline() {
    let mut q = Queue::new();
    let own = added(q.push(NewJob { lease_ms: 500, ..nj("own") }, 0));
    let dflt = added(q.push(nj("default"), 0));
    let got = reserve(&mut q, 10, 2000);
    assert_eq!(got, vec![own, dflt]);
    let j = q.job(own).unwrap();
    assert_eq!(j.state, State::Reserved);
    assert_eq!(j.attempts, 1);
    assert_eq!(j.lease_deadline_ms(), Some(2500));
    assert_eq!(q.job(dflt).unwrap().lease_deadline_ms(), Some(2000 + DEFAULT_LEASE));
    assert_eq!(q.stats(), stats(0, 0, 2, 0));
    assert_eq!(q.totals.reserved, 2);
    assert_eq!(q.next_deadline(), Some(2500));
    q.check_invariants().unwrap();
}

#[test]
fn reserve_uses_the_lease_closure_for_each_job() {
    // RESERVE LEASE wins over the job's own lease: the closure decides.
    let mut q = Queue::new();
    let a = added(q.push(NewJob { lease_ms: 500, ..nj("a") }, 0));
    let b = added(q.push(nj("b"), 0));
    let mut seen = Vec::new();
    let got = {
        let seen = std::cell::RefCell::new(&mut seen);
        q.reserve(5, 100, |j| {
            seen.borrow_mut().push(j.seq);
            // The closure sees the job as it is before the reservation.
            assert_eq!(j.state, State::Ready);
            7
        })
    };
    assert_eq!(got, vec![a, b]);
    assert_eq!(seen, vec![a, b]);
    assert_eq!(q.job(a).unwrap().deadline_ms, 107);
    assert_eq!(q.job(b).unwrap().deadline_ms, 107);
}

#[test]
fn reserve_respects_count_and_empty_queue() {
    let mut q = Queue::new();
    assert!(reserve(&mut q, 5, 0).is_empty());
    for i in 0..5 {
        q.push(nj(&format!("j{i}")), 0);
    }
    assert!(reserve(&mut q, 0, 0).is_empty());
    assert_eq!(q.peek_ready(3).len(), 3);
    let expected = q.peek_ready(3);
    assert_eq!(reserve(&mut q, 3, 0), expected);
    assert_eq!(q.stats(), stats(2, 0, 3, 0));
    assert_eq!(reserve(&mut q, 100, 0).len(), 2);
    assert!(reserve(&mut q, 100, 0).is_empty());
    assert_eq!(q.totals.reserved, 5);
}

#[test]
fn reserve_exact_only_takes_ready_jobs() {
    let mut q = Queue::new();
    let r = added(q.push(nj("r"), 0));
    let d = added(q.push(due_at("d", 50), 0));
    assert!(!q.reserve_exact(d, 999, 1));
    assert!(!q.reserve_exact(12345, 999, 1));
    assert!(q.reserve_exact(r, 999, 1));
    assert!(!q.reserve_exact(r, 999, 1), "already reserved");
    assert_eq!(q.job(r).unwrap().lease_deadline_ms(), Some(999));
    assert_eq!(q.totals.reserved, 1);
    q.check_invariants().unwrap();
}

#[test]
fn ack_completes_a_reserved_job() {
    let mut q = Queue::new();
    let seq = added(q.push(with_id("a", "job-1"), 0));
    let id = id_str(&q, seq);
    reserve(&mut q, 1, 10);
    assert!(q.ack(seq, 1, None));
    assert!(q.job(seq).is_none());
    assert_eq!(q.find(id.as_bytes()), None);
    assert!(q.is_empty());
    assert_eq!(q.len(), 0);
    assert_eq!(q.stats(), stats(0, 0, 0, 0));
    assert_eq!(q.totals.acked, 1);
    assert_eq!(q.next_deadline(), None);
    assert!(!q.ack(seq, 1, None), "a second ack counts 0");
    assert_eq!(q.totals.acked, 1);
    q.check_invariants().unwrap();
}

#[test]
fn ack_of_a_job_that_is_not_reserved_is_false() {
    let mut q = Queue::new();
    let ready = added(q.push(nj("ready"), 0));
    let delayed = added(q.push(due_at("delayed", 100), 0));
    let dead = added(q.push(NewJob { retries: 0, ..nj("dead") }, 0));
    assert_eq!(reserve(&mut q, 1, 0), vec![ready]);
    let ready2 = added(q.push(nj("ready2"), 0));
    assert!(q.ack(ready, 1, None));
    assert_eq!(reserve(&mut q, 1, 0), vec![dead]);
    assert_eq!(nack(&mut q, dead, 1, None, 0), Outcome::Dead);

    assert!(!q.ack(ready2, 1, None));
    assert!(!q.ack(delayed, 1, None));
    assert!(!q.ack(dead, 1, None));
    assert!(!q.ack(987_654, 1, None));
    assert_eq!(state(&q, ready2), State::Ready);
    assert_eq!(state(&q, delayed), State::Delayed);
    assert_eq!(state(&q, dead), State::Dead);
    assert_eq!(q.totals.acked, 1);
    assert_eq!(q.stats(), stats(1, 1, 0, 1));
    q.check_invariants().unwrap();
}

#[test]
fn nack_with_attempts_left_retries_after_the_decided_delay() {
    let mut q = Queue::new();
    let seq = added(q.push(NewJob { retries: 2, backoff_ms: 1000, ..nj("a") }, 0));
    reserve(&mut q, 1, 100);
    let outcome = q.decide_failure(seq, 200, None, false, BACKOFF_MAX, 0).unwrap();
    // random 0 picks the low end: d/2 of d = 1000.
    assert_eq!(outcome, Outcome::RetryAt(700));
    assert!(q.apply_failure(seq, FailCause::Nack, Some(b"boom"), outcome, 0));
    let j = q.job(seq).unwrap();
    assert_eq!(j.state, State::Delayed);
    assert_eq!(j.due_ms(), Some(700));
    assert_eq!(j.attempts, 1);
    assert_eq!(j.last_error(), Some(&b"boom"[..]));
    assert_eq!(q.stats(), stats(0, 1, 0, 0));
    assert_eq!(q.totals, Totals { pushed: 1, reserved: 1, nacked: 1, retried: 1, ..Totals::default() });
    assert_eq!(q.next_deadline(), Some(700));

    assert_eq!(q.promote_due(699, 10), 0);
    assert_eq!(q.promote_due(700, 10), 1);
    assert_eq!(reserve(&mut q, 1, 700), vec![seq]);
    assert_eq!(q.job(seq).unwrap().attempts, 2);
    // The error text survives the re-reservation (INSPECT shows the latest one given).
    assert_eq!(q.job(seq).unwrap().last_error(), Some(&b"boom"[..]));
    q.check_invariants().unwrap();
}

#[test]
fn nack_delay_override_replaces_the_backoff() {
    let mut q = Queue::new();
    let seq = added(q.push(nj("a"), 0));
    reserve(&mut q, 1, 0);
    assert_eq!(q.decide_failure(seq, 50, Some(0), false, BACKOFF_MAX, 999), Some(Outcome::RetryAt(50)));
    assert_eq!(q.decide_failure(seq, 50, Some(12_345), false, BACKOFF_MAX, 999), Some(Outcome::RetryAt(12_395)));
    // decide_failure changes nothing.
    assert_eq!(state(&q, seq), State::Reserved);
    assert_eq!(q.totals.nacked, 0);
}

#[test]
fn nack_without_error_keeps_the_previous_error() {
    let mut q = Queue::new();
    let seq = added(q.push(nj("a"), 0));
    reserve(&mut q, 1, 0);
    nack(&mut q, seq, 0, Some(b"first"), 0);
    q.promote_due(u64::MAX, 10);
    reserve(&mut q, 1, 10_000);
    nack(&mut q, seq, 10_000, None, 0);
    assert_eq!(q.job(seq).unwrap().last_error(), Some(&b"first"[..]));
    q.promote_due(u64::MAX, 10);
    reserve(&mut q, 1, 20_000);
    nack(&mut q, seq, 20_000, Some(b"second"), 0);
    assert_eq!(q.job(seq).unwrap().last_error(), Some(&b"second"[..]));
}

#[test]
fn retries_n_means_n_plus_one_attempts_then_dead() {
    for retries in [0u32, 1, 3] {
        let mut q = Queue::new();
        let seq = added(q.push(NewJob { retries, backoff_ms: 10, ..nj("a") }, 0));
        let mut now = 0;
        for attempt in 1..=retries + 1 {
            q.promote_due(now, 10);
            assert_eq!(reserve(&mut q, 1, now), vec![seq], "retries={retries} attempt={attempt}");
            assert_eq!(q.job(seq).unwrap().attempts, attempt);
            let outcome = nack(&mut q, seq, now, None, 7);
            if attempt <= retries {
                assert!(matches!(outcome, Outcome::RetryAt(_)), "retries={retries} attempt={attempt}");
                assert_eq!(state(&q, seq), State::Delayed);
            } else {
                assert_eq!(outcome, Outcome::Dead, "retries={retries} attempt={attempt}");
            }
            now += 1_000_000;
        }
        let j = q.job(seq).unwrap();
        assert_eq!(j.state, State::Dead);
        assert_eq!(j.deadline_ms, now - 1_000_000, "a dead job keeps its time of death");
        assert_eq!(j.due_ms(), None);
        assert_eq!(q.stats(), stats(0, 0, 0, 1));
        assert_eq!(q.totals.dead, 1);
        assert_eq!(q.totals.retried, u64::from(retries));
        assert_eq!(q.totals.nacked, u64::from(retries) + 1);
        assert_eq!(q.next_deadline(), None);
        // A dead job stays in the queue and is found by its id.
        let id = id_str(&q, seq);
        assert_eq!(q.find(id.as_bytes()), Some(seq));
        // It is never promoted or reserved.
        assert_eq!(q.promote_due(u64::MAX, 10), 0);
        assert!(reserve(&mut q, 10, u64::MAX / 2).is_empty());
        q.check_invariants().unwrap();
    }
}

#[test]
fn forced_dead_ignores_attempts_left_and_delay() {
    let mut q = Queue::new();
    let seq = added(q.push(NewJob { retries: 100, ..nj("a") }, 0));
    reserve(&mut q, 1, 0);
    assert_eq!(q.decide_failure(seq, 5, None, true, BACKOFF_MAX, 0), Some(Outcome::Dead));
    assert_eq!(q.decide_failure(seq, 5, Some(10), true, BACKOFF_MAX, 0), Some(Outcome::Dead));
    assert!(q.apply_failure(seq, FailCause::Nack, Some(b"poison"), Outcome::Dead, 0));
    assert_eq!(state(&q, seq), State::Dead);
    assert_eq!(q.job(seq).unwrap().last_error(), Some(&b"poison"[..]));
    assert_eq!(q.totals, Totals { pushed: 1, reserved: 1, nacked: 1, dead: 1, ..Totals::default() });
}

#[test]
fn delay_override_does_not_save_a_job_with_no_attempts_left() {
    let mut q = Queue::new();
    let seq = added(q.push(NewJob { retries: 0, ..nj("a") }, 0));
    reserve(&mut q, 1, 0);
    assert_eq!(q.decide_failure(seq, 5, Some(10), false, BACKOFF_MAX, 0), Some(Outcome::Dead));
}

#[test]
fn failure_of_a_job_that_is_not_reserved_changes_nothing() {
    let mut q = Queue::new();
    let ready = added(q.push(nj("r"), 0));
    let delayed = added(q.push(due_at("d", 100), 0));
    for seq in [ready, delayed, 4242] {
        assert_eq!(q.decide_failure(seq, 0, None, false, BACKOFF_MAX, 0), None);
        assert!(!q.apply_failure(seq, FailCause::Nack, Some(b"x"), Outcome::Dead, 0));
        assert!(!q.apply_failure(seq, FailCause::LeaseExpired, None, Outcome::RetryAt(5), 0));
    }
    assert_eq!(state(&q, ready), State::Ready);
    assert_eq!(state(&q, delayed), State::Delayed);
    assert_eq!(q.job(ready).unwrap().last_error(), None);
    assert_eq!(q.totals, Totals { pushed: 2, ..Totals::default() });
    q.check_invariants().unwrap();
}

#[test]
fn lease_expiry_is_a_failed_attempt_named_lease_expired() {
    let mut q = Queue::new();
    let seq = added(q.push(NewJob { lease_ms: 1000, retries: 1, ..nj("a") }, 0));
    reserve(&mut q, 1, 100);
    assert_eq!(q.next_deadline(), Some(1100));
    assert_eq!(q.first_expired(1099), None);
    assert_eq!(q.first_expired(1100), Some(seq));
    let outcome = q.decide_failure(seq, 1100, None, false, BACKOFF_MAX, 0).unwrap();
    assert_eq!(outcome, Outcome::RetryAt(1600));
    // Whatever error text is passed, a lease expiry records "lease expired".
    assert!(q.apply_failure(seq, FailCause::LeaseExpired, Some(b"ignored"), outcome, 0));
    let j = q.job(seq).unwrap();
    assert_eq!(j.state, State::Delayed);
    assert_eq!(j.last_error(), Some(LEASE_EXPIRED));
    assert_eq!(LEASE_EXPIRED, b"lease expired");
    assert_eq!(q.first_expired(u64::MAX), None);
    assert_eq!(q.totals, Totals { pushed: 1, reserved: 1, expired: 1, retried: 1, ..Totals::default() });

    // Second attempt also expires: no attempts left, so dead; still counted as expired, not nacked.
    q.promote_due(1600, 10);
    reserve(&mut q, 1, 1600);
    assert_eq!(q.first_expired(2599), None);
    assert_eq!(q.first_expired(2600), Some(seq));
    let outcome = q.decide_failure(seq, 2600, None, false, BACKOFF_MAX, 0).unwrap();
    assert_eq!(outcome, Outcome::Dead);
    assert!(q.apply_failure(seq, FailCause::LeaseExpired, None, outcome, 0));
    assert_eq!(state(&q, seq), State::Dead);
    assert_eq!(q.job(seq).unwrap().last_error(), Some(LEASE_EXPIRED));
    assert_eq!(q.totals, Totals { pushed: 1, reserved: 2, expired: 2, retried: 1, dead: 1, ..Totals::default() });
    q.check_invariants().unwrap();
}

#[test]
fn first_expired_picks_the_earliest_lease_then_the_lowest_seq() {
    let mut q = Queue::new();
    let a = added(q.push(NewJob { lease_ms: 300, ..nj("a") }, 0));
    let b = added(q.push(NewJob { lease_ms: 100, ..nj("b") }, 0));
    let c = added(q.push(NewJob { lease_ms: 100, ..nj("c") }, 0));
    reserve(&mut q, 3, 0);
    assert_eq!(q.first_expired(99), None);
    assert_eq!(q.first_expired(1000), Some(b));
    assert!(q.ack(b, 1, None));
    assert_eq!(q.first_expired(1000), Some(c));
    assert_eq!(q.first_expired(299), Some(c));
    assert!(q.ack(c, 1, None));
    assert_eq!(q.first_expired(299), None);
    assert_eq!(q.first_expired(300), Some(a));
}

#[test]
fn set_lease_moves_the_deadline_of_a_reserved_job_only() {
    let mut q = Queue::new();
    let a = added(q.push(NewJob { lease_ms: 100, ..nj("a") }, 0));
    let b = added(q.push(nj("b"), 0));
    reserve(&mut q, 1, 0);
    assert_eq!(q.first_expired(100), Some(a));
    assert!(q.set_lease(a, 5000));
    assert_eq!(q.job(a).unwrap().lease_deadline_ms(), Some(5000));
    assert_eq!(q.first_expired(4999), None);
    assert_eq!(q.first_expired(5000), Some(a));
    assert_eq!(q.next_deadline(), Some(5000));
    assert!(!q.set_lease(b, 5000), "ready job has no lease");
    assert!(!q.set_lease(999, 5000));
    assert_eq!(state(&q, b), State::Ready);
    q.check_invariants().unwrap();
}

#[test]
fn attempt_fence_names_exactly_one_reservation() {
    let mut q = Queue::new();
    let seq = added(q.push(NewJob { lease_ms: 100, ..nj("a") }, 0));
    assert!(!q.holds_reservation(seq, None), "ready is not reserved");
    reserve(&mut q, 1, 0);
    assert!(q.holds_reservation(seq, None));
    assert!(q.holds_reservation(seq, Some(1)));
    assert!(!q.holds_reservation(seq, Some(2)));
    assert!(!q.holds_reservation(seq, Some(0)));

    // Worker 1's lease runs out; the job is retried and reserved by worker 2.
    let s = q.first_expired(100).unwrap();
    let outcome = q.decide_failure(s, 100, Some(0), false, BACKOFF_MAX, 0).unwrap();
    q.apply_failure(s, FailCause::LeaseExpired, None, outcome, 0);
    assert!(!q.holds_reservation(seq, Some(1)), "delayed: nobody holds it");
    assert!(!q.holds_reservation(seq, None));
    q.promote_due(100, 10);
    reserve(&mut q, 1, 100);
    assert!(!q.holds_reservation(seq, Some(1)), "worker 1's fence is stale");
    assert!(q.holds_reservation(seq, Some(2)));
    assert!(q.holds_reservation(seq, None));
    assert!(!q.holds_reservation(seq, Some(u64::from(u32::MAX) + 2)));

    q.ack(seq, 1, None);
    assert!(!q.holds_reservation(seq, Some(2)));
    assert!(!q.holds_reservation(seq, None));
}

// ---------------------------------------------------------------------------------------------------------
// Order
// ---------------------------------------------------------------------------------------------------------

#[test]
fn higher_priority_first_then_fifo() {
    let mut q = Queue::new();
    q.push(with_prio("a0", 0), 0);
    q.push(with_prio("b5", 5), 1);
    q.push(with_prio("c0", 0), 2);
    q.push(with_prio("d-3", -3), 3);
    q.push(with_prio("e5", 5), 4);
    q.push(with_prio("f1000000", 1_000_000), 5);
    q.push(with_prio("g-1000000", -1_000_000), 6);
    q.push(with_prio("h0", 0), 7);
    let order = ["f1000000", "b5", "e5", "a0", "c0", "h0", "d-3", "g-1000000"];
    let peek = q.peek_ready(100);
    assert_eq!(payloads(&q, &peek), order);
    let got = reserve(&mut q, 3, 10);
    assert_eq!(payloads(&q, &got), &order[..3]);
    let got = reserve(&mut q, 100, 10);
    assert_eq!(payloads(&q, &got), &order[3..]);
}

#[test]
fn a_promoted_delayed_job_joins_the_back_of_its_line() {
    let mut q = Queue::new();
    // x was created first but only becomes ready at 100, after b.
    let x = added(q.push(due_at("x", 100), 0));
    let a = added(q.push(nj("a"), 0));
    let b = added(q.push(nj("b"), 50));
    let hi = added(q.push(NewJob { due_ms: 100, priority: 1, ..nj("hi") }, 60));
    assert_eq!(q.promote_due(100, 10), 2);
    let c = added(q.push(nj("c"), 100));
    // The promoted high-priority job still beats the older low-priority ones.
    assert_eq!(q.peek_ready(10), vec![hi, a, b, x, c]);
    assert_eq!(reserve(&mut q, 10, 100), vec![hi, a, b, x, c]);
}

#[test]
fn a_retried_job_joins_the_back_after_its_backoff() {
    let mut q = Queue::new();
    let a = added(q.push(nj("a"), 0));
    let b = added(q.push(nj("b"), 0));
    assert_eq!(reserve(&mut q, 1, 0), vec![a]);
    let outcome = q.decide_failure(a, 0, Some(0), false, BACKOFF_MAX, 0).unwrap();
    q.apply_failure(a, FailCause::Nack, None, outcome, 0);
    let c = added(q.push(nj("c"), 0));
    assert_eq!(q.promote_due(0, 10), 1);
    let d = added(q.push(nj("d"), 0));
    assert_eq!(reserve(&mut q, 10, 0), vec![b, c, a, d]);
}

// ---------------------------------------------------------------------------------------------------------
// Ids
// ---------------------------------------------------------------------------------------------------------

#[test]
fn server_ids_are_ms_dash_seq_unique_and_follow_creation() {
    let mut q = Queue::new();
    let mut ids = Vec::new();
    for (i, now) in [1000u64, 1000, 1000, 1001, 5000, 5000].into_iter().enumerate() {
        let seq = added(q.push(nj(&format!("p{i}")), now));
        ids.push(id_str(&q, seq));
    }
    assert_eq!(ids, ["1000-0", "1000-1", "1000-2", "1001-3", "5000-4", "5000-5"]);
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), ids.len());
    // Seqs are never reused, even after the newest job is gone.
    let last = q.find(b"5000-5").unwrap();
    reserve(&mut q, 10, 5000);
    assert!(q.ack(last, 1, None));
    let seq = added(q.push(nj("next"), 5000));
    assert_eq!(id_str(&q, seq), "5000-6");
    assert_eq!(q.find(b"5000-5"), None);
    assert_eq!(q.next_seq(), 7);
}

#[test]
fn find_by_server_and_custom_id() {
    let mut q = Queue::new();
    let s = added(q.push(nj("server"), 1234));
    let c = added(q.push(with_id("custom", "order:42"), 1234));
    assert_eq!(id_str(&q, s), "1234-0");
    assert_eq!(id_str(&q, c), "order:42");
    assert_eq!(q.find(b"1234-0"), Some(s));
    assert_eq!(q.find(b"order:42"), Some(c));
    // A custom job is not found under the server id it would have had.
    assert_eq!(q.find(b"1234-1"), None);
    // Wrong creation ms, unknown seq, junk.
    assert_eq!(q.find(b"1235-0"), None);
    assert_eq!(q.find(b"1234-7"), None);
    assert_eq!(q.find(b"order:43"), None);
    assert_eq!(q.find(b""), None);
    assert_eq!(q.find(b"-"), None);
}

#[test]
fn find_rejects_non_canonical_server_ids() {
    let mut q = Queue::new();
    let s = added(q.push(nj("a"), 1234));
    assert_eq!(q.find(b"1234-0"), Some(s));
    assert_eq!(q.find(b"01234-0"), None);
    assert_eq!(q.find(b"1234-00"), None);
    assert_eq!(q.find(b"+1234-0"), None);
    assert_eq!(q.find(b"1234-0 "), None);
    // Still rejected when the queue also holds custom ids (the other branch of find).
    q.push(with_id("c", "x"), 1234);
    for _ in 0..9 {
        q.push(nj("filler"), 1234);
    }
    let ten = q.find(b"1234-10").unwrap();
    assert_eq!(id_str(&q, ten), "1234-10");
    assert_eq!(q.find(b"01234-10"), None);
    assert_eq!(q.find(b"1234-010"), None);
    assert_eq!(q.find(b"00-10"), None);
}

#[test]
fn push_with_a_live_custom_id_is_idempotent_in_every_state() {
    let mut q = Queue::new();
    let seq = added(q.push(NewJob { retries: 0, ..with_id("first", "k") }, 0));
    let check_existing = |q: &mut Queue, now: u64, expect: State| {
        let before = (q.totals, q.stats(), q.len());
        assert_eq!(q.push(with_id("second", "k"), now), Pushed::Existing(seq));
        // Also with a delay: nothing changes.
        assert_eq!(q.push(NewJob { due_ms: now + 100, ..with_id("third", "k") }, now), Pushed::Existing(seq));
        assert_eq!((q.totals, q.stats(), q.len()), before);
        let j = q.job(seq).unwrap();
        assert_eq!(j.state, expect);
        assert_eq!(&*j.payload, b"first");
    };
    check_existing(&mut q, 1, State::Ready);
    reserve(&mut q, 1, 2);
    check_existing(&mut q, 3, State::Reserved);
    assert_eq!(nack(&mut q, seq, 4, None, 0), Outcome::Dead);
    check_existing(&mut q, 5, State::Dead);
    assert_eq!(q.totals.pushed, 1);

    // Delayed as well.
    let d = added(q.push(NewJob { due_ms: 1000, ..with_id("d", "later") }, 0));
    assert_eq!(q.push(with_id("d2", "later"), 10), Pushed::Existing(d));
    assert_eq!(state(&q, d), State::Delayed);
    assert_eq!(q.stats(), stats(0, 1, 0, 1));
}

#[test]
fn a_custom_id_is_free_again_once_its_job_is_gone() {
    let mut q = Queue::new();
    let first = added(q.push(with_id("one", "k"), 0));
    reserve(&mut q, 1, 0);
    assert!(q.ack(first, 1, None));
    let second = added(q.push(with_id("two", "k"), 10));
    assert_ne!(first, second);
    assert_eq!(q.find(b"k"), Some(second));
    assert_eq!(&*q.job(second).unwrap().payload, b"two");
    assert_eq!(q.totals.pushed, 2);
}

#[test]
fn a_server_id_skips_a_number_a_custom_id_already_holds() {
    let mut q = Queue::new();
    // Seq 0 goes to the custom job; the server id the next push would get at 100 is "100-1".
    let c = added(q.push(with_id("custom", "100-1"), 50));
    let s = added(q.push(nj("server"), 100));
    assert_ne!(id_str(&q, s), "100-1");
    assert_eq!(id_str(&q, s), "100-2");
    assert_eq!(q.find(b"100-1"), Some(c));
    assert_eq!(q.find(b"100-2"), Some(s));
    q.check_invariants().unwrap();
}

#[test]
fn a_custom_id_equal_to_a_live_server_id_adds_nothing() {
    let mut q = Queue::new();
    let s = added(q.push(nj("server"), 100));
    assert_eq!(q.push(with_id("custom", "100-0"), 200), Pushed::Existing(s));
    assert_eq!(q.len(), 1);
    assert_eq!(q.totals.pushed, 1);
}

#[test]
fn insert_rejects_duplicates() {
    let mut q = Queue::new();
    let s = added(q.push(nj("a"), 7));
    let c = added(q.push(with_id("b", "cid"), 7));
    let dup_seq = q.job(s).unwrap().into_owned();
    assert_eq!(q.insert(dup_seq), Err(InsertError::DuplicateSeq(s)));
    let mut dup_custom = q.job(c).unwrap().into_owned();
    dup_custom.seq = 100;
    assert_eq!(q.insert(dup_custom), Err(InsertError::DuplicateId));
    // A server job whose id text a custom job holds.
    let mut holder = q.job(c).unwrap().into_owned();
    holder.seq = 200;
    holder.set_custom_id(Some(b"9-300".to_vec().into()));
    q.insert(holder).unwrap();
    let mut server = q.job(s).unwrap().into_owned();
    server.seq = 300;
    server.created_ms = 9;
    assert_eq!(q.insert(server), Err(InsertError::DuplicateId));
    assert_eq!(q.len(), 3);
    q.check_invariants().unwrap();
    assert_eq!(q.next_seq(), 201);
}

// ---------------------------------------------------------------------------------------------------------
// Totals, stats, deadlines
// ---------------------------------------------------------------------------------------------------------

#[test]
fn totals_count_every_kind_of_event() {
    let mut q = Queue::new();
    let a = added(q.push(NewJob { retries: 1, backoff_ms: 0, ..nj("a") }, 0));
    let b = added(q.push(NewJob { lease_ms: 10, retries: 0, ..nj("b") }, 0));
    let c = added(q.push(nj("c"), 0));
    let _d = added(q.push(due_at("d", 1_000_000), 0));
    let e = added(q.push(with_id("e", "e"), 0));
    q.push(with_id("e-again", "e"), 0); // idempotent: not counted
    assert_eq!(q.totals.pushed, 5);

    reserve(&mut q, 3, 0); // a, b, c
    assert_eq!(q.totals.reserved, 3);
    assert!(q.ack(c, 1, None));
    assert!(!q.ack(c, 1, None));
    nack(&mut q, a, 0, Some(b"x"), 0); // retry (backoff 0 -> due now)
    let exp = q.first_expired(10).unwrap();
    assert_eq!(exp, b);
    let o = q.decide_failure(b, 10, None, false, BACKOFF_MAX, 0).unwrap();
    q.apply_failure(b, FailCause::LeaseExpired, None, o, 0); // dead (retries 0)
    q.promote_due(10, 10);
    assert_eq!(reserve(&mut q, 2, 10), vec![e, a]); // a was promoted behind e
    nack(&mut q, a, 10, None, 0); // dead: attempts spent

    assert_eq!(
        q.totals,
        Totals { pushed: 5, reserved: 5, acked: 1, nacked: 2, expired: 1, retried: 1, dead: 2, ..Totals::default() }
    );
    assert_eq!(q.stats(), stats(0, 1, 1, 2));
    q.check_invariants().unwrap();
}

fn opts() -> super::super::schedule::JobOptions {
    super::super::schedule::JobOptions { retries: 0, backoff_ms: 0, lease_ms: 0, priority: 0 }
}

fn every(name: &str, spec: &str, now: u64) -> Schedule {
    Schedule::new(
        name.as_bytes().into(),
        spec,
        "UTC",
        b"p".to_vec().into(),
        opts(),
        super::super::schedule::Missed::Once,
        None,
        now,
    )
    .unwrap()
}

#[test]
fn stats_counts_each_state_and_schedules() {
    let mut q = Queue::new();
    assert_eq!(q.stats(), Stats::default());
    for i in 0..4 {
        q.push(NewJob { retries: 0, ..nj(&format!("r{i}")) }, 0);
    }
    for i in 0..3 {
        q.push(due_at(&format!("d{i}"), 500 + i), 0);
    }
    let got = reserve(&mut q, 2, 0);
    nack(&mut q, got[0], 0, None, 0);
    q.put_schedule(every("s1", "@every 1s", 0));
    q.put_schedule(every("s2", "@every 2s", 0));
    assert_eq!(q.stats(), Stats { ready: 2, delayed: 3, reserved: 1, dead: 1, schedules: 2, ..Stats::default() });
    assert_eq!(q.len(), 7);
    q.check_invariants().unwrap();
}

#[test]
fn next_deadline_is_the_earliest_of_delayed_lease_and_schedule() {
    let mut q = Queue::new();
    assert_eq!(q.next_deadline(), None);
    q.push(nj("ready"), 0);
    assert_eq!(q.next_deadline(), None, "ready jobs need no timer");
    q.push(due_at("d", 5000), 0);
    assert_eq!(q.next_deadline(), Some(5000));
    q.push(due_at("d2", 4000), 0);
    assert_eq!(q.next_deadline(), Some(4000));
    let r = reserve(&mut q, 1, 1000); // lease to 31000
    assert_eq!(q.next_deadline(), Some(4000));
    q.set_lease(r[0], 3000);
    assert_eq!(q.next_deadline(), Some(3000));
    q.put_schedule(every("s", "@every 500ms", 1000)); // fires at 1500
    assert_eq!(q.next_deadline(), Some(1500));
    q.remove_schedule(b"s");
    q.ack(r[0], 1, None);
    assert_eq!(q.next_deadline(), Some(4000));
    q.promote_due(u64::MAX, 100);
    assert_eq!(q.next_deadline(), None);
}

// ---------------------------------------------------------------------------------------------------------
// Rebuild and invariants
// ---------------------------------------------------------------------------------------------------------

fn rebuild(q: &Queue) -> Queue {
    let mut fresh = Queue::new();
    for j in q.jobs_in_rebuild_order() {
        fresh.insert(j.clone().into_owned()).unwrap_or_else(|e| panic!("insert seq {}: {e}", j.seq));
    }
    fresh.set_next_seq(q.next_seq());
    fresh
}

fn messy_queue() -> Queue {
    let mut q = Queue::new();
    let mut now = 1000;
    for i in 0..40u64 {
        let p = [0, 3, -2, 3, 0][i as usize % 5];
        let mut n = NewJob { priority: p, retries: (i % 3) as u32, backoff_ms: 50, ..nj(&format!("j{i}")) };
        if i % 4 == 0 {
            n.due_ms = now + 100 + i * 7;
        }
        if i % 6 == 0 {
            n.custom_id = Some(format!("c{i}").into_bytes().into());
        }
        if i % 5 == 0 {
            n.lease_ms = 200;
        }
        q.push(n, now);
        now += 3;
    }
    let got = reserve(&mut q, 12, now);
    q.ack(got[0], 1, None);
    q.ack(got[5], 1, None);
    for &s in &got[6..9] {
        nack(&mut q, s, now, Some(b"e"), s);
    }
    now += 150;
    q.promote_due(now, 3); // partial promotion: promoted jobs sit behind older ones
    q.push(with_prio("late0", 0), now);
    q.push(with_prio("late3", 3), now);
    now += 5000;
    q.promote_due(now, 100);
    while let Some(s) = q.first_expired(now) {
        let o = q.decide_failure(s, now, None, false, BACKOFF_MAX, s * 31).unwrap();
        q.apply_failure(s, FailCause::LeaseExpired, None, o, 0);
    }
    reserve(&mut q, 4, now);
    q.push(due_at("far", now + 1_000_000), now);
    q.check_invariants().unwrap();
    let st = q.stats();
    assert!(st.ready > 3 && st.delayed > 0 && st.reserved > 0 && st.dead > 0, "messy queue too tidy: {st:?}");
    q
}

/// A job as stored: its numbers, payload, custom id and last error.
type Stored = (Vec<i64>, Vec<u8>, Option<Vec<u8>>, Option<Vec<u8>>);

/// What an encoding keeps of a job (a ready job's place in its line is the queue's own bookkeeping).
fn stored(j: &Job) -> Stored {
    let numbers = crate::job::JOB_FIELDS.iter().map(|f| (f.get)(j)).collect();
    (numbers, j.payload.to_vec(), j.custom_id().map(<[u8]>::to_vec), j.last_error().map(<[u8]>::to_vec))
}

#[test]
fn rebuild_order_reproduces_the_queue() {
    let q = messy_queue();
    let mut fresh = rebuild(&q);
    fresh.check_invariants().unwrap();
    assert_eq!(fresh.stats(), q.stats());
    assert_eq!(fresh.len(), q.len());
    assert_eq!(fresh.next_seq(), q.next_seq());
    assert_eq!(fresh.next_deadline(), q.next_deadline());
    assert_eq!(fresh.peek_ready(usize::MAX), q.peek_ready(usize::MAX));
    for j in q.jobs_in_rebuild_order() {
        assert_eq!(fresh.job(j.seq).map(|f| stored(&f)), Some(stored(&j)));
        assert_eq!(fresh.find(&j.id_bytes()), Some(j.seq));
    }
    // Both queues then behave the same: same reserve order, same promotions, same next id.
    let mut q = q;
    let t = 10_000_000;
    assert_eq!(q.promote_due(t, usize::MAX), fresh.promote_due(t, usize::MAX));
    assert_eq!(reserve(&mut q, usize::MAX, t), reserve(&mut fresh, usize::MAX, t));
    assert_eq!(q.push(nj("n"), t), fresh.push(nj("n"), t));
    assert_eq!(q.stats(), fresh.stats());
}

#[test]
fn rebuild_order_lists_ready_jobs_in_reserve_order_first() {
    let q = messy_queue();
    let order: Vec<Job> = q.jobs_in_rebuild_order().map(std::borrow::Cow::into_owned).collect();
    let ready = q.peek_ready(usize::MAX);
    let head: Vec<u64> = order.iter().take(ready.len()).map(|j| j.seq).collect();
    assert_eq!(head, ready);
    let tail: Vec<u64> = order.iter().skip(ready.len()).map(|j| j.seq).collect();
    assert!(tail.windows(2).all(|w| w[0] < w[1]), "rest by seq");
    assert!(order.iter().skip(ready.len()).all(|j| j.state != State::Ready));
    assert_eq!(order.len(), q.len());
}

#[test]
fn check_invariants_notices_each_kind_of_disagreement() {
    let base = messy_queue;
    let mut q = base();
    q.ready_len += 1;
    assert!(q.check_invariants().is_err());

    let mut q = base();
    q.dead.insert((0, u64::MAX - 1));
    assert!(q.check_invariants().is_err());

    let mut q = base();
    let &(d, s) = q.delayed.first().unwrap();
    q.delayed.remove(&(d, s));
    q.delayed.insert((d + 1, s));
    assert!(q.check_invariants().is_err());

    let mut q = base();
    let &(d, s) = q.leases.first().unwrap();
    q.jobs.get_mut(s).unwrap().deadline_ms = d + 1;
    assert!(q.check_invariants().is_err());

    let mut q = base();
    q.next_seq = 0;
    assert!(q.check_invariants().is_err());

    let mut q = base();
    let s = q.ready.values_mut().next().unwrap().front().unwrap();
    q.jobs.get_mut(s).unwrap().state = State::Dead;
    assert!(q.check_invariants().is_err());

    base().check_invariants().unwrap();
}

// ---------------------------------------------------------------------------------------------------------
// Backoff through decide_failure
// ---------------------------------------------------------------------------------------------------------

#[test]
fn backoff_doubles_per_retry_within_half_to_full_and_is_capped() {
    let base = 1000;
    let max = 5000;
    let now = 77_000;
    // Retry k follows attempt k: d = min(max, base * 2^(k-1)).
    let expected_d = [1000u64, 2000, 4000, 5000, 5000];
    let randoms = [0u64, 1, 2, 499, 500, 501, 1000, 2500, 123_456_789, u64::MAX];
    for (k, &d) in expected_d.iter().enumerate() {
        let attempts = k as u32 + 1;
        let mut q = Queue::new();
        let seq = added(q.push(NewJob { retries: 10, backoff_ms: base, ..nj("a") }, 0));
        for _ in 0..attempts {
            q.promote_due(u64::MAX, 1);
            reserve(&mut q, 1, 0);
            if q.job(seq).unwrap().attempts < attempts {
                let o = q.decide_failure(seq, 0, Some(0), false, max, 0).unwrap();
                q.apply_failure(seq, FailCause::Nack, None, o, 0);
            }
        }
        assert_eq!(q.job(seq).unwrap().attempts, attempts);
        let mut seen_low = false;
        let mut seen_high = false;
        // random = span hits the top: low + r % (span + 1) with span = d - d/2.
        for r in randoms.into_iter().chain([d - d / 2]) {
            let Some(Outcome::RetryAt(at)) = q.decide_failure(seq, now, None, false, max, r) else {
                panic!("attempt {attempts}: expected a retry");
            };
            let delay = at - now;
            assert!(
                delay >= d / 2 && delay <= d,
                "attempt {attempts} random {r}: delay {delay} outside [{}, {d}]",
                d / 2
            );
            seen_low |= delay == d / 2;
            seen_high |= delay == d;
        }
        assert!(seen_low && seen_high, "attempt {attempts}: jitter does not reach both ends");
        // Same random, same delay: the decision is data.
        assert_eq!(q.decide_failure(seq, now, None, false, max, 42), q.decide_failure(seq, now, None, false, max, 42));
    }
}

#[test]
fn backoff_zero_retries_immediately_and_huge_backoff_is_capped() {
    let mut q = Queue::new();
    let z = added(q.push(NewJob { backoff_ms: 0, ..nj("z") }, 0));
    let h = added(q.push(NewJob { backoff_ms: 315_360_000_000, ..nj("h") }, 0));
    reserve(&mut q, 2, 0);
    assert_eq!(q.decide_failure(z, 10, None, false, BACKOFF_MAX, 999), Some(Outcome::RetryAt(10)));
    for r in [0, 1, u64::MAX] {
        let Some(Outcome::RetryAt(at)) = q.decide_failure(h, 10, None, false, BACKOFF_MAX, r) else { panic!() };
        assert!((10 + BACKOFF_MAX / 2..=10 + BACKOFF_MAX).contains(&at), "{at}");
    }
}

// ---------------------------------------------------------------------------------------------------------
// Model test: random operations against a simple model
// ---------------------------------------------------------------------------------------------------------

struct XorShift(u64);

impl XorShift {
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }
}

#[derive(Clone, Debug)]
struct MJob {
    state: State,
    priority: i32,
    /// When the job last became ready (a global counter): FIFO within a priority.
    ready_stamp: u64,
    deadline: u64,
    attempts: u32,
    retries: u32,
    backoff: u64,
    lease: u64,
    custom: Option<Vec<u8>>,
}

#[derive(Default)]
struct Model {
    jobs: std::collections::BTreeMap<u64, MJob>,
    next_seq: u64,
    stamp: u64,
    totals: Totals,
}

impl Model {
    fn count(&self, s: State) -> u64 {
        self.jobs.values().filter(|j| j.state == s).count() as u64
    }
    fn make_ready(&mut self, seq: u64) {
        self.stamp += 1;
        let j = self.jobs.get_mut(&seq).unwrap();
        j.state = State::Ready;
        j.deadline = 0;
        j.ready_stamp = self.stamp;
    }
    fn ready_order(&self) -> Vec<u64> {
        let mut v: Vec<(i32, u64, u64)> = self
            .jobs
            .iter()
            .filter(|(_, j)| j.state == State::Ready)
            .map(|(&s, j)| (-j.priority, j.ready_stamp, s))
            .collect();
        v.sort();
        v.into_iter().map(|(_, _, s)| s).collect()
    }
    fn by_deadline(&self, s: State) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> =
            self.jobs.iter().filter(|(_, j)| j.state == s).map(|(&seq, j)| (j.deadline, seq)).collect();
        v.sort();
        v
    }
    fn reserved_seqs(&self) -> Vec<u64> {
        self.jobs.iter().filter(|(_, j)| j.state == State::Reserved).map(|(&s, _)| s).collect()
    }
    fn next_deadline(&self) -> Option<u64> {
        self.jobs.values().filter(|j| matches!(j.state, State::Delayed | State::Reserved)).map(|j| j.deadline).min()
    }
}

/// Fails `seq` in both the queue and the model, checking the decision against the rules.
fn model_fail(q: &mut Queue, m: &mut Model, rng: &mut XorShift, seq: u64, now: u64, cause: FailCause) {
    let override_delay = if cause == FailCause::Nack && rng.chance(20) { Some(rng.below(300)) } else { None };
    let force = cause == FailCause::Nack && rng.chance(5);
    let random = rng.next();
    let outcome = q.decide_failure(seq, now, override_delay, force, 400, random).unwrap();
    let mj = m.jobs.get_mut(&seq).unwrap();
    if force || mj.attempts > mj.retries {
        assert_eq!(outcome, Outcome::Dead, "seq {seq}: {mj:?}");
    } else {
        let Outcome::RetryAt(at) = outcome else { panic!("seq {seq} should retry: {mj:?}") };
        match override_delay {
            Some(d) => assert_eq!(at, now + d),
            None => {
                let shift = mj.attempts - 1;
                let d = if shift >= 63 { 400 } else { mj.backoff.checked_shl(shift).unwrap_or(u64::MAX).min(400) };
                assert!(at >= now + d / 2 && at <= now + d, "seq {seq}: retry at {at}, d={d}, now={now}");
            }
        }
    }
    let error: Option<&[u8]> = if rng.chance(50) { Some(b"err") } else { None };
    assert!(q.apply_failure(seq, cause, error, outcome, 0));
    match cause {
        FailCause::Nack => m.totals.nacked += 1,
        FailCause::LeaseExpired => m.totals.expired += 1,
    }
    match outcome {
        Outcome::RetryAt(at) => {
            mj.state = State::Delayed;
            mj.deadline = at;
            m.totals.retried += 1;
        }
        Outcome::Dead => {
            mj.state = State::Dead;
            mj.deadline = 0;
            m.totals.dead += 1;
        }
    }
    if cause == FailCause::LeaseExpired {
        assert_eq!(q.job(seq).unwrap().last_error(), Some(LEASE_EXPIRED));
    }
}

fn compare(q: &Queue, m: &Model, step: usize) {
    if let Err(e) = q.check_invariants() {
        panic!("step {step}: {e}");
    }
    let expect = Stats {
        ready: m.count(State::Ready),
        delayed: m.count(State::Delayed),
        reserved: m.count(State::Reserved),
        dead: m.count(State::Dead),
        ..Stats::default()
    };
    assert_eq!(q.stats(), expect, "step {step}");
    assert_eq!(q.totals, m.totals, "step {step}");
    assert_eq!(q.len(), m.jobs.len(), "step {step}");
    assert_eq!(q.next_seq(), m.next_seq, "step {step}");
    assert_eq!(q.next_deadline(), m.next_deadline(), "step {step}");
    assert_eq!(q.peek_ready(usize::MAX), m.ready_order(), "step {step}");
    for (&seq, mj) in &m.jobs {
        let j = q.job(seq).unwrap_or_else(|| panic!("step {step}: seq {seq} missing"));
        assert_eq!(j.state, mj.state, "step {step} seq {seq}");
        assert_eq!(j.attempts, mj.attempts, "step {step} seq {seq}");
        if matches!(mj.state, State::Delayed | State::Reserved) {
            assert_eq!(j.deadline_ms, mj.deadline, "step {step} seq {seq}");
        }
        assert_eq!(q.find(&j.id_bytes()), Some(seq), "step {step} seq {seq}");
    }
}

fn run_model(seed: u64, steps: usize) {
    let mut rng = XorShift(seed);
    let mut q = Queue::new();
    let mut m = Model::default();
    let mut now: u64 = 1_000_000;
    for step in 0..steps {
        match rng.below(100) {
            // push
            0..=29 => {
                let custom = rng.chance(30).then(|| format!("c{}", rng.below(12)).into_bytes());
                let new = NewJob {
                    custom_id: custom.clone().map(Into::into),
                    payload: b"x".to_vec().into(),
                    due_ms: if rng.chance(40) { now + rng.below(300) } else { now.saturating_sub(rng.below(5)) },
                    retries: rng.below(4) as u32,
                    backoff_ms: rng.below(150),
                    lease_ms: if rng.chance(50) { 0 } else { 1 + rng.below(300) },
                    priority: rng.below(4) as i32 - 1,
                    group: None,
                    ..NewJob::default()
                };
                let live = custom
                    .as_ref()
                    .and_then(|c| m.jobs.iter().find(|(_, j)| j.custom.as_ref() == Some(c)).map(|(&s, _)| s));
                let got = q.push(new.clone(), now);
                match live {
                    Some(seq) => assert_eq!(got, Pushed::Existing(seq), "step {step}"),
                    None => {
                        let seq = m.next_seq;
                        assert_eq!(got, Pushed::Added(seq), "step {step}");
                        m.next_seq += 1;
                        m.totals.pushed += 1;
                        m.jobs.insert(
                            seq,
                            MJob {
                                state: State::Delayed,
                                priority: new.priority,
                                ready_stamp: 0,
                                deadline: new.due_ms,
                                attempts: 0,
                                retries: new.retries,
                                backoff: new.backoff_ms,
                                lease: new.lease_ms,
                                custom,
                            },
                        );
                        if new.due_ms <= now {
                            m.make_ready(seq);
                        }
                    }
                }
            }
            // reserve
            30..=49 => {
                let count = 1 + rng.below(3) as usize;
                let expect: Vec<u64> = m.ready_order().into_iter().take(count).collect();
                let got = reserve(&mut q, count, now);
                assert_eq!(got, expect, "step {step}");
                for s in got {
                    let mj = m.jobs.get_mut(&s).unwrap();
                    mj.state = State::Reserved;
                    mj.attempts += 1;
                    mj.deadline = now + if mj.lease == 0 { DEFAULT_LEASE } else { mj.lease };
                    m.totals.reserved += 1;
                }
            }
            // ack: usually a reserved job, sometimes any job or an unknown seq
            50..=64 => {
                let reserved = m.reserved_seqs();
                let seq = if !reserved.is_empty() && rng.chance(80) {
                    reserved[rng.below(reserved.len() as u64) as usize]
                } else {
                    rng.below(m.next_seq + 3)
                };
                let expect = m.jobs.get(&seq).is_some_and(|j| j.state == State::Reserved);
                assert_eq!(q.ack(seq, 1, None), expect, "step {step} seq {seq}");
                if expect {
                    m.jobs.remove(&seq);
                    m.totals.acked += 1;
                }
            }
            // nack with a fence, sometimes a stale one
            65..=76 => {
                let reserved = m.reserved_seqs();
                if let Some(&seq) = reserved.get(rng.below(reserved.len().max(1) as u64) as usize) {
                    let attempts = m.jobs[&seq].attempts as u64;
                    let fence = if rng.chance(20) { attempts - 1 } else { attempts };
                    let holds = q.holds_reservation(seq, Some(fence));
                    assert_eq!(holds, fence == attempts, "step {step}");
                    if holds {
                        model_fail(&mut q, &mut m, &mut rng, seq, now, FailCause::Nack);
                    }
                }
            }
            // extend
            77..=81 => {
                let reserved = m.reserved_seqs();
                if let Some(&seq) = reserved.get(rng.below(reserved.len().max(1) as u64) as usize) {
                    let deadline = now + 1 + rng.below(400);
                    assert!(q.set_lease(seq, deadline));
                    m.jobs.get_mut(&seq).unwrap().deadline = deadline;
                }
            }
            // timer: promote due jobs (bounded), expire leases
            82..=91 => {
                let max = 1 + rng.below(4) as usize;
                let due: Vec<(u64, u64)> =
                    m.by_deadline(State::Delayed).into_iter().filter(|&(d, _)| d <= now).take(max).collect();
                assert_eq!(q.due_count(now, max), due.len(), "step {step}");
                assert_eq!(q.promote_due(now, max), due.len(), "step {step}");
                for (_, s) in due {
                    m.make_ready(s);
                }
                while let Some(seq) = q.first_expired(now) {
                    let expect = m.by_deadline(State::Reserved).into_iter().find(|&(d, _)| d <= now);
                    assert_eq!(Some(seq), expect.map(|(_, s)| s), "step {step}");
                    model_fail(&mut q, &mut m, &mut rng, seq, now, FailCause::LeaseExpired);
                }
                assert!(m.by_deadline(State::Reserved).first().is_none_or(|&(d, _)| d > now));
            }
            // time passes
            _ => now += rng.below(120),
        }
        compare(&q, &m, step);
        if step % 250 == 249 {
            let fresh = rebuild(&q);
            fresh.check_invariants().unwrap();
            assert_eq!(fresh.stats(), q.stats(), "rebuild at step {step}");
            assert_eq!(fresh.peek_ready(usize::MAX), q.peek_ready(usize::MAX), "rebuild at step {step}");
            assert_eq!(fresh.next_deadline(), q.next_deadline(), "rebuild at step {step}");
        }
    }
    // The run reached every state and every kind of event.
    let t = m.totals;
    assert!(t.acked > 0 && t.nacked > 0 && t.expired > 0 && t.retried > 0 && t.dead > 0, "{t:?}");
}

#[test]
fn random_operations_agree_with_a_simple_model() {
    run_model(0x9E37_79B9_7F4A_7C15, 5000);
}

#[test]
fn random_operations_agree_with_a_simple_model_other_seeds() {
    for seed in [1u64, 0xDEAD_BEEF, 0x0123_4567_89AB_CDEF] {
        run_model(seed, 1500);
    }
}

#[test]
fn retry_sends_a_dead_job_back_with_a_fresh_budget_and_a_growing_attempt() {
    let mut q = Queue::new();
    let seq = added(q.push(NewJob { retries: 0, ..nj("a") }, 0));
    let other = added(q.push(nj("b"), 0));
    assert_eq!(q.reserve(1, 0, lease_of), vec![seq]);
    let outcome = q.decide_failure(seq, 0, None, false, 1000, 0).unwrap();
    assert!(q.apply_failure(seq, FailCause::Nack, Some(b"boom"), outcome, 0));
    assert_eq!(q.job(seq).unwrap().state, State::Dead);
    assert!(!q.retry_dead(other, 1), "only dead jobs are retried");
    assert!(q.retry_dead(seq, 1));
    let j = q.job(seq).unwrap();
    assert_eq!((j.state, j.attempts, j.tries()), (State::Ready, 1, 0));
    assert_eq!(j.last_error(), Some(&b"boom"[..]));
    assert_eq!(q.peek_ready(2), vec![other, seq], "a retried job joins the back of the line");
    assert_eq!(q.stats().dead, 0);
    q.check_invariants().unwrap();
    // The next reservation is attempt 2: the stale fence (seq, 1) no longer holds it.
    assert_eq!(q.reserve(2, 0, lease_of), vec![other, seq]);
    assert!(!q.holds_reservation(seq, Some(1)));
    assert!(q.holds_reservation(seq, Some(2)));
    // RETRIES 0 counts from the retry: this failure is the budget's first, so the job is dead again.
    let outcome = q.decide_failure(seq, 0, None, false, 1000, 0).unwrap();
    assert_eq!(outcome, crate::backoff::Outcome::Dead);
    assert!(q.apply_failure(seq, FailCause::Nack, None, outcome, 0));
    assert!(q.retry_dead(seq, 1));
    assert_eq!((q.job(seq).unwrap().attempts, q.job(seq).unwrap().retry_base()), (2, 2));
}

#[test]
fn a_retried_job_gets_its_whole_retry_budget_again() {
    let mut q = Queue::new();
    let seq = added(q.push(NewJob { retries: 1, ..nj("a") }, 0));
    let fail_once = |q: &mut Queue| {
        assert_eq!(q.reserve(1, 0, lease_of), vec![seq]);
        let o = q.decide_failure(seq, 0, None, false, 1000, 0).unwrap();
        assert!(q.apply_failure(seq, FailCause::Nack, None, o, 0));
        if q.job(seq).unwrap().state == State::Delayed {
            q.promote_first(1);
        }
        q.job(seq).unwrap().state
    };
    assert_eq!(fail_once(&mut q), State::Ready);
    assert_eq!(fail_once(&mut q), State::Dead);
    assert!(q.retry_dead(seq, 1));
    assert_eq!(fail_once(&mut q), State::Ready, "one retry again after ONCE.RETRY");
    assert_eq!(fail_once(&mut q), State::Dead);
    assert_eq!(q.job(seq).unwrap().attempts, 4);
}

#[test]
fn cancel_finishes_any_unfinished_job_reserved_ones_too() {
    let mut q = Queue::new();
    let ready = added(q.push(with_id("a", "r"), 0));
    let delayed = added(q.push(due_at("b", 500), 0));
    let held = added(q.push(nj("c"), 0));
    assert_eq!(q.reserve(1, 0, lease_of), vec![ready]);
    assert!(q.cancel(delayed, 1, b"cancelled"));
    assert!(q.cancel(held, 1, b"cancelled"));
    assert!(!q.cancel(held, 1, b"cancelled"));
    assert!(q.cancel(ready, 2, b"cancelled"), "a reserved job is cancelled at once");
    assert!(!q.ack(ready, 3, None), "its holder's ACK finds nothing to complete");
    assert!(!q.holds_reservation(ready, Some(1)));
    assert_eq!(q.stats(), Stats::default());
    assert_eq!(q.find(b"r"), None, "not kept (KEEP 0): the id is free again");
    q.check_invariants().unwrap();
}

fn keeping(ms: u64, max: u64) -> Queue {
    let mut q = Queue::new();
    q.set_settings(Settings { keep_ms: ms, keep_max: max, ..Settings::default() });
    q
}

#[test]
fn a_kept_job_holds_its_result_and_its_id_until_keep_ends() {
    let mut q = keeping(1_000, 0);
    let a = added(q.push(with_id("a", "x"), 0));
    q.reserve(1, 10, lease_of);
    assert!(q.ack(a, 20, Some(b"42")));
    let f = q.outcome(a).unwrap();
    assert_eq!(
        (f.state, f.result.as_deref(), f.finished_ms, f.attempts),
        (State::Completed, Some(&b"42"[..]), Some(20), 1)
    );
    assert_eq!(q.stats().completed, 1);
    assert_eq!(q.push(with_id("again", "x"), 30), Pushed::Existing(a), "the dedup window");
    assert_eq!(q.next_deadline(), Some(1_020));
    assert!(q.kept_to_forget(1_019, 10).is_empty());
    assert_eq!(q.kept_to_forget(1_020, 10), vec![a]);
    assert_eq!(q.forget_kept(&[a]), 1);
    assert!(matches!(q.push(with_id("again", "x"), 1_030), Pushed::Added(_)), "the id is free after KEEP");
    assert_eq!(q.totals.acked, 1);
    q.check_invariants().unwrap();
}

#[test]
fn a_jobs_own_keep_wins_and_keep_max_pushes_out_the_nearest_end() {
    let mut q = keeping(0, 2);
    let short = added(q.push(NewJob { keep_ms: Some(100), ..nj("a") }, 0));
    let long = added(q.push(NewJob { keep_ms: Some(10_000), ..nj("b") }, 0));
    let plain = added(q.push(nj("c"), 0));
    let third = added(q.push(NewJob { keep_ms: Some(5_000), ..nj("d") }, 0));
    q.reserve(4, 1, lease_of);
    for s in [short, long, plain, third] {
        assert!(q.ack(s, 2, None));
    }
    assert!(q.job(plain).is_none(), "KEEP 0 (the queue's) keeps nothing");
    assert!(q.job(short).is_none(), "past KEEP-MAX the kept job nearest its end went");
    assert_eq!(
        (q.job(long).map(|j| j.state), q.job(third).map(|j| j.state)),
        (Some(State::Completed), Some(State::Completed))
    );
    q.set_settings(Settings { keep_max: 1, ..q.settings });
    assert_eq!(q.kept_to_forget(3, 10), vec![third], "a lower KEEP-MAX is the timer's to apply");
    q.check_invariants().unwrap();
}

#[test]
fn a_ttl_ends_a_job_that_never_started_and_only_such_a_job() {
    let mut q = Queue::new();
    let ttl = |ms: u64, drop| Some(crate::job::Ttl { at: ms, drop });
    let dies = added(q.push(NewJob { ttl: ttl(100, false), ..nj("a") }, 0));
    let goes = added(q.push(NewJob { ttl: ttl(100, true), ..nj("b") }, 0));
    let starts = added(q.push(NewJob { ttl: ttl(100, false), ..due_at("c", 50) }, 0));
    assert_eq!(q.next_deadline(), Some(50));
    q.promote_due(50, 10);
    // Reserves the best ready job: `dies` and `goes` came first, so reserve `starts` by name.
    assert!(q.reserve_exact(starts, 1_000, 60));
    assert_eq!(q.ttl_due(99, 10), Vec::<u64>::new());
    let due = q.ttl_due(100, 10);
    assert_eq!(due, vec![dies, goes], "a started job's TTL no longer applies");
    for s in due {
        assert!(q.expire_unstarted(s, 100));
    }
    let dead = q.job(dies).unwrap();
    assert_eq!((dead.state, dead.last_error()), (State::Dead, Some(EXPIRED_BEFORE_START)));
    assert!(q.job(goes).is_none());
    assert_eq!((q.totals.expired_unstarted, q.totals.dead), (2, 1));
    assert!(!q.expire_unstarted(starts, 200));
    q.check_invariants().unwrap();
}

#[test]
fn progress_is_fenced_and_a_call_cancel_time_cancels_the_unfinished() {
    let mut q = keeping(500, 0);
    let a = added(q.push(NewJob { cancel_at: Some(300), ..nj("a") }, 0));
    q.reserve(1, 10, lease_of);
    assert!(!q.set_progress(a, Some(2), b"half", 20), "another attempt's progress is refused");
    assert!(q.set_progress(a, Some(1), b"half", 20));
    assert_eq!(q.cancels_due(299, 10), Vec::<u64>::new());
    assert_eq!(q.cancels_due(300, 10), vec![a]);
    assert!(q.cancel(a, 300, b"call timed out"));
    let f = q.outcome(a).unwrap();
    assert_eq!(
        (f.state, f.error.as_deref(), f.progress.as_deref()),
        (State::Cancelled, Some(&b"call timed out"[..]), Some(&b"half"[..]))
    );
    assert!(!q.set_progress(a, Some(1), b"more", 301), "the holder learns it was cancelled");
    assert_eq!(q.stats().cancelled, 1);
    assert_eq!(q.purge(State::Completed), Some(1), "PURGE completed takes every kept job");
    assert_eq!(q.stats().cancelled, 0);
    q.check_invariants().unwrap();
}

#[test]
fn wait_and_run_are_measured_from_the_masters_times() {
    use crate::histogram::bucket_of;
    let mut q = Queue::new();
    let a = added(q.push(nj("a"), 1_000));
    let b = added(q.push(due_at("b", 5_000), 1_000));
    // a waited 30 ms; b was due at 5000 and is promoted late, at 9000: it waits from its due time.
    assert_eq!(reserve(&mut q, 1, 1_030), vec![a]);
    assert_eq!(q.promote_due(9_000, 10), 1);
    assert_eq!(reserve(&mut q, 1, 9_100), vec![b]);
    assert_eq!(q.wait.counts[bucket_of(30)], 1);
    assert_eq!(q.wait.counts[bucket_of(4_100)], 1);
    assert_eq!(q.wait.sum_ms, 30 + 4_100);
    assert!(q.ack(a, 1_530, None));
    nack(&mut q, b, 9_107, Some(b"boom"), 0);
    assert_eq!(q.run.counts[bucket_of(500)], 1);
    assert_eq!(q.run.counts[bucket_of(7)], 1);
    assert_eq!(q.run.count(), 2);
    // Unknown times (older encodings) give no sample.
    let c = added(q.push(nj("c"), 10_000));
    q.jobs.get_mut(c).unwrap().since_ms = 0;
    assert_eq!(reserve(&mut q, 1, 10_050), vec![c]);
    assert_eq!(q.wait.count(), 2);
}

#[test]
fn the_event_log_keeps_the_last_n_transitions_with_their_times() {
    use crate::events::Kind;
    let mut q = Queue::new();
    added(q.push(nj("off"), 1));
    assert_eq!(q.events.last_id(), 0, "no log while EVENTS-MAX is 0");
    q.set_settings(Settings { events_max: 4, ..Settings::default() });
    let a = added(q.push(with_id("a", "job-a"), 10));
    assert_eq!(reserve(&mut q, 2, 20).len(), 2);
    nack(&mut q, a, 30, Some(b"boom"), 0);
    let got: Vec<(Kind, u64)> = q.events.iter().map(|e| (e.kind, e.ms)).collect();
    assert_eq!(got, vec![(Kind::Reserve, 20), (Kind::Reserve, 20), (Kind::Nack, 30), (Kind::Retry, 30)]);
    let nacked = q.events.iter().nth(2).unwrap();
    assert_eq!(nacked.job.as_deref(), Some(&b"job-a"[..]));
    assert_eq!(nacked.attempt, 1);
    assert_eq!(nacked.error.as_deref(), Some(&b"boom"[..]));
    assert_eq!(q.events.last_id(), 5);
    q.note_queue(Kind::Pause, 40);
    assert_eq!(q.events.iter().last().map(|e| (e.id, e.kind, e.job.is_none())), Some((6, Kind::Pause, true)));
    q.set_settings(Settings { events_max: 1, ..Settings::default() });
    assert_eq!(q.events.len(), 1, "lowering EVENTS-MAX trims at once");
}

#[test]
fn a_finished_job_leaves_its_group_and_none_enters_with_one() {
    let mut q = keeping(1_000, 0);
    let a = added(q.push(NewJob { group: Some(b"g".to_vec().into()), ..nj("a") }, 0));
    q.reserve(1, 10, lease_of);
    assert!(q.ack(a, 20, None));
    let kept = q.job(a).unwrap().into_owned();
    assert_eq!(q.group_name(&kept), None, "the kept job no longer names its group");
    assert_eq!(q.flow.named(), 0, "so the drained group could go");
    // What an encoding would carry if it named one: refused, for the group may be freed under the job.
    let mut other = kept.clone();
    other.seq = 99;
    assert_eq!(q.insert_in_group(other, Some(b"g"), false), Err(crate::queue::InsertError::FinishedInGroup));
    q.check_invariants().unwrap();
}
