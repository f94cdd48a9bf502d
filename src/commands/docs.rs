//! The command table (spec.rs) as the server's command docs: argument types, tokens and flags, and the key
//! spec that says whether a command reads or writes its queue (ACL `%R~` / `%W~` rules follow it).

use std::ffi::CString;

use redis_module::raw;

use super::spec::{Access, Arg, Kind};
use super::table::Command;
use crate::rm::{self, ArgDoc, CommandDoc};

/// The module version that introduced the commands, as `COMMAND DOCS` shows it.
const SINCE: &str = "0.1.0";

fn cstr(s: &str) -> Result<CString, String> {
    CString::new(s).map_err(|e| e.to_string())
}

/// `choice`: `a` is one alternative of a oneof, which the docs never mark optional (the oneof itself is).
fn arg_doc(a: &Arg, choice: bool) -> Result<ArgDoc, String> {
    let (type_code, subargs) = match a.kind {
        Kind::Key => (raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_KEY, &[][..]),
        Kind::Str => (raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_STRING, &[][..]),
        Kind::Int => (raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_INTEGER, &[][..]),
        Kind::UnixTime => (raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_UNIX_TIME, &[][..]),
        Kind::Token => (raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_PURE_TOKEN, &[][..]),
        Kind::OneOf(sub) => (raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_ONEOF, sub),
        Kind::Block(sub) => (raw::RedisModuleCommandArgType_REDISMODULE_ARG_TYPE_BLOCK, sub),
    };
    let mut flags = 0;
    if a.optional && !choice {
        flags |= raw::REDISMODULE_CMD_ARG_OPTIONAL;
    }
    if a.multiple {
        flags |= raw::REDISMODULE_CMD_ARG_MULTIPLE;
    }
    Ok(ArgDoc {
        name: cstr(a.name)?,
        type_code,
        token: a.token.map(cstr).transpose()?,
        flags,
        // The queue is key spec 0; keys after a keyword (ALSO) are spec 1.
        key_spec_index: match (a.kind, a.token) {
            // A dependency's queue (AFTER) is the second spec, as ALSO's queues are.
            (Kind::Key, None) if a.name == "dep-queue" => 1,
            (Kind::Key, None) => 0,
            (Kind::Key, Some(_)) => 1,
            _ => -1,
        },
        subargs: subargs.iter().map(|s| arg_doc(s, matches!(a.kind, Kind::OneOf(_)))).collect::<Result<_, _>>()?,
    })
}

pub fn key_flags(access: Access) -> u64 {
    let f = match access {
        Access::Read => raw::REDISMODULE_CMD_KEY_RO | raw::REDISMODULE_CMD_KEY_ACCESS,
        Access::Insert => raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_INSERT,
        Access::Update => {
            raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_ACCESS | raw::REDISMODULE_CMD_KEY_UPDATE
        }
        Access::Delete => {
            raw::REDISMODULE_CMD_KEY_RW | raw::REDISMODULE_CMD_KEY_ACCESS | raw::REDISMODULE_CMD_KEY_DELETE
        }
    };
    u64::from(f)
}

pub fn command_doc(c: &Command) -> Result<CommandDoc, String> {
    Ok(CommandDoc {
        summary: cstr(c.summary)?,
        complexity: cstr(c.complexity)?,
        since: cstr(SINCE)?,
        arity: c.arity,
        key_flags: key_flags(c.access),
        keys_after: c
            .args
            .iter()
            .find(|a| matches!(a.kind, Kind::Key) && a.token.is_some())
            .and_then(|a| a.token)
            .map(cstr)
            .transpose()?,
        dep_keys: match c.name {
            "ONCE.PUSH" | "ONCE.CALL" => Some(rm::DepKeys::After(cstr("AFTER")?)),
            "ONCE.AFTER" => Some(rm::DepKeys::From(3)),
            _ => None,
        },
        args: c.args.iter().map(|a| arg_doc(a, false)).collect::<Result<_, _>>()?,
    })
}
