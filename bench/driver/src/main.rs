//! once-bench: the load driver of `make bench` (see bench/README.md).
//!
//! Subcommands (each prints exactly one JSON object on stdout; progress goes to stderr):
//!   cycle   --port P --system once|once-2rtt|streams|streams-2rtt|lua|lua-2rtt [--once-block 1]
//!           [--producers 4] [--workers 4] [--jobs N] [--batch 64]
//!   load    --port P --system once|list|stream [--jobs N] [--batch 1000] [--conns 2]
//!   delayed --port P [--jobs N] [--lead-ms 5000] [--batch 1000]
//!   wakeup  --port P --system once|list|stream [--samples 2000] [--warmup 100] [--gap-us 1000]

mod resp;

use resp::Conn;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering::*};
use std::sync::{mpsc, Arc, Barrier, Mutex};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

const BLOCK_MS: &str = "1000";
const LEASE_MS: &str = "30000";

/// The Lua reliable queue (the BullMQ pattern, reduced to its data movements):
/// KEYS wait, active, delayed, leases; ARGV now-ms, lease-ms.
const LUA_RESERVE: &str = r#"
local now = tonumber(ARGV[1])
local due = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now, 'LIMIT', 0, 1000)
if #due > 0 then
  redis.call('LPUSH', KEYS[1], unpack(due))
  redis.call('ZREM', KEYS[3], unpack(due))
end
local job = redis.call('LMOVE', KEYS[1], KEYS[2], 'RIGHT', 'LEFT')
if job then redis.call('ZADD', KEYS[4], now + tonumber(ARGV[2]), job) end
return job
"#;
/// KEYS active, leases; ARGV job.
const LUA_ACK: &str = r#"
local n = redis.call('LREM', KEYS[1], 1, ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
return n
"#;

fn main() {
    let argv: Vec<String> = std::env::args().collect();
    if argv.len() < 2 {
        eprintln!("usage: once-bench cycle|load|delayed|wakeup --port P ...");
        std::process::exit(2);
    }
    let opts = parse_opts(&argv[2..]);
    let port: u16 = opt(&opts, "port", 0u16);
    if port == 0 {
        eprintln!("--port is required");
        std::process::exit(2);
    }
    let out = match argv[1].as_str() {
        "cycle" => cycle(port, &opts),
        "load" => load(port, &opts),
        "delayed" => delayed(port, &opts),
        "wakeup" => wakeup(port, &opts),
        other => {
            eprintln!("unknown subcommand {other}");
            std::process::exit(2);
        }
    };
    println!("{out}");
}

fn parse_opts(args: &[String]) -> HashMap<String, String> {
    let mut m = HashMap::new();
    let mut i = 0;
    while i < args.len() {
        let k = args[i].trim_start_matches("--").to_string();
        let v = args.get(i + 1).cloned().unwrap_or_default();
        m.insert(k, v);
        i += 2;
    }
    m
}

fn opt<T: std::str::FromStr>(m: &HashMap<String, String>, k: &str, d: T) -> T {
    m.get(k).and_then(|v| v.parse().ok()).unwrap_or(d)
}

fn unix_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).unwrap().as_millis() as u64
}

/// 16 bytes, unique per (producer, seq).
fn payload16(producer: usize, seq: u64) -> [u8; 16] {
    let s = format!("{:02x}{:014x}", producer & 0xff, seq);
    let mut p = [0u8; 16];
    p.copy_from_slice(s.as_bytes());
    p
}

/// A small JSON object writer (the driver has no dependencies).
struct Json(Vec<String>);
impl Json {
    fn new() -> Json {
        Json(vec![])
    }
    fn num(mut self, k: &str, v: f64) -> Json {
        let s = if v.is_finite() { format!("{v}") } else { "null".into() };
        self.0.push(format!("\"{k}\":{s}"));
        self
    }
    fn raw(mut self, k: &str, v: String) -> Json {
        self.0.push(format!("\"{k}\":{v}"));
        self
    }
    fn done(self) -> String {
        format!("{{{}}}", self.0.join(","))
    }
}

