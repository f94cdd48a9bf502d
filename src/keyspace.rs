//! Keeps the timer registry in step with the keyspace: a queue that is renamed, moved, copied or restored
//! is registered under its new name; SWAPDB swaps databases in the registry; after loading or a role
//! change the timer is started for what the registry holds.

use std::ffi::{c_char, c_int, c_void, CStr};

use redis_module::raw;

use crate::service::{existing, note_deadline};
use crate::registry::registry;
use crate::rm::{self, Ctx, Key, RStr};
use crate::alarm;

pub fn subscribe(ctx: Ctx) -> Result<(), String> {
    unsafe {
        let classes = raw::REDISMODULE_NOTIFY_GENERIC | raw::REDISMODULE_NOTIFY_EXPIRED | raw::REDISMODULE_NOTIFY_EVICTED;
        if raw::RedisModule_SubscribeToKeyspaceEvents.unwrap()(ctx, classes as c_int, Some(on_key_event)) != rm::OK {
            return Err("cannot subscribe to keyspace events".into());
        }
        let events = [
            (raw::REDISMODULE_EVENT_SWAPDB, 1),
            (raw::REDISMODULE_EVENT_LOADING, 1),
            (raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED, 1),
            (raw::REDISMODULE_EVENT_FLUSHDB, 1),
        ];
        for (id, dataver) in events {
            let event = raw::RedisModuleEvent { id, dataver };
            if raw::RedisModule_SubscribeToServerEvent.unwrap()(ctx, event, Some(on_server_event)) != rm::OK {
                return Err(format!("cannot subscribe to server event {id}"));
            }
        }
    }
    Ok(())
}

extern "C" fn on_key_event(ctx: Ctx, _type: c_int, event: *const c_char, key: RStr) -> c_int {
    if event.is_null() {
        return rm::OK;
    }
    let name = unsafe { CStr::from_ptr(event) }.to_bytes();
    if matches!(name, b"del" | b"expired" | b"evicted" | b"rename_from" | b"move_from") {
        let _ = std::panic::catch_unwind(|| registry().forget(rm::selected_db(ctx), rm::bytes(key)));
        return rm::OK;
    }
    if matches!(name, b"rename_to" | b"move_to" | b"copy_to" | b"restore") {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut k = Key::open(ctx, key, false);
            if let Ok(Some(v)) = existing(&mut k) {
                v.recount();
                v.noted_deadline = u64::MAX;
                note_deadline(ctx, rm::selected_db(ctx), rm::bytes(key), v);
            }
        }));
    }
    rm::OK
}

extern "C" fn on_server_event(ctx: Ctx, event: raw::RedisModuleEvent, subevent: u64, data: *mut c_void) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match event.id {
        raw::REDISMODULE_EVENT_SWAPDB => {
            if let Some(info) = unsafe { data.cast::<raw::RedisModuleSwapDbInfo>().as_ref() } {
                registry().swap_dbs(info.dbnum_first, info.dbnum_second);
            }
        }
        raw::REDISMODULE_EVENT_LOADING if subevent == raw::REDISMODULE_SUBEVENT_LOADING_ENDED => alarm::kick(ctx),
        raw::REDISMODULE_EVENT_FLUSHDB if subevent == raw::REDISMODULE_SUBEVENT_FLUSHDB_END => {
            if let Some(info) = unsafe { data.cast::<raw::RedisModuleFlushInfo>().as_ref() } {
                registry().forget_db(info.dbnum);
            }
        }
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED => alarm::kick(ctx),
        _ => {}
    }));
}
