//! AOF rewrite: the explicit commands that rebuild a queue exactly (jobs with their ids, attempts, due
//! times and leases, schedules, then counters and the id sequence).

use std::ffi::c_void;

use redis_module::raw::{RedisModuleIO, RedisModuleString};

use super::encode::{
    events_args, group_args, hist_args, job_args, meta_args, ring_args, schedule_args, settings_args, window_args,
};
use super::rdb::fail_io;
use crate::core::flow::Limits;
use crate::core::histogram::Which;
use crate::core::settings::Settings;
use crate::rm::{self, OwnedStr, RStr};
use crate::value::QueueValue;

/// Emits each command as it is built, so a queue of millions is never built twice in memory (in the rewrite
/// child every byte built is a byte not shared with the server). A failure part way still fails the whole
/// rewrite: Redis then drops the new file and keeps the previous AOF.
pub extern "C" fn rewrite(io: *mut RedisModuleIO, key: *mut RedisModuleString, value: *mut c_void) {
    let Some(v) = rm::queue_ref(value) else {
        fail_io(io);
        return;
    };
    let emitted =
        rm::with_str(key, |key| std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| emit_queue(io, key, v))));
    if emitted.is_err() {
        fail_io(io);
    }
}

/// Every command that rebuilds the queue, in order.
fn emit_queue(io: *mut RedisModuleIO, key: RStr<'_>, v: &QueueValue) {
    crate::config::fault_point("rewrite");
    let q = &v.queue;
    let emit = |cmd: &'static [u8], args: Vec<OwnedStr>| rm::emit_aof(io, cmd, &args);
    for job in q.jobs_in_rebuild_order() {
        emit(b"ONCE._JOB\0", job_args(key, "LOAD", &job, q.group_name(&job).unwrap_or(b"")));
    }
    for s in q.schedules() {
        emit(b"ONCE._SCHED\0", schedule_args(key, s));
    }
    emit(b"ONCE._META\0", meta_args(key, q.next_seq(), &q.totals));
    if let Some(blob) = q.backlog_blob() {
        emit(b"ONCE._BACKLOG\0", vec![OwnedStr::new(key.bytes()), OwnedStr::new(&blob)]);
    }
    if q.settings != Settings::default() {
        emit(b"ONCE._SETTINGS\0", settings_args(key, &q.settings));
    }
    for args in events_args(key, &q.events) {
        emit(b"ONCE._EVENTS\0", args);
    }
    for (which, h) in [(Which::Wait, &q.wait), (Which::Run, &q.run)] {
        if !h.is_empty() || h.sum_ms > 0 {
            emit(b"ONCE._HIST\0", hist_args(key, which, h));
        }
    }
    if !q.flow.window.0.is_empty() {
        emit(b"ONCE._WINDOW\0", window_args(key, &q.flow.window));
    }
    for (_, g) in q.flow.all() {
        if g.own != Limits::default() || !g.window.0.is_empty() {
            emit(b"ONCE._GROUP\0", group_args(key, g));
        }
    }
    let ring: Vec<&[u8]> = q.flow.ring_order(&q.limits()).into_iter().map(|g| q.flow.name(g)).collect();
    if ring.len() > 1 {
        for args in ring_args(key, &ring) {
            emit(b"ONCE._RING\0", args);
        }
    }
}
