//! Atomic slot migration: Valkey 9's `CLUSTER MIGRATESLOTS` and Redis 8.4's `CLUSTER MIGRATION IMPORT` copy a
//! slot to its new owner as commands (the queue's AOF rewrite, then the slot's writes as they happen) and hand
//! the slot over at once. The timer must act on a queue on one node only:
//! - the target holds back while it imports: its copy follows the source's stream, timer work included, and a
//!   due queue it meets then waits here until the import ends (ran on completion, dropped on failure);
//! - the source acts until the hand-off (the server pauses its writes for it, which stops the timer too); then
//!   the server deletes the slot's keys, and the registry must keep nothing of them. Valkey tells modules with a
//!   `del` keyspace event per key (keyspace.rs); Redis 8.4 trims without one, so its trim event clears the slots.
//!
//! The servers tell modules through events (ids and layouts differ: Valkey's event 19 is Redis's trim event),
//! so the server is told apart at load and only its own events are subscribed.

use std::collections::BTreeSet;
use std::ffi::c_void;
use std::sync::{Mutex, OnceLock};

use lazy_static::lazy_static;
use redis_module::raw;

use crate::alarm;
use crate::core::slot::key_slot;
use crate::queue_names;
use crate::registry::registry;
use crate::rm::{self, Ctx, RawCtx};

const SLOTS: usize = 16384;

/// Valkey 9: `VALKEYMODULE_EVENT_ATOMIC_SLOT_MIGRATION` and its subevents.
const VALKEY_EVENT: u64 = 19;
const VALKEY_IMPORT_STARTED: u64 = 0;
const VALKEY_IMPORT_ABORTED: u64 = 2;
const VALKEY_IMPORT_COMPLETED: u64 = 4;

/// Redis 8.4: `REDISMODULE_EVENT_CLUSTER_SLOT_MIGRATION` and `..._TRIM`, and their subevents.
const REDIS_EVENT: u64 = 18;
const REDIS_TRIM_EVENT: u64 = 19;
const REDIS_IMPORT_STARTED: u64 = 0;
const REDIS_IMPORT_FAILED: u64 = 1;
const REDIS_IMPORT_COMPLETED: u64 = 2;
const REDIS_MIGRATE_COMPLETED: u64 = 5;

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Server {
    Valkey,
    Redis,
}

static SERVER: OnceLock<Server> = OnceLock::new();

#[derive(Default)]
struct State {
    /// Slots this node is importing (empty outside a migration, which keeps the timer's check to one test).
    importing: BTreeSet<u16>,
    /// Due queues the timer met in an importing slot: (db, key).
    held: BTreeSet<(i32, Vec<u8>)>,
}

lazy_static! {
    static ref STATE: Mutex<State> = Mutex::new(State::default());
}

fn state() -> std::sync::MutexGuard<'static, State> {
    STATE.lock().unwrap_or_else(|e| e.into_inner())
}

/// Subscribes to the slot-migration events of the server, where it has them (Valkey 9, Redis 8.4); on Valkey
/// also declares that Once handles atomic slot migration, which Valkey requires before it migrates any slot.
pub fn subscribe(ctx: Ctx<'_>) -> Result<(), String> {
    if !rm::in_cluster(ctx) {
        return Ok(());
    }
    if rm::is_valkey() {
        // Valkey before 9.0 has no such event and refuses the subscription: nothing to handle there.
        if rm::subscribe_server_event(ctx, VALKEY_EVENT, on_valkey_event) {
            rm::declare_atomic_slot_migration(ctx);
            let _ = SERVER.set(Server::Valkey);
        }
    } else if rm::has_slot_access_check() {
        let ok = rm::subscribe_server_event(ctx, REDIS_EVENT, on_redis_event)
            && rm::subscribe_server_event(ctx, REDIS_TRIM_EVENT, on_redis_trim);
        if !ok {
            return Err("cannot subscribe to the cluster slot migration events".into());
        }
        let _ = SERVER.set(Server::Redis);
    }
    Ok(())
}

/// The timer's gate for a due queue. False while the key's slot is importing (the key is held and handed back
/// to the timer when the import completes), and on Redis 8.4 when the node may not serve the slot (it is being
/// trimmed away). Always true outside a cluster or on servers without slot migration.
pub fn may_act_on(db: i32, key: &[u8]) -> bool {
    let Some(server) = SERVER.get() else { return true };
    let mut s = state();
    if s.importing.is_empty() && *server == Server::Valkey {
        return true;
    }
    let slot = key_slot(key);
    if s.importing.contains(&slot) {
        s.held.insert((db, key.to_vec()));
        return false;
    }
    drop(s);
    *server != Server::Redis || rm::can_access_slot(slot).unwrap_or(true)
}

