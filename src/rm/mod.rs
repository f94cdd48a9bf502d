//! Thin, safe-to-call wrappers over the raw Redis module API that the glue uses.
//!
//! Every pointer these functions take is one the server handed to the callback that calls them (a context, a
//! key name, an argument, an IO handle), valid for that whole callback; marking each function `unsafe` would
//! only move the same promise to every caller, so clippy's `not_unsafe_ptr_arg_deref` is allowed here, in this
//! module. Contexts and strings are typed handles (handles.rs) whose lifetime is the callback's, checked by
//! the compiler; what is left are the raw pointers of type methods, IO, events and filters.
//!
//! The crate's safe layer allocates a Vec of strings per command and cannot block with a timeout; the
//! module talks to the raw API directly, and every unsafe block of it is in this module.
#![allow(clippy::not_unsafe_ptr_arg_deref)]

mod handles;
mod key;
mod slots;

use std::ffi::{c_char, c_int, c_long, c_void, CString};
use std::ptr;

use redis_module::raw;

pub use handles::{blocked_ready_key, callback, command, key_event, with_str, Ctx, OwnedStr, RStr, RawCtx, RawStr};
pub use key::{queue_free, queue_ref, Key, Slot};
pub use slots::*;

pub const OK: c_int = raw::REDISMODULE_OK as c_int;
pub const ERR: c_int = raw::REDISMODULE_ERR as c_int;

/// The time a command acts at: the server clock, or the master's time while `ONCE._AT` replays one.
pub fn now_ms() -> u64 {
    if let Some(t) = CLOCK.with(std::cell::Cell::get) {
        return t;
    }
    let ms = unsafe { raw::RedisModule_Milliseconds.unwrap()() };
    u64::try_from(ms).unwrap_or(0)
}

thread_local! {
    static CLOCK: std::cell::Cell<Option<u64>> = const { std::cell::Cell::new(None) };
}

/// Runs `f` with `now_ms()` fixed at `ms` (commands run on the main thread, one at a time).
pub fn at_time<R>(ms: u64, f: impl FnOnce() -> R) -> R {
    struct Restore(Option<u64>);
    impl Drop for Restore {
        fn drop(&mut self) {
            CLOCK.with(|c| c.set(self.0));
        }
    }
    let _restore = Restore(CLOCK.with(|c| c.replace(Some(ms))));
    f()
}

/// Every server function this module calls through `.unwrap()`: checked once at load, so a server that
/// lacks one refuses the module with its name instead of panicking later.
pub fn missing_api() -> Option<&'static str> {
    let present: &[(&'static str, bool)] = unsafe {
        &[
            ("BlockClientOnKeys", { raw::RedisModule_BlockClientOnKeys }.is_some()),
            ("CloseKey", { raw::RedisModule_CloseKey }.is_some()),
            ("DeleteKey", { raw::RedisModule_DeleteKey }.is_some()),
            ("CreateCommand", { raw::RedisModule_CreateCommand }.is_some()),
            ("CreateString", { raw::RedisModule_CreateString }.is_some()),
            ("CreateStringFromLongLong", { raw::RedisModule_CreateStringFromLongLong }.is_some()),
            ("CreateTimer", { raw::RedisModule_CreateTimer }.is_some()),
            ("DigestAddLongLong", { raw::RedisModule_DigestAddLongLong }.is_some()),
            ("DigestAddStringBuffer", { raw::RedisModule_DigestAddStringBuffer }.is_some()),
            ("DigestEndSequence", { raw::RedisModule_DigestEndSequence }.is_some()),
            ("EmitAOF", { raw::RedisModule_EmitAOF }.is_some()),
            ("FreeString", { raw::RedisModule_FreeString }.is_some()),
            ("GetBlockedClientPrivateData", { raw::RedisModule_GetBlockedClientPrivateData }.is_some()),
            ("GetBlockedClientReadyKey", { raw::RedisModule_GetBlockedClientReadyKey }.is_some()),
            ("GetContextFlags", { raw::RedisModule_GetContextFlags }.is_some()),
            ("GetSelectedDb", { raw::RedisModule_GetSelectedDb }.is_some()),
            ("InfoAddFieldLongLong", { raw::RedisModule_InfoAddFieldLongLong }.is_some()),
            ("InfoAddFieldULongLong", { raw::RedisModule_InfoAddFieldULongLong }.is_some()),
            ("InfoAddSection", { raw::RedisModule_InfoAddSection }.is_some()),
            ("KeyType", { raw::RedisModule_KeyType }.is_some()),
            ("Log", { raw::RedisModule_Log }.is_some()),
            ("Milliseconds", { raw::RedisModule_Milliseconds }.is_some()),
            ("ModuleTypeGetType", { raw::RedisModule_ModuleTypeGetType }.is_some()),
            ("ModuleTypeGetValue", { raw::RedisModule_ModuleTypeGetValue }.is_some()),
            ("ModuleTypeSetValue", { raw::RedisModule_ModuleTypeSetValue }.is_some()),
            ("OpenKey", { raw::RedisModule_OpenKey }.is_some()),
            ("RegisterInfoFunc", { raw::RedisModule_RegisterInfoFunc }.is_some()),
            ("Replicate", { raw::RedisModule_Replicate }.is_some()),
            ("ReplyWithArray", { raw::RedisModule_ReplyWithArray }.is_some()),
            ("ReplyWithError", { raw::RedisModule_ReplyWithError }.is_some()),
            ("ReplyWithLongLong", { raw::RedisModule_ReplyWithLongLong }.is_some()),
            ("ReplyWithNull", { raw::RedisModule_ReplyWithNull }.is_some()),
            ("ReplyWithNullArray", { raw::RedisModule_ReplyWithNullArray }.is_some()),
            ("ReplyWithSimpleString", { raw::RedisModule_ReplyWithSimpleString }.is_some()),
            ("ReplyWithString", { raw::RedisModule_ReplyWithString }.is_some()),
            ("ReplyWithStringBuffer", { raw::RedisModule_ReplyWithStringBuffer }.is_some()),
            ("RetainString", { raw::RedisModule_RetainString }.is_some()),
            ("SelectDb", { raw::RedisModule_SelectDb }.is_some()),
            ("SetModuleOptions", { raw::RedisModule_SetModuleOptions }.is_some()),
            ("SignalKeyAsReady", { raw::RedisModule_SignalKeyAsReady }.is_some()),
            ("StopTimer", { raw::RedisModule_StopTimer }.is_some()),
            ("StringPtrLen", { raw::RedisModule_StringPtrLen }.is_some()),
            ("SubscribeToKeyspaceEvents", { raw::RedisModule_SubscribeToKeyspaceEvents }.is_some()),
            ("SubscribeToServerEvent", { raw::RedisModule_SubscribeToServerEvent }.is_some()),
            ("RegisterNumericConfig", { raw::RedisModule_RegisterNumericConfig }.is_some()),
            ("ReplyWithMap", { raw::RedisModule_ReplyWithMap }.is_some()),
            ("ReplicateVerbatim", { raw::RedisModule_ReplicateVerbatim }.is_some()),
        ]
    };
    present.iter().find(|(_, ok)| !ok).map(|(name, _)| *name)
}

