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
use crate::rm::{self, OwnedStr};
use crate::value::QueueValue;

/// Builds every command first and emits them only once all are built: a failure part way fails the rewrite
/// (Redis keeps the previous AOF) instead of leaving a queue half rebuilt.
pub extern "C" fn rewrite(io: *mut RedisModuleIO, key: *mut RedisModuleString, value: *mut c_void) {
    let Some(v) = rm::value_ref::<QueueValue>(value) else {
        fail_io(io);
        return;
    };
    let built = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        crate::config::fault_point("rewrite");
        let q = &v.queue;
        let mut cmds: Vec<(&'static [u8], Vec<OwnedStr>)> = Vec::with_capacity(q.len() + q.schedule_count() + 1);
        for job in q.jobs_in_rebuild_order() {
            cmds.push((b"ONCE._JOB\0", job_args(key, "LOAD", job, q.group_name(job).unwrap_or(b""))));
        }
        for s in q.schedules() {
            cmds.push((b"ONCE._SCHED\0", schedule_args(key, s)));
        }
        cmds.push((b"ONCE._META\0", meta_args(key, q.next_seq(), &q.totals)));
        if q.settings != Settings::default() {
            cmds.push((b"ONCE._SETTINGS\0", settings_args(key, &q.settings)));
        }
        for args in events_args(key, &q.events) {
            cmds.push((b"ONCE._EVENTS\0", args));
        }
        for (which, h) in [(Which::Wait, &q.wait), (Which::Run, &q.run)] {
            if !h.is_empty() || h.sum_ms > 0 {
                cmds.push((b"ONCE._HIST\0", hist_args(key, which, h)));
            }
        }
        if !q.flow.window.0.is_empty() {
            cmds.push((b"ONCE._WINDOW\0", window_args(key, &q.flow.window)));
        }
        for (_, g) in q.flow.all() {
            if g.own != Limits::default() || !g.window.0.is_empty() {
                cmds.push((b"ONCE._GROUP\0", group_args(key, g)));
            }
        }
        let ring: Vec<&[u8]> = q.flow.ring_order(&q.limits()).into_iter().map(|g| q.flow.name(g)).collect();
        if ring.len() > 1 {
            for args in ring_args(key, &ring) {
                cmds.push((b"ONCE._RING\0", args));
            }
        }
        cmds
    }));
    match built {
        Ok(cmds) => {
            for (cmd, args) in &cmds {
                rm::emit_aof(io, cmd, args);
            }
        }
        Err(_) => fail_io(io),
    }
}
