//! ONCE.STATS queue

use super::args::{arity, CmdResult};
use super::existing;
use super::operate::{reply_setting_pairs, SETTINGS_PAIRS};
use crate::core::histogram::Histogram;
use crate::core::queue::totals::TOTAL_FIELDS;
use crate::core::settings::Settings;
use crate::core::{Stats, Totals};
use crate::rm::{self, Ctx, Key, RStr};

pub fn stats(ctx: Ctx<'_>, args: &[RStr<'_>]) -> CmdResult {
    if args.len() != 2 {
        return Err(arity("ONCE.STATS"));
    }
    let mut key = Key::open(ctx, args[1], false);
    let empty = Histogram::default();
    let v = existing(&mut key)?;
    let (s, t, settings) = v.as_ref().map_or((Stats::default(), Totals::default(), Settings::default()), |v| {
        (v.queue.stats(), v.queue.totals, v.queue.settings)
    });
    let (wait, run) = v.as_ref().map_or((&empty, &empty), |v| (&v.queue.wait, &v.queue.run));
    // The sums make a Prometheus histogram's `_sum` exact (ONCE.HISTOGRAM gives the buckets).
    let latency: [(&[u8], Option<u64>); 6] = [
        (b"wait_p50_ms", wait.quantile(0.5)),
        (b"wait_p99_ms", wait.quantile(0.99)),
        (b"run_p50_ms", run.quantile(0.5)),
        (b"run_p99_ms", run.quantile(0.99)),
        (b"wait_sum_ms", Some(wait.sum_ms)),
        (b"run_sum_ms", Some(run.sum_ms)),
    ];
    let groups = v.as_ref().map_or(0, |v| v.queue.flow.named() as u64);
    let counts: [(&[u8], u64); 9] = [
        (b"ready", s.ready),
        (b"delayed", s.delayed),
        (b"reserved", s.reserved),
        (b"dead", s.dead),
        (b"schedules", s.schedules),
        (b"completed", s.completed),
        (b"cancelled", s.cancelled),
        (b"waiting", s.waiting),
        (b"groups", groups),
    ];
    rm::reply_map(ctx, counts.len() + TOTAL_FIELDS.len() + SETTINGS_PAIRS + latency.len());
    for (name, value) in counts {
        rm::reply_bulk(ctx, name);
        rm::reply_u64(ctx, value);
    }
    for f in &TOTAL_FIELDS {
        rm::reply_bulk(ctx, f.name().as_bytes());
        rm::reply_int(ctx, (f.get)(&t));
    }
    reply_setting_pairs(ctx, &settings);
    // nil until the queue has a sample.
    for (name, value) in latency {
        rm::reply_bulk(ctx, name);
        match value {
            Some(ms) => rm::reply_u64(ctx, ms),
            None => rm::reply_null(ctx),
        }
    }
    Ok(())
}