// ---- replies ----

pub fn reply_bulk(ctx: Ctx<'_>, b: &[u8]) {
    unsafe { raw::RedisModule_ReplyWithStringBuffer.unwrap()(ctx.raw(), b.as_ptr().cast::<c_char>(), b.len()) };
}

pub fn reply_str(ctx: Ctx<'_>, s: RStr<'_>) {
    unsafe { raw::RedisModule_ReplyWithString.unwrap()(ctx.raw(), s.raw()) };
}

pub fn reply_int(ctx: Ctx<'_>, v: i64) {
    unsafe { raw::RedisModule_ReplyWithLongLong.unwrap()(ctx.raw(), v) };
}

pub fn reply_u64(ctx: Ctx<'_>, v: u64) {
    reply_int(ctx, i64::try_from(v).unwrap_or(i64::MAX));
}

pub fn reply_null(ctx: Ctx<'_>) {
    unsafe { raw::RedisModule_ReplyWithNull.unwrap()(ctx.raw()) };
}

pub fn reply_null_array(ctx: Ctx<'_>) {
    unsafe { raw::RedisModule_ReplyWithNullArray.unwrap()(ctx.raw()) };
}

pub fn reply_array(ctx: Ctx<'_>, len: usize) {
    unsafe { raw::RedisModule_ReplyWithArray.unwrap()(ctx.raw(), len as c_long) };
}

/// A RESP3 map, or a flat field/value array under RESP2.
pub fn reply_map(ctx: Ctx<'_>, pairs: usize) {
    raw::reply_with_map(ctx.raw(), pairs as c_long);
}

/// Error replies must be one ASCII line without NUL bytes.
pub fn reply_error(ctx: Ctx<'_>, msg: &str) {
    let clean: String = msg.chars().map(|c| if c.is_ascii() && !c.is_ascii_control() { c } else { '?' }).collect();
    if let Ok(c) = CString::new(clean) {
        unsafe { raw::RedisModule_ReplyWithError.unwrap()(ctx.raw(), c.as_ptr()) };
    }
}

// ---- context ----

pub fn flags(ctx: Ctx<'_>) -> u32 {
    unsafe { raw::RedisModule_GetContextFlags.unwrap()(ctx.raw()) as u32 }
}

/// Timer and other self-started writes are allowed only on a master that is not loading, and not while the
/// server asks modules to keep replication traffic quiet (CLIENT PAUSE WRITE, FAILOVER, SHUTDOWN).
pub fn may_act_on_own(ctx: Ctx<'_>) -> bool {
    let f = flags(ctx);
    let master = f & raw::REDISMODULE_CTX_FLAGS_MASTER != 0;
    let loading = f & raw::REDISMODULE_CTX_FLAGS_LOADING != 0;
    let quiet = unsafe { raw::RedisModule_AvoidReplicaTraffic.map_or(0, |f| f()) } != 0;
    master && !loading && !quiet
}

pub fn is_loading(ctx: Ctx<'_>) -> bool {
    flags(ctx) & raw::REDISMODULE_CTX_FLAGS_LOADING != 0
}

/// A command this node replays rather than takes from a client: sent by its master, or read from its AOF.
pub fn is_replayed(ctx: Ctx<'_>) -> bool {
    flags(ctx) & (raw::REDISMODULE_CTX_FLAGS_REPLICATED | raw::REDISMODULE_CTX_FLAGS_LOADING) != 0
}

