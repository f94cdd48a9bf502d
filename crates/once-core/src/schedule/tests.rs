//! Unit tests of cron specs and schedule planning. Expected instants are unix ms worked out by hand
//! (and cross-checked with chrono) in the comments beside them.

use super::*;

/// 2026-01-01T00:00:00Z, a Thursday.
const JAN1: u64 = 1_767_225_600_000;
const MIN: u64 = 60_000;
const HOUR: u64 = 3_600_000;
const DAY: u64 = 86_400_000;

fn opts() -> JobOptions {
    JobOptions { retries: 2, backoff_ms: 100, lease_ms: 0, priority: 0 }
}

fn sched(spec: &str, tz: &str, missed: Missed, last: Option<u64>, now: u64) -> Schedule {
    Schedule::new(b"s".to_vec().into(), spec, tz, b"payload".to_vec().into(), opts(), missed, last, now)
        .unwrap_or_else(|e| panic!("{spec} in {tz}: {e}"))
}

fn tz(name: &str) -> Tz {
    parse_zone(name).unwrap()
}

fn utc_ms(rfc3339: &str) -> u64 {
    chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap().timestamp_millis() as u64
}

fn ticks(spec: &Spec, zone: Tz, mut after: u64, n: usize) -> Vec<u64> {
    (0..n)
        .map(|_| {
            after = spec.next_after(after, zone).expect("fires again");
            after
        })
        .collect()
}

fn parse_err(text: &str) -> String {
    match Spec::parse(text) {
        Ok(s) => panic!("{text:?} parsed as {s:?}"),
        Err(e) => e,
    }
}

// ---------------------------------------------------------------------------------------------------------
// Spec::parse
// ---------------------------------------------------------------------------------------------------------

#[test]
fn hand_computed_constants_agree_with_chrono() {
    assert_eq!(JAN1, utc_ms("2026-01-01T00:00:00Z"));
    assert_eq!(1_772_868_600_000, utc_ms("2026-03-07T02:30:00-05:00"));
    assert_eq!(1_773_037_800_000, utc_ms("2026-03-09T02:30:00-04:00"));
    assert_eq!(1_792_888_200_000, utc_ms("2026-10-25T02:30:00+02:00"));
    assert_eq!(1_792_978_200_000, utc_ms("2026-10-26T02:30:00+01:00"));
}

#[test]
fn five_field_spec_is_minute_hour_dom_month_dow_at_second_zero() {
    let five = Spec::parse("*/5 * * * *").unwrap();
    assert!(matches!(five, Spec::Cron(_)));
    let six = Spec::parse("0 */5 * * * *").unwrap();
    let utc = tz("UTC");
    let start = JAN1 + 2 * MIN + 17_123;
    let expected: Vec<u64> = (1..=4).map(|i| JAN1 + i * 5 * MIN).collect();
    assert_eq!(ticks(&five, utc, start, 4), expected);
    assert_eq!(ticks(&six, utc, start, 4), expected);

    // "30 9 * * *": 09:30 every day.
    let s = Spec::parse("30 9 * * *").unwrap();
    assert_eq!(ticks(&s, utc, JAN1, 2), vec![JAN1 + 9 * HOUR + 30 * MIN, JAN1 + DAY + 9 * HOUR + 30 * MIN]);
}

#[test]
fn six_field_spec_has_seconds_first() {
    let s = Spec::parse("*/10 * * * * *").unwrap();
    let utc = tz("UTC");
    assert_eq!(ticks(&s, utc, JAN1 + 1000, 3), vec![JAN1 + 10_000, JAN1 + 20_000, JAN1 + 30_000]);
    let s = Spec::parse("15 0 12 * * *").unwrap();
    assert_eq!(s.next_after(JAN1, utc), Some(JAN1 + 12 * HOUR + 15_000));
}

