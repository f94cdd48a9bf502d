//! ONCE.BULK queue [DELAY ms | AT unix-ms] [RETRIES n] [BACKOFF ms] [LEASE ms] [PRIORITY n] [GROUP g]
//!   [IDS id [id ...]] PAYLOADS payload [payload ...]
//! and `ONCE._BULK`, the one record it replicates, which a replica and an AOF apply.

use super::args::{arity, err, CmdError, CmdResult, Options};
use super::push::{check_payload, JobOptions};
use super::spec::BULK_ARGS;
use super::{existing, existing_or_new, settle};
use crate::core::limits::{self, MAX_GROUP_BYTES, MAX_ID_BYTES};
use crate::core::queue::bulk::Bulk;
use crate::core::queue::Pushed;
use crate::core::Queue;
use crate::effects;
use crate::persist::encode::{bulk_header, decode_bulk_header};
use crate::rm::{self, Ctx, Key, RStr};
use crate::value::{QueueValue, Snapshot};

pub fn bulk(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 4 {
        return Err(arity("ONCE.BULK"));
    }
    let key_name = args[1];
    let mut o = JobOptions::default();
    let mut opts = Options::new(args, 2, BULK_ARGS);
    while !opts.remaining().first().is_some_and(|a| is_list_word(a.bytes())) {
        // The options of issue 21 are PUSH's alone: the BULK record's shared header has no room for them.
        if let Some(w) = opts.remaining().first().map(|a| a.bytes()) {
            if [&b"KEEP"[..], b"TTL"].iter().any(|k| w.eq_ignore_ascii_case(k)) {
                return Err(err("KEEP and TTL are not BULK options"));
            }
        }
        match opts.next_option()? {
            Some(token) => o.take(token, &mut opts)?,
            None => break,
        }
    }
    o.check()?;
    let (ids, payloads) = split_lists(opts.rest(), |a| a.bytes()).map_err(err)?;
    let id_bytes: Option<Vec<&[u8]>> = ids.map(|ids| ids.iter().map(|a| a.bytes()).collect());
    let payload_bytes: Vec<&[u8]> = payloads.iter().map(|a| a.bytes()).collect();
    check_lists(id_bytes.as_deref(), &payload_bytes)?;
    for p in &payload_bytes {
        check_payload(p)?;
    }
    let mut key = Key::open(ctx, key_name, true);
    let (v, plan) = push_and_record(ctx, key_name, &mut key, &o, ids, payloads)?;
    rm::reply_array(ctx, plan.len());
    for p in plan {
        let job = match p {
            Pushed::Added(seq) | Pushed::Existing(seq) => v.queue.job(seq),
            Pushed::Exhausted => None,
        };
        match job {
            Some(job) => rm::reply_bulk(ctx, &job.id_bytes()),
            None => rm::reply_null(ctx),
        }
    }
    Ok(())
}

