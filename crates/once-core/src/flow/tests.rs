//! Flow control through the queue, with a fake clock.

use crate::flow::Rate;
use crate::queue::{NewJob, Pushed, Queue};
use crate::settings::Settings;
use crate::Job;

fn job(group: Option<&str>) -> NewJob {
    NewJob {
        custom_id: None,
        payload: b"p"[..].into(),
        due_ms: 0,
        retries: 3,
        backoff_ms: 1000,
        lease_ms: 0,
        priority: 0,
        group: group.map(|g| g.as_bytes().into()),
        ..NewJob::default()
    }
}

fn push(q: &mut Queue, group: Option<&str>, now: u64) -> u64 {
    match q.push(job(group), now) {
        Pushed::Added(s) => s,
        other => panic!("{other:?}"),
    }
}

fn lease(_: &Job) -> u64 {
    60_000
}

fn with(q: &mut Queue, f: impl FnOnce(&mut Settings)) {
    let mut s = q.settings;
    f(&mut s);
    q.set_settings(s);
}

fn group_of(q: &Queue, seq: u64) -> Vec<u8> {
    q.group_name(&q.job(seq).unwrap()).unwrap_or(b"").to_vec()
}

#[test]
fn concurrency_bounds_reservations_and_each_ack_frees_one() {
    let mut q = Queue::new();
    with(&mut q, |s| s.concurrency = 2);
    for _ in 0..10 {
        push(&mut q, None, 1);
    }
    let got = q.reserve(5, 10, lease);
    assert_eq!(got.len(), 2);
    assert!(q.reserve(1, 11, lease).is_empty());
    assert!(q.ack(got[0], 12, None));
    assert_eq!(q.reserve(5, 13, lease).len(), 1, "one ACK frees one place");
    assert!(q.reserve(1, 14, lease).is_empty());
    assert_eq!(q.wake_at(14), None, "only a release can help");
}

#[test]
fn a_rate_is_a_sliding_window_never_a_burst_beyond_n() {
    let mut q = Queue::new();
    with(&mut q, |s| s.rate = Rate { n: 3, per_ms: 1000 });
    for _ in 0..20 {
        push(&mut q, None, 1);
    }
    let mut times = Vec::new();
    for now in (0..5000).step_by(50) {
        for _ in q.reserve(10, now, lease) {
            times.push(now);
        }
    }
    // No window of 1000 ms holds more than 3, and the window refills one at a time.
    for (i, &t) in times.iter().enumerate() {
        assert!(times[i..].iter().take_while(|&&u| u < t + 1000).count() <= 3, "{times:?}");
    }
    assert_eq!(&times[..6], &[0, 0, 0, 1000, 1000, 1000]);
    assert_eq!(times.len(), 15);
    assert_eq!(q.wake_at(4950), Some(5000));
}

#[test]
fn groups_take_turns_so_a_small_tenant_is_not_starved() {
    let mut q = Queue::new();
    for _ in 0..10_000 {
        push(&mut q, Some("A"), 1);
    }
    for _ in 0..10 {
        push(&mut q, Some("B"), 2);
    }
    let first: Vec<Vec<u8>> = q.reserve(20, 10, lease).iter().map(|&s| group_of(&q, s)).collect();
    assert_eq!(first.iter().filter(|g| g.as_slice() == b"B").count(), 10, "{first:?}");
    q.check_invariants().unwrap();
}

#[test]
fn group_concurrency_one_and_an_override() {
    let mut q = Queue::new();
    with(&mut q, |s| s.group_concurrency = 1);
    for g in ["a", "a", "a", "b", "b", "b"] {
        push(&mut q, Some(g), 1);
    }
    let got = q.reserve(10, 5, lease);
    assert_eq!(got.len(), 2, "one per group");
    let a = q.flow.gid(b"a").unwrap();
    q.flow.set_own(a, crate::flow::Limits { concurrency: Some(3), rate: None }, &q.limits());
    let more = q.reserve(10, 6, lease);
    assert_eq!(more.iter().map(|&s| group_of(&q, s)).collect::<Vec<_>>(), vec![b"a".to_vec(), b"a".to_vec()]);
    for s in got.iter().chain(&more) {
        assert!(q.ack(*s, 7, None));
    }
    q.check_invariants().unwrap();
}

#[test]
fn drained_groups_cost_nothing_and_rate_windows_outlive_the_jobs() {
    let mut q = Queue::new();
    for i in 0..1000 {
        push(&mut q, Some(&format!("g{i}")), 1);
    }
    assert_eq!(q.flow.named(), 1000);
    for s in q.reserve(1000, 2, lease) {
        assert!(q.ack(s, 3, None));
    }
    assert_eq!(q.flow.named(), 0, "drained groups are freed");
    with(&mut q, |s| s.group_rate = Rate { n: 1, per_ms: 100 });
    let s = push(&mut q, Some("r"), 10);
    assert_eq!(q.reserve(1, 10, lease), vec![s]);
    assert!(q.ack(s, 11, None));
    assert_eq!(q.flow.named(), 1, "its window still holds");
    let again = push(&mut q, Some("r"), 20);
    assert!(q.reserve(1, 20, lease).is_empty(), "the window is kept across the drain");
    assert_eq!(q.reserve(1, 110, lease), vec![again]);
    assert!(q.ack(again, 111, None));
    let other = push(&mut q, None, 300);
    assert_eq!(q.reserve(1, 300, lease), vec![other]);
    assert_eq!(q.flow.named(), 0, "the idle group went once its window ended");
    q.check_invariants().unwrap();
}

#[test]
fn a_replica_replaying_the_reservations_holds_the_same_ring() {
    let mut master = Queue::new();
    let mut replica = Queue::new();
    for q in [&mut master, &mut replica] {
        with(q, |s| s.group_rate = Rate { n: 2, per_ms: 500 });
    }
    for (i, g) in ["x", "y", "z", "x", "y", "x", "x", "z"].iter().enumerate() {
        push(&mut master, Some(g), i as u64 + 1);
        push(&mut replica, Some(g), i as u64 + 1);
    }
    for now in [10, 20, 600, 700, 1300] {
        for s in master.reserve(3, now, lease) {
            let deadline = master.job(s).unwrap().deadline_ms;
            assert!(replica.reserve_exact(s, deadline, now));
        }
        let names =
            |q: &Queue| q.flow.ring_order(&q.limits()).iter().map(|&g| q.flow.name(g).to_vec()).collect::<Vec<_>>();
        assert_eq!(names(&master), names(&replica), "at {now}");
    }
}
