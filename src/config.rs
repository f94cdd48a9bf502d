//! The module's configs (`once.*`), settable at load time and with CONFIG SET.

use std::ffi::{c_char, c_int, c_longlong, c_void, CString};
use std::sync::atomic::{AtomicI64, Ordering};

use crate::rm;

use lazy_static::lazy_static;

lazy_static! {
    pub static ref DEFAULT_RETRIES: AtomicI64 = AtomicI64::new(3);
    pub static ref DEFAULT_BACKOFF_MS: AtomicI64 = AtomicI64::new(1000);
    pub static ref BACKOFF_MAX_MS: AtomicI64 = AtomicI64::new(3_600_000);
    pub static ref DEFAULT_LEASE_MS: AtomicI64 = AtomicI64::new(30_000);
    pub static ref MAX_PAYLOAD_BYTES: AtomicI64 = AtomicI64::new(67_108_864);
    pub static ref MAX_ERROR_BYTES: AtomicI64 = AtomicI64::new(4096);
    pub static ref FAULT_SAVES: AtomicI64 = AtomicI64::new(0);
    pub static ref FAULT_WRITES: AtomicI64 = AtomicI64::new(0);
}

/// name, variable (holding its default), min, max
type Entry = (&'static str, &'static AtomicI64, i64, i64);

fn table() -> [Entry; 8] {
    [
        ("default-retries", &DEFAULT_RETRIES, 0, 1000),
        ("default-backoff-ms", &DEFAULT_BACKOFF_MS, 0, 315_360_000_000),
        ("backoff-max-ms", &BACKOFF_MAX_MS, 0, 315_360_000_000),
        ("default-lease-ms", &DEFAULT_LEASE_MS, 1, 604_800_000),
        ("max-payload-bytes", &MAX_PAYLOAD_BYTES, 0, 536_870_912),
        ("max-error-bytes", &MAX_ERROR_BYTES, 1, crate::core::limits::MAX_ERROR_BYTES as i64),
        // Testing aid: the next N queue encodings (RDB save, AOF rewrite) panic inside the encoder.
        ("fault-saves", &FAULT_SAVES, 0, 1_000_000),
        // Testing aid: the next N writes that replicate a job change panic after changing the queue and before
        // replicating it (the server then stops: commands::run).
        ("fault-writes", &FAULT_WRITES, 0, 1_000_000),
    ]
}

extern "C" fn get_config(_name: *const c_char, privdata: *mut c_void) -> c_longlong {
    rm::config_var(privdata).map_or(0, |v| v.load(Ordering::Relaxed))
}

extern "C" fn set_config(_name: *const c_char, val: c_longlong, privdata: *mut c_void, _err: *mut rm::RawStr) -> c_int {
    if let Some(v) = rm::config_var(privdata) {
        v.store(val, Ordering::Relaxed);
    }
    rm::OK
}

/// Registers every config as `once.<name>` (CONFIG GET/SET, bounds checked by Redis).
pub fn register(ctx: rm::Ctx<'_>) -> Result<(), String> {
    for (name, var, min, max) in table() {
        let cname = CString::new(name).map_err(|e| e.to_string())?;
        // Module args have set the value already: it becomes the registered default.
        let current = var.load(Ordering::Relaxed);
        rm::register_numeric_config(ctx, &cname, current, (min, max), get_config, set_config, var)?;
    }
    if !rm::load_configs(ctx) {
        return Err("cannot load configs".into());
    }
    Ok(())
}

fn get(v: &AtomicI64) -> u64 {
    u64::try_from(v.load(Ordering::Relaxed)).unwrap_or(0)
}

pub fn default_retries() -> u32 {
    u32::try_from(get(&DEFAULT_RETRIES)).unwrap_or(u32::MAX)
}

pub fn default_backoff_ms() -> u64 {
    get(&DEFAULT_BACKOFF_MS)
}

pub fn backoff_max_ms() -> u64 {
    get(&BACKOFF_MAX_MS)
}

pub fn default_lease_ms() -> u64 {
    get(&DEFAULT_LEASE_MS).max(1)
}

pub fn max_payload_bytes() -> u64 {
    get(&MAX_PAYLOAD_BYTES)
}

/// ERROR text beyond this is kept cut short, never refused: a worker's NACK must not fail for a long traceback.
pub fn max_error_bytes() -> usize {
    usize::try_from(get(&MAX_ERROR_BYTES)).unwrap_or(usize::MAX).max(1)
}

/// ERROR text as it is kept, wherever it enters (NACK, and the internal commands that carry one).
pub fn cut_error(text: &[u8]) -> &[u8] {
    &text[..text.len().min(max_error_bytes())]
}

/// `--loadmodule libonce.so name value ...`: sets configs by name (with or without the `once.` prefix).
pub fn apply_load_args(args: &[&[u8]]) -> Result<(), String> {
    if !args.len().is_multiple_of(2) {
        return Err("module arguments come in pairs: name value".into());
    }
    for pair in args.chunks(2) {
        let name = String::from_utf8_lossy(pair[0]).to_ascii_lowercase();
        let name = name.strip_prefix("once.").unwrap_or(&name).to_string();
        let Some((_, var, min, max)) = table().into_iter().find(|e| e.0 == name) else {
            return Err(format!("unknown module argument '{name}'"));
        };
        let value: i64 = std::str::from_utf8(pair[1])
            .ok()
            .and_then(|s| s.parse().ok())
            .filter(|v| (min..=max).contains(v))
            .ok_or_else(|| format!("{name} must be an integer between {min} and {max}"))?;
        var.store(value, Ordering::Relaxed);
    }
    Ok(())
}

/// Panics here while `once.fault-saves` counts down: how the tests prove that a failing encoder fails the save
/// instead of writing a file that loads wrong. Costs one atomic load otherwise.
/// The injected write fault (once.fault-writes), at the point between a change and its replication.
pub fn write_fault_point(what: &str) {
    if FAULT_WRITES.load(Ordering::Relaxed) > 0 && FAULT_WRITES.fetch_sub(1, Ordering::Relaxed) > 0 {
        panic!("fault injected into {what} (once.fault-writes)");
    }
}

pub fn fault_point(what: &str) {
    if FAULT_SAVES.load(Ordering::Relaxed) > 0 && FAULT_SAVES.fetch_sub(1, Ordering::Relaxed) > 0 {
        panic!("fault injected into {what} (once.fault-saves)");
    }
}
