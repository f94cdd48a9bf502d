//! ONCE.AFTER queue id dep-queue n id [id ...] [dep-queue n id ...]  |  ONCE.DEPS queue id [FROM i] [COUNT n]
//!
//! AFTER gives a waiting job more dependencies (a batch that grows); DEPS shows what a job waits or waited on,
//! each dependency with its state now and its result or error, which is how a job reads its inputs.

use super::args::{arity, err, int_range, CmdError, CmdResult, Options};
use super::spec::DEPS_ARGS;
use super::{existing, settle};
use crate::core::deps::Link;
use crate::core::limits;
use crate::core::queue::Finish;
use crate::core::{Job, State};
use crate::flows::{self, Clause};
use crate::rm::{self, Ctx, Key, OwnedStr, RStr};

/// Most waiting jobs the cycle check walks before it refuses.
const CYCLE_WALK: usize = 100_000;

/// `dep-queue n id ...` clauses from `args[start..]`, with where each queue stands.
fn clauses<'a>(args: &'a [RStr<'a>], start: usize) -> Result<(Vec<Clause<'a>>, Vec<usize>), CmdError> {
    let (mut out, mut positions, mut i) = (Vec::new(), Vec::new(), start);
    while i < args.len() {
        let n = match args.get(i + 1) {
            Some(n) => int_range(n.bytes(), limits::AFTER_IDS)? as usize,
            None => return Err(err("AFTER's dependencies are dep-queue n id [id ...]: the count is missing")),
        };
        let ids = args.get(i + 2..i + 2 + n).ok_or_else(|| {
            err(format!("AFTER's queue '{}' names {n} ids but fewer follow", crate::text::shown(args[i].bytes())))
        })?;
        positions.push(i);
        out.push(Clause { queue: args[i], ids: ids.to_vec() });
        i += 2 + n;
    }
    Ok((out, positions))
}

pub fn after(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    let parsed = if args.len() < 5 { Err(arity("ONCE.AFTER")) } else { clauses(args, 3) };
    if rm::is_keys_position_request(ctx) {
        let more = parsed.as_ref().map(|(_, p)| p.clone()).unwrap_or_default();
        rm::key_positions(ctx, &std::iter::once(1).chain(more).collect::<Vec<_>>());
        return Ok(());
    }
    let (clauses, _) = parsed?;
    let key_name = args[1];
    let links = flows::resolve(ctx, key_name, &clauses)?;
    // Read first, with nothing open for writing: the walk may pass through this very queue.
    let seq = {
        let mut key = Key::open(ctx, key_name, false);
        let v = existing(&mut key)?.ok_or_else(|| err("no such job"))?;
        let seq = v.queue.find(args[2].bytes()).ok_or_else(|| err("no such job"))?;
        match v.queue.job(seq).map(|j| j.state) {
            Some(State::Waiting) => seq,
            Some(s) => return Err(err(format!("job is not waiting (it is {})", s.name()))),
            None => return Err(err("no such job")),
        }
    };
    flows::check_no_cycle(ctx, key_name, (seq, args[2].bytes()), &links, CYCLE_WALK)?;
    let mut key = Key::open(ctx, key_name, true);
    let v = existing(&mut key)?.ok_or_else(|| err("no such job"))?;
    let before = v.snapshot();
    let now = rm::now_ms();
    let had = v.queue.job(seq).and_then(|j| j.waits().map(|w| w.links.len())).unwrap_or(0);
    if (had + links.len()) as u64 > crate::core::deps::MAX_LINKS {
        return Err(err(format!(
            "a job waits on at most {} jobs: it waits on {had}, AFTER names {} more",
            crate::core::deps::MAX_LINKS,
            links.len()
        )));
    }
    let Some((added, failure)) = v.queue.add_links(seq, links) else { return Err(err("job is not waiting")) };
    flows::link(ctx, key_name, v, seq, had);
    if let Some(text) = failure {
        let watch = crate::waiters::before(ctx, key_name, &v.queue, seq);
        v.queue.fail_waiting(seq, &text, now);
        crate::waiters::after(ctx, key_name, &v.queue, seq, watch, |j| Finish::ended(j, State::Dead, None, now));
    }
    let owned: Vec<OwnedStr> = args[1..].iter().map(|&a| OwnedStr::retain(a)).collect();
    crate::effects::at(ctx, now, b"ONCE.AFTER\0", &owned);
    settle(ctx, key_name, v, before);
    rm::reply_u64(ctx, added as u64);
    Ok(())
}

pub fn deps(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.DEPS"));
    }
    let (mut from, mut count) = (0usize, usize::MAX);
    let mut opts = Options::new(args, 3, DEPS_ARGS);
    while let Some(token) = opts.next_option()? {
        match token {
            "FROM" => from = opts.int(limits::DEPS_FROM)? as usize,
            _ => count = opts.int(limits::DEPS_COUNT)? as usize,
        }
    }
    let key_name = args[1];
    let links: Vec<Link> = {
        let mut key = Key::open(ctx, key_name, false);
        let Some(v) = existing(&mut key)? else {
            rm::reply_null(ctx);
            return Ok(());
        };
        let Some(job) = v.queue.find(args[2].bytes()).and_then(|s| v.queue.job(s)) else {
            rm::reply_null(ctx);
            return Ok(());
        };
        job.waits().map(|w| w.links.iter().skip(from).take(count).cloned().collect()).unwrap_or_default()
    };
    rm::reply_array(ctx, links.len());
    // Links come grouped by queue (AFTER names a queue once per clause): each queue is opened once per run.
    for run in links.chunk_by(|a, b| a.queue == b.queue) {
        let name = OwnedStr::new(&run[0].queue);
        let mut key = Key::open(ctx, name.as_rstr(), false);
        let v = existing(&mut key).ok().flatten();
        for l in run {
            let job = v.as_ref().and_then(|v| v.queue.job(l.seq));
            reply_dep(ctx, l, job.as_deref());
        }
    }
    Ok(())
}

/// One dependency: its queue and id, its state now (`gone` once freed), how it ended for the job waiting on
/// it, and its result or error while it is kept.
fn reply_dep(ctx: Ctx<'_>, l: &Link, job: Option<&Job>) {
    rm::reply_map(ctx, 6);
    rm::reply_bulk(ctx, b"queue");
    rm::reply_bulk(ctx, &l.queue);
    rm::reply_bulk(ctx, b"id");
    rm::reply_bulk(ctx, &l.id);
    rm::reply_bulk(ctx, b"state");
    rm::reply_bulk(ctx, job.map_or("gone", |j| j.state.name()).as_bytes());
    rm::reply_bulk(ctx, b"outcome");
    rm::reply_bulk(ctx, l.outcome.name().as_bytes());
    let f = job.map(Finish::of);
    rm::reply_bulk(ctx, b"result");
    match f.as_ref().and_then(|f| f.result.as_deref()) {
        Some(r) => rm::reply_bulk(ctx, r),
        None => rm::reply_null(ctx),
    }
    rm::reply_bulk(ctx, b"error");
    match f.as_ref().and_then(|f| f.error.as_deref()) {
        Some(e) => rm::reply_bulk(ctx, e),
        None => rm::reply_null(ctx),
    }
}
