//! Figures for the live daemon, printed, never asserted (machines are noisy):
//!
//!   cargo run --example daemon_figures -- commits DIR N
//!       N one-row commits through the sink with upkeep; commit latency per
//!       1,000-commit window (p50/p99/max), what compaction cost, and the
//!       CPU per commit (RISKTAIL_FIGURES_NO_UPKEEP=1: without the upkeep).
//!   cargo run --example daemon_figures -- live BIN DIR RATE SECONDS INTERVAL_MS
//!       runs `BIN run` on DIR (keeps an existing table), writes RATE lines/s
//!       (1 in 50 a risk line) for SECONDS, polls the table every 20 ms and
//!       prints line-written → row-visible latency p50/p99/max, and the CPU
//!       the daemon and a `tail -F` of the same file used per line written.
//!       RISKTAIL_FIGURES_ROTATE_MS=N rotates the file every N ms the way
//!       RotatingFileHandler does.
//!   cargo run --example daemon_figures -- idle BIN DIR SECONDS
//!       runs `BIN run` with files open and nothing written; CPU and RSS.
//!   cargo run --example daemon_figures -- writers URI N SECONDS [INTERVAL_MS]
//!       N writers (one source each, each its own table handle and thread)
//!       commit one-row commits, one every INTERVAL_MS (a daemon's flush;
//!       default 0: back to back), each followed by the upkeep as in the
//!       daemon, to the table at URI (an
//!       object store configured through the environment, e.g. AWS_*) for
//!       SECONDS; commit latency p50/p99/max and commits per second, per
//!       writer and in all.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chrono::Utc;
use deltalake::arrow::array::{Array, AsArray};
use deltalake::arrow::datatypes::Float64Type;
use risktail::config::Config;
use risktail::event::EventRows;
use risktail::parse::{LineRef, Outcome, SourceState};
use risktail::sink::DeltaSink;
use risktail::source::fingerprint::FileId;

fn config(dir: &Path, interval_ms: u64) -> PathBuf {
    std::fs::create_dir_all(dir.join("logs")).expect("logs dir");
    let p = dir.join("risktail.toml");
    std::fs::write(
        &p,
        format!("[table]\nuri = \"lake/risk_events\"\n[flush]\ninterval_ms = {interval_ms}\n[[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\n"),
    )
    .expect("config");
    p
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() {
        return f64::NAN;
    }
    v[((v.len() as f64 - 1.0) * p).round() as usize]
}

/// One-row commits through the sink, as a daemon's flush makes them: a risk
/// line parsed, committed with its file's offset, then the upkeep.
struct OneRowCommits {
    cfg: Config,
    parser: risktail::parse::SourceParser,
    rt: tokio::runtime::Runtime,
    sink: DeltaSink,
    file: FileId,
    state: SourceState,
    offset: u64,
    i: u64,
}

impl OneRowCommits {
    /// For the (only) source of `cfg`, into a file named by `head`.
    fn new(cfg: Config, head: &str) -> OneRowCommits {
        let parser = cfg.parser(&cfg.sources[0]);
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let sink = rt
            .block_on(DeltaSink::open(&cfg.table_uri, &cfg.quarantine_uri))
            .expect("sink");
        let file = FileId::from_head(head.as_bytes());
        let offset = rt
            .block_on(sink.committed(&cfg.sources[0].name, file))
            .expect("committed")
            .events;
        OneRowCommits {
            cfg,
            parser,
            rt,
            sink,
            file,
            state: SourceState::default(),
            offset,
            i: 0,
        }
    }

