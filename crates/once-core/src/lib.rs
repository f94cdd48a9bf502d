//! The queue core: plain Rust, no Redis types. Every operation that depends on time takes `now_ms`,
//! and every random choice arrives as an argument, so the state machine is deterministic and testable.
pub mod backoff;
pub mod deps;
pub mod events;
pub mod flow;
pub mod glob;
pub mod histogram;
pub mod job;
pub mod limits;
pub mod line;
pub mod packed;
pub mod queue;
pub mod run;
pub mod sample;
pub mod schedule;
pub mod schema;
pub mod settings;
pub mod slot;
pub mod table;

pub use job::{Extra, Job, Payload, State};
pub use queue::{FailCause, Queue, Stats, Totals};