#[test]
fn next_after_is_strictly_after() {
    let s = Spec::parse("0 * * * * *").unwrap();
    let utc = tz("UTC");
    assert_eq!(s.next_after(JAN1, utc), Some(JAN1 + MIN), "a tick at `after` itself is not next");
    assert_eq!(s.next_after(JAN1 - 1, utc), Some(JAN1));
    assert_eq!(s.next_after(JAN1 + 500, utc), Some(JAN1 + MIN), "sub-second part does not round down");
    let e = Spec::parse("@every 250ms").unwrap();
    assert_eq!(e.next_after(JAN1, utc), Some(JAN1 + 250));
}

#[test]
fn named_specs_hourly_daily_weekly() {
    let utc = tz("UTC");
    let hourly = Spec::parse("@hourly").unwrap();
    assert_eq!(ticks(&hourly, utc, JAN1 + 1, 2), vec![JAN1 + HOUR, JAN1 + 2 * HOUR]);
    let daily = Spec::parse("@daily").unwrap();
    assert_eq!(ticks(&daily, utc, JAN1 + 1, 2), vec![JAN1 + DAY, JAN1 + 2 * DAY]);
    // 2026-01-04 is the first Sunday.
    let weekly = Spec::parse("@weekly").unwrap();
    assert_eq!(weekly.next_after(JAN1, utc), Some(JAN1 + 3 * DAY));

    // In Asia/Kolkata (UTC+05:30) the hours start at :30 UTC, and days at 18:30 UTC.
    let ist = tz("Asia/Kolkata");
    assert_eq!(hourly.next_after(JAN1, ist), Some(JAN1 + 30 * MIN));
    assert_eq!(daily.next_after(JAN1, ist), Some(JAN1 + 18 * HOUR + 30 * MIN));
}

#[test]
fn every_takes_a_duration() {
    assert!(matches!(Spec::parse("@every 500ms"), Ok(Spec::Every(500))));
    assert!(matches!(Spec::parse("@every 1m30s"), Ok(Spec::Every(90_000))));
    assert!(matches!(Spec::parse("@every 2h"), Ok(Spec::Every(7_200_000))));
    assert!(matches!(Spec::parse("@every 1d"), Ok(Spec::Every(86_400_000))));
    assert!(matches!(Spec::parse("@every 1h2m3s4ms"), Ok(Spec::Every(3_723_004))));
    assert!(matches!(Spec::parse("  @every 30s  "), Ok(Spec::Every(30_000))));
    assert!(matches!(Spec::parse("@EVERY 2s"), Ok(Spec::Every(2_000))));
    assert!(matches!(Spec::parse("@every 1ms"), Ok(Spec::Every(1))));
    assert_eq!(parse_duration("1m30s"), Ok(90_000));
    assert_eq!(parse_duration("30s1m"), Ok(90_000));
}

#[test]
fn parse_errors_say_what_is_wrong() {
    assert_eq!(parse_err("* * * *"), "cron spec needs 5 or 6 fields, got 4");
    assert_eq!(parse_err("0 0 0 * * * 2027"), "cron spec needs 5 or 6 fields, got 7");
    assert_eq!(parse_err("bogus"), "cron spec needs 5 or 6 fields, got 1");
    assert_eq!(parse_err(""), "cron spec needs 5 or 6 fields, got 0");
    assert_eq!(parse_err("@every 5x"), "bad duration '5x': unknown unit 'x'");
    assert_eq!(parse_err("@every 5sec"), "bad duration '5sec': unknown unit 'sec'");
    assert_eq!(parse_err("@every 10"), "bad duration '10': missing unit (ms, s, m, h, d)");
    assert_eq!(parse_err("@every 1.5s"), "bad duration '1.5s': missing unit (ms, s, m, h, d)");
    assert_eq!(parse_err("@every s"), "bad duration 's': expected a number at position 0");
    assert_eq!(parse_err("@every 1m 30s"), "bad duration '1m 30s': expected a number at position 2");
    assert_eq!(parse_err("@every 0s"), "@every duration must be at least 1ms");
    assert_eq!(parse_err("@every 0ms0s"), "@every duration must be at least 1ms");
    assert_eq!(parse_err("@every"), "@every needs a duration such as 500ms, 30s, 5m");
    assert_eq!(parse_err("@every   "), "@every needs a duration such as 500ms, 30s, 5m");
    assert_eq!(parse_err("@every 99999999999999999999ms"), "bad duration '99999999999999999999ms': number too large");
    assert_eq!(parse_err("@every 999999999999999d"), "bad duration '999999999999999d': too large");
    assert_eq!(parse_err("@every 18446744073709551615ms1ms"), "bad duration '18446744073709551615ms1ms': too large");
    // Field errors come from the cron parser; they name the field.
    assert!(parse_err("61 * * * *").contains("Minutes"));
    assert!(parse_err("* 25 * * *").contains("Hours"));
    assert!(!parse_err("@sometimes").is_empty());
}

