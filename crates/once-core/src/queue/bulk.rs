//! ONCE.BULK: many jobs pushed at once with the same options, all or none. The call is planned first without
//! changing anything (which ids are live, which seq each new job gets), then applied; a plan that applies
//! cannot fail half-way. A master plans from its next seq; a replica or an AOF replays the record of the new
//! jobs from the first seq it names and must find every one of them new, so it reaches the same seqs.

use std::collections::HashMap;

use super::super::flow::DEFAULT_GROUP;
use super::super::job::{server_id, Extra, Job, Payload, State};
use super::{Pushed, Queue, SEQ_LIMIT};

/// What every job of one BULK shares. Times are absolute; options are resolved by the caller.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bulk {
    /// The seq the first new job may take (a master: its next seq).
    pub first_seq: u64,
    pub created_ms: u64,
    /// When the jobs fall due: after `created_ms` they are delayed, else ready.
    pub due_ms: u64,
    pub retries: u32,
    pub backoff_ms: u64,
    /// 0: no lease of their own.
    pub lease_ms: u64,
    pub priority: i32,
}

impl Queue {
    /// Pushes one job per payload (with `ids`, each under its id: a live id adds nothing and names its job, as
    /// PUSH ID does; an id given twice names the job of its first place). Returns each job's outcome in order,
    /// or an error with nothing changed: the id sequence used up, or (`all_new`, a replayed record) an id
    /// already live or a seq already taken.
    pub fn push_bulk(
        &mut self,
        b: &Bulk,
        group: Option<&[u8]>,
        ids: Option<&[&[u8]]>,
        payloads: &[&[u8]],
        all_new: bool,
    ) -> Result<Vec<Pushed>, String> {
        let plan = self.plan_bulk(b, ids, payloads.len(), all_new)?;
        if !plan.iter().any(|p| matches!(p, Pushed::Added(_))) {
            return Ok(plan);
        }
        let gid = match group {
            Some(name) => self.flow.gid_or_new(name),
            None => DEFAULT_GROUP,
        };
        let delayed = b.due_ms > b.created_ms;
        for (i, p) in plan.iter().enumerate() {
            let Pushed::Added(seq) = *p else { continue };
            let custom_id = ids.map(|ids| Box::<[u8]>::from(ids[i]));
            let job = Job {
                seq,
                created_ms: b.created_ms,
                extra: Extra::boxed(custom_id, None),
                payload: Payload::from(payloads[i]),
                state: if delayed { State::Delayed } else { State::Ready },
                attempts: 0,
                retries: b.retries.min(u32::from(u16::MAX)) as u16,
                backoff_ms: b.backoff_ms,
                lease_ms: b.lease_ms.min(u64::from(u32::MAX)) as u32,
                priority: b.priority,
                deadline_ms: if delayed { b.due_ms } else { 0 },
                since_ms: b.created_ms,
                group: gid,
            };
            // The plan checked what insert checks (seq free and in range, id not live), in this very order.
            if let Err(e) = self.insert_pushed(job) {
                return Err(format!("internal: a planned job did not insert ({e})"));
            }
        }
        Ok(plan)
    }

