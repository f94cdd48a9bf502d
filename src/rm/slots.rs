//! Cluster slot migration (Valkey 9 CLUSTER MIGRATESLOTS, Redis 8.4 CLUSTER MIGRATION): neither server's bindings
//! are in redis-module 2.0.8, so the functions are looked up by name and the event data is read through the
//! servers' own struct layouts (valkeymodule.h, redismodule.h 8.4).

use std::ffi::{c_char, c_int, c_void};
use std::ptr;

use redis_module::raw;

use super::{Ctx, OK};

/// Valkey's `VALKEYMODULE_OPTIONS_HANDLE_ATOMIC_SLOT_MIGRATION`: without it Valkey refuses every MIGRATESLOTS.
const HANDLE_ATOMIC_SLOT_MIGRATION: c_int = 1 << 5;

/// A server function by name (null when the server has none by that name).
fn api(name: &std::ffi::CStr) -> *mut c_void {
    let Some(get) = (unsafe { raw::RedisModule_GetApi }) else { return ptr::null_mut() };
    let mut f: *mut c_void = ptr::null_mut();
    let found = unsafe { get(name.as_ptr(), (&mut f as *mut *mut c_void).cast::<c_void>()) } == OK;
    if found {
        f
    } else {
        ptr::null_mut()
    }
}

/// Valkey registers its API under ValkeyModule_ names as well; Redis never does.
pub fn is_valkey() -> bool {
    !api(c"ValkeyModule_SubscribeToServerEvent").is_null()
}

type SlotAccessFn = unsafe extern "C" fn(c_int) -> c_int;

fn slot_access_fn() -> Option<SlotAccessFn> {
    static F: std::sync::OnceLock<Option<SlotAccessFn>> = std::sync::OnceLock::new();
    *F.get_or_init(|| {
        let p = api(c"RedisModule_ClusterCanAccessKeysInSlot");
        // SAFETY: Redis 8.4 exports it as `int (*)(int slot)`.
        (!p.is_null()).then(|| unsafe { std::mem::transmute::<*mut c_void, SlotAccessFn>(p) })
    })
}

/// Redis 8.4 and later: the server can say which slots this node may serve (and has slot-migration events).
pub fn has_slot_access_check() -> bool {
    slot_access_fn().is_some()
}

/// Redis 8.4's own answer to "may this node serve keys of `slot` now" (false while importing or trimming);
/// None on servers without it.
pub fn can_access_slot(slot: u16) -> Option<bool> {
    slot_access_fn().map(|f| unsafe { f(c_int::from(slot)) } != 0)
}

/// Declares (with the options set at load) that the module handles Valkey's atomic slot migration.
pub fn declare_atomic_slot_migration(ctx: Ctx<'_>) {
    let options = raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS as c_int | HANDLE_ATOMIC_SLOT_MIGRATION;
    unsafe { raw::RedisModule_SetModuleOptions.unwrap()(ctx.raw(), options) };
}

#[repr(C)]
struct ValkeySlotRange {
    start: c_int,
    end: c_int,
}

#[repr(C)]
struct ValkeyMigrationInfo {
    version: u64,
    job_name: [c_char; 41],
    slot_ranges: *const ValkeySlotRange,
    num_slot_ranges: u32,
}

/// The slot ranges of a Valkey `ValkeyModuleEvent_AtomicSlotMigration`.
pub fn valkey_migration_slots(data: *mut c_void) -> Vec<(u16, u16)> {
    // SAFETY: Valkey passes a ValkeyModuleAtomicSlotMigrationInfoV1 with this event, its ranges alive for the call.
    let Some(info) = (unsafe { data.cast::<ValkeyMigrationInfo>().as_ref() }) else { return Vec::new() };
    if info.slot_ranges.is_null() {
        return Vec::new();
    }
    let ranges = unsafe { std::slice::from_raw_parts(info.slot_ranges, info.num_slot_ranges as usize) };
    ranges.iter().map(|r| (clamp_slot(r.start), clamp_slot(r.end))).collect()
}

#[repr(C)]
struct RedisSlotRange {
    start: u16,
    end: u16,
}

#[repr(C)]
struct RedisSlotRangeArray {
    num_ranges: i32,
    ranges: [RedisSlotRange; 0],
}

#[repr(C)]
struct RedisMigrationInfo {
    version: u64,
    source_node_id: [c_char; 41],
    destination_node_id: [c_char; 41],
    task_id: *const c_char,
    slots: *const RedisSlotRangeArray,
}

#[repr(C)]
struct RedisTrimInfo {
    version: u64,
    slots: *const RedisSlotRangeArray,
}

fn redis_ranges(slots: *const RedisSlotRangeArray) -> Vec<(u16, u16)> {
    // SAFETY: Redis passes a RedisModuleSlotRangeArray of num_ranges entries, alive for the callback.
    let Some(array) = (unsafe { slots.as_ref() }) else { return Vec::new() };
    let n = usize::try_from(array.num_ranges).unwrap_or(0);
    let ranges = unsafe { std::slice::from_raw_parts(array.ranges.as_ptr(), n) };
    ranges.iter().map(|r| (r.start, r.end)).collect()
}

/// The slot ranges of a Redis 8.4 `RedisModuleEvent_ClusterSlotMigration`.
pub fn redis_migration_slots(data: *mut c_void) -> Vec<(u16, u16)> {
    // SAFETY: Redis passes a RedisModuleClusterSlotMigrationInfoV1 with this event.
    unsafe { data.cast::<RedisMigrationInfo>().as_ref() }.map_or_else(Vec::new, |i| redis_ranges(i.slots))
}

/// The slot ranges of a Redis 8.4 `RedisModuleEvent_ClusterSlotMigrationTrim`.
pub fn redis_trim_slots(data: *mut c_void) -> Vec<(u16, u16)> {
    // SAFETY: Redis passes a RedisModuleClusterSlotMigrationTrimInfoV1 with this event.
    unsafe { data.cast::<RedisTrimInfo>().as_ref() }.map_or_else(Vec::new, |i| redis_ranges(i.slots))
}

fn clamp_slot(s: c_int) -> u16 {
    u16::try_from(s.clamp(0, 16383)).unwrap_or(0)
}
