//! Clients waiting for a job's outcome (RESULT BLOCK, CALL): who waits for which job, and the outcome of a job
//! that finished without being kept, held only while someone waits for it.
//!
//! A waiter blocks on the queue's key like a blocked RESERVE, so the server handles its timeout, its
//! disconnection, a failover (UNBLOCKED) and a slot moving (MOVED). What the key alone cannot say is which job
//! finished and how, once a job with KEEP 0 is gone: every change that finishes a watched job stores that here
//! and signals the key. Nothing here is state of the queue: it is neither persisted nor replicated, and a
//! replica fills it from the records it applies, so a waiter on a replica is woken too.

use std::cell::RefCell;
use std::collections::HashMap;

use crate::core::queue::Finish;
use crate::core::{Job, Queue};
use crate::rm::{self, Ctx, RStr};

#[derive(Clone, PartialEq, Eq, Hash, Debug)]
pub struct Watch {
    pub db: i32,
    pub key: Box<[u8]>,
    pub id: Box<[u8]>,
}

struct Waiting {
    count: usize,
    outcome: Option<Finish>,
}

thread_local! {
    // Only the server's main thread runs commands and their callbacks.
    static WAITING: RefCell<HashMap<Watch, Waiting>> = RefCell::new(HashMap::new());
}

impl Watch {
    pub fn new(ctx: Ctx<'_>, key: RStr<'_>, id: &[u8]) -> Watch {
        Watch { db: rm::selected_db(ctx), key: key.bytes().into(), id: id.into() }
    }
}

/// A client starts waiting for `w`.
pub fn watch(w: &Watch) {
    WAITING.with(|m| m.borrow_mut().entry(w.clone()).or_insert(Waiting { count: 0, outcome: None }).count += 1);
}

/// A client stopped waiting (served, timed out, disconnected, unblocked by the server).
pub fn unwatch(w: &Watch) {
    WAITING.with(|m| {
        let mut m = m.borrow_mut();
        if let Some(x) = m.get_mut(w) {
            x.count -= 1;
            if x.count == 0 {
                m.remove(w);
            }
        }
    });
}

/// The outcome stored for `w` by the change that finished its job.
pub fn stored(w: &Watch) -> Option<Finish> {
    WAITING.with(|m| m.borrow().get(w).and_then(|x| x.outcome.clone()))
}

fn anyone() -> bool {
    WAITING.with(|m| !m.borrow().is_empty())
}

/// Whether someone waits for the job with public id `id` in `key`: the check every finishing change makes,
/// one lookup in an empty map when nobody waits.
pub fn watched(ctx: Ctx<'_>, key: RStr<'_>, id: &[u8]) -> Option<Watch> {
    if !anyone() {
        return None;
    }
    let w = Watch::new(ctx, key, id);
    WAITING.with(|m| m.borrow().contains_key(&w)).then_some(w)
}

/// What a change about to act on job `seq` remembers for its waiters: the job as it was, when it is watched.
pub fn before(ctx: Ctx<'_>, key: RStr<'_>, q: &Queue, seq: u64) -> Option<(Watch, Job)> {
    if !anyone() {
        return None;
    }
    let job = q.job(seq)?;
    let w = watched(ctx, key, &job.id_bytes())?;
    Some((w, job.into_owned()))
}

/// After the change: when the job has finished (still in the queue, or gone as `ended` says), its outcome is
/// stored for the waiters and the key signalled so that they are served.
pub fn after(
    ctx: Ctx<'_>,
    key: RStr<'_>,
    q: &Queue,
    seq: u64,
    watch: Option<(Watch, Job)>,
    ended: impl FnOnce(&Job) -> Finish,
) {
    let Some((w, before)) = watch else { return };
    let outcome = match q.outcome(seq) {
        Some(f) if f.state.is_finished() => f,
        Some(_) => return,
        None => ended(&before),
    };
    WAITING.with(|m| {
        if let Some(x) = m.borrow_mut().get_mut(&w) {
            x.outcome = Some(outcome);
        }
    });
    rm::signal_ready(ctx, key);
}