    /// One commit; returns its latency in ms.
    fn commit(&mut self) -> f64 {
        let line = format!(
            "2026-01-28 10:00:00,000 - v6.risk - WARNING - Entry REJECTED by portfolio limits: Position count {} would exceed limit 10\n",
            self.i
        );
        self.i += 1;
        let mut events = EventRows::default();
        let Outcome::Event = self.parser.parse_line(
            &mut self.state,
            LineRef {
                file: self.file,
                path: "x.log",
                offset: self.offset,
                bytes: line.as_bytes(),
                keyword: false,
            },
            Utc::now(),
            &mut events,
        ) else {
            panic!("not an event")
        };
        self.offset += line.len() as u64;
        let source = &self.cfg.sources[0].name;
        let t = Instant::now();
        self.rt
            .block_on(self.sink.commit(
                source,
                &[(self.file, self.offset)],
                &events,
                &[],
                &self.state,
            ))
            .expect("commit");
        t.elapsed().as_secs_f64() * 1000.0
    }

    /// The daemon's upkeep after a commit; what compaction did, if it ran.
    fn upkeep(
        &mut self,
    ) -> Result<Option<risktail::sink::upkeep::CompactReport>, risktail::sink::SinkError> {
        self.rt.block_on(self.sink.upkeep())
    }
}

fn commits(dir: &Path, n: usize) {
    let cfg = Config::load(&config(dir, 1000)).expect("config");
    let mut c = OneRowCommits::new(cfg, "daemon_figures commits\n");
    let mut window = Vec::new();
    let mut upkeep_ms = Vec::new();
    println!(
        "{:>12} {:>10} {:>10} {:>10} {:>10}",
        "commits", "p50 ms", "p99 ms", "max ms", "files"
    );
    // CPU of this process, all threads (delta-rs's blocking pool included).
    let upkeep = std::env::var_os("RISKTAIL_FIGURES_NO_UPKEEP").is_none_or(|v| v.is_empty());
    let cpu0 = cpu_seconds(std::process::id());
    for i in 0..n {
        window.push(c.commit());
        let t = Instant::now();
        if upkeep
            && let Some(r) = c.upkeep().expect("upkeep")
            && r.files_removed > 0
        {
            upkeep_ms.push(t.elapsed().as_secs_f64() * 1000.0);
        }
        if (i + 1) % 1000 == 0 {
            let files =
                c.rt.block_on(risktail::sink::read::data_files(&c.cfg.table_uri))
                    .map(|f| f.len())
                    .unwrap_or(0);
            let (p50, p99, max) = (
                pct(&mut window, 0.5),
                pct(&mut window, 0.99),
                pct(&mut window, 1.0),
            );
            println!(
                "{:>12} {p50:>10.1} {p99:>10.1} {max:>10.1} {files:>10}",
                i + 1
            );
            window.clear();
        }
    }
    let (p50, p99, max) = (
        pct(&mut upkeep_ms, 0.5),
        pct(&mut upkeep_ms, 0.99),
        pct(&mut upkeep_ms, 1.0),
    );
    println!(
        "compactions: {}  p50 {p50:.0} ms  p99 {p99:.0} ms  max {max:.0} ms",
        upkeep_ms.len()
    );
    let cpu = cpu_seconds(std::process::id()) - cpu0;
    println!(
        "CPU per commit: {:.2} ms ({cpu:.2} s for {n} commits, {})",
        cpu * 1000.0 / n as f64,
        if upkeep {
            "upkeep included"
        } else {
            "no upkeep (RISKTAIL_FIGURES_NO_UPKEEP)"
        }
    );
}

/// Starts `BIN run`; with `RISKTAIL_DAEMON_CPU=N` the daemon alone is pinned
/// to core N (the writer and the poller that measure it run elsewhere, as the
/// engine would).
fn start(bin: &str, dir: &Path) -> Child {
    let mut cmd = match std::env::var("RISKTAIL_DAEMON_CPU") {
        Ok(cpu) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpu, bin]);
            c
        }
        Err(_) => Command::new(bin),
    };
    cmd.arg("run")
        .current_dir(dir)
        .env("RISKTAIL_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon starts")
}

/// Rotates `log` as RotatingFileHandler does and opens the new file.
fn rotate(log: &Path) -> std::fs::File {
    let name = |k: u32| PathBuf::from(format!("{}.{k}", log.display()));
    let _ = std::fs::remove_file(name(5));
    for k in (1..5).rev() {
        let _ = std::fs::rename(name(k), name(k + 1));
    }
    std::fs::rename(log, name(1)).expect("rotate");
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(log)
        .expect("new log")
}