/// Whether the server runs as a cluster node.
pub fn in_cluster(ctx: Ctx<'_>) -> bool {
    flags(ctx) & raw::REDISMODULE_CTX_FLAGS_CLUSTER != 0
}

/// True inside MULTI, Lua or a function, or wherever the server forbids blocking.
pub fn may_not_block(ctx: Ctx<'_>) -> bool {
    let f = flags(ctx);
    f & (raw::REDISMODULE_CTX_FLAGS_MULTI | raw::REDISMODULE_CTX_FLAGS_LUA | raw::REDISMODULE_CTX_FLAGS_DENY_BLOCKING)
        != 0
}

pub fn selected_db(ctx: Ctx<'_>) -> i32 {
    unsafe { raw::RedisModule_GetSelectedDb.unwrap()(ctx.raw()) }
}

pub fn select_db(ctx: Ctx<'_>, db: i32) -> bool {
    unsafe { raw::RedisModule_SelectDb.unwrap()(ctx.raw(), db) == OK }
}

pub fn signal_ready(ctx: Ctx<'_>, key: RStr<'_>) {
    unsafe { raw::RedisModule_SignalKeyAsReady.unwrap()(ctx.raw(), key.raw()) };
}

pub fn log(ctx: Ctx<'_>, level: &str, msg: &str) {
    log_raw(ctx.raw(), level, msg);
}

/// Logs without a context (the panic hook, which may run anywhere): the server accepts a null one.
pub fn log_detached(level: &str, msg: &str) {
    log_raw(ptr::null_mut(), level, msg);
}

fn log_raw(ctx: RawCtx, level: &str, msg: &str) {
    let (Ok(level), Ok(msg)) = (CString::new(level), CString::new(msg.replace('\0', "?"))) else { return };
    let fmt = b"%s\0";
    // Also called from the panic hook: must not panic itself.
    if let Some(log) = unsafe { raw::RedisModule_Log } {
        unsafe { log(ctx, level.as_ptr(), fmt.as_ptr().cast::<c_char>(), msg.as_ptr()) };
    }
}

// ---- one record per command ----

/// A record a command sends to its replicas and AOF: the command's name, then its arguments.
type Record = Vec<OwnedStr>;

thread_local! {
    // Only the main thread runs commands. Some while a command runs: what it replicates is gathered here and
    // sent as one record when it ends (`end_command`).
    static RECORDS: std::cell::RefCell<Option<Vec<Record>>> = const { std::cell::RefCell::new(None) };
}

/// A command starts: what it replicates is held until `end_command`. Nested calls (a record replayed inside
/// `ONCE._MANY` or `ONCE._AT`) add to the outer command's records.
pub fn begin_command() -> bool {
    RECORDS.with(|r| {
        let mut r = r.borrow_mut();
        if r.is_some() {
            return false;
        }
        *r = Some(Vec::new());
        true
    })
}

/// The command ended: its records go out as one. One record as itself; several as
/// `ONCE._MANY key n argc cmd arg... [argc cmd arg...]` (key: the first record's, so it routes and its key spec
/// holds), which replays them in order — so a client command is one entry in the AOF and on every replica, never
/// a MULTI/EXEC of several. Records of other commands than Once's (a list producer's RPUSH, ADOPT's DEL) go out
/// one by one, as the server would have sent them.
pub fn end_command(ctx: Ctx<'_>) {
    let Some(records) = RECORDS.with(|r| r.borrow_mut().take()) else { return };
    let ours = |rec: &Record| rec[0].bytes().len() > 5 && rec[0].bytes()[..5].eq_ignore_ascii_case(b"ONCE.");
    if records.len() <= 1 || !records.iter().all(|rec| rec.len() >= 2 && ours(rec)) {
        for rec in &records {
            send_record(ctx, rec);
        }
        return;
    }
    let mut many: Record = Vec::with_capacity(2 + records.iter().map(|r| r.len() + 1).sum::<usize>());
    many.push(OwnedStr::new(b"ONCE._MANY"));
    many.push(OwnedStr::retain(records[0][1].as_rstr()));
    many.push(OwnedStr::int(records.len() as i64));
    for rec in &records {
        many.push(OwnedStr::int(rec.len() as i64));
        many.extend(rec.iter().map(|a| OwnedStr::retain(a.as_rstr())));
    }
    send_record(ctx, &many);
}

fn send_record(ctx: Ctx<'_>, rec: &Record) {
    let Some((name, args)) = rec.split_first() else { return };
    let mut cmd = name.bytes().to_vec();
    cmd.push(0);
    let argv: Vec<RawStr> = args.iter().map(|a| a.as_rstr().raw()).collect();
    unsafe {
        raw::RedisModule_Replicate.unwrap()(
            ctx.raw(),
            cmd.as_ptr().cast::<c_char>(),
            c"v".as_ptr(),
            argv.as_ptr(),
            argv.len(),
        );
    }
}

/// Holds `cmd args` for `end_command` when a command runs; false when none does (a timer tick), and the caller
/// sends it at once.
fn hold(cmd: &[u8], args: impl Iterator<Item = OwnedStr>) -> bool {
    RECORDS.with(|r| match r.borrow_mut().as_mut() {
        Some(records) => {
            let name = cmd.strip_suffix(b"\0").unwrap_or(cmd);
            records.push(std::iter::once(OwnedStr::new(name)).chain(args).collect());
            true
        }
        None => false,
    })
}

