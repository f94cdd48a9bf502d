//! Flows across keys: the queues of one flow share a slot (a hash tag), and a change in one reaches the others
//! here. Resolving AFTER's ids, pinning the dependencies a new waiting job names, and working through a queue's
//! backlog of notices (tell the jobs waiting on a job that ended) and pins to hand back, a bounded number per
//! step. The core keeps each queue's backlog; this opens the queue each entry names.
//!
//! A master works through a backlog after every change (up to INLINE entries, so one ACK of a job that 10,000
//! wait on never stalls the server) and then in timer steps; each step replicates as `ONCE._NOTIFY key n m`,
//! "the next n notices and m pins (held ones due again first)", which a replica applies to the same backlog at
//! the same time with the same result.
//!
//! A notice or pin whose queue is missing is held, not dropped: `redis-cli --cluster reshard` moves a slot key
//! by key, so for a while a flow's queues are split between two nodes. A held entry moves with its queue's
//! backlog and is tried again each second until the queue it names is there, for an hour at most.

use std::cell::Cell;

use crate::core::deps::{Link, NoticeTo, Outcome, Target, HOLD_MS, MAX_LINKS};
use crate::core::limits::MAX_AFTER_IDS;
use crate::core::queue::{Finish, Told};
use crate::core::State;
use crate::rm::{self, Ctx, Key, OwnedStr, RStr};
use crate::service::existing;
use crate::text::{err, CmdError};
use crate::value::QueueValue;

/// Backlog entries a command works through itself; the timer takes the rest, as many per tick as its budget
/// allows.
pub const INLINE: usize = 256;

thread_local! {
    // Set while a backlog is being worked through: the queues it opens are settled without working through
    // their own (which could open the first queue again).
    static DRAINING: Cell<bool> = const { Cell::new(false) };
}

/// One AFTER clause: a queue and the ids in it.
pub struct Clause<'a> {
    pub queue: RStr<'a>,
    pub ids: Vec<RStr<'a>>,
}

/// Refuses a dependency queue in another slot than the waiting job's: in a cluster they would live on
/// different nodes, and on one server too the flow would break when it becomes one.
pub fn check_slot(waiting: &[u8], dep: &[u8]) -> Result<(), CmdError> {
    use crate::core::slot::key_slot;
    if key_slot(waiting) != key_slot(dep) {
        return Err(CmdError(format!(
            "CROSSSLOT AFTER queue '{}' hashes to another slot than '{}' (give both one hash tag, as {{shop}}:charge and {{shop}}:ship)",
            crate::text::shown(dep),
            crate::text::shown(waiting)
        )));
    }
    Ok(())
}