/// CPU seconds (user + system) a process has used so far, from /proc.
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name (which may hold spaces) start at ')'.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 of stat(5); here indices 11 and 12.
    (ticks(11) + ticks(12)) / 100.0
}

fn stop(mut child: Child) {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
}

fn live(bin: &str, dir: &Path, rate: u64, seconds: u64, interval_ms: u64) {
    config(dir, interval_ms);
    let log = dir.join("logs/engine.log");
    let uri = dir.join("lake/risk_events").to_string_lossy().into_owned();
    let child = start(bin, dir);
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log");
    // The yardstick: `tail -F` following the same file, in the same run.
    let tail = Command::new("tail")
        .args(["-F", "-n", "0"])
        .arg(&log)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("tail -F");
    std::thread::sleep(Duration::from_secs(2));
    let (cpu0, tail0) = (cpu_seconds(child.id()), cpu_seconds(tail.id()));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("rt");
    let before: usize = rt
        .block_on(risktail::sink::read::event_ids(&uri))
        .map(|v| v.len())
        .unwrap_or(0);
    // Poller: new data files every 20 ms; the risk lines carry their sequence
    // number in current_value.
    let stop_flag = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let flag = stop_flag.clone();
    let uri2 = uri.clone();
    let base = 1_000_000_000f64;
    let poller = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("rt");
        let mut seen_files: HashSet<String> = rt
            .block_on(risktail::sink::read::data_files(&uri2))
            .unwrap_or_default()
            .into_iter()
            .collect();
        let mut visible: HashMap<u64, Instant> = HashMap::new();
        let mut quiet_since: Option<Instant> = None;
        loop {
            let files = rt
                .block_on(risktail::sink::read::data_files(&uri2))
                .unwrap_or_default();
            let new: Vec<String> = files
                .into_iter()
                .filter(|f| !seen_files.contains(f))
                .collect();
            let now = Instant::now();
            if let Ok(batches) = risktail::sink::read::read_columns(&new, &["current_value"]) {
                for b in batches {
                    let c = b.column(0).as_primitive::<Float64Type>();
                    for i in 0..c.len() {
                        if !c.is_null(i) && c.value(i) >= base {
                            visible.entry((c.value(i) - base) as u64).or_insert(now);
                        }
                    }
                }
            }
            seen_files.extend(new);
            if flag.load(std::sync::atomic::Ordering::Relaxed) {
                let q = *quiet_since.get_or_insert(now);
                if q.elapsed() > Duration::from_secs(3) {
                    return visible;
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    });
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log");
    let mut written: HashMap<u64, Instant> = HashMap::new();
    let t0 = Instant::now();
    let total = rate * seconds;
    let mut buf = String::new();
    // RISKTAIL_FIGURES_ROTATE_MS=N: rotate like RotatingFileHandler every N ms
    // (engine.log.k -> .k+1, engine.log -> .1, a new engine.log; 5 kept).
    let rotate_every = std::env::var("RISKTAIL_FIGURES_ROTATE_MS")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .map(Duration::from_millis);
    let mut last_rotation = Instant::now();
    let mut rotations = 0u32;
    for i in 0..total {
        if let Some(every) = rotate_every
            && last_rotation.elapsed() >= every
        {
            f.write_all(buf.as_bytes()).expect("write");
            buf.clear();
            f = rotate(&log);
            last_rotation = Instant::now();
            rotations += 1;
        }
        let due = t0 + Duration::from_secs_f64(i as f64 / rate as f64);
        if let Some(w) = due.checked_duration_since(Instant::now()) {
            if !buf.is_empty() {
                f.write_all(buf.as_bytes()).expect("write");
                buf.clear();
            }
            std::thread::sleep(w);
        }
        let ts = Utc::now().format("%Y-%m-%d %H:%M:%S,%3f");
        if i % 50 == 0 {
            buf.push_str(&format!("{ts} - v6.risk.portfolio_limits - WARNING - Entry REJECTED by portfolio limits: Position count {} would exceed limit 10\n", base as u64 + i));
            f.write_all(buf.as_bytes()).expect("write");
            buf.clear();
            written.insert(i, Instant::now());
        } else {
            buf.push_str(&format!(
                "{ts} - v6.feed - DEBUG - quote SPY bid=2.50 ask=2.55 seq={i}\n"
            ));
        }
    }
    f.write_all(buf.as_bytes()).expect("write");
    let elapsed = t0.elapsed().as_secs_f64();
    stop_flag.store(true, std::sync::atomic::Ordering::Relaxed);
    let visible = poller.join().expect("poller");
    let cpu = cpu_seconds(child.id()) - cpu0;
    let tail_cpu = cpu_seconds(tail.id()) - tail0;
    stop(child);
    stop(tail);
    let mut lat: Vec<f64> = written
        .iter()
        .filter_map(|(seq, w)| {
            visible
                .get(seq)
                .map(|v| v.saturating_duration_since(*w).as_secs_f64() * 1000.0)
        })
        .collect();
    let missing = written.len() - lat.len();
    let (p50, p99, max) = (pct(&mut lat, 0.5), pct(&mut lat, 0.99), pct(&mut lat, 1.0));
    println!(
        "rate {:.0} lines/s for {elapsed:.1} s, flush interval {interval_ms} ms, table had {before} rows: {} risk lines, latency p50 {p50:.0} ms, p99 {p99:.0} ms, max {max:.0} ms, not visible {missing}; \
         CPU risktail {cpu:.2} s ({:.1} us/line written, {:.1} % of a core), tail -F {tail_cpu:.2} s ({:.1} us/line), ratio {:.1}x; {rotations} rotations",
        total as f64 / elapsed,
        written.len(),
        cpu * 1e6 / total as f64,
        cpu * 100.0 / elapsed,
        tail_cpu * 1e6 / total as f64,
        cpu / tail_cpu.max(0.01),
    );
}

fn proc_ticks(pid: u32) -> u64 {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = s.rsplit(')').next().unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    f.get(11).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|x| x.parse::<u64>().ok()).unwrap_or(0)
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("VmRSS:")
                .and_then(|v| v.split_whitespace().next()?.parse().ok())
        })
        .unwrap_or(0)
}