#[test]
fn unknown_zone_is_an_error_naming_the_zone() {
    let e = parse_zone("Mars/Olympus_Mons").unwrap_err();
    assert!(e.starts_with("unknown time zone 'Mars/Olympus_Mons'"), "{e}");
    assert!(parse_zone("Europe/Berlin").is_ok());
    assert!(parse_zone("UTC").is_ok());
    let e = Schedule::new(
        b"s".to_vec().into(),
        "@every 1s",
        "Nowhere/Town",
        b"p".to_vec().into(),
        opts(),
        Missed::Once,
        None,
        JAN1,
    )
    .unwrap_err();
    assert!(e.starts_with("unknown time zone 'Nowhere/Town'"), "{e}");
}

#[test]
fn schedule_new_reports_spec_errors_and_specs_that_never_fire() {
    let new = |spec: &str| {
        Schedule::new(b"s".to_vec().into(), spec, "UTC", b"p".to_vec().into(), opts(), Missed::Once, None, JAN1)
    };
    assert_eq!(new("* * *").unwrap_err(), "cron spec needs 5 or 6 fields, got 3");
    assert_eq!(new("@every 0ms").unwrap_err(), "@every duration must be at least 1ms");
    // February 30th never comes.
    assert_eq!(new("0 0 0 30 2 *").unwrap_err(), "spec '0 0 0 30 2 *' never fires again");
}

#[test]
fn missed_policy_names() {
    assert_eq!(Missed::from_name(b"once"), Some(Missed::Once));
    assert_eq!(Missed::from_name(b"SKIP"), Some(Missed::Skip));
    assert_eq!(Missed::from_name(b"never"), None);
    assert_eq!(Missed::Once.name(), "once");
    assert_eq!(Missed::Skip.name(), "skip");
}

// ---------------------------------------------------------------------------------------------------------
// Zones and DST
// ---------------------------------------------------------------------------------------------------------

#[test]
fn five_field_spec_in_a_fixed_offset_zone() {
    // Asia/Tokyo is UTC+9 all year: 09:30 JST is 00:30 UTC. JAN1 is 09:00 JST.
    let s = Spec::parse("30 9 * * *").unwrap();
    let tokyo = tz("Asia/Tokyo");
    assert_eq!(
        ticks(&s, tokyo, JAN1, 3),
        vec![1_767_227_400_000, 1_767_227_400_000 + DAY, 1_767_227_400_000 + 2 * DAY]
    );
    // Right after today's tick, the next one is tomorrow's.
    assert_eq!(s.next_after(1_767_227_400_000, tokyo), Some(1_767_227_400_000 + DAY));
    // Etc/GMT+5 is UTC-5 (the sign is POSIX-inverted): 09:30 there is 14:30 UTC.
    assert_eq!(s.next_after(JAN1, tz("Etc/GMT+5")), Some(JAN1 + 14 * HOUR + 30 * MIN));
}

