//! DEBUG DIGEST-VALUE: mixes in every field of every job (ready jobs in the order they will be served),
//! the schedules, the counters, settings, event log and histograms, so a master and its replica can be compared.

use std::ffi::c_void;

use redis_module::raw::RedisModuleDigest;

use crate::core::job::JOB_FIELDS;
use crate::core::queue::totals::TOTAL_FIELDS;
use crate::core::schedule::SCHEDULE_FIELDS;
use crate::core::settings::SETTING_FIELDS;
use crate::rm::{self, Digest};

/// What the digest mixes in, on top of rm's calls.
trait Mix {
    fn opt(&self, b: Option<&[u8]>);
}

impl Mix for Digest {
    fn opt(&self, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                self.int(1);
                self.bytes(b);
            }
            None => self.int(0),
        }
    }
}

pub extern "C" fn digest(md: *mut RedisModuleDigest, value: *mut c_void) {
    let Some(v) = rm::queue_ref(value) else { return };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let d = Digest(md);
        let q = &v.queue;
        for j in q.jobs_in_rebuild_order() {
            for f in &JOB_FIELDS {
                d.int((f.get)(&j));
            }
            d.bytes(&j.payload);
            d.opt(j.custom_id());
            d.opt(j.last_error());
            d.opt(q.group_name(&j));
            for (name, value) in crate::persist::encode::finish_options(&j) {
                d.bytes(name.to_bytes());
                d.bytes(&value);
            }
        }
        // One sequence for all jobs: Redis XORs separate sequences together, which would hide the ready order.
        d.end();
        for s in q.schedules() {
            d.bytes(&s.name);
            d.bytes(s.spec_text.as_bytes());
            d.bytes(s.tz_name.as_bytes());
            d.bytes(&s.payload);
            for f in &SCHEDULE_FIELDS {
                d.int((f.get)(s));
            }
            d.end();
        }
        d.int(q.next_seq() as i64);
        d.opt(q.backlog_blob().as_deref());
        for f in &TOTAL_FIELDS {
            d.int((f.get)(&q.totals));
        }
        for f in &SETTING_FIELDS {
            d.int((f.get)(&q.settings));
        }
        d.int(q.events.last_id() as i64);
        for e in q.events.iter() {
            d.int(e.id as i64);
            d.int(e.kind.code() as i64);
            d.opt(e.job.as_deref());
            d.int(i64::from(e.attempt));
            d.int(e.ms as i64);
            d.opt(e.error.as_deref());
        }
        for h in [&q.wait, &q.run] {
            d.int(h.sum_ms as i64);
            for &c in &h.counts {
                d.int(c as i64);
            }
        }
        d.end();
        // Flow control: the windows, the groups' own limits and the round-robin's order, by name (group
        // numbers are this process's own).
        let times = |w: &crate::core::flow::Window| {
            d.int(w.0.len() as i64);
            for &t in &w.0 {
                d.int(t as i64);
            }
        };
        times(&q.flow.window);
        let mut groups: Vec<_> = q.flow.all().filter(|(_, g)| g.holds_state()).collect();
        groups.sort_by(|a, b| a.1.name.cmp(&b.1.name));
        for (_, g) in groups {
            d.bytes(&g.name);
            for v in crate::persist::encode::own_numbers(&g.own) {
                d.int(v);
            }
            d.int(g.ready as i64);
            d.int(g.reserved as i64);
            times(&g.window);
        }
        for g in q.flow.ring_order(&q.limits()) {
            d.bytes(q.flow.name(g));
        }
        d.end();
    }));
}
