//! A deterministic generator of engine logs for benchmarks: the dialect of
//! docs/DIALECT.md in any envelope, at any size, with a chosen
//! share of risk lines among noise that looks like a real engine (quotes,
//! order acks, fills, heartbeats, tracebacks, and the near misses that must
//! not become events).
//!
//!   cargo run --release --example loggen -- --out FILE [--size 1GiB]
//!       [--risk-every 50] [--envelope python|loguru|json] [--seed 1]
//!   cargo run --release --example loggen -- --out FILE --dense 1000000
//!       (risk lines only: that many of them)
//!
//! Prints to stderr what it wrote: lines, bytes and risk lines per event type,
//! so a benchmark can check that every one of them became a row.

mod generator;

use generator::{Envelope, Options};
use std::io::{BufWriter, Write};

fn parse_size(s: &str) -> Option<u64> {
    let s = s.trim();
    let (num, mult) = [
        ("GiB", 1u64 << 30),
        ("MiB", 1 << 20),
        ("KiB", 1 << 10),
        ("G", 1 << 30),
        ("M", 1 << 20),
        ("K", 1 << 10),
    ]
    .iter()
    .find_map(|(suf, m)| s.strip_suffix(suf).map(|n| (n, *m)))
    .unwrap_or((s, 1));
    num.trim()
        .parse::<f64>()
        .ok()
        .map(|n| (n * mult as f64) as u64)
}

fn main() -> std::io::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let get = |k: &str| {
        args.iter()
            .position(|a| a == k)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    let usage = "usage: loggen --out FILE [--size 1GiB | --dense N] [--risk-every 50] [--envelope python|loguru|json] [--seed 1]";
    let Some(out_path) = get("--out") else {
        eprintln!("{usage}");
        std::process::exit(2);
    };
    let size = get("--size")
        .map(|s| parse_size(&s))
        .unwrap_or(Some(1 << 30));
    let dense: Option<u64> = get("--dense").and_then(|s| s.parse().ok());
    let every: u64 = get("--risk-every")
        .and_then(|s| s.parse().ok())
        .unwrap_or(50)
        .max(1);
    let seed: u64 = get("--seed").and_then(|s| s.parse().ok()).unwrap_or(1);
    let env = match get("--envelope").as_deref().unwrap_or("python") {
        "python" => Envelope::Python,
        "loguru" => Envelope::Loguru,
        "json" => Envelope::Json,
        other => {
            eprintln!("loggen: unknown envelope {other:?}\n{usage}");
            std::process::exit(2);
        }
    };
    let Some(size) = size else {
        eprintln!("loggen: --size: not a size (e.g. 1GiB, 200MiB)");
        std::process::exit(2);
    };
    let opts = Options {
        size,
        dense,
        risk_every: every,
        envelope: env,
        seed,
    };
    let mut out = BufWriter::with_capacity(1 << 20, std::fs::File::create(&out_path)?);
    let started = std::time::Instant::now();
    let s = generator::generate(&mut out, &opts)?;
    out.flush()?;
    let mut summary = serde_json::Map::new();
    summary.insert("lines".into(), s.lines.into());
    summary.insert("bytes".into(), s.bytes.into());
    summary.insert("risk_lines".into(), s.by_type.values().sum::<u64>().into());
    summary.insert(
        "by_type".into(),
        serde_json::to_value(&s.by_type).unwrap_or_default(),
    );
    summary.insert("seconds".into(), started.elapsed().as_secs_f64().into());
    eprintln!("{}", serde_json::Value::Object(summary));
    Ok(())
}