    /// Each job's outcome, as pushing them one by one would give it, with nothing changed; or why `push_bulk`
    /// would refuse the call.
    pub fn plan_bulk(&self, b: &Bulk, ids: Option<&[&[u8]]>, n: usize, all_new: bool) -> Result<Vec<Pushed>, String> {
        if ids.is_some_and(|ids| ids.len() != n) {
            return Err("as many ids as payloads are needed".into());
        }
        let mut plan = Vec::with_capacity(n);
        // The ids of the new jobs planned so far (with `ids`, every new job has one) and their seqs.
        let mut planned: HashMap<&[u8], u64> = HashMap::new();
        let mut next = b.first_seq;
        for i in 0..n {
            let id = ids.map(|ids| ids[i]);
            if let Some(id) = id {
                if let Some(seq) = self.find(id).or_else(|| planned.get(id).copied()) {
                    if all_new {
                        return Err(format!("the id of place {} is live already", i + 1));
                    }
                    plan.push(Pushed::Existing(seq));
                    continue;
                }
            }
            // A client id may have taken the text a server id would get; skip such numbers, as PUSH does.
            let mut seq = next;
            while (!self.custom_ids.is_empty() || !planned.is_empty()) && {
                let text = server_id(b.created_ms, seq);
                self.custom_ids.contains_key(text.as_slice()) || planned.contains_key(text.as_slice())
            } {
                seq += 1;
            }
            if seq >= SEQ_LIMIT {
                return Err("the queue has used up its id sequence".into());
            }
            if self.job(seq).is_some() {
                return Err(format!("job seq {seq} already exists"));
            }
            if let Some(id) = id {
                planned.insert(id, seq);
            }
            plan.push(Pushed::Added(seq));
            next = seq + 1;
        }
        Ok(plan)
    }
}

#[cfg(test)]
mod tests {
    use super::super::NewJob;
    use super::*;

    fn bulk(first_seq: u64, created_ms: u64) -> Bulk {
        Bulk { first_seq, created_ms, due_ms: 0, retries: 3, backoff_ms: 1000, lease_ms: 0, priority: 0 }
    }

    fn seqs(plan: &[Pushed]) -> Vec<(bool, u64)> {
        plan.iter()
            .map(|p| match *p {
                Pushed::Added(s) => (true, s),
                Pushed::Existing(s) => (false, s),
                Pushed::Exhausted => panic!("exhausted"),
            })
            .collect()
    }

    fn push_one(q: &mut Queue, id: Option<&str>, now: u64) -> u64 {
        let new = NewJob {
            custom_id: id.map(|i| i.as_bytes().into()),
            payload: b"p"[..].into(),
            due_ms: 0,
            retries: 3,
            backoff_ms: 1000,
            lease_ms: 0,
            priority: 0,
            group: None,
            ..NewJob::default()
        };
        match q.push(new, now) {
            Pushed::Added(s) | Pushed::Existing(s) => s,
            Pushed::Exhausted => panic!("exhausted"),
        }
    }

    #[test]
    fn jobs_take_consecutive_seqs_in_order_and_are_ready_fifo() {
        let mut q = Queue::new();
        let plan = q.push_bulk(&bulk(q.next_seq(), 1000), None, None, &[b"a", b"b", b"c"], false).unwrap();
        assert_eq!(seqs(&plan), vec![(true, 0), (true, 1), (true, 2)]);
        assert_eq!(q.peek_ready(10), vec![0, 1, 2]);
        assert_eq!(q.totals.pushed, 3);
        assert_eq!(&*q.job(1).unwrap().payload, b"b");
        q.check_invariants().unwrap();
    }

    #[test]
    fn shared_options_and_a_delay_apply_to_every_job_and_the_group_is_made() {
        let mut q = Queue::new();
        let b = Bulk { due_ms: 5000, retries: 7, backoff_ms: 250, lease_ms: 900, priority: -4, ..bulk(0, 1000) };
        q.push_bulk(&b, Some(b"tenant"), None, &[b"a", b"b"], false).unwrap();
        for seq in [0, 1] {
            let j = q.job(seq).unwrap();
            assert_eq!(
                (j.state, j.deadline_ms, j.retries, j.backoff_ms, j.lease_ms, j.priority),
                (State::Delayed, 5000, 7, 250, 900, -4)
            );
            assert_eq!(q.group_name(&j), Some(&b"tenant"[..]));
        }
        assert_eq!(q.stats().delayed, 2);
        q.check_invariants().unwrap();
    }