/// Sends `cmd args...` to replicas and the AOF as one explicit command (at the end of the running command).
pub fn replicate(ctx: Ctx<'_>, cmd: &'static [u8], args: &[OwnedStr]) {
    if hold(cmd, args.iter().map(|a| OwnedStr::retain(a.as_rstr()))) {
        return;
    }
    let argv: Vec<RawStr> = args.iter().map(|a| a.as_rstr().raw()).collect();
    let fmt = b"v\0";
    unsafe {
        raw::RedisModule_Replicate.unwrap()(
            ctx.raw(),
            cmd.as_ptr().cast::<c_char>(),
            fmt.as_ptr().cast::<c_char>(),
            argv.as_ptr(),
            argv.len(),
        );
    }
}

/// Propagates the running command exactly as the client sent it (replicas' own AOF and sub-replicas
/// included): only for commands whose effect is the same wherever they are applied. `args` are the command's
/// own (its name first), held as a record while a command runs.
pub fn replicate_verbatim(ctx: Ctx<'_>, args: &[RStr<'_>]) {
    if let Some((name, rest)) = args.split_first() {
        if hold(name.bytes(), rest.iter().map(|&a| OwnedStr::retain(a))) {
            return;
        }
    }
    unsafe { raw::RedisModule_ReplicateVerbatim.unwrap()(ctx.raw()) };
}

// ---- calling a server command ----

/// Runs `cmd args...` as the server would for a client (replicated as itself, to replicas and the AOF) and
/// replies with what it replied.
pub fn call_and_reply(ctx: Ctx<'_>, cmd: &str, args: &[RStr<'_>]) {
    let (Ok(name), Some(call)) = (CString::new(cmd), unsafe { raw::RedisModule_Call }) else {
        reply_error(ctx, "ERR internal error in the once module (see the server log)");
        return;
    };
    let mut argv: Vec<RawStr> = args.iter().map(|a| a.raw()).collect();
    // "!": replicate the command; "v": the arguments as an array; "E": errors come back as error replies;
    // "C": the calling user's ACL rules apply, as if the client had sent it.
    let fmt = b"!vEC\0";
    let reply = unsafe { call(ctx.raw(), name.as_ptr(), fmt.as_ptr().cast::<c_char>(), argv.as_mut_ptr(), argv.len()) };
    if reply.is_null() {
        reply_error(ctx, &format!("ERR could not run {cmd}"));
        return;
    }
    unsafe {
        raw::RedisModule_ReplyWithCallReply.unwrap()(ctx.raw(), reply);
        raw::RedisModule_FreeCallReply.unwrap()(reply);
    }
}

// ---- command filters ----

pub type FilterCtx = *mut raw::RedisModuleCommandFilterCtx;
pub type FilterFn = extern "C" fn(FilterCtx);

/// Registers a filter that sees every command before it runs (not this module's own calls).
pub fn register_filter(ctx: Ctx<'_>, f: FilterFn) -> bool {
    let Some(register) = (unsafe { raw::RedisModule_RegisterCommandFilter }) else { return false };
    !unsafe { register(ctx.raw(), Some(f), raw::REDISMODULE_CMDFILTER_NOSELF as c_int) }.is_null()
}

/// The filtered command's argument `i`, if it has one.
pub fn filter_arg<'a>(f: FilterCtx, i: usize) -> Option<&'a [u8]> {
    let count = unsafe { raw::RedisModule_CommandFilterArgsCount?(f) };
    if i >= usize::try_from(count).ok()? {
        return None;
    }
    let s = unsafe { raw::RedisModule_CommandFilterArgGet?(f, i as c_int) };
    if s.is_null() {
        return None;
    }
    // The argument lives for the whole filter call.
    Some(handles::filter_str(s).bytes())
}

/// Replaces the filtered command's argument `i` (Redis takes the new string).
pub fn filter_replace(f: FilterCtx, i: usize, with: &[u8]) {
    let Some(replace) = (unsafe { raw::RedisModule_CommandFilterArgReplace }) else { return };
    unsafe { replace(f, i as c_int, OwnedStr::new(with).give()) };
}

// ---- command registration and docs ----

/// One argument of a command's docs, in owned C strings (Redis copies them when the info is set).
pub struct ArgDoc {
    pub name: CString,
    pub type_code: u32,
    pub token: Option<CString>,
    pub flags: u32,
    pub key_spec_index: i32,
    pub subargs: Vec<ArgDoc>,
}

/// The docs of one command: `COMMAND DOCS` and redis-cli's hints read these.
pub struct CommandDoc {
    pub summary: CString,
    pub complexity: CString,
    pub since: CString,
    pub arity: i32,
    /// Key-spec flags (REDISMODULE_CMD_KEY_*) of the one key at position 1.
    pub key_flags: u64,
    /// A keyword after which every argument is a key with the same flags (RESERVE's ALSO): a second key spec.
    pub keys_after: Option<CString>,
    /// Dependency queues (AFTER) that a key spec cannot list: a second spec marked incomplete, and the module
    /// answers the server's getkeys requests (`key_positions`).
    pub dep_keys: Option<DepKeys>,
    pub args: Vec<ArgDoc>,
}

/// Where the second, incomplete key spec starts looking: after a keyword, or at an index.
pub enum DepKeys {
    After(CString),
    From(i32),
}

