//! Once: a job queue inside Redis. This file only declares the module: its type, configs, commands,
//! subscriptions and INFO section. See ../shared/design.md for the layers.

/// The queue core, a crate of its own (crates/once-core): `crate::core::…` everywhere in the glue.
pub use once_core as core;

pub mod alarm;
pub mod commands;
pub mod config;
pub mod effects;
pub mod eviction;
pub mod flows;
pub mod info;
pub mod keyspace;
pub mod list_producers;
pub mod metrics;
pub mod migration;
pub mod persist;
pub mod queue_names;
pub mod random;
pub mod registry;
pub mod rm;
pub mod service;
pub mod text;
pub mod timer;
pub mod value;
pub mod waiters;

use redis_module::{redis_module, Context, RedisString, Status};

use crate::persist::type_methods::QUEUE_TYPE;

fn init(ctx: &Context, args: &[RedisString]) -> Status {
    if let Some(name) = rm::missing_api() {
        ctx.log_warning(&format!("once: this server lacks RedisModule_{name}"));
        return Status::Err;
    }
    let pairs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    if let Err(e) = config::apply_load_args(&pairs) {
        ctx.log_warning(&format!("once: {e}"));
        return Status::Err;
    }
    match rm::callback(ctx.ctx, setup) {
        Ok(()) => Status::Ok,
        Err(e) => {
            ctx.log_warning(&format!("once: {e}"));
            Status::Err
        }
    }
}

/// Sets the module up with the context Redis handed `init`.
fn setup(ctx: rm::Ctx<'_>) -> Result<(), String> {
    rm::handle_io_errors(ctx);
    rm::register_info(ctx, info::info);
    install_panic_hook();
    value::set_queue_type(persist::type_methods::queue_type());
    alarm::install(timer::tick);
    config::register(ctx)
        .and_then(|_| commands::register(ctx))
        .and_then(|_| keyspace::subscribe(ctx))
        .and_then(|_| list_producers::register(ctx))?;
    eviction::check_policy(ctx);
    Ok(())
}

/// Panics are caught at every entry point; this makes sure each one is in the Redis log first.
fn install_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        let msg = format!("once: panic: {info}");
        rm::log_detached("warning", &msg);
    }));
}

#[cfg(not(test))]
macro_rules! get_allocator {
    () => {
        redis_module::alloc::RedisAlloc
    };
}

#[cfg(test)]
macro_rules! get_allocator {
    () => {
        std::alloc::System
    };
}

redis_module! {
    name: "once",
    version: 1,
    allocator: (get_allocator!(), get_allocator!()),
    data_types: [QUEUE_TYPE],
    init: init,
}