#[test]
fn spring_forward_in_new_york_skips_the_missing_0230() {
    // 2026-03-08 02:00 EST jumps to 03:00 EDT: 02:30 does not exist that day.
    let s = Spec::parse("0 30 2 * * *").unwrap();
    let ny = tz("America/New_York");
    let got = ticks(&s, ny, utc_ms("2026-03-06T12:00:00Z"), 3);
    assert_eq!(
        got,
        vec![
            1_772_868_600_000, // 2026-03-07 02:30 EST = 07:30Z
            1_773_037_800_000, // 2026-03-09 02:30 EDT = 06:30Z (no tick on 03-08)
            1_773_124_200_000, // 2026-03-10 02:30 EDT = 06:30Z
        ]
    );
    // Hourly ticks pass straight from 01:00 EST to 03:00 EDT, one real hour apart.
    let hourly = Spec::parse("0 0 * * * *").unwrap();
    let at_0100_est = utc_ms("2026-03-08T06:00:00Z");
    assert_eq!(hourly.next_after(at_0100_est, ny), Some(utc_ms("2026-03-08T07:00:00Z")));
}

#[test]
fn fall_back_in_berlin_fires_0230_once() {
    // 2026-10-25 03:00 CEST goes back to 02:00 CET: 02:30 happens twice; the schedule fires on the first.
    let s = Spec::parse("0 30 2 * * *").unwrap();
    let berlin = tz("Europe/Berlin");
    let got = ticks(&s, berlin, utc_ms("2026-10-23T12:00:00Z"), 3);
    assert_eq!(
        got,
        vec![
            1_792_801_800_000, // 2026-10-24 02:30 CEST = 00:30Z
            1_792_888_200_000, // 2026-10-25 02:30 CEST = 00:30Z (not again at 01:30Z, 02:30 CET)
            1_792_978_200_000, // 2026-10-26 02:30 CET  = 01:30Z
        ]
    );
    // A plan at each tick moves to the next one, never back.
    let mut sch = sched("0 30 2 * * *", "Europe/Berlin", Missed::Skip, None, utc_ms("2026-10-24T12:00:00Z"));
    assert_eq!(sch.next_fire_ms, 1_792_888_200_000);
    let p = sch.plan(1_792_888_200_000).unwrap();
    assert_eq!(p, FirePlan { fire_ms: Some(1_792_888_200_000), next_fire_ms: 1_792_978_200_000 });
    sch.next_fire_ms = p.next_fire_ms;
    assert_eq!(sch.plan(1_792_978_200_000 - 1), None);
}

#[test]
fn next_after_is_strictly_after_inside_a_repeated_hour() {
    // From 01:00Z to 02:00Z on 2026-10-25 Berlin wall clocks read 02:00-02:59 CET a second time. The cron
    // crate resolves the ambiguous 02:30 to its first (CEST) instant, which is an hour before `after`.
    let berlin = tz("Europe/Berlin");
    let ny = tz("America/New_York");
    for (spec, zone, from, to) in [
        ("0 30 2 * * *", berlin, "2026-10-25T00:00:00Z", "2026-10-25T03:00:00Z"),
        ("0 */15 * * * *", berlin, "2026-10-25T00:00:00Z", "2026-10-25T03:00:00Z"),
        ("0 30 1 * * *", ny, "2026-11-01T04:00:00Z", "2026-11-01T08:00:00Z"),
    ] {
        let s = Spec::parse(spec).unwrap();
        let mut t = utc_ms(from);
        while t < utc_ms(to) {
            let n = s.next_after(t, zone).unwrap();
            assert!(n > t, "{spec}: next_after({t}) = {n}, {} ms before it", t - n);
            t += 5 * MIN;
        }
    }
}

#[test]
fn schedule_new_in_a_repeated_hour_does_not_repeat_the_fired_tick() {
    // The daily 02:30 tick fired at 00:30Z (02:30 CEST); the schedule is updated at 01:10Z (02:10 CET).
    let fired = 1_792_888_200_000;
    let now = utc_ms("2026-10-25T01:10:00Z");
    let s = sched("0 30 2 * * *", "Europe/Berlin", Missed::Once, Some(fired), now);
    assert!(s.next_fire_ms > now, "next fire {} is before now {now}", s.next_fire_ms);
    assert_ne!(s.next_fire_ms, fired, "the tick already fired comes again");
}

