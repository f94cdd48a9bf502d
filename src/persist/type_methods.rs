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

extern "C" fn free(value: *mut c_void) {
    rm::queue_free(value);
}

/// Many jobs: Redis frees the value on its lazy-free thread instead of stalling the event loop.
extern "C" fn free_effort(_key: *mut raw::RedisModuleString, value: *const c_void) -> usize {
    rm::queue_ref(value).map_or(1, |v| v.queue.len() + v.queue.schedule_count() + 1)
}

extern "C" fn unlink(key: *mut raw::RedisModuleString, value: *const c_void) {
    if let Some(v) = rm::queue_ref(value) {
        v.uncount();
        rm::with_str(key, |key| crate::eviction::note_unlinked(key.bytes(), v.queue.stats()));
    }
}

extern "C" fn mem_usage(value: *const c_void) -> usize {
    catch_unwind(AssertUnwindSafe(|| rm::queue_ref(value).map_or(0, |v| v.queue.memory_bytes()))).unwrap_or(0)
}

extern "C" fn copy(
    _from: *mut raw::RedisModuleString,
    _to: *mut raw::RedisModuleString,
    value: *const c_void,
) -> *mut c_void {
    let copied = catch_unwind(AssertUnwindSafe(|| rm::queue_ref(value).map(|v| QueueValue::new(v.queue.clone()))));
    match copied {
        Ok(Some(b)) => Box::into_raw(b).cast::<c_void>(),
        _ => std::ptr::null_mut(),
    }
}