/// Whether the server only asks which arguments are keys (a command registered with getkeys-api).
pub fn is_keys_position_request(ctx: Ctx<'_>) -> bool {
    unsafe { raw::RedisModule_IsKeysPositionRequest.is_some_and(|f| f(ctx.raw()) != 0) }
}

/// Answers a getkeys request: these argument positions are keys.
pub fn key_positions(ctx: Ctx<'_>, positions: &[usize]) {
    let Some(at) = (unsafe { raw::RedisModule_KeyAtPos }) else { return };
    for &p in positions {
        unsafe { at(ctx.raw(), p as c_int) };
    }
}

pub fn create_command(
    ctx: Ctx<'_>,
    name: &CString,
    func: extern "C" fn(RawCtx, *mut RawStr, c_int) -> c_int,
    flags: &CString,
) -> bool {
    unsafe {
        raw::RedisModule_CreateCommand.unwrap()(ctx.raw(), name.as_ptr(), Some(func), flags.as_ptr(), 1, 1, 1) == OK
    }
}

/// A null-terminated array of raw args for `docs`; `keep` holds the nested arrays alive until Redis copied them.
fn raw_args(docs: &[ArgDoc], keep: &mut Vec<Vec<raw::RedisModuleCommandArg>>) -> *mut raw::RedisModuleCommandArg {
    let mut out: Vec<raw::RedisModuleCommandArg> = docs
        .iter()
        .map(|d| raw::RedisModuleCommandArg {
            name: d.name.as_ptr(),
            type_: d.type_code,
            key_spec_index: d.key_spec_index,
            token: d.token.as_ref().map_or(ptr::null(), |t| t.as_ptr()),
            summary: ptr::null(),
            since: ptr::null(),
            flags: d.flags as c_int,
            deprecated_since: ptr::null(),
            subargs: if d.subargs.is_empty() { ptr::null_mut() } else { raw_args(&d.subargs, keep) },
            display_text: ptr::null(),
        })
        .collect();
    // SAFETY of the zeroed terminator: every field is a pointer or an integer, and all-zero ends the list.
    out.push(unsafe { std::mem::zeroed() });
    let p = out.as_mut_ptr();
    keep.push(out);
    p
}

/// Sets a registered command's docs and key spec. False if the server refused them (or has no such API).
pub fn set_command_info(ctx: Ctx<'_>, name: &CString, doc: &CommandDoc) -> bool {
    let (Some(get), Some(set)) = (unsafe { raw::RedisModule_GetCommand }, unsafe { raw::RedisModule_SetCommandInfo })
    else {
        return false;
    };
    let command = unsafe { get(ctx.raw(), name.as_ptr()) };
    if command.is_null() {
        return false;
    }
    let version = raw::RedisModuleCommandInfoVersion {
        version: 1,
        sizeof_historyentry: std::mem::size_of::<raw::RedisModuleCommandHistoryEntry>(),
        sizeof_keyspec: std::mem::size_of::<raw::RedisModuleCommandKeySpec>(),
        sizeof_arg: std::mem::size_of::<raw::RedisModuleCommandArg>(),
    };
    let mut specs: [raw::RedisModuleCommandKeySpec; 2] = unsafe { std::mem::zeroed() };
    specs[0].flags = doc.key_flags;
    specs[0].begin_search_type = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
    specs[0].bs.index = raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_1 { pos: 1 };
    specs[0].find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
    specs[0].fk.range = raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 { lastkey: 0, keystep: 1, limit: 0 };
    // The second spec: specs are read until one with no begin-search type (zeroed: the list's end).
    let mut specs: [raw::RedisModuleCommandKeySpec; 3] = [specs[0], specs[1], unsafe { std::mem::zeroed() }];
    if let Some(word) = &doc.keys_after {
        specs[1].flags = doc.key_flags;
        specs[1].begin_search_type = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_KEYWORD;
        specs[1].bs.keyword =
            raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_2 { keyword: word.as_ptr(), startfrom: 2 };
        specs[1].find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
        specs[1].fk.range =
            raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 { lastkey: -1, keystep: 1, limit: 0 };
    }
    if let Some(dep) = &doc.dep_keys {
        let variable = u64::from(raw::REDISMODULE_CMD_KEY_INCOMPLETE | raw::REDISMODULE_CMD_KEY_VARIABLE_FLAGS);
        specs[1].flags = doc.key_flags | variable;
        match dep {
            DepKeys::After(word) => {
                specs[1].begin_search_type = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_KEYWORD;
                specs[1].bs.keyword =
                    raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_2 { keyword: word.as_ptr(), startfrom: 3 };
            }
            DepKeys::From(i) => {
                specs[1].begin_search_type = raw::RedisModuleKeySpecBeginSearchType_REDISMODULE_KSPEC_BS_INDEX;
                specs[1].bs.index = raw::RedisModuleCommandKeySpec__bindgen_ty_1__bindgen_ty_1 { pos: *i };
            }
        }
        specs[1].find_keys_type = raw::RedisModuleKeySpecFindKeysType_REDISMODULE_KSPEC_FK_RANGE;
        specs[1].fk.range =
            raw::RedisModuleCommandKeySpec__bindgen_ty_2__bindgen_ty_1 { lastkey: 0, keystep: 1, limit: 0 };
    }
    let mut keep = Vec::new();
    let args = raw_args(&doc.args, &mut keep);
    let info = raw::RedisModuleCommandInfo {
        version: &version,
        summary: doc.summary.as_ptr(),
        complexity: doc.complexity.as_ptr(),
        since: doc.since.as_ptr(),
        history: ptr::null_mut(),
        tips: ptr::null(),
        arity: doc.arity,
        key_specs: specs.as_mut_ptr(),
        args,
    };
    unsafe { set(command, &info) == OK }
}

