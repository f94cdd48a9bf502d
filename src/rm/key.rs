//! A key opened for one callback, and the module's one value type (`QueueValue`) as the server holds it. The
//! accessors name that type themselves, so no caller can read a value as anything else.

use std::ffi::{c_int, c_void};

use redis_module::raw;

use super::{selected_db, Ctx, OwnedStr, RStr, OK};
use crate::value::{queue_type, QueueValue};

/// An open key, closed on drop; it lives no longer than the context and name it was opened with.
pub struct Key<'a> {
    ptr: *mut raw::RedisModuleKey,
    ctx: Ctx<'a>,
    name: RStr<'a>,
}

/// What a key holds.
pub enum Slot<'k> {
    Empty,
    Ours(&'k mut QueueValue),
    WrongType,
}

impl<'a> Key<'a> {
    pub fn open(ctx: Ctx<'a>, name: RStr<'a>, write: bool) -> Key<'a> {
        let mode = if write { raw::REDISMODULE_READ | raw::REDISMODULE_WRITE } else { raw::REDISMODULE_READ };
        let ptr = unsafe { raw::RedisModule_OpenKey.unwrap()(ctx.raw(), name.raw(), mode as c_int) };
        Key { ptr: ptr.cast(), ctx, name }
    }

    /// The key's name and the database it was opened in.
    pub fn name_and_db(&self) -> (&'a [u8], i32) {
        (self.name.bytes(), selected_db(self.ctx))
    }

    /// Removes the key and what it holds.
    pub fn delete(&mut self) {
        if !self.ptr.is_null() {
            unsafe { raw::RedisModule_DeleteKey.unwrap()(self.ptr) };
        }
    }

    /// Whether the key holds a list.
    pub fn is_list(&self) -> bool {
        !self.ptr.is_null()
            && unsafe { raw::RedisModule_KeyType.unwrap()(self.ptr) } == raw::REDISMODULE_KEYTYPE_LIST as c_int
    }

    /// Pops every element of the list under the key, head first; the key is gone afterwards.
    pub fn drain_list(&mut self) -> Vec<OwnedStr> {
        let (Some(pop), true) = (unsafe { raw::RedisModule_ListPop }, self.is_list()) else { return Vec::new() };
        let mut out = Vec::new();
        loop {
            let s = unsafe { pop(self.ptr, raw::REDISMODULE_LIST_HEAD as c_int) };
            if s.is_null() {
                return out;
            }
            out.push(OwnedStr::take(s));
        }
    }

    /// What the key holds: nothing, a queue, or something else.
    /// The queue is borrowed from the key, mutably, for as long as the key is open and not borrowed again.
    pub fn get(&mut self) -> Slot<'_> {
        if self.ptr.is_null() {
            return Slot::Empty;
        }
        unsafe {
            if raw::RedisModule_KeyType.unwrap()(self.ptr) == raw::REDISMODULE_KEYTYPE_EMPTY as c_int {
                return Slot::Empty;
            }
            if raw::RedisModule_ModuleTypeGetType.unwrap()(self.ptr) != queue_type() {
                return Slot::WrongType;
            }
            // SAFETY: a value of the queue type is one `set` stored: a Box<QueueValue>.
            match raw::RedisModule_ModuleTypeGetValue.unwrap()(self.ptr).cast::<QueueValue>().as_mut() {
                Some(v) => Slot::Ours(v),
                None => Slot::WrongType,
            }
        }
    }

    /// Stores a new queue in an empty key; Redis owns it from then on and frees it through the type.
    pub fn set(&mut self, value: Box<QueueValue>) -> Option<&mut QueueValue> {
        let p = Box::into_raw(value);
        let status =
            unsafe { raw::RedisModule_ModuleTypeSetValue.unwrap()(self.ptr, queue_type(), p.cast::<c_void>()) };
        if status != OK {
            drop(unsafe { Box::from_raw(p) });
            return None;
        }
        Some(unsafe { &mut *p })
    }
}

impl Drop for Key<'_> {
    fn drop(&mut self) {
        if !self.ptr.is_null() {
            unsafe { raw::RedisModule_CloseKey.unwrap()(self.ptr) };
        }
    }
}

/// The queue a type method is handed (rdb_save, aof_rewrite, digest, mem_usage, copy, unlink...), for that call.
pub fn queue_ref<'a>(value: *const c_void) -> Option<&'a QueueValue> {
    // SAFETY: Redis hands the queue type's methods only values `Key::set` stored, which are Box<QueueValue>.
    unsafe { value.cast::<QueueValue>().as_ref() }
}

/// Frees a queue the server lets go of (the type's `free`, called once, last).
pub fn queue_free(value: *mut c_void) {
    if !value.is_null() {
        // SAFETY: as queue_ref.
        drop(unsafe { Box::from_raw(value.cast::<QueueValue>()) });
    }
}
