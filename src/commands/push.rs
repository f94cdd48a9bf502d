//! ONCE.PUSH queue payload [ID id] [DELAY ms | AT unix-ms] [RETRIES n] [BACKOFF ms] [LEASE ms] [PRIORITY n]
//!   [GROUP g]

use super::args::{arity, err, CmdResult, Options};
use super::spec::PUSH_ARGS;
use super::{existing_or_new, settle};
use crate::config;
use crate::core::limits::{self, MAX_GROUP_BYTES, MAX_ID_BYTES};
use crate::core::queue::{NewJob, Pushed};
use crate::effects;
use crate::rm::{self, Ctx, Key, RStr};

pub fn push(ctx: Ctx, args: &[RStr]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.PUSH"));
    }
    let (key_name, payload) = (args[1], args[2]);
    let mut id = None;
    let (mut delay, mut at) = (None, None);
    let mut retries = None;
    let mut backoff = None;
    let mut lease = 0;
    let mut priority = 0;
    let mut group = None;
    let mut opts = Options::new(args, 3, PUSH_ARGS);
    while let Some(token) = opts.next()? {
        match token {
            "ID" => {
                let v = opts.value("ID")?;
                if v.is_empty() || v.len() > MAX_ID_BYTES {
                    return Err(err(format!("ID must be 1 to {MAX_ID_BYTES} bytes")));
                }
                id = Some(v);
            }
            "DELAY" => delay = Some(opts.int(limits::DELAY)? as u64),
            "AT" => at = Some(opts.int(limits::AT)? as u64),
            "RETRIES" => retries = Some(opts.int(limits::RETRIES)? as u32),
            "BACKOFF" => backoff = Some(opts.int(limits::BACKOFF)? as u64),
            "LEASE" => lease = opts.int(limits::LEASE)? as u64,
            "GROUP" => {
                let v = opts.value("GROUP")?;
                if v.is_empty() || v.len() > MAX_GROUP_BYTES {
                    return Err(err(format!("GROUP must be 1 to {MAX_GROUP_BYTES} bytes")));
                }
                group = Some(v);
            }
            _ => priority = opts.int(limits::PRIORITY)? as i32,
        }
    }
    if delay.is_some() && at.is_some() {
        return Err(err("DELAY and AT cannot be used together"));
    }
    let payload_bytes = rm::bytes(&payload);
    let limit = config::max_payload_bytes();
    if payload_bytes.len() as u64 > limit {
        return Err(err(format!(
            "payload is {} bytes, over the limit of {limit} (once.max-payload-bytes)",
            payload_bytes.len()
        )));
    }
    let now = rm::now_ms();
    let due = match (delay, at) {
        (Some(d), _) => now.saturating_add(d),
        (_, Some(t)) => t,
        _ => 0,
    };
    let mut key = Key::open(ctx, key_name, true);
    let v = existing_or_new(&mut key)?;
    let before = v.snapshot();
    let new = NewJob {
        custom_id: id.map(Into::into),
        payload: payload_bytes.into(),
        due_ms: due,
        retries: retries.or(v.queue.settings.retries).unwrap_or_else(config::default_retries),
        backoff_ms: backoff.or(v.queue.settings.backoff_ms).unwrap_or_else(config::default_backoff_ms),
        lease_ms: lease,
        priority,
        group: group.map(Into::into),
    };
    let seq = match v.queue.push(new, now) {
        Pushed::Exhausted => return Err(err("the queue has used up its id sequence")),
        Pushed::Existing(seq) => seq,
        Pushed::Added(seq) => {
            if let Some(job) = v.queue.job(seq) {
                effects::job(ctx, key_name, "PUSH", job, v.queue.flow.name(job.group), payload);
            }
            settle(ctx, key_name, v, before);
            seq
        }
    };
    match v.queue.job(seq) {
        Some(job) => rm::reply_bulk(ctx, &job.id_bytes()),
        None => rm::reply_null(ctx),
    }
    Ok(())
}