fn idle(bin: &str, dir: &Path, seconds: u64) {
    config(dir, 1000);
    let log = dir.join("logs/engine.log");
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("log");
    for i in 0..200 {
        writeln!(f, "2026-01-28 10:00:00,000 - v6.risk - WARNING - Entry REJECTED by portfolio limits: Position count {i} would exceed limit 10").expect("write");
    }
    let child = start(bin, dir);
    std::thread::sleep(Duration::from_secs(5));
    let pid = child.id();
    let (t0, r0) = (proc_ticks(pid), rss_kb(pid));
    let mut rss_max = r0;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        rss_max = rss_max.max(rss_kb(pid));
    }
    let (t1, r1) = (proc_ticks(pid), rss_kb(pid));
    let secs = start.elapsed().as_secs_f64();
    let fds = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|d| d.count())
        .unwrap_or(0);
    stop(child);
    println!(
        "idle {secs:.0} s with files open: CPU {} ticks = {:.3} % of a core; RSS {} → {} kB (max {}); {fds} fds",
        t1 - t0,
        (t1 - t0) as f64 / 100.0 / secs * 100.0,
        r0,
        r1,
        rss_max
    );
}

/// One writer of `writers`: one-row commits until `until`, one every
/// `every` (back to back when zero); latencies in ms.
fn one_writer(uri: &str, k: usize, until: Instant, every: Duration) -> Vec<f64> {
    let text = format!(
        "[table]\nuri = \"{uri}\"\n[[source]]\nname = \"w{k}\"\npaths = [\"x.log\"]\nenvelope = \"python\"\n"
    );
    let cfg = Config::from_str(Path::new("/tmp/risktail.toml"), &text).expect("config");
    let mut c = OneRowCommits::new(cfg, &format!("writer {k}\n"));
    let mut ms = Vec::new();
    // Writers start spread over one interval, as independent daemons do.
    let mut next = Instant::now() + every.mul_f64((k % 97) as f64 / 97.0);
    while Instant::now() < until {
        if let Some(wait) = next.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        next += every;
        ms.push(c.commit());
        // As a daemon does: compaction and log cleanup every 50 commits
        // (RISKTAIL_FIGURES_NO_UPKEEP=1 leaves it out, to tell its share).
        if std::env::var_os("RISKTAIL_FIGURES_NO_UPKEEP").is_some_and(|v| !v.is_empty()) {
            continue;
        }
        if let Err(e) = c.upkeep() {
            eprintln!("writer {k}: upkeep: {e}");
        }
    }
    ms
}