#[test]
fn five_field_day_of_week_is_unix_numbering() {
    let utc = tz("UTC");
    // "0 9 * * 1" is Mondays at 09:00: 2026-01-05 (JAN1 is a Thursday).
    assert_eq!(Spec::parse("0 9 * * 1").unwrap().next_after(JAN1, utc), Some(JAN1 + 4 * DAY + 9 * HOUR));
    // 0 and 7 are Sunday: 2026-01-04.
    assert_eq!(Spec::parse("0 9 * * 0").map(|s| s.next_after(JAN1, utc)), Ok(Some(JAN1 + 3 * DAY + 9 * HOUR)));
    assert_eq!(Spec::parse("0 9 * * 7").unwrap().next_after(JAN1, utc), Some(JAN1 + 3 * DAY + 9 * HOUR));
    // "1-5" is Monday to Friday: from Friday 2026-01-02 10:00 the next is Monday 2026-01-05 09:00.
    let weekdays = Spec::parse("0 9 * * 1-5").unwrap();
    assert_eq!(weekdays.next_after(JAN1 + DAY + 10 * HOUR, utc), Some(JAN1 + 4 * DAY + 9 * HOUR));
}

#[test]
fn day_of_week_names_work() {
    let utc = tz("UTC");
    let s = Spec::parse("0 9 * * MON").unwrap();
    assert_eq!(s.next_after(JAN1, utc), Some(JAN1 + 4 * DAY + 9 * HOUR));
    let s = Spec::parse("0 9 * * MON-FRI").unwrap();
    // Thursday 09:00, Friday 09:00, then Monday 09:00.
    assert_eq!(ticks(&s, utc, JAN1, 3), vec![JAN1 + 9 * HOUR, JAN1 + DAY + 9 * HOUR, JAN1 + 4 * DAY + 9 * HOUR]);
}

// ---------------------------------------------------------------------------------------------------------
// Schedule::plan
// ---------------------------------------------------------------------------------------------------------

#[test]
fn first_tick_is_the_first_after_now() {
    let s = sched("0 * * * * *", "UTC", Missed::Once, None, JAN1 + 10_000);
    assert_eq!(s.next_fire_ms, JAN1 + MIN);
    assert_eq!(s.last_fire_ms, None);
    assert_eq!(s.tz_name, "UTC");
    assert_eq!(s.spec_text, "0 * * * * *");
    let e = sched("@every 500ms", "Europe/Berlin", Missed::Once, None, 1000);
    assert_eq!(e.next_fire_ms, 1500);
    assert_eq!(e.tz_name, "Europe/Berlin");
}

#[test]
fn plan_is_none_before_the_next_tick() {
    let s = sched("0 * * * * *", "UTC", Missed::Once, None, JAN1 + 10_000);
    assert_eq!(s.plan(JAN1 + 10_000), None);
    assert_eq!(s.plan(JAN1 + MIN - 1), None);
    assert!(s.plan(JAN1 + MIN).is_some());
}

#[test]
fn on_time_plan_fires_the_tick_and_waits_for_the_next() {
    for missed in [Missed::Once, Missed::Skip] {
        let s = sched("0 * * * * *", "UTC", missed, None, JAN1 + 10_000);
        let tick = JAN1 + MIN;
        for now in [tick, tick + 1, tick + 999, tick + MISSED_GRACE_MS] {
            let p = s.plan(now).unwrap();
            assert_eq!(p, FirePlan { fire_ms: Some(tick), next_fire_ms: tick + MIN }, "{missed:?} now={now}");
            assert!(p.next_fire_ms > now);
        }
    }
}