/// Adds a module ACL category where the server has the API (Redis 7.4+, Valkey); false elsewhere.
pub fn add_acl_category(ctx: Ctx<'_>, name: &CString) -> bool {
    match unsafe { raw::RedisModule_AddACLCategory } {
        Some(add) => unsafe { add(ctx.raw(), name.as_ptr()) == OK },
        None => false,
    }
}

/// Whether the server can put module commands in ACL categories (Redis 7.2+, Valkey; not Redis 7.0).
pub fn has_acl_categories() -> bool {
    unsafe { raw::RedisModule_SetCommandACLCategories }.is_some() && unsafe { raw::RedisModule_GetCommand }.is_some()
}

/// Puts a command in ACL categories (space separated) where the server has the API.
pub fn set_acl_categories(ctx: Ctx<'_>, name: &CString, categories: &CString) -> bool {
    let (Some(get), Some(set)) =
        (unsafe { raw::RedisModule_GetCommand }, unsafe { raw::RedisModule_SetCommandACLCategories })
    else {
        return false;
    };
    let command = unsafe { get(ctx.raw(), name.as_ptr()) };
    !command.is_null() && unsafe { set(command, categories.as_ptr()) == OK }
}

pub fn reply_ok(ctx: Ctx<'_>) {
    unsafe { raw::RedisModule_ReplyWithSimpleString.unwrap()(ctx.raw(), c"OK".as_ptr()) };
}

// ---- module setup, INFO ----

/// Short reads and bad input in RDB loading come back as errors instead of killing the server.
pub fn handle_io_errors(ctx: Ctx<'_>) {
    unsafe { raw::RedisModule_SetModuleOptions.unwrap()(ctx.raw(), raw::REDISMODULE_OPTIONS_HANDLE_IO_ERRORS as i32) };
}

pub type InfoFunc = extern "C" fn(*mut raw::RedisModuleInfoCtx, c_int);

pub fn register_info(ctx: Ctx<'_>, f: InfoFunc) {
    unsafe { raw::RedisModule_RegisterInfoFunc.unwrap()(ctx.raw(), Some(f)) };
}

/// Writes an INFO section of `(name, value)` fields.
pub fn info_fields(ctx: *mut raw::RedisModuleInfoCtx, signed: &[(&str, i64)], unsigned: &[(&str, u64)]) {
    unsafe { raw::RedisModule_InfoAddSection.unwrap()(ctx, c"".as_ptr().cast_mut()) };
    for &(name, v) in signed {
        if let Ok(c) = CString::new(name) {
            unsafe { raw::RedisModule_InfoAddFieldLongLong.unwrap()(ctx, c.as_ptr().cast_mut(), v) };
        }
    }
    for &(name, v) in unsigned {
        if let Ok(c) = CString::new(name) {
            unsafe { raw::RedisModule_InfoAddFieldULongLong.unwrap()(ctx, c.as_ptr().cast_mut(), v) };
        }
    }
}

/// Adds a text field to the INFO section `info_fields` opened.
pub fn info_text_field(ctx: *mut raw::RedisModuleInfoCtx, name: &str, value: &str) {
    let (Ok(n), Ok(v)) = (CString::new(name), CString::new(value)) else { return };
    if let Some(add) = unsafe { raw::RedisModule_InfoAddFieldCString } {
        unsafe { add(ctx, n.as_ptr(), v.as_ptr()) };
    }
}

/// One field of the server's own INFO (`maxmemory_policy` of `memory`), read without running a command.
pub fn server_info_field(ctx: Ctx<'_>, section: &str, field: &str) -> Option<String> {
    let (Ok(section), Ok(field)) = (CString::new(section), CString::new(field)) else { return None };
    let (get, read, free) = unsafe {
        (raw::RedisModule_GetServerInfo?, raw::RedisModule_ServerInfoGetFieldC?, raw::RedisModule_FreeServerInfo?)
    };
    let data = unsafe { get(ctx.raw(), section.as_ptr()) };
    if data.is_null() {
        return None;
    }
    let p = unsafe { read(data, field.as_ptr()) };
    // SAFETY: the field's text lives until the info data is freed, which happens after it is copied.
    let value = (!p.is_null()).then(|| unsafe { std::ffi::CStr::from_ptr(p) }.to_string_lossy().into_owned());
    unsafe { free(ctx.raw(), data) };
    value
}

// ---- configs ----

pub type ConfigGet = extern "C" fn(*const c_char, *mut c_void) -> i64;
pub type ConfigSet = extern "C" fn(*const c_char, i64, *mut c_void, *mut RawStr) -> c_int;

/// Registers a numeric config whose callbacks get `var` back as their private data.
pub fn register_numeric_config(
    ctx: Ctx<'_>,
    name: &CString,
    default: i64,
    range: (i64, i64),
    get: ConfigGet,
    set: ConfigSet,
    var: &'static std::sync::atomic::AtomicI64,
) -> Result<(), String> {
    let Some(register) = (unsafe { raw::RedisModule_RegisterNumericConfig }) else {
        return Err("this server has no module configs".into());
    };
    let privdata = (var as *const std::sync::atomic::AtomicI64).cast_mut().cast::<c_void>();
    let status = unsafe {
        register(ctx.raw(), name.as_ptr(), default, 0, range.0, range.1, Some(get), Some(set), None, privdata)
    };
    if status == OK {
        Ok(())
    } else {
        Err(format!("cannot register config {}", name.to_string_lossy()))
    }
}