/// Pushes one job per payload with options `o` (and `ids`, each idempotent), then replicates the jobs it added
/// as one `ONCE._BULK` record and settles the queue: what BULK, a list producer's RPUSH and ADOPT share.
pub fn push_and_record<'k>(
    ctx: Ctx<'_>,
    key_name: RStr<'_>,
    key: &'k mut Key,
    o: &JobOptions,
    ids: Option<&[RStr<'_>]>,
    payloads: &[RStr<'_>],
) -> Result<(&'k mut QueueValue, Vec<Pushed>), CmdError> {
    let id_bytes: Option<Vec<&[u8]>> = ids.map(|ids| ids.iter().map(|a| a.bytes()).collect());
    let payload_bytes: Vec<&[u8]> = payloads.iter().map(|a| a.bytes()).collect();
    let now = rm::now_ms();
    let bulk_of = |q: &Queue| Bulk {
        first_seq: q.next_seq(),
        created_ms: now,
        due_ms: o.due(now),
        retries: o.retries(&q.settings),
        backoff_ms: o.backoff(&q.settings),
        lease_ms: o.lease,
        priority: o.priority,
    };
    let (v, before, plan, b) = push_into(key, bulk_of, o.group, id_bytes.as_deref(), &payload_bytes, false, "")?;
    let added: Vec<(usize, u64)> = plan
        .iter()
        .enumerate()
        .filter_map(|(i, p)| if let Pushed::Added(s) = *p { Some((i, s)) } else { None })
        .collect();
    if let Some(&(_, first_seq)) = added.first() {
        let new_ids: Vec<RStr<'_>> = ids.map_or_else(Vec::new, |ids| added.iter().map(|&(i, _)| ids[i]).collect());
        let new_payloads: Vec<RStr<'_>> = added.iter().map(|&(i, _)| payloads[i]).collect();
        let header = bulk_header(&Bulk { first_seq, ..b });
        effects::bulk(ctx, key_name, &header, o.group, &new_ids, &new_payloads);
        settle(ctx, key_name, v, before);
    }
    Ok((v, plan))
}

/// `ONCE._BULK key "<first-seq> <created> <due> <retries> <backoff> <lease> <priority>" [GROUP g]
/// [IDS id ...] PAYLOADS payload ...`: the jobs one BULK added, every one new, from the first seq on. Applies
/// whole or not at all, and replicates as itself.
pub fn record(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 5 {
        return Err(arity("ONCE._BULK"));
    }
    let a: Vec<&[u8]> = args.iter().map(|a| a.bytes()).collect();
    let bad = |e: String| err(format!("bad bulk: {e}"));
    let b = decode_bulk_header(a[2]).map_err(bad)?;
    let (group, rest) = match a[3] {
        w if w.eq_ignore_ascii_case(b"GROUP") => {
            let g = a[4];
            if g.is_empty() || g.len() > MAX_GROUP_BYTES {
                return Err(bad(format!("GROUP must be 1 to {MAX_GROUP_BYTES} bytes")));
            }
            (Some(g), &a[5..])
        }
        _ => (None, &a[3..]),
    };
    let (ids, payloads) = split_lists(rest, |x| x).map_err(bad)?;
    check_lists(ids, payloads)?;
    let mut key = Key::open(ctx, args[1], true);
    let (v, before, _, _) = push_into(&mut key, |_| b, group, ids, payloads, true, "bad bulk: ")?;
    settle(ctx, args[1], v, before);
    rm::replicate_verbatim(ctx, args);
    rm::reply_ok(ctx);
    Ok(())
}

/// Pushes the jobs into the queue at `key`, made if missing only once the call is known to succeed; a refusal
/// is told after `why`.
fn push_into<'k>(
    key: &'k mut Key,
    bulk_of: impl Fn(&Queue) -> Bulk,
    group: Option<&[u8]>,
    ids: Option<&[&[u8]]>,
    payloads: &[&[u8]],
    all_new: bool,
    why: &str,
) -> Result<(&'k mut QueueValue, Snapshot, Vec<Pushed>, Bulk), CmdError> {
    if existing(key)?.is_none() {
        let empty = Queue::new();
        empty.plan_bulk(&bulk_of(&empty), ids, payloads.len(), all_new).map_err(|e| err(format!("{why}{e}")))?;
    }
    let v = existing_or_new(key)?;
    let b = bulk_of(&v.queue);
    let before = v.snapshot();
    let plan = v.queue.push_bulk(&b, group, ids, payloads, all_new).map_err(|e| err(format!("{why}{e}")))?;
    Ok((v, before, plan, b))
}

fn is_list_word(w: &[u8]) -> bool {
    w.eq_ignore_ascii_case(b"IDS") || w.eq_ignore_ascii_case(b"PAYLOADS")
}

/// Splits `PAYLOADS p ...` or `IDS id ... PAYLOADS p ...` into (ids, payloads). With IDS there are as many ids
/// as payloads, so PAYLOADS is the middle argument: an id or a payload that reads "PAYLOADS" is no keyword.
pub fn split_lists<T>(rest: &[T], word: impl Fn(&T) -> &[u8]) -> Result<(Option<&[T]>, &[T]), String> {
    let is_payloads = |t: &T| word(t).eq_ignore_ascii_case(b"PAYLOADS");
    let missing = "PAYLOADS payload [payload ...] must end the command (after the options and IDS)";
    match rest.split_first() {
        Some((first, payloads)) if is_payloads(first) => {
            if payloads.is_empty() {
                return Err("PAYLOADS needs at least one payload".into());
            }
            Ok((None, payloads))
        }
        Some((first, tail)) if word(first).eq_ignore_ascii_case(b"IDS") => {
            let k = tail.len() / 2;
            if tail.len() % 2 == 1 && k > 0 && is_payloads(&tail[k]) {
                return Ok((Some(&tail[..k]), &tail[k + 1..]));
            }
            match tail.iter().position(is_payloads) {
                Some(p) => Err(format!(
                    "IDS gives {p} ids and PAYLOADS {} payloads: give one id per payload",
                    tail.len() - p - 1
                )),
                None => Err(missing.into()),
            }
        }
        _ => Err(missing.into()),
    }
}

/// The payload count within its limit, and every id 1 to MAX_ID_BYTES bytes.
fn check_lists(ids: Option<&[&[u8]]>, payloads: &[&[u8]]) -> Result<(), CmdError> {
    let max = limits::BULK_PAYLOADS.max;
    if payloads.len() as i64 > max {
        return Err(err(format!("PAYLOADS gives {} payloads, over the limit of {max} per call", payloads.len())));
    }
    if let Some(i) = ids.into_iter().flatten().position(|id| id.is_empty() || id.len() > MAX_ID_BYTES) {
        return Err(err(format!("IDS: id {} must be 1 to {MAX_ID_BYTES} bytes", i + 1)));
    }
    Ok(())
}
