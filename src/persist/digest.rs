//! DEBUG DIGEST-VALUE: mixes in every field of every job (ready jobs in the order they will be served),
//! the schedules and the counters, so a master and its replica can be compared.

use std::ffi::c_void;

use redis_module::raw::{self, RedisModuleDigest};

use crate::core::schema::{JOB_FIELDS, TOTAL_FIELDS};
use crate::value::QueueValue;

struct Digest(*mut RedisModuleDigest);

impl Digest {
    fn int(&self, v: i64) {
        unsafe { raw::RedisModule_DigestAddLongLong.unwrap()(self.0, v) };
    }
    fn u(&self, v: u64) {
        self.int(v as i64);
    }
    fn bytes(&self, b: &[u8]) {
        unsafe { raw::RedisModule_DigestAddStringBuffer.unwrap()(self.0, b.as_ptr().cast(), b.len()) };
    }
    fn opt(&self, b: Option<&[u8]>) {
        match b {
            Some(b) => {
                self.int(1);
                self.bytes(b);
            }
            None => self.int(0),
        }
    }
    fn end(&self) {
        unsafe { raw::RedisModule_DigestEndSequence.unwrap()(self.0) };
    }
}

pub extern "C" fn digest(md: *mut RedisModuleDigest, value: *mut c_void) {
    let Some(v) = (unsafe { value.cast::<QueueValue>().as_ref() }) else { return };
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let d = Digest(md);
        let q = &v.queue;
        for j in q.jobs_in_rebuild_order() {
            for f in &JOB_FIELDS {
                d.int((f.get)(j));
            }
            d.bytes(&j.payload);
            d.opt(j.custom_id());
            d.opt(j.last_error());
        }
        // One sequence for all jobs: Redis XORs separate sequences together, which would hide the ready order.
        d.end();
        for s in q.schedules() {
            d.bytes(&s.name);
            d.bytes(s.spec_text.as_bytes());
            d.bytes(s.tz_name.as_bytes());
            d.bytes(&s.payload);
            d.u(u64::from(s.options.retries));
            d.u(s.options.backoff_ms);
            d.u(s.options.lease_ms);
            d.int(i64::from(s.options.priority));
            d.bytes(s.missed.name().as_bytes());
            d.u(s.next_fire_ms);
            d.int(s.last_fire_ms.map_or(-1, |t| t as i64));
            d.end();
        }
        d.u(q.next_seq());
        for f in &TOTAL_FIELDS {
            d.int((f.get)(&q.totals));
        }
        d.end();
    }));
}
