//! Producers that push onto a Redis list keep working when the list's name is a Once queue: a command filter
//! turns `RPUSH name e ...` and `LPUSH name e ...` into `ONCE.RPUSH` / `ONCE.LPUSH` when `name` is a queue
//! somewhere, and those push one job per element (commands/lists.rs). A filter rather than a drained inbox
//! list because it keeps the push atomic, replicated and persisted like any other (no second copy of a job,
//! no window where it is in neither place), and costs other commands one comparison of their name.

use crate::queue_names;
use crate::rm::{self, Ctx, FilterCtx};

pub fn register(ctx: Ctx<'_>) -> Result<(), String> {
    if rm::register_filter(ctx, filter) {
        Ok(())
    } else {
        Err("cannot register the RPUSH/LPUSH command filter".into())
    }
}

extern "C" fn filter(f: FilterCtx) {
    let _ = std::panic::catch_unwind(|| {
        let Some(cmd) = rm::filter_arg(f, 0) else { return };
        let to: &[u8] = if cmd.eq_ignore_ascii_case(b"rpush") {
            b"ONCE.RPUSH"
        } else if cmd.eq_ignore_ascii_case(b"lpush") {
            b"ONCE.LPUSH"
        } else {
            return;
        };
        // Arity errors stay the server's own.
        if rm::filter_arg(f, 2).is_none() {
            return;
        }
        if rm::filter_arg(f, 1).is_some_and(queue_names::contains) {
            rm::filter_replace(f, 0, to);
        }
    });
}
