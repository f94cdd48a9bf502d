//! Keeps the timer registry in step with the keyspace: a queue that is renamed, moved, copied or restored
//! is registered under its new name; SWAPDB swaps databases in the registry; after loading or a role
//! change the timer is started for what the registry holds.

use std::ffi::{c_char, c_int, c_void};

use redis_module::raw;

use crate::registry::registry;
use crate::rm::{self, Ctx, Key, RStr, RawCtx, RawStr};
use crate::service::{existing, note_deadline};
use crate::{alarm, eviction, migration, queue_names};

pub fn subscribe(ctx: Ctx<'_>) -> Result<(), String> {
    let classes = raw::REDISMODULE_NOTIFY_GENERIC | raw::REDISMODULE_NOTIFY_EXPIRED | raw::REDISMODULE_NOTIFY_EVICTED;
    if !rm::subscribe_keyspace(ctx, classes as u32, on_key_event) {
        return Err("cannot subscribe to keyspace events".into());
    }
    for id in [
        raw::REDISMODULE_EVENT_SWAPDB,
        raw::REDISMODULE_EVENT_LOADING,
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED,
        raw::REDISMODULE_EVENT_FLUSHDB,
        raw::REDISMODULE_EVENT_CONFIG,
    ] {
        if !rm::subscribe_server_event(ctx, id, on_server_event) {
            return Err(format!("cannot subscribe to server event {id}"));
        }
    }
    migration::subscribe(ctx)
}

extern "C" fn on_key_event(ctx: RawCtx, _type: c_int, event: *const c_char, key: RawStr) -> c_int {
    rm::key_event(ctx, key, |ctx, key| key_event(ctx, event, key))
}

fn key_event(ctx: Ctx<'_>, event: *const c_char, key: RStr<'_>) -> c_int {
    let name = rm::event_name(event);
    if matches!(name, b"del" | b"expired" | b"evicted" | b"rename_from" | b"move_from") {
        let _ = std::panic::catch_unwind(|| {
            let db = rm::selected_db(ctx);
            registry().forget(db, key.bytes());
            queue_names::remove(db, key.bytes());
            if name == b"evicted" {
                eviction::on_evicted(ctx, db, key.bytes());
            } else {
                eviction::forget_unlinked();
            }
        });
        return rm::OK;
    }
    if matches!(name, b"rename_to" | b"move_to" | b"copy_to" | b"restore") {
        let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let mut k = Key::open(ctx, key, false);
            if let Ok(Some(v)) = existing(&mut k) {
                queue_names::add(rm::selected_db(ctx), key.bytes());
                v.recount();
                v.noted_deadline = u64::MAX;
                note_deadline(ctx, rm::selected_db(ctx), key.bytes(), v);
            }
        }));
    }
    rm::OK
}

extern "C" fn on_server_event(ctx: RawCtx, event: raw::RedisModuleEvent, subevent: u64, data: *mut c_void) {
    rm::callback(ctx, |ctx| server_event(ctx, event, subevent, data))
}

fn server_event(ctx: Ctx<'_>, event: raw::RedisModuleEvent, subevent: u64, data: *mut c_void) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match event.id {
        raw::REDISMODULE_EVENT_SWAPDB => {
            if let Some((a, b)) = rm::swapdb_info(data) {
                registry().swap_dbs(a, b);
                queue_names::swap(a, b);
            }
        }
        raw::REDISMODULE_EVENT_LOADING if subevent == raw::REDISMODULE_SUBEVENT_LOADING_ENDED => alarm::kick(ctx),
        raw::REDISMODULE_EVENT_FLUSHDB if subevent == raw::REDISMODULE_SUBEVENT_FLUSHDB_END => {
            if let Some(db) = rm::flushed_db(data) {
                registry().forget_db(db);
                queue_names::forget_db(db);
            }
        }
        raw::REDISMODULE_EVENT_REPLICATION_ROLE_CHANGED => alarm::kick(ctx),
        raw::REDISMODULE_EVENT_CONFIG => eviction::check_policy(ctx),
        _ => {}
    }));
}