#[test]
fn every_keeps_its_cadence() {
    let s = sched("@every 500ms", "UTC", Missed::Once, None, 1000);
    assert_eq!(s.next_fire_ms, 1500);
    assert_eq!(s.plan(1500), Some(FirePlan { fire_ms: Some(1500), next_fire_ms: 2000 }));
    // A late visit does not shift the grid: next = fire + interval, not now + interval.
    assert_eq!(s.plan(1700), Some(FirePlan { fire_ms: Some(1500), next_fire_ms: 2000 }));
    assert_eq!(s.plan(1999), Some(FirePlan { fire_ms: Some(1500), next_fire_ms: 2000 }));
    assert_eq!(s.plan(2000), Some(FirePlan { fire_ms: Some(2000), next_fire_ms: 2500 }));
    // Several ticks late: the latest tick on the grid fires, the next one is on the grid too.
    assert_eq!(s.plan(3700), Some(FirePlan { fire_ms: Some(3500), next_fire_ms: 4000 }));

    // Following the plans visit after visit gives every tick exactly once.
    let mut s = s;
    let mut fired = Vec::new();
    for now in (1500..=4000).step_by(250) {
        if let Some(p) = s.plan(now) {
            fired.extend(p.fire_ms);
            s.next_fire_ms = p.next_fire_ms;
            s.last_fire_ms = p.fire_ms.or(s.last_fire_ms);
        }
    }
    assert_eq!(fired, vec![1500, 2000, 2500, 3000, 3500, 4000]);
}

#[test]
fn missed_once_fires_one_job_for_the_latest_tick() {
    let s = sched("0 * * * * *", "UTC", Missed::Once, None, JAN1 + 10_000);
    let first = JAN1 + MIN;
    // Ten minutes and five seconds of outage: ten ticks were missed, one job fires, for the latest.
    let now = first + 10 * MIN + 5_000;
    let p = s.plan(now).unwrap();
    assert_eq!(p.fire_ms, Some(first + 10 * MIN));
    assert_eq!(p.next_fire_ms, first + 11 * MIN);

    let e = sched("@every 10s", "UTC", Missed::Once, None, 1000);
    assert_eq!(e.next_fire_ms, 11_000);
    assert_eq!(e.plan(37_500), Some(FirePlan { fire_ms: Some(31_000), next_fire_ms: 41_000 }));
}

#[test]
fn missed_skip_fires_nothing_for_a_late_tick_and_fires_on_time() {
    let s = sched("0 * * * * *", "UTC", Missed::Skip, None, JAN1 + 10_000);
    let first = JAN1 + MIN;
    let latest = first + 10 * MIN;
    assert_eq!(s.plan(latest + 5_000), Some(FirePlan { fire_ms: None, next_fire_ms: latest + MIN }));
    // The grace boundary: exactly MISSED_GRACE_MS late still fires, one ms more does not.
    assert_eq!(s.plan(latest + MISSED_GRACE_MS).unwrap().fire_ms, Some(latest));
    assert_eq!(s.plan(latest + MISSED_GRACE_MS + 1).unwrap().fire_ms, None);
    // The first tick itself, visited late.
    assert_eq!(s.plan(first + MISSED_GRACE_MS + 1), Some(FirePlan { fire_ms: None, next_fire_ms: first + MIN }));
    assert_eq!(s.plan(first + 10), Some(FirePlan { fire_ms: Some(first), next_fire_ms: first + MIN }));

    let e = sched("@every 10s", "UTC", Missed::Skip, None, 1000);
    assert_eq!(e.plan(37_500), Some(FirePlan { fire_ms: None, next_fire_ms: 41_000 }));
    assert_eq!(e.plan(31_400), Some(FirePlan { fire_ms: Some(31_000), next_fire_ms: 41_000 }));
}

