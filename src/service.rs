//! The key services every entry point shares (commands, the timer, keyspace events, RDB load): opening a
//! queue key, settling a queue after a change (server-wide figures, blocked readers, the timer's next
//! deadline). It depends on the core and the low-level API only, never on the commands.

use crate::core::queue::FREE_STEP;
use crate::registry::registry;
use crate::rm::{self, Ctx, Key, RStr, Slot};
use crate::text::{err, wrong_type, CmdError};
use crate::value::{QueueValue, Snapshot};
use crate::{alarm, queue_names};

/// The queue under an open key, if there is one.
pub fn existing<'k>(key: &'k mut Key<'_>) -> Result<Option<&'k mut QueueValue>, CmdError> {
    match key.get() {
        Slot::Empty => Ok(None),
        Slot::Ours(v) => Ok(Some(v)),
        Slot::WrongType => Err(wrong_type()),
    }
}

/// The queue under an open key, made empty if the key is missing. Call only once the command is known
/// to succeed, so a failed command never leaves an empty key behind.
pub fn existing_or_new<'k>(key: &'k mut Key<'_>) -> Result<&'k mut QueueValue, CmdError> {
    if matches!(key.get(), Slot::Empty) {
        let (name, db) = key.name_and_db();
        queue_names::add(db, name);
        return key
            .set(QueueValue::new(crate::core::Queue::new()))
            .ok_or_else(|| err("could not create the queue key"));
    }
    existing(key)?.ok_or_else(wrong_type)
}

/// After any change to a queue: server-wide figures, wake blocked readers, and tell the timer when this
/// queue next needs it.
pub fn settle(ctx: Ctx<'_>, key: RStr<'_>, v: &mut QueueValue, before: Snapshot) {
    // A master tells the jobs waiting on jobs that just ended (a bounded step; the timer does the rest).
    if v.queue.has_backlog() && crate::flows::may_drain(ctx) {
        crate::flows::drain_and_replicate(ctx, key, v, crate::flows::INLINE, rm::now_ms());
    }
    // Any node (replicas too, whose timer does not act) frees a few purged jobs with each change.
    v.queue.free_some(FREE_STEP);
    before.report_changes(v);
    if v.queue.stats().ready > 0 || v.queue.events.last_id() != before.last_event {
        rm::signal_ready(ctx, key);
    }
    note_deadline(ctx, rm::selected_db(ctx), key.bytes(), v);
}

/// Asks the timer to look at this queue at `t` (when a rate limit lets the next reservation go), so the
/// key is signalled and blocked readers are served then.
pub fn note_wake(ctx: Ctx<'_>, key: RStr<'_>, v: &mut QueueValue, t: u64) {
    if t < v.noted_deadline {
        v.noted_deadline = t;
        alarm::note(ctx, rm::selected_db(ctx), key.bytes(), t);
    }
}

pub fn note_deadline(ctx: Ctx<'_>, db: i32, key: &[u8], v: &mut QueueValue) {
    if let Some(d) = v.queue.next_deadline() {
        if d < v.noted_deadline {
            v.noted_deadline = d;
            alarm::note(ctx, db, key, d);
        }
    }
}

/// A queue that just came from an RDB or RESTORE: the registry learns its next deadline; the alarm is armed
/// when loading ends (keyspace.rs), since no timer may be created from inside a load.
pub fn note_loaded(db: i32, key: &[u8], v: &mut QueueValue) {
    queue_names::add(db, key);
    if let Some(deadline) = v.queue.next_deadline() {
        registry().note(db, key, deadline);
        v.noted_deadline = deadline;
    }
}
