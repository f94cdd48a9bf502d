//! ONCE.HISTOGRAM queue wait|run: the latency buckets, cumulative, with the fixed bounds every queue shares
//! (core/histogram.rs); the last bound is `+inf`.

use super::args::{arity, err, CmdResult};
use super::existing;
use crate::core::histogram::{Histogram, Which};
use crate::rm::{self, Ctx, Key, RStr};
use crate::text::shown;

pub fn histogram(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 3 {
        return Err(arity("ONCE.HISTOGRAM"));
    }
    let which = Which::from_name(args[2].bytes())
        .ok_or_else(|| err(format!("histogram must be wait|run, got '{}'", shown(args[2].bytes()))))?;
    let mut key = Key::open(ctx, args[1], false);
    let empty = Histogram::default();
    let v = existing(&mut key)?;
    let h = match (&v, which) {
        (Some(v), Which::Wait) => &v.queue.wait,
        (Some(v), Which::Run) => &v.queue.run,
        (None, _) => &empty,
    };
    let buckets = h.cumulative();
    rm::reply_array(ctx, buckets.len());
    for (bound, count) in buckets {
        rm::reply_array(ctx, 2);
        match bound {
            Some(b) => rm::reply_u64(ctx, b),
            None => rm::reply_bulk(ctx, b"+inf"),
        }
        rm::reply_u64(ctx, count);
    }
    Ok(())
}
