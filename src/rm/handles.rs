//! The handles the glue gets from the server: a context and the strings of a callback, typed with the lifetime
//! of that callback. Redis hands a raw context and raw strings to every callback, valid until it returns; the
//! handles are made only here, by the entry functions (`callback`, `command`, `with_str`...), whose closures
//! are generic over the lifetime, so neither a handle nor anything borrowed from it can be kept past the
//! callback: the compiler checks what a comment used to promise.

use std::ffi::{c_char, c_int};
use std::marker::PhantomData;
use std::ptr;

use redis_module::raw;

/// A raw context as the server's callbacks receive it (their `extern "C"` signatures keep it: that is the ABI).
pub type RawCtx = *mut raw::RedisModuleCtx;
/// A raw string as the server's callbacks receive it.
pub type RawStr = *mut raw::RedisModuleString;

/// The server context of one callback ('a: the callback's run).
#[derive(Clone, Copy)]
pub struct Ctx<'a> {
    ptr: RawCtx,
    _callback: PhantomData<&'a raw::RedisModuleCtx>,
}

impl Ctx<'_> {
    /// The raw pointer, for the calls of the server API that take it.
    pub fn raw(self) -> RawCtx {
        self.ptr
    }
}

/// A string the server lends for the length of a callback ('a): a command's argument, a key name.
/// `repr(transparent)`, so a command's argv is a slice of these as it is.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub struct RStr<'a> {
    ptr: RawStr,
    _borrowed: PhantomData<&'a raw::RedisModuleString>,
}

impl<'a> RStr<'a> {
    /// Made only where the string is known to live for 'a: the entry functions below and `OwnedStr::as_rstr`.
    fn new(ptr: RawStr) -> RStr<'a> {
        RStr { ptr, _borrowed: PhantomData }
    }

    /// The string's bytes, borrowed for as long as the string is.
    pub fn bytes(self) -> &'a [u8] {
        let mut len: usize = 0;
        // SAFETY: the string lives for 'a (how an RStr is made); its buffer does not change while it is lent.
        unsafe {
            let p = raw::RedisModule_StringPtrLen.unwrap()(self.ptr, &mut len);
            if p.is_null() {
                return &[];
            }
            std::slice::from_raw_parts(p.cast::<u8>(), len)
        }
    }

    /// The raw pointer, for the calls of the server API that take it.
    pub fn raw(self) -> RawStr {
        self.ptr
    }
}

/// Runs a callback's body with its context.
pub fn callback<R>(ctx: RawCtx, f: impl for<'a> FnOnce(Ctx<'a>) -> R) -> R {
    f(Ctx { ptr: ctx, _callback: PhantomData })
}

/// Runs a command's body with its context and arguments (empty when Redis passes none).
pub fn command<R>(
    ctx: RawCtx,
    argv: *mut RawStr,
    argc: c_int,
    f: impl for<'a> FnOnce(Ctx<'a>, &'a [RStr<'a>]) -> R,
) -> R {
    let args: &[RStr<'_>] = if argv.is_null() || argc <= 0 {
        &[]
    } else {
        // SAFETY: Redis passes argc valid strings that live for the whole call; RStr is a transparent pointer.
        unsafe { std::slice::from_raw_parts(argv.cast::<RStr<'_>>(), argc as usize) }
    };
    f(Ctx { ptr: ctx, _callback: PhantomData }, args)
}

/// Runs a keyspace event's body with its context and key.
pub fn key_event<R>(ctx: RawCtx, key: RawStr, f: impl for<'a> FnOnce(Ctx<'a>, RStr<'a>) -> R) -> R {
    f(Ctx { ptr: ctx, _callback: PhantomData }, RStr::new(key))
}

/// Runs a type method's body with a key name the server passed it (not retainable: it may live on the stack).
pub fn with_str<R>(s: RawStr, f: impl for<'a> FnOnce(RStr<'a>) -> R) -> R {
    f(RStr::new(s))
}

/// The key that woke a blocked client, in its reply callback.
pub fn blocked_ready_key(ctx: Ctx<'_>) -> RStr<'_> {
    RStr::new(unsafe { raw::RedisModule_GetBlockedClientReadyKey.unwrap()(ctx.raw()) })
}

/// The filtered command's argument `i` (a filter has no context, only its own handle), for the filter call.
pub(super) fn filter_str<'a>(s: RawStr) -> RStr<'a> {
    RStr::new(s)
}

/// An owned Redis string, freed on drop (created without a context, so it is not auto-freed).
pub struct OwnedStr(RawStr);

impl OwnedStr {
    pub fn new(b: &[u8]) -> OwnedStr {
        OwnedStr(unsafe {
            raw::RedisModule_CreateString.unwrap()(ptr::null_mut(), b.as_ptr().cast::<c_char>(), b.len())
        })
    }

    pub fn int(v: i64) -> OwnedStr {
        OwnedStr(unsafe { raw::RedisModule_CreateStringFromLongLong.unwrap()(ptr::null_mut(), v) })
    }

    /// Takes another reference to a command argument, without copying it. Never for key names handed to
    /// type callbacks (AOF rewrite): those may live on the stack, and Redis aborts on retaining them.
    pub fn retain(s: RStr<'_>) -> OwnedStr {
        unsafe { raw::RedisModule_RetainString.unwrap()(ptr::null_mut(), s.raw()) };
        OwnedStr(s.raw())
    }

    /// A string the server gave away (popped from a list): this handle frees it.
    pub(super) fn take(s: RawStr) -> OwnedStr {
        OwnedStr(s)
    }

    /// Hands the string to the server, which frees it from then on.
    pub(super) fn give(self) -> RawStr {
        let s = self.0;
        std::mem::forget(self);
        s
    }

    /// The string, lent for as long as this handle lives.
    pub fn as_rstr(&self) -> RStr<'_> {
        RStr::new(self.0)
    }

    pub fn bytes(&self) -> &[u8] {
        self.as_rstr().bytes()
    }
}

impl Drop for OwnedStr {
    fn drop(&mut self) {
        if !self.0.is_null() {
            unsafe { raw::RedisModule_FreeString.unwrap()(ptr::null_mut(), self.0) };
        }
    }
}