#[test]
fn plan_across_a_dst_gap_moves_to_the_next_real_tick() {
    let ny = "America/New_York";
    let s = sched("0 30 2 * * *", ny, Missed::Once, None, utc_ms("2026-03-07T00:00:00Z"));
    assert_eq!(s.next_fire_ms, 1_772_868_600_000);
    let p = s.plan(1_772_868_600_000 + 50).unwrap();
    assert_eq!(p, FirePlan { fire_ms: Some(1_772_868_600_000), next_fire_ms: 1_773_037_800_000 });
}

#[test]
fn missed_once_after_a_long_outage_of_a_per_second_spec_fires_the_latest_tick() {
    let s = sched("* * * * * *", "UTC", Missed::Once, None, JAN1);
    assert_eq!(s.next_fire_ms, JAN1 + 1000);
    // Down for a week (604800 ticks).
    let now = s.next_fire_ms + 7 * DAY + 300;
    let started = std::time::Instant::now();
    let p = s.plan(now).unwrap();
    let took = started.elapsed();
    assert_eq!(p, FirePlan { fire_ms: Some(s.next_fire_ms + 7 * DAY), next_fire_ms: s.next_fire_ms + 7 * DAY + 1000 });
    // The design allows the timer a few ms per visit; the walk takes tens of ms even in release builds.
    assert!(took.as_millis() < 50, "plan took {took:?}");
}

#[test]
fn job_id_is_name_at_fire_ms() {
    let s = Schedule::new(
        b"nightly".to_vec().into(),
        "@daily",
        "UTC",
        b"p".to_vec().into(),
        opts(),
        Missed::Once,
        None,
        JAN1,
    )
    .unwrap();
    assert_eq!(&*s.job_id(1_767_225_600_000), b"nightly@1767225600000");
    assert_eq!(&*s.job_id(0), b"nightly@0");
    let bin =
        Schedule::new(vec![0xff, b'x'].into(), "@daily", "UTC", b"p".to_vec().into(), opts(), Missed::Once, None, 0)
            .unwrap();
    assert_eq!(&*bin.job_id(42), b"\xffx@42");
}

// ---------------------------------------------------------------------------------------------------------
// Re-creating a schedule after it fired
// ---------------------------------------------------------------------------------------------------------

#[test]
fn new_after_last_fire_never_repeats_a_fired_tick() {
    let tick = JAN1 + 5 * MIN;
    // Remade exactly at the tick that fired.
    let s = sched("0 * * * * *", "UTC", Missed::Once, Some(tick), tick);
    assert_eq!(s.next_fire_ms, tick + MIN);
    // The clock reads earlier than the last fire (failover to a replica whose clock is behind).
    let s = sched("0 * * * * *", "UTC", Missed::Once, Some(tick), tick - 5 * MIN);
    assert_eq!(s.next_fire_ms, tick + MIN);
    assert_eq!(s.last_fire_ms, Some(tick));
    // Same for @every.
    let e = sched("@every 1000ms", "UTC", Missed::Once, Some(9_000), 5_000);
    assert_eq!(e.next_fire_ms, 10_000);

    // A sweep of (last fire, now) pairs in a zone with DST changes outside the repeated hours.
    for spec in ["*/7 * * * *", "0 0 * * * *", "@every 90s", "@daily"] {
        for last in (0..12).map(|i| JAN1 + i * 37 * MIN) {
            for now in (0..12).map(|i| JAN1 + i * 41 * MIN + 13) {
                let s = sched(spec, "America/New_York", Missed::Once, Some(last), now);
                assert!(s.next_fire_ms > last && s.next_fire_ms > now, "{spec} last={last} now={now}");
            }
        }
    }
}

