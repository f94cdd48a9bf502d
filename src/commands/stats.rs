//! ONCE.STATS queue

use super::args::{arity, CmdResult};
use super::existing;
use crate::core::{Stats, Totals};
use crate::rm::{self, Ctx, Key, RStr};

pub fn stats(ctx: Ctx, args: &[RStr]) -> CmdResult {
    if args.len() != 2 {
        return Err(arity("ONCE.STATS"));
    }
    let key = Key::open(ctx, args[1], false);
    let (s, t) = existing(&key)?.map_or((Stats::default(), Totals::default()), |v| (v.queue.stats(), v.queue.totals));
    let fields: [(&[u8], u64); 12] = [
        (b"ready", s.ready),
        (b"delayed", s.delayed),
        (b"reserved", s.reserved),
        (b"dead", s.dead),
        (b"schedules", s.schedules),
        (b"pushed_total", t.pushed),
        (b"reserved_total", t.reserved),
        (b"acked_total", t.acked),
        (b"nacked_total", t.nacked),
        (b"expired_total", t.expired),
        (b"retried_total", t.retried),
        (b"dead_total", t.dead),
    ];
    rm::reply_map(ctx, fields.len());
    for (name, value) in fields {
        rm::reply_bulk(ctx, name);
        rm::reply_u64(ctx, value);
    }
    Ok(())
}
