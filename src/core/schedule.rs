//! Cron schedules: when a schedule fires next, and what a timer visit at `now` should fire.
//!
//! A spec is a cron expression (5 fields, or 6 with seconds, or `@hourly`-style names) read by the `cron`
//! crate in an IANA zone, or `@every <duration>` such as `@every 500ms` or `@every 1m30s`.

use std::str::FromStr;

use chrono::{TimeZone, Utc};
use chrono_tz::Tz;

/// A tick that is this late is "missed" and follows the MISSED policy instead of firing as usual.
pub const MISSED_GRACE_MS: u64 = 1000;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Missed {
    Once,
    Skip,
}

impl Missed {
    pub fn name(self) -> &'static str {
        match self {
            Missed::Once => "once",
            Missed::Skip => "skip",
        }
    }

    pub fn from_name(s: &[u8]) -> Option<Missed> {
        if s.eq_ignore_ascii_case(b"once") {
            Some(Missed::Once)
        } else if s.eq_ignore_ascii_case(b"skip") {
            Some(Missed::Skip)
        } else {
            None
        }
    }
}

#[derive(Clone, Debug)]
pub enum Spec {
    Cron(Box<cron::Schedule>),
    Every(u64),
}

impl Spec {
    pub fn parse(text: &str) -> Result<Spec, String> {
        let trimmed = text.trim();
        if let Some(rest) = strip_prefix_ci(trimmed, "@every") {
            return parse_duration(rest.trim()).map(Spec::Every);
        }
        let fields = trimmed.split_whitespace().count();
        let full = if !trimmed.starts_with('@') && fields == 5 { format!("0 {trimmed}") } else { trimmed.to_string() };
        if !trimmed.starts_with('@') && fields != 5 && fields != 6 {
            return Err(format!("cron spec needs 5 or 6 fields, got {fields}"));
        }
        cron::Schedule::from_str(&full).map(|s| Spec::Cron(Box::new(s))).map_err(|e| e.to_string())
    }

    /// The first tick strictly after `after_ms`, in zone `tz`.
    pub fn next_after(&self, after_ms: u64, tz: Tz) -> Option<u64> {
        match self {
            Spec::Every(interval) => after_ms.checked_add(*interval),
            Spec::Cron(schedule) => {
                let after = Utc.timestamp_millis_opt(i64::try_from(after_ms).ok()?).single()?.with_timezone(&tz);
                let next = schedule.after(&after).next()?;
                u64::try_from(next.timestamp_millis()).ok()
            }
        }
    }
}

fn strip_prefix_ci<'a>(s: &'a str, prefix: &str) -> Option<&'a str> {
    let head = s.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix).then(|| &s[prefix.len()..])
}

/// Reads `500ms`, `30s`, `5m`, `2h`, `1d` and sums like `1m30s`.
pub fn parse_duration(text: &str) -> Result<u64, String> {
    if text.is_empty() {
        return Err("@every needs a duration such as 500ms, 30s, 5m".into());
    }
    let bytes = text.as_bytes();
    let mut i = 0;
    let mut total: u64 = 0;
    while i < bytes.len() {
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_digit() {
            i += 1;
        }
        if start == i {
            return Err(format!("bad duration '{text}': expected a number at position {start}"));
        }
        let n: u64 = text[start..i].parse().map_err(|_| format!("bad duration '{text}': number too large"))?;
        let ustart = i;
        while i < bytes.len() && bytes[i].is_ascii_alphabetic() {
            i += 1;
        }
        let unit = match &text[ustart..i] {
            "ms" => 1,
            "s" => 1000,
            "m" => 60_000,
            "h" => 3_600_000,
            "d" => 86_400_000,
            "" => return Err(format!("bad duration '{text}': missing unit (ms, s, m, h, d)")),
            other => return Err(format!("bad duration '{text}': unknown unit '{other}'")),
        };
        total = n.checked_mul(unit).and_then(|v| total.checked_add(v)).ok_or_else(|| format!("bad duration '{text}': too large"))?;
    }
    if total == 0 {
        return Err("@every duration must be at least 1ms".into());
    }
    Ok(total)
}

pub fn parse_zone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name).map_err(|e| format!("unknown time zone '{name}': {e}"))
}