    #[test]
    fn ids_are_idempotent_like_push_id_within_and_across_calls() {
        let mut q = Queue::new();
        let live = push_one(&mut q, Some("x"), 500);
        let ids: [&[u8]; 4] = [b"a", b"x", b"b", b"a"];
        let plan = q.push_bulk(&bulk(q.next_seq(), 1000), None, Some(&ids), &[b"1", b"2", b"3", b"4"], false).unwrap();
        assert_eq!(seqs(&plan), vec![(true, 1), (false, live), (true, 2), (false, 1)]);
        assert_eq!(q.len(), 3);
        let again = q.push_bulk(&bulk(q.next_seq(), 2000), None, Some(&ids), &[b"1", b"2", b"3", b"4"], false).unwrap();
        assert_eq!(seqs(&again), vec![(false, 1), (false, live), (false, 2), (false, 1)]);
        assert_eq!((q.len(), q.totals.pushed), (3, 3));
        q.check_invariants().unwrap();
    }

    #[test]
    fn a_client_id_shaped_like_a_coming_server_id_is_skipped_as_push_skips_it() {
        let mut q = Queue::new();
        push_one(&mut q, Some("1000-1"), 500); // seq 0; seq 1 at ms 1000 would be "1000-1"
        let plan = q.push_bulk(&bulk(q.next_seq(), 1000), None, None, &[b"a", b"b"], false).unwrap();
        assert_eq!(seqs(&plan), vec![(true, 2), (true, 3)]);
        // within one call: an id planned earlier in the call blocks a later server id too
        let mut q = Queue::new();
        let ids: [&[u8]; 2] = [b"1000-1", b"y"];
        let plan = q.push_bulk(&bulk(0, 1000), None, Some(&ids), &[b"a", b"b"], false).unwrap();
        assert_eq!(seqs(&plan), vec![(true, 0), (true, 2)]);
        q.check_invariants().unwrap();
    }

    #[test]
    fn a_replayed_record_reaches_the_same_seqs_and_refuses_what_is_not_new() {
        let mut master = Queue::new();
        push_one(&mut master, Some("1000-3"), 10);
        let mut replica = master.clone();
        let ids: [&[u8]; 3] = [b"k1", b"1000-3", b"k2"];
        let plan =
            master.push_bulk(&bulk(master.next_seq(), 1000), None, Some(&ids), &[b"a", b"b", b"c"], false).unwrap();
        // the record carries the new jobs only, from the first new seq
        let first = match plan[0] {
            Pushed::Added(s) => s,
            _ => unreachable!(),
        };
        let new_ids: [&[u8]; 2] = [b"k1", b"k2"];
        let replayed = replica.push_bulk(&bulk(first, 1000), None, Some(&new_ids), &[b"a", b"c"], true).unwrap();
        let added: Vec<u64> = plan
            .iter()
            .filter_map(|p| match p {
                Pushed::Added(s) => Some(*s),
                _ => None,
            })
            .collect();
        assert_eq!(seqs(&replayed).iter().map(|x| x.1).collect::<Vec<_>>(), added);
        assert_eq!(master.next_seq(), replica.next_seq());
        // the same record again: its ids are live now, so nothing is applied
        let len = replica.len();
        assert!(replica.push_bulk(&bulk(first, 1000), None, Some(&new_ids), &[b"a", b"c"], true).is_err());
        // a record whose seq is taken
        assert!(replica.push_bulk(&bulk(first, 1000), None, None, &[b"a"], true).is_err());
        assert_eq!(replica.len(), len);
        replica.check_invariants().unwrap();
    }

    #[test]
    fn nothing_changes_when_the_sequence_runs_out() {
        let mut q = Queue::new();
        let err = q.push_bulk(&bulk(SEQ_LIMIT - 1, 1000), Some(b"g"), None, &[b"a", b"b"], false).unwrap_err();
        assert!(err.contains("id sequence"), "{err}");
        assert_eq!((q.len(), q.totals.pushed), (0, 0));
        assert!(q.push_bulk(&bulk(0, 1000), None, Some(&[b"a"]), &[b"a", b"b"], false).is_err());
        q.check_invariants().unwrap();
    }
}
