//! ONCE.EXTEND queue id ms [ATTEMPT n]

use super::args::{arity, int_range, CmdResult, Options};
use super::spec::EXTEND_ARGS;
use super::{existing, settle};
use crate::core::limits;
use crate::effects;
use crate::rm::{self, Ctx, Key, RStr};

pub fn extend(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() < 4 {
        return Err(arity("ONCE.EXTEND"));
    }
    let ms = int_range(args[3].bytes(), limits::EXTEND_MS)? as u64;
    let mut attempt = None;
    let mut opts = Options::new(args, 4, EXTEND_ARGS);
    while opts.next_option()?.is_some() {
        attempt = Some(opts.int(limits::ATTEMPT)? as u64);
    }
    let mut key = Key::open(ctx, args[1], true);
    let Some(v) = existing(&mut key)? else {
        rm::reply_null(ctx);
        return Ok(());
    };
    let Some(seq) = v.queue.find(args[2].bytes()).filter(|&s| v.queue.holds_reservation(s, attempt)) else {
        rm::reply_null(ctx);
        return Ok(());
    };
    let before = v.snapshot();
    let deadline = rm::now_ms().saturating_add(ms);
    v.queue.set_lease(seq, deadline);
    effects::lease(ctx, args[1], seq, deadline);
    settle(ctx, args[1], v, before);
    rm::reply_u64(ctx, deadline);
    Ok(())
}
