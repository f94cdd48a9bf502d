//! The Redis data type of a queue and its callbacks.

use std::ffi::c_void;
use std::panic::{catch_unwind, AssertUnwindSafe};

use redis_module::native_types::RedisType;
use redis_module::raw;

use super::{aof, digest, rdb};
use crate::rm;
use crate::value::QueueValue;

/// Written into every RDB with the type: never change it. (Redis wants exactly 9 characters.)
pub const TYPE_NAME: &str = "OnceQueue";

pub static QUEUE_TYPE: RedisType = RedisType::new(
    TYPE_NAME,
    rdb::ENCODING_VERSION,
    raw::RedisModuleTypeMethods {
        version: raw::REDISMODULE_TYPE_METHOD_VERSION as u64,
        rdb_load: Some(rdb::load),
        rdb_save: Some(rdb::save),
        aof_rewrite: Some(aof::rewrite),
        mem_usage: Some(mem_usage),
        digest: Some(digest::digest),
        free: Some(free),
        aux_load: None,
        aux_save: None,
        aux_save_triggers: 0,
        free_effort: Some(free_effort),
        unlink: Some(unlink),
        copy: Some(copy),
        defrag: None,
        mem_usage2: None,
        free_effort2: None,
        unlink2: None,
        copy2: None,
        aux_save2: None,
    },
);

pub fn queue_type() -> *mut raw::RedisModuleType {
    *QUEUE_TYPE.raw_type.borrow()
}

fn as_queue<'a>(value: *const c_void) -> Option<&'a QueueValue> {
    rm::value_ref::<QueueValue>(value)
}

extern "C" fn free(value: *mut c_void) {
    rm::value_free::<QueueValue>(value);
}

/// Many jobs: Redis frees the value on its lazy-free thread instead of stalling the event loop.
extern "C" fn free_effort(_key: *mut raw::RedisModuleString, value: *const c_void) -> usize {
    as_queue(value).map_or(1, |v| v.queue.len() + v.queue.schedule_count() + 1)
}

extern "C" fn unlink(key: *mut raw::RedisModuleString, value: *const c_void) {
    if let Some(v) = as_queue(value) {
        v.uncount();
        crate::eviction::note_unlinked(rm::bytes(&key), v.queue.stats());
    }
}

extern "C" fn mem_usage(value: *const c_void) -> usize {
    catch_unwind(AssertUnwindSafe(|| as_queue(value).map_or(0, |v| v.queue.memory_bytes()))).unwrap_or(0)
}

extern "C" fn copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    let copied = catch_unwind(AssertUnwindSafe(|| as_queue(value).map(|v| QueueValue::new(v.queue.clone()))));
    match copied {
        Ok(Some(b)) => Box::into_raw(b).cast::<c_void>(),
        _ => std::ptr::null_mut(),
    }
}
