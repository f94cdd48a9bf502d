//! ONCE.PUSH queue payload [ID id] [DELAY ms | AT unix-ms] [RETRIES n] [BACKOFF ms] [LEASE ms] [PRIORITY n]
//!   [GROUP g] [KEEP ms] [TTL ms [DROP]] [AFTER dep-queue n id [id ...]]... [ON-FAIL fail|ignore|continue]

use super::args::{arity, err, CmdError, CmdResult, Options};
use super::spec::PUSH_ARGS;
use super::{existing_or_new, settle};
use crate::config;
use crate::core::deps::{OnFail, Waits};
use crate::core::job::Ttl;
use crate::core::limits::{self, MAX_GROUP_BYTES, MAX_ID_BYTES};
use crate::core::queue::{NewJob, Pushed};
use crate::core::settings::Settings;
use crate::rm::{self, Ctx, Key, RStr};
use crate::{effects, flows};

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

/// What PUSH (and CALL, which pushes) reads: the id, the job's options, KEEP, TTL and AFTER.
#[derive(Default)]
pub struct PushRequest<'a> {
    pub id: Option<&'a [u8]>,
    pub job: JobOptions<'a>,
    keep: Option<u64>,
    ttl: Option<u64>,
    drop: bool,
    after: Vec<flows::Clause<'a>>,
    on_fail: Option<OnFail>,
    /// Where AFTER's queues stand among the arguments (the server's getkeys request).
    pub key_positions: Vec<usize>,
}

impl<'a> PushRequest<'a> {
    /// Reads `token`'s value if it is one of PUSH's options; false when it is not (the caller's own).
    pub fn take(&mut self, token: &str, opts: &mut Options<'a>) -> Result<bool, CmdError> {
        match token {
            "ID" => {
                let v = opts.value("ID")?;
                if v.is_empty() || v.len() > MAX_ID_BYTES {
                    return Err(err(format!("ID must be 1 to {MAX_ID_BYTES} bytes")));
                }
                self.id = Some(v);
            }
            "KEEP" => self.keep = Some(opts.int(limits::KEEP)? as u64),
            "TTL" => self.ttl = Some(opts.int(limits::TTL)? as u64),
            "DROP" => self.drop = true,
            "DELAY" | "AT" | "RETRIES" | "BACKOFF" | "LEASE" | "PRIORITY" | "GROUP" => self.job.take(token, opts)?,
            "AFTER" => {
                self.key_positions.push(opts.position());
                let queue = opts.raw_value("AFTER")?;
                let n = opts.int(limits::AFTER_IDS)? as usize;
                let ids = (0..n).map(|_| opts.raw_value("AFTER")).collect::<Result<Vec<_>, _>>()?;
                self.after.push(flows::Clause { queue, ids });
            }
            "ON-FAIL" => {
                let v = opts.value("ON-FAIL")?;
                self.on_fail = Some(OnFail::from_name(v).ok_or_else(|| {
                    err(format!("ON-FAIL is fail, ignore or continue, not '{}'", crate::text::shown(v)))
                })?);
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Reads every option; `own` takes the caller's own tokens first (CALL's) and says whether it did.
    pub fn read_all(
        &mut self,
        opts: &mut Options<'a>,
        mut own: impl FnMut(&'static str, &mut Options<'a>) -> Result<bool, CmdError>,
    ) -> Result<(), CmdError> {
        while let Some(token) = opts.next_option()? {
            if !own(token, opts)? {
                self.take(token, opts)?;
            }
        }
        Ok(())
    }

    /// Answers the server's question of which arguments are keys (the queue and AFTER's queues, as far as the
    /// arguments could be read), if that is what it asks. True when it was.
    pub fn answer_keys_request(&self, ctx: Ctx<'_>) -> bool {
        if !rm::is_keys_position_request(ctx) {
            return false;
        }
        let positions: Vec<usize> = std::iter::once(1).chain(self.key_positions.iter().copied()).collect();
        rm::key_positions(ctx, &positions);
        true
    }

    pub fn check(&self) -> Result<(), CmdError> {
        if self.on_fail.is_some() && self.after.is_empty() {
            return Err(err("ON-FAIL goes with AFTER (what to do when a dependency fails)"));
        }
        if self.drop && self.ttl.is_none() {
            return Err(err("DROP goes with TTL (what happens when the TTL runs out)"));
        }
        self.job.check()
    }
}

/// Pushes one job as PUSH does (replicated and settled when added); `cancel_at` is a CALL's cancel time.
/// Returns its public id: a new job's, or that of the live or kept job holding the id already.
pub fn push_one(
    ctx: Ctx<'_>,
    key_name: RStr<'_>,
    payload: RStr<'_>,
    r: &PushRequest,
    cancel_at: Option<u64>,
    now: u64,
) -> Result<Vec<u8>, CmdError> {
    let payload_bytes = payload.bytes();
    check_payload(payload_bytes)?;
    // Read before the queue is opened for writing: a dependency may be in this very queue.
    let links = if r.after.is_empty() { None } else { Some(flows::resolve(ctx, key_name, &r.after)?) };
    let mut key = Key::open(ctx, key_name, true);
    let v = existing_or_new(&mut key)?;
    let before = v.snapshot();
    let o = &r.job;
    let new = NewJob {
        custom_id: r.id.map(Into::into),
        payload: payload_bytes.into(),
        due_ms: o.due(now),
        retries: o.retries(&v.queue.settings),
        backoff_ms: o.backoff(&v.queue.settings),
        lease_ms: o.lease,
        priority: o.priority,
        group: o.group.map(Into::into),
        keep_ms: r.keep,
        ttl: r.ttl.map(|ms| Ttl { at: now.saturating_add(ms), drop: r.drop }),
        cancel_at,
        waits: links.map(|links| Box::new(Waits { on_fail: r.on_fail.unwrap_or_default(), links, ..Waits::default() })),
    };
    let seq = match v.queue.push(new, now) {
        Pushed::Exhausted => return Err(err("the queue has used up its id sequence")),
        Pushed::Existing(seq) => seq,
        Pushed::Added(seq) => {
            // One read of the new job (a packed one is decoded on each read) for its record and its id.
            let id = v.queue.job(seq).map(|job| {
                effects::job(ctx, key_name, "PUSH", &job, v.queue.flow.name(job.group), payload);
                job.id_bytes()
            });
            flows::link(ctx, key_name, v, seq, 0);
            settle(ctx, key_name, v, before);
            return id.ok_or_else(|| err("the job was not kept"));
        }
    };
    v.queue.job(seq).map(|j| j.id_bytes()).ok_or_else(|| err("the job was not kept"))
}

pub fn push(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.PUSH"));
    }
    let (key_name, payload) = (args[1], args[2]);
    let mut r = PushRequest::default();
    let mut opts = Options::new(args, 3, PUSH_ARGS);
    let parsed = r.read_all(&mut opts, |_, _| Ok(false));
    if r.answer_keys_request(ctx) {
        return Ok(());
    }
    parsed?;
    r.check()?;
    let id = push_one(ctx, key_name, payload, &r, None, rm::now_ms())?;
    rm::reply_bulk(ctx, &id);
    Ok(())
}