/// The links AFTER names, each with its dependency's outcome now. A missing id, a queue in another slot or a key
/// of another type is an error before anything changes.
pub fn resolve(ctx: Ctx<'_>, waiting: RStr<'_>, clauses: &[Clause<'_>]) -> Result<Vec<Link>, CmdError> {
    let total: usize = clauses.iter().map(|c| c.ids.len()).sum();
    if total > MAX_AFTER_IDS {
        return Err(err(format!("AFTER names {total} ids, over the limit of {MAX_AFTER_IDS} per call")));
    }
    let mut links = Vec::with_capacity(total);
    for c in clauses {
        check_slot(waiting.bytes(), c.queue.bytes())?;
        let mut key = Key::open(ctx, c.queue, false);
        let v = existing(&mut key)?;
        for id in &c.ids {
            let job = v.as_ref().and_then(|v| v.queue.find(id.bytes()).and_then(|s| v.queue.job(s)));
            let Some(job) = job else {
                return Err(err(format!(
                    "AFTER names no job: {} {}",
                    crate::text::shown(c.queue.bytes()),
                    crate::text::shown(id.bytes())
                )));
            };
            // Every encoding holds at most MAX_LINKS of either kind: refused here, so nothing saves that cannot load.
            if job.dependents().is_some_and(|d| d.targets.len() as u64 >= MAX_LINKS || u64::from(d.pins) >= MAX_LINKS) {
                return Err(err(format!(
                    "AFTER names a job that {MAX_LINKS} jobs wait on already: {} {}",
                    crate::text::shown(c.queue.bytes()),
                    crate::text::shown(id.bytes())
                )));
            }
            links.push(Link {
                queue: c.queue.bytes().into(),
                seq: job.seq,
                id: job.id_bytes().into(),
                outcome: Outcome::of(job.state),
            });
        }
    }
    Ok(links)
}

/// The new waiting job `seq` of queue `key` (in `v`) takes its place on each dependency: a pin while it has not
/// ended (none when it ended at once), and a target on each one still pending. Links `from` on (ONCE.AFTER
/// adds to the end).
pub fn link(ctx: Ctx<'_>, key: RStr<'_>, v: &mut QueueValue, seq: u64, from: usize) {
    let Some(job) = v.queue.job(seq) else { return };
    let pin = !job.state.is_finished() && job.waits().is_some_and(|w| !w.unpinned);
    let Some(w) = job.waits() else { return };
    let links: Vec<(usize, Box<[u8]>, u64, bool)> = w
        .links
        .iter()
        .enumerate()
        .skip(from)
        .map(|(i, l)| (i, l.queue.clone(), l.seq, l.outcome == Outcome::Pending))
        .collect();
    drop(job);
    let target = |i: usize, pending: bool| pending.then(|| Target { queue: key.bytes().into(), seq, index: i as u32 });
    // Links come grouped by queue (one AFTER clause each): each run opens its queue once.
    for these in links.chunk_by(|a, b| a.1 == b.1) {
        let queue = &these[0].1;
        if **queue == *key.bytes() {
            for (i, _, dseq, pending) in these {
                v.queue.add_dependent(*dseq, pin, target(*i, *pending));
            }
            continue;
        }
        let name = OwnedStr::new(queue);
        let mut dk = Key::open(ctx, name.as_rstr(), true);
        if let Ok(Some(dv)) = existing(&mut dk) {
            for (i, _, dseq, pending) in these {
                dv.queue.add_dependent(*dseq, pin, target(*i, *pending));
            }
        }
    }
}

/// Whether this change may work through backlogs itself: a master's own command or timer step, not a record
/// it replays, and not a queue opened while another's backlog is being worked through.
pub fn may_drain(ctx: Ctx<'_>) -> bool {
    !DRAINING.with(Cell::get) && rm::may_act_on_own(ctx) && !rm::is_replayed(ctx)
}

/// Works through up to `max` entries of the queue's backlog at `now` and replicates the step. Returns how
/// many it took.
pub fn drain_and_replicate(ctx: Ctx<'_>, key: RStr<'_>, v: &mut QueueValue, max: usize, now: u64) -> usize {
    let (n, m) = drain(ctx, key, v, max, max, now);
    if n + m > 0 {
        crate::effects::at(
            ctx,
            now,
            b"ONCE._NOTIFY\0",
            &[OwnedStr::retain(key), OwnedStr::int(n as i64), OwnedStr::int(m as i64)],
        );
    }
    n + m
}

/// Tells up to `notices` waiting jobs, then hands back up to `pins` pins, from queue `key`'s backlog: a step is
/// "the next n notices, then the next m pins", so a replica given the same n and m does the same. Returns how
/// many of each.
pub fn drain(ctx: Ctx<'_>, key: RStr<'_>, v: &mut QueueValue, notices: usize, pins: usize, now: u64) -> (usize, usize) {
    let was = DRAINING.with(|d| d.replace(true));
    let mut n = 0;
    // Held notices due again come first: each opens its queue, and goes back on hold if it is still missing.
    while n < notices {
        let Some(h) = v.queue.next_held_notice(now) else { break };
        n += 1;
        with_other(ctx, &h.entry.target.queue, |name, other| match other {
            Some(wv) => tell(ctx, name, wv, &h.entry.target, key.bytes(), h.entry.from, h.entry.outcome, now),
            None => {
                v.queue.hold_notice(h.entry.clone(), h.until, now);
            }
        });
    }
    // A run of notices to one other queue opens it once and settles it once.
    while n < notices {
        let Some(queue) = v.queue.next_notice_queue().map(Box::<[u8]>::from) else { break };
        if *queue == *key.bytes() {
            let Some((t, from, outcome)) = v.queue.next_notice() else { break };
            n += 1;
            tell(ctx, key, v, &t, key.bytes(), from, outcome, now);
            continue;
        }
        with_other(ctx, &queue, |name, mut other| {
            while n < notices && v.queue.next_notice_queue() == Some(&*queue) {
                let Some((t, from, outcome)) = v.queue.next_notice() else { break };
                n += 1;
                match other.as_deref_mut() {
                    Some(wv) => tell(ctx, name, wv, &t, key.bytes(), from, outcome, now),
                    // Its queue is not here (yet): a key-by-key slot migration moves a flow's queues one by one.
                    None => {
                        v.queue.hold_notice(NoticeTo { target: t, from, outcome }, now.saturating_add(HOLD_MS), now);
                    }
                }
            }
        });
    }
    let mut m = 0;
    while m < pins {
        let Some(h) = v.queue.next_held_pin(now) else { break };
        m += 1;
        with_other(ctx, &h.entry.0, |_, other| match other {
            Some(dv) => {
                dv.queue.unpin(h.entry.1);
            }
            None => {
                v.queue.hold_pin(h.entry.clone(), h.until, now);
            }
        });
    }
    while m < pins {
        let Some(queue) = v.queue.next_unpin_queue().map(Box::<[u8]>::from) else { break };
        if *queue == *key.bytes() {
            let Some((_, dseq)) = v.queue.next_unpin() else { break };
            m += 1;
            v.queue.unpin(dseq);
            continue;
        }
        with_other(ctx, &queue, |_, mut other| {
            while m < pins && v.queue.next_unpin_queue() == Some(&*queue) {
                let Some((dq, dseq)) = v.queue.next_unpin() else { break };
                m += 1;
                match other.as_deref_mut() {
                    Some(dv) => {
                        dv.queue.unpin(dseq);
                    }
                    None => {
                        v.queue.hold_pin((dq, dseq), now.saturating_add(HOLD_MS), now);
                    }
                }
            }
        });
    }
    DRAINING.with(|d| d.set(was));
    (n, m)
}

/// Runs `work` on queue `name` — another key than the one whose backlog is being worked through, opened once for
/// a run of entries that name it (None when it is missing or not a queue) — and settles it after.
fn with_other(ctx: Ctx<'_>, name: &[u8], work: impl FnOnce(RStr<'_>, Option<&mut QueueValue>)) {
    let name = OwnedStr::new(name);
    let mut key = Key::open(ctx, name.as_rstr(), true);
    let mut other = existing(&mut key).ok().flatten();
    let before = other.as_ref().map(|o| o.snapshot());
    work(name.as_rstr(), other.as_deref_mut());
    if let (Some(o), Some(before)) = (other, before) {
        crate::service::settle(ctx, name.as_rstr(), o, before);
    }
}