/// The variable a config callback was registered with.
pub fn config_var(privdata: *mut c_void) -> Option<&'static std::sync::atomic::AtomicI64> {
    // SAFETY: register_numeric_config passes a &'static AtomicI64 as the private data.
    unsafe { privdata.cast::<std::sync::atomic::AtomicI64>().as_ref() }
}

pub fn load_configs(ctx: Ctx<'_>) -> bool {
    match unsafe { raw::RedisModule_LoadConfigs } {
        Some(load) => unsafe { load(ctx.raw()) == OK },
        None => true,
    }
}

// ---- keyspace and server events ----

pub type KeyEventFn = extern "C" fn(RawCtx, c_int, *const c_char, RawStr) -> c_int;
pub type ServerEventFn = extern "C" fn(RawCtx, raw::RedisModuleEvent, u64, *mut c_void);

pub fn subscribe_keyspace(ctx: Ctx<'_>, classes: u32, f: KeyEventFn) -> bool {
    unsafe { raw::RedisModule_SubscribeToKeyspaceEvents.unwrap()(ctx.raw(), classes as c_int, Some(f)) == OK }
}

pub fn subscribe_server_event(ctx: Ctx<'_>, id: u64, f: ServerEventFn) -> bool {
    let event = raw::RedisModuleEvent { id, dataver: 1 };
    unsafe { raw::RedisModule_SubscribeToServerEvent.unwrap()(ctx.raw(), event, Some(f)) == OK }
}

/// A keyspace event's name.
pub fn event_name<'a>(event: *const c_char) -> &'a [u8] {
    if event.is_null() {
        return &[];
    }
    // SAFETY: Redis passes a NUL-terminated event name that lives for the whole callback.
    unsafe { std::ffi::CStr::from_ptr(event) }.to_bytes()
}

/// The two databases of a SWAPDB event.
pub fn swapdb_info(data: *mut c_void) -> Option<(i32, i32)> {
    // SAFETY: Redis passes a RedisModuleSwapDbInfo with the SWAPDB event.
    unsafe { data.cast::<raw::RedisModuleSwapDbInfo>().as_ref() }.map(|i| (i.dbnum_first, i.dbnum_second))
}

/// The database of a FLUSHDB event (-1: FLUSHALL).
pub fn flushed_db(data: *mut c_void) -> Option<i32> {
    // SAFETY: Redis passes a RedisModuleFlushInfo with the FLUSHDB event.
    unsafe { data.cast::<raw::RedisModuleFlushInfo>().as_ref() }.map(|i| i.dbnum)
}

// ---- timers ----

pub type TimerFn = extern "C" fn(RawCtx, *mut c_void);

pub fn create_timer(ctx: Ctx<'_>, delay_ms: i64, f: TimerFn) -> raw::RedisModuleTimerID {
    unsafe { raw::RedisModule_CreateTimer.unwrap()(ctx.raw(), delay_ms, Some(f), ptr::null_mut()) }
}

pub fn stop_timer(ctx: Ctx<'_>, id: raw::RedisModuleTimerID) {
    let mut data: *mut c_void = ptr::null_mut();
    unsafe { raw::RedisModule_StopTimer.unwrap()(ctx.raw(), id, &mut data) };
}

// ---- blocking on a key ----

pub type BlockedFn = extern "C" fn(RawCtx, *mut RawStr, c_int) -> c_int;
pub type FreeFn = extern "C" fn(RawCtx, *mut c_void);

/// Blocks the client on `key` with `data`, which Redis hands back to the callbacks and frees with `free`.
pub fn block_on_key<T>(
    ctx: Ctx<'_>,
    key: RStr<'_>,
    ms: i64,
    on_ready: BlockedFn,
    on_timeout: BlockedFn,
    free: FreeFn,
    data: Box<T>,
) {
    block_on_keys(ctx, &[key], ms, on_ready, on_timeout, free, data);
}

