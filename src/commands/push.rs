//! ONCE.PUSH queue payload [ID id] [DELAY ms | AT unix-ms] [RETRIES n] [BACKOFF ms] [LEASE ms] [PRIORITY n]
//!   [GROUP g]

use super::args::{arity, err, CmdError, CmdResult, Options};
use super::spec::PUSH_ARGS;
use super::{existing_or_new, settle};
use crate::config;
use crate::core::limits::{self, MAX_GROUP_BYTES, MAX_ID_BYTES};
use crate::core::queue::{NewJob, Pushed};
use crate::core::settings::Settings;
use crate::effects;
use crate::rm::{self, Ctx, Key, RStr};

/// PUSH's options but ID, which BULK shares.
#[derive(Default)]
pub struct JobOptions<'a> {
    delay: Option<u64>,
    at: Option<u64>,
    retries: Option<u32>,
    backoff: Option<u64>,
    pub lease: u64,
    pub priority: i32,
    pub group: Option<&'a [u8]>,
}

impl<'a> JobOptions<'a> {
    /// Reads the value of `token` (any option of PUSH but ID).
    pub fn take(&mut self, token: &str, opts: &mut Options<'a>) -> Result<(), CmdError> {
        match token {
            "DELAY" => self.delay = Some(opts.int(limits::DELAY)? as u64),
            "AT" => self.at = Some(opts.int(limits::AT)? as u64),
            "RETRIES" => self.retries = Some(opts.int(limits::RETRIES)? as u32),
            "BACKOFF" => self.backoff = Some(opts.int(limits::BACKOFF)? as u64),
            "LEASE" => self.lease = opts.int(limits::LEASE)? as u64,
            "GROUP" => {
                let v = opts.value("GROUP")?;
                if v.is_empty() || v.len() > MAX_GROUP_BYTES {
                    return Err(err(format!("GROUP must be 1 to {MAX_GROUP_BYTES} bytes")));
                }
                self.group = Some(v);
            }
            _ => self.priority = opts.int(limits::PRIORITY)? as i32,
        }
        Ok(())
    }

    /// Checks the options together (once all are read).
    pub fn check(&self) -> Result<(), CmdError> {
        if self.delay.is_some() && self.at.is_some() {
            return Err(err("DELAY and AT cannot be used together"));
        }
        Ok(())
    }

    /// When the job falls due, if pushed at `now` (0: ready now).
    pub fn due(&self, now: u64) -> u64 {
        match (self.delay, self.at) {
            (Some(d), _) => now.saturating_add(d),
            (_, Some(t)) => t,
            _ => 0,
        }
    }

    /// RETRIES: the job's own, else the queue's, else the module's.
    pub fn retries(&self, s: &Settings) -> u32 {
        self.retries.or(s.retries).unwrap_or_else(config::default_retries)
    }

    pub fn backoff(&self, s: &Settings) -> u64 {
        self.backoff.or(s.backoff_ms).unwrap_or_else(config::default_backoff_ms)
    }
}

/// A payload within once.max-payload-bytes.
pub fn check_payload(payload: &[u8]) -> Result<(), CmdError> {
    let limit = config::max_payload_bytes();
    if payload.len() as u64 > limit {
        return Err(err(format!(
            "payload is {} bytes, over the limit of {limit} (once.max-payload-bytes)",
            payload.len()
        )));
    }
    Ok(())
}

pub fn push(ctx: Ctx, args: &[RStr]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.PUSH"));
    }
    let (key_name, payload) = (args[1], args[2]);
    let mut id = None;
    let mut o = JobOptions::default();
    let mut opts = Options::new(args, 3, PUSH_ARGS);
    while let Some(token) = opts.next_option()? {
        match token {
            "ID" => {
                let v = opts.value("ID")?;
                if v.is_empty() || v.len() > MAX_ID_BYTES {
                    return Err(err(format!("ID must be 1 to {MAX_ID_BYTES} bytes")));
                }
                id = Some(v);
            }
            _ => o.take(token, &mut opts)?,
        }
    }
    o.check()?;
    let payload_bytes = rm::bytes(&payload);
    check_payload(payload_bytes)?;
    let now = rm::now_ms();
    let mut key = Key::open(ctx, key_name, true);
    let v = existing_or_new(&mut key)?;
    let before = v.snapshot();
    let new = NewJob {
        custom_id: id.map(Into::into),
        payload: payload_bytes.into(),
        due_ms: o.due(now),
        retries: o.retries(&v.queue.settings),
        backoff_ms: o.backoff(&v.queue.settings),
        lease_ms: o.lease,
        priority: o.priority,
        group: o.group.map(Into::into),
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
