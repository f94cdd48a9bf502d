//! Cron schedules: when a schedule fires next, and what a timer visit at `now` should fire.
//!
//! A spec is a cron expression (5 fields, or 6 with seconds, or `@hourly`-style names) read by the `cron`
//! crate in an IANA zone, or `@every <duration>` such as `@every 500ms` or `@every 1m30s`.

use std::str::FromStr;

use chrono::{TimeZone, Utc};

use super::limits::{self as field_limits, Range};
use super::limits::{FIRE_TIME, MAX_MS_10Y, MAX_SCHEDULE_NAME, MAX_SPEC_BYTES};
use super::schema::Field;
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
        if trimmed.starts_with('@') {
            let lower = trimmed.to_ascii_lowercase();
            return cron::Schedule::from_str(&lower)
                .map(|s| Spec::Cron(Box::new(s)))
                .map_err(|e| cron_message(text, &e));
        }
        let fields: Vec<&str> = trimmed.split_whitespace().collect();
        let full = match fields.len() {
            // Unix cron: minute hour day month weekday, with 0 or 7 for Sunday.
            5 => format!("0 {} {} {} {} {}", fields[0], fields[1], fields[2], fields[3], unix_weekdays(fields[4])?),
            6 => trimmed.to_string(),
            n => return Err(format!("cron spec needs 5 or 6 fields, got {n}")),
        };
        cron::Schedule::from_str(&full).map(|s| Spec::Cron(Box::new(s))).map_err(|e| cron_message(text, &e))
    }

    /// The first tick strictly after `after_ms`, in zone `tz`.
    pub fn next_after(&self, after_ms: u64, tz: Tz) -> Option<u64> {
        match self {
            Spec::Every(interval) => after_ms.checked_add(*interval),
            Spec::Cron(schedule) => {
                let after = zoned(after_ms, tz)?;
                // In a repeated hour (clocks going back) the crate may name the first of two equal wall
                // times, which lies before `after`: skip to the first tick truly after it.
                schedule
                    .after(&after)
                    .take(10_000)
                    .filter_map(|t| u64::try_from(t.timestamp_millis()).ok())
                    .find(|&t| t > after_ms)
            }
        }
    }

    /// The latest tick at or before `at_ms`, not before `floor_ms`.
    pub fn latest_at_or_before(&self, at_ms: u64, floor_ms: u64, tz: Tz) -> u64 {
        match self {
            Spec::Every(interval) => floor_ms + (at_ms.saturating_sub(floor_ms)) / interval * interval,
            Spec::Cron(schedule) => zoned(at_ms.saturating_add(1), tz)
                .and_then(|t| schedule.after(&t).next_back())
                .and_then(|t| u64::try_from(t.timestamp_millis()).ok())
                .filter(|&t| t <= at_ms)
                .map_or(floor_ms, |t| t.max(floor_ms)),
        }
    }
}

/// The cron crate's message is several lines (the input, a caret, the reason): keep the reason, quote the
/// spec as the client wrote it.
fn cron_message(spec: &str, e: &cron::error::Error) -> String {
    let text = e.to_string();
    let reason = text
        .lines()
        .map(str::trim)
        .rfind(|l| l.chars().any(|c| c.is_alphanumeric()))
        .filter(|l| l.chars().any(|c| c.is_alphabetic()) && l.contains(' '))
        .unwrap_or("not a cron expression");
    format!("cannot parse '{}': {reason}", spec.trim())
}

fn zoned(ms: u64, tz: Tz) -> Option<chrono::DateTime<Tz>> {
    Some(Utc.timestamp_millis_opt(i64::try_from(ms).ok()?).single()?.with_timezone(&tz))
}

/// Rewrites a Unix weekday field (0 or 7 = Sunday, 1 = Monday) with names, which the cron crate reads the
/// same way whatever its own numbering (1 = Sunday). Steps after '/' stay numbers.
fn unix_weekdays(field: &str) -> Result<String, String> {
    const NAMES: [&str; 8] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT", "SUN"];
    let name = |t: &str| -> Result<String, String> {
        match t.parse::<usize>() {
            Ok(n) if n <= 7 => Ok(NAMES[n].to_string()),
            Ok(n) => Err(format!("day of week {n} is out of range 0-7")),
            Err(_) => Ok(t.to_string()),
        }
    };
    let mut parts = Vec::new();
    for item in field.split(',') {
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => (r, Some(s)),
            None => (item, None),
        };
        let mapped = match range.split_once('-') {
            // A range up to 7 ends on Sunday, which the crate would read as going backwards.
            Some((a, "7")) => {
                let start = name(a)?;
                if step.is_some() {
                    return Err("a weekday range ending in 7 cannot take a step".into());
                }
                parts.push(format!("{start}-SAT"));
                parts.push("SUN".into());
                continue;
            }
            Some((a, b)) => format!("{}-{}", name(a)?, name(b)?),
            None => name(range)?,
        };
        parts.push(match step {
            Some(s) => format!("{mapped}/{s}"),
            None => mapped,
        });
    }
    Ok(parts.join(","))
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
        total = n
            .checked_mul(unit)
            .and_then(|v| total.checked_add(v))
            .ok_or_else(|| format!("bad duration '{text}': too large"))?;
    }
    if total == 0 {
        return Err("@every duration must be at least 1ms".into());
    }
    if total > MAX_MS_10Y as u64 {
        return Err(format!("@every duration must be at most {MAX_MS_10Y}ms (10 years), got {total}ms"));
    }
    Ok(total)
}