// ---------------------------------------------------------------------------------------------
// cycle: push -> reserve -> ack, P pipelined producers and W one-job-at-a-time workers.
// ---------------------------------------------------------------------------------------------

#[derive(Clone, Copy, PartialEq)]
enum Sys {
    Once,
    Streams,
    Lua,
}

struct Shared {
    sys: Sys,
    /// Ack the held job in the same round trip as the next fetch: Once's `RESERVE ... ACK id`
    /// (ack-and-fetch), Streams' XACK + XREADGROUP and Lua's ack + reserve scripts written together.
    one_rtt: bool,
    /// Once only: blocking RESERVE (else poll like the Lua queue).
    block: bool,
    jobs: u64,
    delivered: AtomicU64,
    stop: AtomicBool,
    finished_workers: AtomicUsize,
    client_ids: Mutex<Vec<i64>>,
    reserve_sha: String,
    ack_sha: String,
    empty_polls: AtomicU64,
}

fn cycle(port: u16, o: &HashMap<String, String>) -> String {
    let system = o.get("system").cloned().unwrap_or_default();
    let (sys, one_rtt) = match system.as_str() {
        "once" => (Sys::Once, true),
        "once-2rtt" => (Sys::Once, false),
        "streams" => (Sys::Streams, true),
        "streams-2rtt" => (Sys::Streams, false),
        "lua" => (Sys::Lua, true),
        "lua-2rtt" => (Sys::Lua, false),
        s => panic!("cycle: unknown --system {s:?}"),
    };
    let block = opt(o, "once-block", 1u32) != 0;
    let producers: usize = opt(o, "producers", 4);
    let workers: usize = opt(o, "workers", 4);
    let jobs: u64 = opt(o, "jobs", 200_000);
    let batch: usize = opt(o, "batch", 64);

    let mut ctl = Conn::connect(port);
    let (mut reserve_sha, mut ack_sha) = (String::new(), String::new());
    match sys {
        Sys::Once => {
            ctl.call_str(&["DEL", "cq"]).ok("DEL");
        }
        Sys::Streams => {
            ctl.call_str(&["DEL", "cs"]).ok("DEL");
            ctl.call_str(&["XGROUP", "CREATE", "cs", "g", "$", "MKSTREAM"]).ok("XGROUP CREATE");
        }
        Sys::Lua => {
            ctl.call_str(&["DEL", "lw", "la", "ld", "ll"]).ok("DEL");
            let r = ctl.call_str(&["SCRIPT", "LOAD", LUA_RESERVE]).ok("SCRIPT LOAD");
            reserve_sha = String::from_utf8(r.bytes().unwrap().to_vec()).unwrap();
            let a = ctl.call_str(&["SCRIPT", "LOAD", LUA_ACK]).ok("SCRIPT LOAD");
            ack_sha = String::from_utf8(a.bytes().unwrap().to_vec()).unwrap();
        }
    }
    let sh = Arc::new(Shared {
        sys,
        one_rtt,
        block,
        jobs,
        delivered: AtomicU64::new(0),
        stop: AtomicBool::new(false),
        finished_workers: AtomicUsize::new(0),
        client_ids: Mutex::new(vec![]),
        reserve_sha,
        ack_sha,
        empty_polls: AtomicU64::new(0),
    });
    let start = Arc::new(Barrier::new(producers + workers + 1));
    let mut handles = vec![];
    let mut phandles = vec![];
    for w in 0..workers {
        let (sh, start) = (sh.clone(), start.clone());
        handles.push(thread::spawn(move || worker(port, w, sh, start)));
    }
    for p in 0..producers {
        let (sh, start) = (sh.clone(), start.clone());
        let n = jobs / producers as u64 + if (p as u64) < jobs % producers as u64 { 1 } else { 0 };
        phandles.push(thread::spawn(move || producer(port, p, n, batch, sh, start)));
    }
    start.wait();
    let t0 = Instant::now();
    // Wait until every job was delivered, then until the server holds no unacked job.
    while sh.delivered.load(Acquire) < jobs {
        thread::sleep(Duration::from_micros(500));
    }
    let mut polls = 0u64;
    loop {
        polls += 1;
        let pending = match sys {
            Sys::Once => {
                let r = ctl.call_str(&["ONCE.STATS", "cq"]).ok("ONCE.STATS");
                r.field("reserved").and_then(|v| v.int()).expect("ONCE.STATS reserved")
                    + r.field("ready").and_then(|v| v.int()).unwrap_or(0)
            }
            Sys::Streams => {
                let r = ctl.call_str(&["XPENDING", "cs", "g"]).ok("XPENDING");
                r.arr().unwrap()[0].int().unwrap()
            }
            Sys::Lua => ctl.call_str(&["LLEN", "la"]).ok("LLEN").int().unwrap(),
        };
        if pending == 0 {
            break;
        }
        if t0.elapsed() > Duration::from_secs(300) {
            panic!("cycle: {pending} jobs still unacked after 300 s");
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    sh.stop.store(true, Release);
    let mut push_secs = 0f64;
    for h in phandles {
        push_secs = push_secs.max(h.join().expect("producer thread"));
    }
    // Workers may sit in a blocking read: unblock them until all have left.
    let ids = sh.client_ids.lock().unwrap().clone();
    while sh.finished_workers.load(Acquire) < workers {
        for id in &ids {
            ctl.call_str(&["CLIENT", "UNBLOCK", &id.to_string()]);
        }
        thread::sleep(Duration::from_millis(5));
    }
    for h in handles {
        h.join().expect("worker thread");
    }
    let acked = match sys {
        Sys::Once => ctl
            .call_str(&["ONCE.STATS", "cq"])
            .ok("ONCE.STATS")
            .field("acked_total")
            .and_then(|v| v.int())
            .unwrap_or(-1),
        Sys::Streams => {
            let r = ctl.call_str(&["XINFO", "GROUPS", "cs"]).ok("XINFO");
            let g = &r.arr().unwrap()[0];
            let pend = g.field("pending").and_then(|v| v.int()).unwrap();
            let len = ctl.call_str(&["XLEN", "cs"]).int().unwrap();
            len - pend
        }
        Sys::Lua => {
            let left = ctl.call_str(&["LLEN", "lw"]).int().unwrap() + ctl.call_str(&["LLEN", "la"]).int().unwrap();
            jobs as i64 - left
        }
    };
    Json::new()
        .num("jobs", jobs as f64)
        .num("secs", secs)
        .num("jobs_per_sec", jobs as f64 / secs)
        .num("push_secs", push_secs)
        .num("acked", acked as f64)
        .num("done_polls", polls as f64)
        .num("empty_polls", sh.empty_polls.load(Relaxed) as f64)
        .done()
}

fn producer(port: u16, p: usize, n: u64, batch: usize, sh: Arc<Shared>, start: Arc<Barrier>) -> f64 {
    let mut c = Conn::connect(port);
    start.wait();
    let t0 = Instant::now();
    let mut sent = 0u64;
    while sent < n {
        let k = (n - sent).min(batch as u64);
        for i in 0..k {
            let pl = payload16(p, sent + i);
            match sh.sys {
                Sys::Once => c.push(&[b"ONCE.PUSH", b"cq", &pl]),
                Sys::Streams => c.push(&[b"XADD", b"cs", b"*", b"p", &pl]),
                Sys::Lua => c.push(&[b"LPUSH", b"lw", &pl]),
            }
        }
        c.flush();
        for _ in 0..k {
            c.read().ok("push");
        }
        sent += k;
    }
    t0.elapsed().as_secs_f64()
}

fn worker(port: u16, w: usize, sh: Arc<Shared>, start: Arc<Barrier>) {
    let mut c = Conn::connect(port);
    let id = c.call_str(&["CLIENT", "ID"]).int().unwrap();
    sh.client_ids.lock().unwrap().push(id);
    let consumer = format!("w{w}");
    start.wait();
    // The job held by this worker, not yet acknowledged (id for Once/Streams, element for Lua).
    let mut held: Option<Vec<u8>> = None;
    loop {
        let stopping = sh.stop.load(Acquire);
        let all_delivered = sh.delivered.load(Acquire) >= sh.jobs;
        if held.is_some() && (stopping || all_delivered) {
            // Nothing more to fetch: a plain ack.
            let j = held.take().unwrap();
            let r = match sh.sys {
                Sys::Once => c.call(&[b"ONCE.ACK", b"cq", &j]),
                Sys::Streams => c.call(&[b"XACK", b"cs", b"g", &j]),
                Sys::Lua => c.call(&[b"EVALSHA", sh.ack_sha.as_bytes(), b"2", b"la", b"ll", &j]),
            };
            r.ok("ack");
            continue;
        }
        if stopping {
            break;
        }
        // Ack the held job (if any) and fetch the next one, in one round trip.
        let got: Option<Vec<u8>> = match sh.sys {
            Sys::Once => {
                let mut args: Vec<&[u8]> = vec![b"ONCE.RESERVE", b"cq"];
                if sh.block {
                    args.extend_from_slice(&[b"BLOCK", BLOCK_MS.as_bytes()]);
                }
                if let Some(j) = &held {
                    if sh.one_rtt {
                        args.extend_from_slice(&[b"ACK", j]);
                    } else {
                        c.call(&[b"ONCE.ACK", b"cq", j]).ok("ONCE.ACK");
                    }
                }
                c.push(&args);
                c.flush();
                held = None;
                let r = c.read().ok("ONCE.RESERVE");
                let got = r.arr().map(|jobs| jobs[0].arr().expect("job")[0].bytes().expect("job id").to_vec());
                if got.is_none() && !sh.block {
                    sh.empty_polls.fetch_add(1, Relaxed);
                    thread::sleep(Duration::from_micros(200));
                }
                got
            }
            Sys::Streams => {
                if let Some(j) = held.take() {
                    c.push(&[b"XACK", b"cs", b"g", &j]);
                    if !sh.one_rtt {
                        c.flush();
                        c.read().ok("XACK");
                    }
                }
                let pipelined_ack = c.has_pending();
                c.push(&[
                    b"XREADGROUP", b"GROUP", b"g", consumer.as_bytes(), b"COUNT", b"1", b"BLOCK",
                    BLOCK_MS.as_bytes(), b"STREAMS", b"cs", b">",
                ]);
                c.flush();
                if pipelined_ack {
                    c.read().ok("XACK");
                }
                let r = c.read().ok("XREADGROUP");
                // [[stream, [[id, [field, value]]]]]
                r.arr().map(|streams| {
                    let entries = streams[0].arr().unwrap()[1].arr().unwrap();
                    entries[0].arr().unwrap()[0].bytes().unwrap().to_vec()
                })
            }
            Sys::Lua => {
                let mut had = false;
                if let Some(j) = held.take() {
                    c.push(&[b"EVALSHA", sh.ack_sha.as_bytes(), b"2", b"la", b"ll", &j]);
                    if sh.one_rtt {
                        had = true;
                    } else {
                        c.flush();
                        c.read().ok("lua ack");
                    }
                }
                let now = unix_ms().to_string();
                c.push(&[
                    b"EVALSHA", sh.reserve_sha.as_bytes(), b"4", b"lw", b"la", b"ld", b"ll", now.as_bytes(),
                    LEASE_MS.as_bytes(),
                ]);
                c.flush();
                if had {
                    c.read().ok("lua ack");
                }
                let r = c.read().ok("lua reserve");
                let got = r.bytes().map(|b| b.to_vec());
                if got.is_none() {
                    // Scripts cannot block: poll.
                    sh.empty_polls.fetch_add(1, Relaxed);
                    thread::sleep(Duration::from_micros(200));
                }
                got
            }
        };
        if let Some(j) = got {
            sh.delivered.fetch_add(1, AcqRel);
            held = Some(j);
        }
    }
    sh.finished_workers.fetch_add(1, AcqRel);
}

// ---------------------------------------------------------------------------------------------
// load: N pipelined 16-byte pushes (for the memory figure).
// ---------------------------------------------------------------------------------------------

fn load(port: u16, o: &HashMap<String, String>) -> String {
    let system = o.get("system").cloned().unwrap_or_default();
    let jobs: u64 = opt(o, "jobs", 1_000_000);
    let batch: usize = opt(o, "batch", 1000);
    let conns: usize = opt(o, "conns", 2);
    let t0 = Instant::now();
    let hs: Vec<_> = (0..conns)
        .map(|p| {
            let system = system.clone();
            let n = jobs / conns as u64 + if (p as u64) < jobs % conns as u64 { 1 } else { 0 };
            thread::spawn(move || {
                let mut c = Conn::connect(port);
                let mut sent = 0u64;
                while sent < n {
                    let k = (n - sent).min(batch as u64);
                    for i in 0..k {
                        let pl = payload16(p, sent + i);
                        match system.as_str() {
                            "once" => c.push(&[b"ONCE.PUSH", b"mq", &pl]),
                            "list" => c.push(&[b"RPUSH", b"ml", &pl]),
                            "stream" => c.push(&[b"XADD", b"ms", b"*", b"p", &pl]),
                            s => panic!("load: unknown --system {s:?}"),
                        }
                    }
                    c.flush();
                    for _ in 0..k {
                        c.read().ok("push");
                    }
                    sent += k;
                }
            })
        })
        .collect();
    for h in hs {
        h.join().expect("load thread");
    }
    let secs = t0.elapsed().as_secs_f64();
    Json::new().num("jobs", jobs as f64).num("secs", secs).done()
}

// ---------------------------------------------------------------------------------------------
// delayed: N jobs all due at the same instant; a pinger records every RTT, a poller watches ready.
// ---------------------------------------------------------------------------------------------

struct PingLog {
    /// (send time relative to the due instant in µs, rtt in µs)
    samples: Vec<(i64, u64)>,
}

fn pct(sorted: &[u64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64
}

fn stats_json(v: &mut Vec<u64>) -> String {
    v.sort_unstable();
    let mean = if v.is_empty() { f64::NAN } else { v.iter().sum::<u64>() as f64 / v.len() as f64 };
    Json::new()
        .num("n", v.len() as f64)
        .num("mean_us", mean)
        .num("p50_us", pct(v, 50.0))
        .num("p99_us", pct(v, 99.0))
        .num("p999_us", pct(v, 99.9))
        .num("max_us", v.last().copied().map(|x| x as f64).unwrap_or(f64::NAN))
        .done()
}

fn delayed(port: u16, o: &HashMap<String, String>) -> String {
    let jobs: u64 = opt(o, "jobs", 1_000_000);
    let lead_ms: u64 = opt(o, "lead-ms", 5000);
    let batch: usize = opt(o, "batch", 1000);
    let mut c = Conn::connect(port);
    c.call_str(&["DEL", "dq", "dq-calibrate"]).ok("DEL");
    // Calibrate: how fast do delayed pushes go here? t must fall after the whole load (lead-ms is the minimum).
    let calib = (jobs / 20).max(1000);
    let far = (unix_ms() + 3_600_000).to_string();
    let tc = Instant::now();
    let mut sent = 0u64;
    while sent < calib {
        let k = (calib - sent).min(batch as u64);
        for i in 0..k {
            let pl = payload16(1, sent + i);
            c.push(&[b"ONCE.PUSH", b"dq-calibrate", &pl, b"AT", far.as_bytes()]);
        }
        c.flush();
        for _ in 0..k {
            c.read().ok("ONCE.PUSH AT");
        }
        sent += k;
    }
    let est_ms = (tc.elapsed().as_secs_f64() * 1000.0 * jobs as f64 / calib as f64) as u64;
    c.call_str(&["DEL", "dq-calibrate"]).ok("DEL");
    thread::sleep(Duration::from_millis(100));
    let lead_ms = lead_ms.max(est_ms * 2 + 1500);
    let due_unix = unix_ms() + lead_ms;
    // The due instant on the monotonic clock.
    let due_inst = Instant::now() + Duration::from_millis(due_unix - unix_ms());
    let rel_us = move |t: Instant| -> i64 {
        if t >= due_inst {
            (t - due_inst).as_micros() as i64
        } else {
            -((due_inst - t).as_micros() as i64)
        }
    };

    let stop = Arc::new(AtomicBool::new(false));
    let pinger = {
        let stop = stop.clone();
        thread::spawn(move || {
            let mut p = Conn::connect(port);
            let mut log = PingLog { samples: Vec::with_capacity(1 << 20) };
            while !stop.load(Acquire) {
                let t = Instant::now();
                p.push(&[b"PING"]);
                p.flush();
                p.read().ok("PING");
                log.samples.push((rel_us(t), t.elapsed().as_micros() as u64));
            }
            log
        })
    };

    let at = due_unix.to_string();
    let t_load = Instant::now();
    let mut sent = 0u64;
    while sent < jobs {
        let k = (jobs - sent).min(batch as u64);
        for i in 0..k {
            let pl = payload16(0, sent + i);
            c.push(&[b"ONCE.PUSH", b"dq", &pl, b"AT", at.as_bytes()]);
        }
        c.flush();
        for _ in 0..k {
            c.read().ok("ONCE.PUSH AT");
        }
        sent += k;
    }
    let load_secs = t_load.elapsed().as_secs_f64();
    let load_end_rel = rel_us(Instant::now());
    let ready_at_load = c.call_str(&["ONCE.STATS", "dq"]).ok("ONCE.STATS").field("ready").and_then(|v| v.int()).unwrap_or(-1);

    // Poll ready every ms from shortly before the due instant.
    let mut first_ready_us: Option<i64> = None;
    let mut all_ready_us: Option<i64> = None;
    let mut polls = 0u64;
    let give_up = due_inst + Duration::from_secs(60);
    loop {
        let now = Instant::now();
        if now > give_up {
            break;
        }
        if now + Duration::from_millis(50) < due_inst {
            thread::sleep(Duration::from_millis(10));
            continue;
        }
        let r = c.call_str(&["ONCE.STATS", "dq"]).ok("ONCE.STATS");
        polls += 1;
        let ready = r.field("ready").and_then(|v| v.int()).unwrap_or(0);
        let t = rel_us(Instant::now());
        if ready > 0 && first_ready_us.is_none() {
            first_ready_us = Some(t);
        }
        if ready as u64 >= jobs {
            all_ready_us = Some(t);
            break;
        }
        thread::sleep(Duration::from_millis(1));
    }
    // Keep pinging a little after the promotion ends.
    thread::sleep(Duration::from_millis(300));
    stop.store(true, Release);
    let log = pinger.join().expect("pinger");
    let end_rel = all_ready_us.unwrap_or(60_000_000) + 300_000;
    // Idle window: after the load finished (+100 ms) until 100 ms before the due instant.
    let mut idle: Vec<u64> =
        log.samples.iter().filter(|(t, _)| *t > load_end_rel + 100_000 && *t < -100_000).map(|s| s.1).collect();
    // Promotion window: from 100 ms before due until 300 ms after all were ready.
    let mut promo: Vec<u64> = log.samples.iter().filter(|(t, _)| *t >= -100_000 && *t <= end_rel).map(|s| s.1).collect();
    // The worst RTT, where it happened.
    let worst = log
        .samples
        .iter()
        .filter(|(t, _)| *t >= -100_000 && *t <= end_rel)
        .max_by_key(|s| s.1)
        .map(|s| s.0)
        .unwrap_or(0);
    let opt_num = |v: Option<i64>| v.map(|x| x as f64 / 1000.0).unwrap_or(f64::NAN);
    Json::new()
        .num("jobs", jobs as f64)
        .num("lead_ms", lead_ms as f64)
        .num("estimated_load_ms", est_ms as f64)
        .num("load_secs", load_secs)
        .num("load_end_ms_before_due", -(load_end_rel as f64) / 1000.0)
        .num("ready_at_load", ready_at_load as f64)
        .num("first_ready_ms", opt_num(first_ready_us))
        .num("all_ready_ms", opt_num(all_ready_us))
        .num("polls", polls as f64)
        .num("worst_ping_at_ms", worst as f64 / 1000.0)
        .raw("ping_idle", stats_json(&mut idle))
        .raw("ping_promotion", stats_json(&mut promo))
        .done()
}

// ---------------------------------------------------------------------------------------------
// wakeup: one worker blocked forever; a producer pushes a job carrying its send time.
// ---------------------------------------------------------------------------------------------

fn wakeup(port: u16, o: &HashMap<String, String>) -> String {
    let system = o.get("system").cloned().unwrap_or_default();
    let samples: usize = opt(o, "samples", 2000);
    let warmup: usize = opt(o, "warmup", 100);
    let gap_us: u64 = opt(o, "gap-us", 1000);
    let total = samples + warmup;
    let base = Instant::now();
    let mut ctl = Conn::connect(port);
    ctl.call_str(&["DEL", "wq", "wl", "ws"]).ok("DEL");
    if system == "stream" {
        ctl.call_str(&["XGROUP", "CREATE", "ws", "g", "$", "MKSTREAM"]).ok("XGROUP");
    }
    let (tx, rx) = mpsc::channel::<()>();
    let sys_w = system.clone();
    let worker = thread::spawn(move || {
        let mut c = Conn::connect(port);
        let mut lat = Vec::with_capacity(total);
        let mut held: Option<Vec<u8>> = None;
        for i in 0..total {
            // Send the blocking fetch (acking the previous job on the way), then tell the producer.
            match sys_w.as_str() {
                "once" => match &held {
                    Some(j) => c.push(&[b"ONCE.RESERVE", b"wq", b"BLOCK", b"0", b"ACK", j]),
                    None => c.push(&[b"ONCE.RESERVE", b"wq", b"BLOCK", b"0"]),
                },
                "list" => c.push(&[b"BLPOP", b"wl", b"0"]),
                "stream" => {
                    if let Some(j) = &held {
                        c.push(&[b"XACK", b"ws", b"g", j]);
                    }
                    c.push(&[
                        b"XREADGROUP", b"GROUP", b"g", b"w", b"COUNT", b"1", b"BLOCK", b"0", b"STREAMS", b"ws", b">",
                    ]);
                }
                s => panic!("wakeup: unknown --system {s:?}"),
            }
            let acked_stream = sys_w == "stream" && held.is_some();
            c.flush();
            tx.send(()).unwrap();
            if acked_stream {
                c.read().ok("XACK");
            }
            let r = c.read().ok("blocking fetch");
            let t = base.elapsed().as_nanos() as u64;
            let (id, payload) = match sys_w.as_str() {
                "once" => {
                    let j = r.arr().expect("job")[0].arr().expect("job").to_vec();
                    (j[0].bytes().unwrap().to_vec(), j[1].bytes().unwrap().to_vec())
                }
                "list" => (vec![], r.arr().unwrap()[1].bytes().unwrap().to_vec()),
                _ => {
                    let e = r.arr().unwrap()[0].arr().unwrap()[1].arr().unwrap()[0].arr().unwrap().to_vec();
                    (e[0].bytes().unwrap().to_vec(), e[1].arr().unwrap()[1].bytes().unwrap().to_vec())
                }
            };
            let sent: u64 = std::str::from_utf8(&payload).unwrap().parse().unwrap();
            if i >= warmup {
                lat.push((t - sent) / 1000);
            }
            held = if id.is_empty() { None } else { Some(id) };
        }
        if let Some(j) = held {
            match sys_w.as_str() {
                "once" => c.call(&[b"ONCE.ACK", b"wq", &j]).ok("ONCE.ACK"),
                _ => c.call(&[b"XACK", b"ws", b"g", &j]).ok("XACK"),
            };
        }
        lat
    });
    let mut p = Conn::connect(port);
    for _ in 0..total {
        rx.recv().expect("worker ready");
        // Let the fetch reach the server and block there.
        thread::sleep(Duration::from_micros(gap_us));
        let ts = format!("{:016}", base.elapsed().as_nanos() as u64);
        let r = match system.as_str() {
            "once" => p.call(&[b"ONCE.PUSH", b"wq", ts.as_bytes()]),
            "list" => p.call(&[b"RPUSH", b"wl", ts.as_bytes()]),
            _ => p.call(&[b"XADD", b"ws", b"*", b"p", ts.as_bytes()]),
        };
        r.ok("push");
    }
    let mut lat = worker.join().expect("worker");
    stats_json(&mut lat)
}