extern "C" fn on_valkey_event(ctx: RawCtx, _event: raw::RedisModuleEvent, subevent: u64, data: *mut c_void) {
    rm::callback(ctx, |ctx| valkey_event(ctx, subevent, data))
}

fn valkey_event(ctx: Ctx<'_>, subevent: u64, data: *mut c_void) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ranges = rm::valkey_migration_slots(data);
        let what = [
            "import started",
            "export started",
            "import aborted",
            "export aborted",
            "import completed",
            "export completed",
        ];
        log_event(ctx, what.get(subevent as usize).copied().unwrap_or("event"), &ranges);
        match subevent {
            VALKEY_IMPORT_STARTED => import_started(&ranges),
            VALKEY_IMPORT_COMPLETED => import_ended(ctx, &ranges, true),
            VALKEY_IMPORT_ABORTED => import_ended(ctx, &ranges, false),
            // Valkey deletes the keys of a slot that left (or an import that failed) with a `del` keyspace
            // event to modules, so keyspace.rs drops them from the registry.
            _ => {}
        }
    }));
}

extern "C" fn on_redis_event(ctx: RawCtx, _event: raw::RedisModuleEvent, subevent: u64, data: *mut c_void) {
    rm::callback(ctx, |ctx| redis_event(ctx, subevent, data))
}

fn redis_event(ctx: Ctx<'_>, subevent: u64, data: *mut c_void) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ranges = rm::redis_migration_slots(data);
        let what = [
            "import started",
            "import failed",
            "import completed",
            "migrate started",
            "migrate failed",
            "migrate completed",
            "migrate propagating",
        ];
        log_event(ctx, what.get(subevent as usize).copied().unwrap_or("event"), &ranges);
        match subevent {
            REDIS_IMPORT_STARTED => import_started(&ranges),
            REDIS_IMPORT_COMPLETED => import_ended(ctx, &ranges, true),
            REDIS_IMPORT_FAILED => {
                import_ended(ctx, &ranges, false);
                forget_slots(&ranges);
            }
            REDIS_MIGRATE_COMPLETED => forget_slots(&ranges),
            _ => {}
        }
    }));
}

/// Redis 8.4 trims a migrated (or failed-import) slot after the fact, in the background or key by key:
/// either way its queues leave the registry when the trim starts.
extern "C" fn on_redis_trim(ctx: RawCtx, _event: raw::RedisModuleEvent, subevent: u64, data: *mut c_void) {
    rm::callback(ctx, |ctx| redis_trim(ctx, subevent, data))
}

fn redis_trim(ctx: Ctx<'_>, subevent: u64, data: *mut c_void) {
    let _ = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let ranges = rm::redis_trim_slots(data);
        let what = ["trim started", "trim completed", "trim in the background"];
        log_event(ctx, what.get(subevent as usize).copied().unwrap_or("trim event"), &ranges);
        forget_slots(&ranges);
    }));
}

fn log_event(ctx: Ctx<'_>, what: &str, ranges: &[(u16, u16)]) {
    let slots: Vec<String> = ranges.iter().map(|(a, b)| format!("{a}-{b}")).collect();
    rm::log(ctx, "notice", &format!("once: slot migration {what}, slots {}", slots.join(" ")));
}

fn in_ranges(slot: u16, ranges: &[(u16, u16)]) -> bool {
    ranges.iter().any(|&(a, b)| a <= slot && slot <= b)
}

fn import_started(ranges: &[(u16, u16)]) {
    let mut s = state();
    for &(a, b) in ranges {
        s.importing.extend(a..=b.min(SLOTS as u16 - 1));
    }
}

/// The import is over: on success the held queues go back to the timer, now; on failure they are dropped (the
/// server deletes what was imported).
fn import_ended(ctx: Ctx<'_>, ranges: &[(u16, u16)], completed: bool) {
    let held = {
        let mut s = state();
        s.importing.retain(|&slot| !in_ranges(slot, ranges));
        let (mine, others): (BTreeSet<_>, BTreeSet<_>) =
            std::mem::take(&mut s.held).into_iter().partition(|(_, key)| in_ranges(key_slot(key), ranges));
        s.held = others;
        mine
    };
    if completed {
        let now = rm::now_ms();
        for (db, key) in held {
            alarm::note(ctx, db, &key, now);
        }
    }
}

/// Drops every registry entry of a key in these slots (Redis 8.4 trims them without a `del` event).
fn forget_slots(ranges: &[(u16, u16)]) {
    registry().forget_where(|_db, key| in_ranges(key_slot(key), ranges));
    queue_names::forget_where(|key| in_ranges(key_slot(key), ranges));
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_are_inclusive() {
        assert!(in_ranges(5, &[(5, 5)]));
        assert!(in_ranges(7, &[(1, 2), (6, 9)]));
        assert!(!in_ranges(3, &[(1, 2), (6, 9)]));
    }
}