/// N writers as N processes, as independent daemons are.
fn writers(uri: &str, n: usize, seconds: u64, every: Duration) {
    // Create the table first, so the figures are of appends, not of the race.
    drop(one_writer(uri, 999, Instant::now(), Duration::ZERO));
    let me = std::env::current_exe().expect("own path");
    let children: Vec<_> = (0..n)
        .map(|k| {
            Command::new(&me)
                .args([
                    "writer-one",
                    uri,
                    &k.to_string(),
                    &seconds.to_string(),
                    &every.as_millis().to_string(),
                ])
                .stdout(Stdio::piped())
                .spawn()
                .expect("writer process")
        })
        .collect();
    let mut all: Vec<f64> = Vec::new();
    for c in children {
        let out = c.wait_with_output().expect("writer process ends");
        all.extend(
            String::from_utf8_lossy(&out.stdout)
                .split_whitespace()
                .filter_map(|v| v.parse::<f64>().ok()),
        );
    }
    let commits = all.len();
    let (p50, p99, max) = (pct(&mut all, 0.5), pct(&mut all, 0.99), pct(&mut all, 1.0));
    println!(
        "writers {n:>2} (every {:>4} ms): {commits:>6} commits in {seconds} s = {:>7.1}/s in all, {:>6.1}/s per writer; latency p50 {p50:.1} ms, p99 {p99:.1} ms, max {max:.1} ms",
        every.as_millis(),
        commits as f64 / seconds as f64,
        commits as f64 / seconds as f64 / n as f64
    );
}

fn main() {
    if let Ok(filter) = tracing_subscriber::EnvFilter::try_from_env("RISKTAIL_LOG") {
        tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_writer(std::io::stderr)
            .init();
    }
    let a: Vec<String> = std::env::args().collect();
    match a.get(1).map(String::as_str) {
        Some("writer-one") => {
            let until = Instant::now() + Duration::from_secs(a[4].parse().expect("seconds"));
            let every = Duration::from_millis(a[5].parse().expect("interval ms"));
            let ms = one_writer(&a[2], a[3].parse().expect("k"), until, every);
            let text: Vec<String> = ms.iter().map(|m| format!("{m:.3}")).collect();
            println!("{}", text.join(" "));
        }
        Some("writers") => writers(
            &a[2],
            a[3].parse().expect("N"),
            a[4].parse().expect("seconds"),
            Duration::from_millis(a.get(5).map_or(0, |m| m.parse().expect("interval ms"))),
        ),
        Some("commits") => commits(Path::new(&a[2]), a[3].parse().expect("N")),
        Some("live") => live(
            &a[2],
            Path::new(&a[3]),
            a[4].parse().expect("rate"),
            a[5].parse().expect("seconds"),
            a[6].parse().expect("interval"),
        ),
        Some("idle") => idle(&a[2], Path::new(&a[3]), a[4].parse().expect("seconds")),
        _ => eprintln!("usage: see the doc comment of examples/daemon_figures.rs"),
    }
}