/// As `block_on_key`, woken when any of `keys` is signalled.
pub fn block_on_keys<T>(
    ctx: Ctx<'_>,
    keys: &[RStr<'_>],
    ms: i64,
    on_ready: BlockedFn,
    on_timeout: BlockedFn,
    free: FreeFn,
    data: Box<T>,
) {
    let mut keys: Vec<RawStr> = keys.iter().map(|k| k.raw()).collect();
    let n = keys.len() as c_int;
    let privdata = Box::into_raw(data).cast::<c_void>();
    unsafe {
        raw::RedisModule_BlockClientOnKeys.unwrap()(
            ctx.raw(),
            Some(on_ready),
            Some(on_timeout),
            Some(free),
            ms,
            keys.as_mut_ptr(),
            n,
            privdata,
        );
    }
}

/// The data a blocked client was blocked with (inside its callbacks, for as long as the callback's context).
pub fn blocked_data<T>(ctx: Ctx<'_>) -> Option<&T> {
    // SAFETY: block_on_key stored a Box<T> for this client; Redis frees it only after the last callback.
    unsafe { raw::RedisModule_GetBlockedClientPrivateData.unwrap()(ctx.raw()).cast::<T>().as_ref() }
}

/// Takes back what block_on_key stored, in the free callback (dropping it frees it).
pub fn take_blocked<T>(privdata: *mut c_void) -> Option<Box<T>> {
    // SAFETY: privdata is the Box<T> block_on_key leaked; Redis calls free exactly once.
    (!privdata.is_null()).then(|| unsafe { Box::from_raw(privdata.cast::<T>()) })
}

// ---- RDB, AOF and digest IO ----

pub type Io = *mut raw::RedisModuleIO;

/// The key name and database of the value being loaded, where the server says.
pub fn io_key_and_db<'a>(io: Io) -> Option<(&'a [u8], i32)> {
    let (key, db) = unsafe {
        let key = raw::RedisModule_GetKeyNameFromIO.map_or(ptr::null(), |f| f(io));
        let db = raw::RedisModule_GetDbIdFromIO.map_or(-1, |f| f(io));
        (key, db)
    };
    if key.is_null() || db < 0 {
        return None;
    }
    let mut len: usize = 0;
    let p = unsafe { raw::RedisModule_StringPtrLen.unwrap()(key, &mut len) };
    if p.is_null() {
        return None;
    }
    // SAFETY: the key name lives for the whole load callback.
    Some((unsafe { std::slice::from_raw_parts(p.cast::<u8>(), len) }, db))
}

pub fn log_io(io: Io, msg: &str) {
    if let Ok(c) = CString::new(msg.replace('\0', "?")) {
        if let Some(f) = unsafe { raw::RedisModule_LogIOError } {
            unsafe { f(io, c"warning".as_ptr(), c"%s".as_ptr(), c.as_ptr()) };
        }
    }
}

/// Writes `cmd args...` into an AOF being rewritten.
pub fn emit_aof(io: Io, cmd: &'static [u8], args: &[OwnedStr]) {
    let argv: Vec<RawStr> = args.iter().map(|a| a.as_rstr().raw()).collect();
    unsafe {
        raw::RedisModule_EmitAOF.unwrap()(io, cmd.as_ptr().cast::<c_char>(), c"v".as_ptr(), argv.as_ptr(), argv.len());
    }
}

pub struct Digest(pub *mut raw::RedisModuleDigest);

impl Digest {
    pub fn int(&self, v: i64) {
        unsafe { raw::RedisModule_DigestAddLongLong.unwrap()(self.0, v) };
    }
    pub fn bytes(&self, b: &[u8]) {
        unsafe { raw::RedisModule_DigestAddStringBuffer.unwrap()(self.0, b.as_ptr().cast(), b.len()) };
    }
    pub fn end(&self) {
        unsafe { raw::RedisModule_DigestEndSequence.unwrap()(self.0) };
    }
}

/// Sends `cmd key header payload [word bytes]...` to replicas and the AOF in one typed call, reusing the
/// client's key and payload strings (the hot path of every PUSH).
pub fn replicate_header_payload(
    ctx: Ctx<'_>,
    cmd: &'static [u8],
    key: RStr<'_>,
    header: &[u8],
    payload: RStr<'_>,
    extra: &[(&std::ffi::CStr, &[u8])],
) {
    let record = || {
        let mut args = vec![OwnedStr::retain(key), OwnedStr::new(header), OwnedStr::retain(payload)];
        for (w, b) in extra {
            args.push(OwnedStr::new(w.to_bytes()));
            args.push(OwnedStr::new(b));
        }
        args
    };
    if hold(cmd, record().into_iter()) {
        return;
    }
    let name = cmd;
    let cmd = cmd.as_ptr().cast::<c_char>();
    let (h, hl) = (header.as_ptr().cast::<c_char>(), header.len());
    let replicate = unsafe { raw::RedisModule_Replicate.unwrap() };
    unsafe {
        match extra {
            [] => replicate(ctx.raw(), cmd, c"sbs".as_ptr(), key.raw(), h, hl, payload.raw()),
            [(w, b)] => replicate(
                ctx.raw(),
                cmd,
                c"sbscb".as_ptr(),
                key.raw(),
                h,
                hl,
                payload.raw(),
                w.as_ptr(),
                b.as_ptr(),
                b.len(),
            ),
            [(w1, b1), (w2, b2)] => replicate(
                ctx.raw(),
                cmd,
                c"sbscbcb".as_ptr(),
                key.raw(),
                h,
                hl,
                payload.raw(),
                w1.as_ptr(),
                b1.as_ptr(),
                b1.len(),
                w2.as_ptr(),
                b2.as_ptr(),
                b2.len(),
            ),
            // Rarer jobs (a CALL's cancel time, a TTL with KEEP and an id...): the general form.
            _ => {
                self::replicate(ctx, name, &record());
                0
            }
        };
    }
}

/// Raises a keyspace notification of the module class (`notify-keyspace-events` flag `d`) on `key`.
/// Redis drops it at once when the class is off.
pub fn notify(ctx: Ctx<'_>, event: &'static std::ffi::CStr, key: RStr<'_>) {
    if let Some(f) = unsafe { raw::RedisModule_NotifyKeyspaceEvent } {
        unsafe { f(ctx.raw(), raw::REDISMODULE_NOTIFY_MODULE as c_int, event.as_ptr(), key.raw()) };
    }
}