/// The job options a schedule gives each job it pushes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct JobOptions {
    pub retries: u32,
    pub backoff_ms: u64,
    pub lease_ms: u64,
    pub priority: i32,
}

#[derive(Clone, Debug)]
pub struct Schedule {
    pub name: Box<[u8]>,
    pub spec_text: String,
    pub tz_name: String,
    spec: Spec,
    tz: Tz,
    pub payload: Box<[u8]>,
    pub options: JobOptions,
    pub missed: Missed,
    pub next_fire_ms: u64,
    pub last_fire_ms: Option<u64>,
}

/// What one timer visit does for a schedule: maybe push the job of tick `fire_ms`, then wait for `next_fire_ms`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FirePlan {
    pub fire_ms: Option<u64>,
    pub next_fire_ms: u64,
}

impl Schedule {
    /// Builds a schedule whose first tick is the first after `now_ms` (and after `last_fire_ms`, so an upsert
    /// never repeats a tick already fired).
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        name: Box<[u8]>,
        spec_text: &str,
        tz_name: &str,
        payload: Box<[u8]>,
        options: JobOptions,
        missed: Missed,
        last_fire_ms: Option<u64>,
        now_ms: u64,
    ) -> Result<Schedule, String> {
        let spec = Spec::parse(spec_text)?;
        let tz = parse_zone(tz_name)?;
        let from = now_ms.max(last_fire_ms.unwrap_or(0));
        let next_fire_ms = spec.next_after(from, tz).ok_or_else(|| format!("spec '{spec_text}' never fires again"))?;
        Ok(Schedule {
            name,
            spec_text: spec_text.to_string(),
            tz_name: tz.name().to_string(),
            spec,
            tz,
            payload,
            options,
            missed,
            next_fire_ms,
            last_fire_ms,
        })
    }

    /// Rebuilds a schedule exactly as saved (RDB, AOF, a replica stream); the spec and zone are checked again.
    #[allow(clippy::too_many_arguments)]
    pub fn restore(
        name: Box<[u8]>,
        spec_text: &str,
        tz_name: &str,
        payload: Box<[u8]>,
        options: JobOptions,
        missed: Missed,
        next_fire_ms: u64,
        last_fire_ms: Option<u64>,
    ) -> Result<Schedule, String> {
        Ok(Schedule {
            name,
            spec_text: spec_text.to_string(),
            tz_name: tz_name.to_string(),
            spec: Spec::parse(spec_text)?,
            tz: parse_zone(tz_name)?,
            payload,
            options,
            missed,
            next_fire_ms,
            last_fire_ms,
        })
    }

    pub fn next_after(&self, after_ms: u64) -> Option<u64> {
        self.spec.next_after(after_ms, self.tz)
    }

    /// What to do at `now_ms`; None while the next tick is still ahead.
    pub fn plan(&self, now_ms: u64) -> Option<FirePlan> {
        if self.next_fire_ms > now_ms {
            return None;
        }
        // The latest tick at or before now: the one job a visit may push.
        let latest = match self.spec {
            Spec::Every(interval) => self.next_fire_ms + (now_ms - self.next_fire_ms) / interval * interval,
            Spec::Cron(_) => {
                let mut t = self.next_fire_ms;
                // Bounded walk: a long outage of a per-second spec is cut short at the last few thousand ticks.
                let mut steps = 0;
                while let Some(n) = self.next_after(t).filter(|&n| n <= now_ms) {
                    t = n;
                    steps += 1;
                    if steps > 100_000 {
                        break;
                    }
                }
                t
            }
        };
        let on_time = now_ms - latest <= MISSED_GRACE_MS;
        let fire_ms = match self.missed {
            Missed::Once => Some(latest),
            Missed::Skip => on_time.then_some(latest),
        };
        let mut next_fire_ms = self.next_after(latest)?;
        if next_fire_ms <= now_ms {
            next_fire_ms = self.next_after(now_ms)?;
        }
        Some(FirePlan { fire_ms, next_fire_ms })
    }

    /// The id of the job a tick pushes: `name@<fire ms>`.
    pub fn job_id(&self, fire_ms: u64) -> Box<[u8]> {
        let mut id = self.name.to_vec();
        id.extend_from_slice(format!("@{fire_ms}").as_bytes());
        id.into_boxed_slice()
    }
}

#[cfg(test)]
#[path = "schedule_tests.rs"]
mod tests;