#[test]
fn restore_keeps_times_exactly_and_checks_spec_and_zone() {
    let s = Schedule::restore(
        b"r".to_vec().into(),
        "0 * * * * *",
        "Europe/Berlin",
        b"p".to_vec().into(),
        opts(),
        Missed::Skip,
        JAN1 + 123,
        Some(JAN1 - MIN),
    )
    .unwrap();
    assert_eq!(s.next_fire_ms, JAN1 + 123);
    assert_eq!(s.last_fire_ms, Some(JAN1 - MIN));
    assert_eq!(s.missed, Missed::Skip);
    assert_eq!(s.options, opts());
    assert_eq!(s.plan(JAN1 + 122), None);
    assert_eq!(s.next_after(JAN1), Some(JAN1 + MIN));

    let bad_spec =
        Schedule::restore(b"r".to_vec().into(), "* *", "UTC", b"p".to_vec().into(), opts(), Missed::Once, 0, None);
    assert_eq!(bad_spec.unwrap_err(), "cron spec needs 5 or 6 fields, got 2");
    let bad_zone =
        Schedule::restore(b"r".to_vec().into(), "@hourly", "X/Y", b"p".to_vec().into(), opts(), Missed::Once, 0, None);
    assert!(bad_zone.unwrap_err().starts_with("unknown time zone 'X/Y'"));
}

#[test]
fn fires_every_tick_within_the_grace_after_a_short_stall() {
    // Next tick 1000; the timer comes back at 1350 after a stall: ticks 1000..1300 are all on time.
    let s = sched("@every 100ms", "UTC", Missed::Once, None, 900);
    assert_eq!(s.next_fire_ms, 1000);
    assert_eq!(s.fires(1350), vec![1000, 1100, 1200, 1300]);
    assert_eq!(s.plan(1350).unwrap().fire_ms, Some(1300));
    assert!(s.fires(999).is_empty());
}

#[test]
fn fires_on_time_ticks_plus_one_catch_up_for_the_missed() {
    let once = sched("@every 100ms", "UTC", Missed::Once, None, 900);
    let skip = sched("@every 100ms", "UTC", Missed::Skip, None, 900);
    // At 5000 the grace reaches back to 4000: 4000..=5000 are on time, 3900 is the latest missed tick.
    let on_time: Vec<u64> = (40..=50).map(|k| k * 100).collect();
    let mut with_catch_up = vec![3900];
    with_catch_up.extend(&on_time);
    assert_eq!(once.fires(5000), with_catch_up);
    assert_eq!(skip.fires(5000), on_time);
    assert_eq!(once.plan(5000).unwrap().fire_ms, once.fires(5000).last().copied());
}

#[test]
fn fires_only_the_catch_up_when_every_due_tick_is_missed() {
    let once = sched("@every 10s", "UTC", Missed::Once, None, 0);
    let skip = sched("@every 10s", "UTC", Missed::Skip, None, 0);
    // Ticks 10000 and 20000 are due at 25000, both more than a second late.
    assert_eq!(once.fires(25_000), vec![20_000]);
    assert!(skip.fires(25_000).is_empty());
    assert_eq!(skip.plan(25_000).unwrap().fire_ms, None);
}

#[test]
fn cron_fires_each_second_of_a_short_stall() {
    let s = sched("* * * * * *", "UTC", Missed::Once, None, JAN1);
    assert_eq!(s.next_fire_ms, JAN1 + 1000);
    // At +2000 both due ticks are within the grace.
    assert_eq!(s.fires(JAN1 + 2000), vec![JAN1 + 1000, JAN1 + 2000]);
    // At +3500 the grace reaches back to +2500: +3000 is on time, +2000 the latest missed, +1000 dropped.
    assert_eq!(s.fires(JAN1 + 3500), vec![JAN1 + 2000, JAN1 + 3000]);
    assert_eq!(s.plan(JAN1 + 3500).unwrap().fire_ms, Some(JAN1 + 3000));
}

#[test]
fn parse_errors_quote_the_spec_and_the_reason_on_one_line() {
    let e = parse_err("61 * * * *");
    assert!(e.starts_with("cannot parse '61 * * * *': "), "{e}");
    assert!(!e.contains('\n') && !e.contains('^'), "{e}");
    let e = parse_err("@fortnightly");
    assert!(e.starts_with("cannot parse '@fortnightly': "), "{e}");
}