pub fn parse_zone(name: &str) -> Result<Tz, String> {
    Tz::from_str(name).map_err(|_| {
        let shown: String = name.chars().take(64).collect();
        format!("unknown time zone '{shown}{}'", if shown.len() < name.len() { "..." } else { "" })
    })
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
        let next_fire_ms = spec
            .next_after(from, tz)
            .filter(|&t| FIRE_TIME.check_u64(t).is_ok())
            .ok_or_else(|| format!("spec '{spec_text}' never fires again"))?;
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
        FIRE_TIME.check_u64(next_fire_ms)?;
        if let Some(t) = last_fire_ms {
            FIRE_TIME.check_u64(t)?;
        }
        if name.is_empty()
            || name.len() > MAX_SCHEDULE_NAME
            || spec_text.len() > MAX_SPEC_BYTES
            || tz_name.len() > MAX_SPEC_BYTES
        {
            return Err("schedule name or spec out of range".into());
        }
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

    /// A schedule from its texts and its numbers in SCHEDULE_FIELDS order, each checked against its range.
    pub fn from_numbers(
        name: Box<[u8]>,
        spec_text: &str,
        tz_name: &str,
        payload: Box<[u8]>,
        values: &[i64],
    ) -> Result<Schedule, String> {
        let options = JobOptions { retries: 0, backoff_ms: 0, lease_ms: 0, priority: 0 };
        let mut s = Schedule::restore(name, spec_text, tz_name, payload, options, Missed::Once, 0, None)?;
        if values.len() != SCHEDULE_FIELDS.len() {
            return Err("wrong number of schedule numbers".into());
        }
        for (f, &v) in SCHEDULE_FIELDS.iter().zip(values) {
            f.put(&mut s, v)?;
        }
        Ok(s)
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
        let latest = self.spec.latest_at_or_before(now_ms, self.next_fire_ms, self.tz);
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

    /// Every tick a visit at `now_ms` pushes a job for, oldest first: each due tick at most MISSED_GRACE_MS
    /// late, and with `MISSED once` one catch-up job for the latest tick older than that. Its last element is
    /// `plan(now_ms).fire_ms`.
    pub fn fires(&self, now_ms: u64) -> Vec<u64> {
        const MAX_ON_TIME: usize = 1000;
        if self.next_fire_ms > now_ms {
            return Vec::new();
        }
        let horizon = now_ms.saturating_sub(MISSED_GRACE_MS);
        // Due ticks, newest first, down to the first one past the grace (the latest missed tick).
        let mut on_time = Vec::new();
        let mut missed = None;
        match &self.spec {
            Spec::Every(interval) => {
                let mut t = self.spec.latest_at_or_before(now_ms, self.next_fire_ms, self.tz);
                while t >= self.next_fire_ms && on_time.len() < MAX_ON_TIME {
                    if t < horizon {
                        missed = Some(t);
                        break;
                    }
                    on_time.push(t);
                    match t.checked_sub(*interval) {
                        Some(p) => t = p,
                        None => break,
                    }
                }
            }
            Spec::Cron(schedule) => {
                if let Some(start) = zoned(now_ms.saturating_add(1), self.tz) {
                    let mut it = schedule.after(&start);
                    while on_time.len() < MAX_ON_TIME {
                        let Some(t) = it.next_back().and_then(|t| u64::try_from(t.timestamp_millis()).ok()) else {
                            break;
                        };
                        if t > now_ms {
                            continue;
                        }
                        if t < self.next_fire_ms {
                            break;
                        }
                        if t < horizon {
                            missed = Some(t);
                            break;
                        }
                        on_time.push(t);
                    }
                }
            }
        }
        let mut out: Vec<u64> = match self.missed {
            Missed::Once => missed.into_iter().collect(),
            Missed::Skip => Vec::new(),
        };
        out.extend(on_time.into_iter().rev());
        out
    }

    /// The id of the job a tick pushes: `name@<fire ms>`.
    pub fn job_id(&self, fire_ms: u64) -> Box<[u8]> {
        let mut id = self.name.to_vec();
        id.extend_from_slice(format!("@{fire_ms}").as_bytes());
        id.into_boxed_slice()
    }
}

/// A schedule's numbers (its name, spec, zone and payload are text beside them), in the order every encoding
/// writes them. `last_fire` is -1 when the schedule never fired; `missed` 0 is `once`, 1 `skip`.
pub static SCHEDULE_FIELDS: [Field<Schedule>; 7] = [
    Field {
        range: field_limits::RETRIES,
        get: |s| i64::from(s.options.retries),
        set: |s, v| s.options.retries = v as u32,
    },
    Field {
        range: field_limits::BACKOFF,
        get: |s| s.options.backoff_ms as i64,
        set: |s, v| s.options.backoff_ms = v as u64,
    },
    // 0: the module default at reserve time.
    Field {
        range: Range::new("lease", 0, field_limits::MAX_LEASE_MS),
        get: |s| s.options.lease_ms as i64,
        set: |s, v| s.options.lease_ms = v as u64,
    },
    Field {
        range: field_limits::PRIORITY,
        get: |s| i64::from(s.options.priority),
        set: |s, v| s.options.priority = v as i32,
    },
    Field {
        range: Range::new("missed", 0, 1),
        get: |s| i64::from(s.missed == Missed::Skip),
        set: |s, v| s.missed = if v == 1 { Missed::Skip } else { Missed::Once },
    },
    Field { range: field_limits::FIRE_TIME, get: |s| s.next_fire_ms as i64, set: |s, v| s.next_fire_ms = v as u64 },
    Field {
        range: Range::new("last fire", -1, field_limits::FIRE_TIME.max),
        get: |s| s.last_fire_ms.map_or(-1, |t| t as i64),
        set: |s, v| s.last_fire_ms = u64::try_from(v).ok(),
    },
];

#[cfg(test)]
mod tests;