/// Tells one waiting job, waking the clients that wait for its outcome when it died of it.
#[allow(clippy::too_many_arguments)]
fn tell(
    ctx: Ctx<'_>,
    key: RStr<'_>,
    v: &mut QueueValue,
    t: &Target,
    from_queue: &[u8],
    from: u64,
    outcome: Outcome,
    now: u64,
) {
    let watch = crate::waiters::before(ctx, key, &v.queue, t.seq);
    let told = v.queue.tell(t.seq, t.index, from_queue, from, outcome, now);
    match told {
        Told::Died => {
            crate::waiters::after(ctx, key, &v.queue, t.seq, watch, |j| Finish::ended(j, State::Dead, None, now));
            rm::notify(ctx, c"once.dead", key);
        }
        Told::Released => rm::notify(ctx, c"once.release", key),
        Told::Counted | Told::Nothing => {}
    }
}

/// Refuses links that would close a cycle: waiting job `seq` (public id `id`) of `key` must not be reachable from
/// any of `links` through pending dependencies. The walk opens the queues it passes (all in one slot) and stops
/// at `limit` jobs, refusing rather than guessing.
pub fn check_no_cycle(
    ctx: Ctx<'_>,
    key: RStr<'_>,
    (seq, id): (u64, &[u8]),
    links: &[Link],
    limit: usize,
) -> Result<(), CmdError> {
    let mut seen = std::collections::HashSet::new();
    let mut stack: Vec<(Box<[u8]>, u64)> =
        links.iter().filter(|l| l.outcome == Outcome::Pending).map(|l| (l.queue.clone(), l.seq)).collect();
    while let Some((q, s)) = stack.pop() {
        if *q == *key.bytes() && s == seq {
            return Err(err(format!(
                "AFTER would make a cycle: a job it names waits, through its own dependencies, on {} {}",
                crate::text::shown(key.bytes()),
                crate::text::shown(id)
            )));
        }
        if !seen.insert((q.clone(), s)) {
            continue;
        }
        if seen.len() > limit {
            return Err(err(format!("AFTER cannot check for cycles: the flow has more than {limit} waiting jobs")));
        }
        let name = OwnedStr::new(&q);
        let mut k = Key::open(ctx, name.as_rstr(), false);
        if let Ok(Some(v)) = existing(&mut k) {
            stack.extend(v.queue.pending_links(s));
        }
    }
    Ok(())
}
