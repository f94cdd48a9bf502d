//! Flows across queues with a fake clock: a small router stands for the glue, handing each notice and pin to
//! the queue it names, as the module does within one slot.

use std::collections::BTreeMap;

use super::super::{NewJob, Pushed, Queue};
use super::Told;
use crate::deps::{Link, OnFail, Outcome, Target, Waits};
use crate::State;

#[derive(Default)]
struct World {
    queues: BTreeMap<&'static str, Queue>,
}

impl World {
    fn q(&mut self, name: &'static str) -> &mut Queue {
        self.queues.entry(name).or_default()
    }

    fn push(&mut self, name: &'static str, payload: &str, now: u64) -> u64 {
        match self.q(name).push(NewJob { payload: payload.as_bytes().into(), retries: 0, ..NewJob::default() }, now) {
            Pushed::Added(s) => s,
            other => panic!("{other:?}"),
        }
    }

    /// What the glue does for PUSH … AFTER: each link's outcome read from its queue, the push, then pins and
    /// targets on the dependencies.
    fn push_after(&mut self, name: &'static str, deps: &[(&'static str, u64)], on_fail: OnFail, now: u64) -> u64 {
        let links: Vec<Link> = deps
            .iter()
            .map(|&(q, seq)| {
                let j = self.q(q).job(seq).expect("dependency exists");
                Link { queue: q.as_bytes().into(), seq, id: j.id_bytes().into(), outcome: Outcome::of(j.state) }
            })
            .collect();
        let waits = Box::new(Waits { on_fail, links: links.clone(), ..Waits::default() });
        let new = NewJob { payload: b"w"[..].into(), retries: 0, waits: Some(waits), ..NewJob::default() };
        let Pushed::Added(seq) = self.q(name).push(new, now) else { panic!("push") };
        let finished = self.q(name).job(seq).is_some_and(|j| j.state.is_finished());
        let links = self.q(name).job(seq).unwrap().waits().unwrap().links.clone();
        for (i, l) in links.iter().enumerate() {
            let target =
                (l.outcome == Outcome::Pending).then(|| Target { queue: name.as_bytes().into(), seq, index: i as u32 });
            let dq = std::str::from_utf8(&l.queue).unwrap();
            let dq = self.queues.keys().copied().find(|k| *k == dq).unwrap();
            assert!(self.q(dq).add_dependent(l.seq, !finished, target));
        }
        seq
    }

    /// Works through every backlog, as the glue's steps do; returns what the notices did.
    fn drain(&mut self, now: u64) -> Vec<Told> {
        let mut told = Vec::new();
        loop {
            let names: Vec<&'static str> = self.queues.keys().copied().collect();
            let mut any = false;
            for name in names {
                while let Some((t, from, outcome)) = self.q(name).next_notice() {
                    any = true;
                    let to = self.queues.keys().copied().find(|k| k.as_bytes() == &*t.queue).unwrap();
                    told.push(self.q(to).tell(t.seq, t.index, name.as_bytes(), from, outcome, now));
                }
                while let Some((q, seq)) = self.q(name).next_unpin() {
                    any = true;
                    let to = self.queues.keys().copied().find(|k| k.as_bytes() == &*q).unwrap();
                    self.q(to).unpin(seq);
                }
            }
            if !any {
                break;
            }
        }
        for q in self.queues.values() {
            q.check_invariants().unwrap();
        }
        told
    }

    fn run(&mut self, name: &'static str, now: u64) -> u64 {
        let got = self.q(name).reserve(1, now, |_| 1000);
        assert_eq!(got.len(), 1, "one job ready in {name}");
        got[0]
    }

    fn state(&mut self, name: &'static str, seq: u64) -> Option<State> {
        self.q(name).job(seq).map(|j| j.state)
    }
}

