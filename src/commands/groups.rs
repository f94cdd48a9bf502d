//! ONCE.GROUP queue name [CONCURRENCY n] [RATE n PER ms] [RESET]: a group's own limits (over the queue's
//! GROUP-CONCURRENCY / GROUP-RATE), and its counts. Without options it only reads (a group need not exist).
//! RESET drops the group's own limits first. Replicates as `ONCE._GROUP` (the group as it then is).
//!
//! ONCE.GROUPS queue [CURSOR c] [COUNT n]: the named groups by name, a page at a time.

use super::args::{arity, err, CmdResult, Options};
use super::operate::rate_value;
use super::spec::{GROUPS_ARGS, GROUP_ARGS};
use super::{existing, existing_or_new, settle};
use crate::core::flow::{Group, Limits};
use crate::core::limits::{self, GROUPS_COUNT, MAX_GROUP_BYTES};
use crate::persist::encode::group_args;
use crate::rm::{self, Ctx, Key, RStr};
use crate::text::shown;

fn group_name(b: &[u8]) -> Result<&[u8], super::args::CmdError> {
    if b.is_empty() || b.len() > MAX_GROUP_BYTES {
        return Err(err(format!("a group name is 1 to {MAX_GROUP_BYTES} bytes")));
    }
    Ok(b)
}

pub fn group(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 3 {
        return Err(arity("ONCE.GROUP"));
    }
    let name = group_name(args[2].bytes())?;
    let (mut concurrency, mut rate, mut reset) = (None, None, false);
    let mut opts = Options::new(args, 3, GROUP_ARGS);
    while let Some(token) = opts.next_option()? {
        match token {
            "CONCURRENCY" => concurrency = Some(opts.int(limits::CONCURRENCY)? as u32),
            "RATE" => rate = Some(rate_value(&mut opts, "RATE")?),
            _ => reset = true,
        }
    }
    let mut key = Key::open(ctx, args[1], true);
    if concurrency.is_none() && rate.is_none() && !reset {
        let v = existing(&mut key)?;
        let g = v.as_ref().and_then(|v| v.queue.flow.gid(name).and_then(|g| v.queue.flow.group(g)));
        reply_group(ctx, name, g);
        return Ok(());
    }
    let v = existing_or_new(&mut key)?;
    let before = v.snapshot();
    let limits = v.queue.limits();
    let gid = v.queue.flow.gid_or_new(name);
    let mut own =
        if reset { Limits::default() } else { v.queue.flow.group(gid).map_or_else(Limits::default, |g| g.own) };
    own.concurrency = concurrency.or(own.concurrency);
    own.rate = rate.or(own.rate);
    v.queue.flow.set_own(gid, own, &limits);
    let now = v.queue.flow.gid(name).and_then(|g| v.queue.flow.group(g));
    let args_out = match now {
        Some(g) => group_args(args[1], g),
        None => group_args(args[1], &Group::named(name)),
    };
    rm::replicate(ctx, b"ONCE._GROUP\0", &args_out);
    reply_group(ctx, name, now);
    settle(ctx, args[1], v, before);
    Ok(())
}

/// A group's map: its name, counts and own limits (nil: the queue's GROUP-* apply).
fn reply_group(ctx: Ctx<'_>, name: &[u8], g: Option<&Group>) {
    let own = g.map_or_else(Limits::default, |g| g.own);
    let opt = |v: Option<u64>| match v {
        Some(x) => rm::reply_u64(ctx, x),
        None => rm::reply_null(ctx),
    };
    rm::reply_map(ctx, 6);
    rm::reply_bulk(ctx, b"name");
    rm::reply_bulk(ctx, name);
    rm::reply_bulk(ctx, b"ready");
    rm::reply_u64(ctx, g.map_or(0, |g| g.ready));
    rm::reply_bulk(ctx, b"reserved");
    rm::reply_u64(ctx, g.map_or(0, |g| g.reserved));
    rm::reply_bulk(ctx, b"concurrency");
    opt(own.concurrency.map(u64::from));
    rm::reply_bulk(ctx, b"rate");
    opt(own.rate.map(|r| u64::from(r.n)));
    rm::reply_bulk(ctx, b"rate_per");
    opt(own.rate.map(|r| r.per_ms));
}

fn hex(b: &[u8]) -> Vec<u8> {
    b.iter().flat_map(|x| format!("{x:02x}").into_bytes()).collect()
}

fn unhex(b: &[u8]) -> Option<Vec<u8>> {
    if !b.len().is_multiple_of(2) || b.is_empty() {
        return None;
    }
    b.chunks(2).map(|p| std::str::from_utf8(p).ok().and_then(|s| u8::from_str_radix(s, 16).ok())).collect()
}

pub fn groups(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 2 {
        return Err(arity("ONCE.GROUPS"));
    }
    let mut from = Vec::new();
    let mut count = limits::LIST_COUNT_DEFAULT;
    let mut opts = Options::new(args, 2, GROUPS_ARGS);
    while let Some(token) = opts.next_option()? {
        match token {
            "CURSOR" => {
                let c = opts.value("CURSOR")?;
                from = if c == b"0" {
                    Vec::new()
                } else {
                    unhex(c).ok_or_else(|| err(format!("invalid cursor '{}'", shown(c))))?
                };
            }
            _ => count = opts.int(GROUPS_COUNT)? as usize,
        }
    }
    let mut key = Key::open(ctx, args[1], false);
    let v = existing(&mut key)?;
    let page: Vec<(&[u8], &Group)> = match &v {
        Some(v) => v.queue.flow.named_from(&from).take(count + 1).map(|(_, g)| (&g.name[..], g)).collect(),
        None => Vec::new(),
    };
    rm::reply_array(ctx, 2);
    match page.get(count) {
        Some((next, _)) => rm::reply_bulk(ctx, &hex(next)),
        None => rm::reply_bulk(ctx, b"0"),
    }
    let shown_groups = &page[..page.len().min(count)];
    rm::reply_array(ctx, shown_groups.len());
    for (name, g) in shown_groups {
        reply_group(ctx, name, Some(g));
    }
    Ok(())
}