#[test]
fn a_chain_across_queues_runs_in_order() {
    let mut w = World::default();
    let a = w.push("{s}:charge", "a", 1);
    let b = w.push_after("{s}:ship", &[("{s}:charge", a)], OnFail::Fail, 2);
    let c = w.push_after("{s}:email", &[("{s}:ship", b)], OnFail::Fail, 3);
    assert_eq!(w.state("{s}:ship", b), Some(State::Waiting));
    assert_eq!(w.q("{s}:ship").stats().waiting, 1);
    assert!(w.q("{s}:ship").reserve(1, 4, |_| 1000).is_empty(), "a waiting job is not reserved");
    let got = w.run("{s}:charge", 5);
    assert!(w.q("{s}:charge").ack(got, 6, Some(b"charged")));
    assert_eq!(w.drain(6), vec![Told::Released]);
    assert_eq!(w.state("{s}:ship", b), Some(State::Ready));
    // Kept for the waiting job although the queue keeps nothing: it has not started.
    assert_eq!(w.q("{s}:charge").job(a).unwrap().result(), Some(&b"charged"[..]));
    assert_eq!(w.run("{s}:ship", 7), b);
    w.drain(7);
    assert!(w.q("{s}:charge").kept_to_forget(7, 10).is_empty(), "kept while the job waiting on it runs");
    assert!(w.q("{s}:ship").ack(b, 8, None));
    w.drain(8);
    let kept = w.q("{s}:charge").job(a).unwrap();
    assert_eq!(kept.state, State::Completed);
    assert!(kept.deadline_ms <= 8, "its last waiting job ended: it goes now, as KEEP 0 says");
    let forget = w.q("{s}:charge").kept_to_forget(8, 10);
    assert_eq!(w.q("{s}:charge").forget_kept(&forget), 1);
    assert_eq!(w.run("{s}:email", 9), c);
}

#[test]
fn a_diamond_releases_its_join_once() {
    let mut w = World::default();
    let a = w.push("q", "a", 1);
    let b = w.push_after("q", &[("q", a)], OnFail::Fail, 2);
    let c = w.push_after("q", &[("q", a)], OnFail::Fail, 2);
    let d = w.push_after("q", &[("q", b), ("q", c), ("q", b)], OnFail::Fail, 3);
    let got = w.run("q", 4);
    assert_eq!(got, a);
    w.q("q").ack(a, 5, None);
    assert_eq!(w.drain(5), vec![Told::Released, Told::Released]);
    let first = w.run("q", 6);
    w.q("q").ack(first, 6, None);
    assert_eq!(w.drain(6), vec![Told::Counted]);
    assert_eq!(w.state("q", d), Some(State::Waiting));
    let second = w.run("q", 7);
    w.q("q").ack(second, 7, None);
    let told = w.drain(7);
    assert_eq!(told, vec![Told::Released], "one release, though b was named twice");
    assert_eq!(w.state("q", d), Some(State::Ready));
}

#[test]
fn each_policy_on_a_dead_dependency() {
    for (policy, want) in
        [(OnFail::Fail, State::Dead), (OnFail::Ignore, State::Ready), (OnFail::Continue, State::Ready)]
    {
        let mut w = World::default();
        let a = w.push("q", "a", 1);
        let ok = w.push("q", "ok", 1);
        let x = w.push_after("q", &[("q", a), ("q", ok)], policy, 2);
        let got = w.run("q", 3);
        assert_eq!(got, a);
        // A failed attempt with retries left (none here: RETRIES 0) would wake nobody; this one is final.
        let outcome = w.q("q").decide_failure(a, 4, None, false, 1000, 0).unwrap();
        w.q("q").apply_failure(a, crate::FailCause::Nack, Some(b"boom"), outcome, 4);
        w.drain(4);
        let ok_seq = w.run("q", 5);
        assert_eq!(ok_seq, ok);
        w.q("q").ack(ok, 5, None);
        w.drain(5);
        assert_eq!(w.state("q", x), Some(want), "{policy:?}");
        let j = w.q("q").job(x).unwrap();
        if policy == OnFail::Fail {
            assert_eq!(j.last_error(), Some(&format!("dependency q 1-{a} died").into_bytes()[..]));
        }
        let links = &j.waits().unwrap().links;
        assert_eq!(links[0].outcome, Outcome::Dead);
        // A job that died of one dependency still records how the others ended.
        assert_eq!(links[1].outcome, Outcome::Completed, "{policy:?}");
        let done = j.waits().unwrap().done();
        assert_eq!(done, if policy == OnFail::Continue { 2 } else { 1 }, "continue counts the failure as done");
    }
}

#[test]
fn retries_wake_nobody_and_a_cancel_is_a_failure() {
    let mut w = World::default();
    let a = w.push("q", "a", 1);
    let x = w.push_after("q", &[("q", a)], OnFail::Fail, 2);
    w.run("q", 3);
    w.q("q").apply_failure(a, crate::FailCause::Nack, None, crate::backoff::Outcome::RetryAt(10), 4);
    assert!(w.drain(4).is_empty());
    assert_eq!(w.state("q", x), Some(State::Waiting));
    assert!(w.q("q").cancel(a, 5, b"no"));
    assert_eq!(w.drain(5), vec![Told::Died]);
    assert_eq!(
        w.q("q").job(x).unwrap().last_error(),
        Some(&format!("dependency q 1-{a} was cancelled").into_bytes()[..])
    );
}

#[test]
fn a_fan_out_of_ten_thousand_is_told_in_steps_from_a_backlog_that_round_trips() {
    let mut w = World::default();
    let a = w.push("a", "a", 1);
    let ws: Vec<u64> = (0..10_000).map(|_| w.push_after("b", &[("a", a)], OnFail::Fail, 2)).collect();
    assert_eq!(w.q("b").stats().waiting, 10_000);
    w.run("a", 3);
    w.q("a").ack(a, 4, None);
    // Half told, then the rest from a copy made of the saved backlog, as a restart would.
    for _ in 0..5000 {
        let (t, from, o) = w.q("a").next_notice().unwrap();
        assert_eq!(w.q("b").tell(t.seq, t.index, b"a", from, o, 5), Told::Released);
    }
    let blob = w.q("a").backlog_blob().unwrap();
    let mut copy = Queue::new();
    copy.set_backlog(&blob).unwrap();
    assert_eq!(copy.backlog_blob().unwrap(), blob);
    let told = w.drain(6);
    assert_eq!(told.len(), 5000);
    assert!(told.iter().all(|t| *t == Told::Released));
    assert_eq!(w.q("b").stats().ready, ws.len() as u64);
    assert_eq!(w.q("b").stats().waiting, 0);
}

#[test]
fn after_adds_links_and_a_finished_job_is_not_waiting() {
    let mut w = World::default();
    let a = w.push("q", "a", 1);
    let b = w.push("q", "b", 1);
    let x = w.push_after("q", &[("q", a)], OnFail::Fail, 2);
    let link = |seq| Link { queue: b"q"[..].into(), seq, id: b"x"[..].into(), outcome: Outcome::Pending };
    let (added, failure) = w.q("q").add_links(x, vec![link(a), link(b), link(b)]).unwrap();
    assert_eq!((added, failure), (1, None), "a is named already");
    assert_eq!(w.q("q").job(x).unwrap().waits().unwrap().left, 2);
    assert!(w.q("q").add_links(a, vec![link(b)]).is_none(), "a ready job does not wait");
    assert_eq!(w.q("q").pending_links(x), vec![(b"q"[..].into(), a), (b"q"[..].into(), b)]);
}

#[test]
fn a_waiting_job_cancelled_tells_its_own_dependents_and_hands_back_its_pins() {
    let mut w = World::default();
    let a = w.push("q", "a", 1);
    let x = w.push_after("q", &[("q", a)], OnFail::Fail, 2);
    let y = w.push_after("q", &[("q", x)], OnFail::Continue, 3);
    assert_eq!(w.q("q").job(a).unwrap().pins(), 1);
    assert!(w.q("q").cancel(x, 4, b"stop"));
    w.drain(4);
    assert_eq!(w.q("q").job(a).unwrap().pins(), 0);
    assert_eq!(w.state("q", y), Some(State::Ready), "continue counts the cancelled dependency as done");
    let purged = w.q("q").purge(State::Ready);
    assert_eq!(purged, Some(2));
}

#[test]
fn a_notice_and_a_pin_to_a_missing_queue_are_held_move_with_the_backlog_and_are_dropped_after_the_hold() {
    use crate::deps::{NoticeTo, HOLD_MS, HOLD_RETRY_MS};
    let mut w = World::default();
    let a = w.push("{s}:a", "a", 1);
    let b = w.push_after("{s}:b", &[("{s}:a", a)], OnFail::Fail, 2);
    // A key-by-key slot migration moved the waiting job's queue first.
    let away = w.queues.remove("{s}:b").unwrap();
    let got = w.run("{s}:a", 3);
    assert!(w.q("{s}:a").ack(got, 4, None));
    let (target, from, outcome) = w.q("{s}:a").next_notice().unwrap();
    assert!(w.q("{s}:a").hold_notice(NoticeTo { target, from, outcome }, 4 + HOLD_MS, 4));
    assert!(w.q("{s}:a").has_backlog());
    assert!(w.q("{s}:a").next_deadline().is_some_and(|d| d <= 4 + HOLD_RETRY_MS), "the timer comes back for it");
    assert!(w.q("{s}:a").next_held_notice(3 + HOLD_RETRY_MS).is_none(), "not before its retry time");
    // Then this queue moved too: its backlog goes with it (RDB, DUMP/RESTORE).
    let blob = w.q("{s}:a").backlog_blob().unwrap();
    let mut moved = Queue::new();
    moved.set_backlog(&blob).unwrap();
    let h = moved.next_held_notice(4 + HOLD_RETRY_MS).expect("due again");
    assert!(moved.next_held_notice(u64::MAX).is_none());
    w.queues.insert("{s}:b", away);
    let NoticeTo { target: t, from, outcome } = h.entry.clone();
    assert_eq!(w.q("{s}:b").tell(t.seq, t.index, b"{s}:a", from, outcome, 1_005), Told::Released);
    assert_eq!(w.state("{s}:b", b), Some(State::Ready));
    // Held for an hour at most: a queue missing that long was deleted, not moved.
    assert!(!moved.hold_notice(h.entry.clone(), 4 + HOLD_MS, 4 + HOLD_MS), "dropped at its end");
    assert!(moved.hold_notice(h.entry, 4 + HOLD_MS, 4 + HOLD_MS - 10));
    let last = moved.next_held_notice(u64::MAX).map(|h| h.retry_at);
    assert_eq!(last, Some(4 + HOLD_MS), "the last retry is at the end");

    // The waiting job ends while the dependency's queue is away: its pin is held the same way.
    let got = w.run("{s}:b", 1_006);
    assert!(w.q("{s}:b").ack(got, 1_007, None));
    let pin = w.q("{s}:b").next_unpin().unwrap();
    assert_eq!(pin, (b"{s}:a".to_vec().into(), a));
    let away = w.queues.remove("{s}:a").unwrap();
    assert!(w.q("{s}:b").hold_pin(pin, 1_007 + HOLD_MS, 1_007));
    let blob = w.q("{s}:b").backlog_blob().unwrap();
    let mut moved = Queue::new();
    moved.set_backlog(&blob).unwrap();
    assert!(moved.next_held_pin(1_006 + HOLD_RETRY_MS).is_none(), "not before its retry time");
    let h = moved.next_held_pin(1_007 + HOLD_RETRY_MS).expect("due again");
    w.queues.insert("{s}:a", away);
    assert_eq!(w.q("{s}:a").job(a).map(|j| j.pins()), Some(1));
    assert!(w.q("{s}:a").unpin(h.entry.1), "the pin goes back once the queues meet");
    assert!(!moved.has_backlog());
}
