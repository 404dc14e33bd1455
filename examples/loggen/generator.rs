//! The generator itself, shared by the `loggen` example (the benchmark's
//! input) and the integration test that checks every line it writes parses
//! into the event it claims.

use std::collections::BTreeMap;
use std::io::Write;

/// splitmix64: small, fast, and the same numbers on every machine.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn uniform(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (self.next() >> 11) as f64 / (1u64 << 53) as f64 * (hi - lo)
    }
    fn pick<'a>(&mut self, v: &[&'a str]) -> &'a str {
        v[self.below(v.len() as u64) as usize]
    }
}

/// Which envelope to write.
#[derive(Clone, Copy, PartialEq, Debug)]
pub enum Envelope {
    Python,
    Loguru,
    Json,
}

/// What to write.
#[derive(Debug, Clone)]
pub struct Options {
    /// Stop after this many bytes (mixed mode).
    pub size: u64,
    /// Risk lines only, this many (dense mode).
    pub dense: Option<u64>,
    /// One risk line in this many records.
    pub risk_every: u64,
    /// The envelope.
    pub envelope: Envelope,
    /// The seed.
    pub seed: u64,
}

/// What was written.
#[derive(Debug, Clone, Default)]
pub struct Summary {
    /// Physical lines.
    pub lines: u64,
    /// Bytes.
    pub bytes: u64,
    /// Risk lines per event type.
    pub by_type: BTreeMap<&'static str, u64>,
}

/// Writes a log per `o` to `out`.
pub fn generate(out: &mut impl Write, o: &Options) -> std::io::Result<Summary> {
    let start = chrono::NaiveDate::from_ymd_opt(2026, 1, 26)
        .and_then(|d| d.and_hms_opt(9, 25, 0))
        .map_or(0, |t| t.and_utc().timestamp_millis());
    let mut g = Gen {
        rng: Rng(o.seed),
        env: o.envelope,
        t_ms: start,
        counts: BTreeMap::new(),
        lines: 0,
        bytes: 0,
        breaker: "CLOSED",
        failures: 0,
        stop: None,
    };
    g.risk(
        out,
        "v6.risk.circuit_breaker",
        "INFO",
        "circuit_breaker_init",
        "Circuit breaker initialized: state=CLOSED, failure_threshold=5, window=300s, cooldown=60s",
    )?;
    match o.dense {
        Some(n) => {
            while g.counts.values().sum::<u64>() < n {
                g.risk_line(out)?;
            }
        }
        None => {
            while g.bytes < o.size {
                if g.rng.below(o.risk_every.max(1)) == 0 {
                    g.risk_line(out)?;
                } else {
                    g.noise(out)?;
                }
            }
        }
    }
    Ok(Summary {
        lines: g.lines,
        bytes: g.bytes,
        by_type: g.counts,
    })
}

struct Gen {
    rng: Rng,
    env: Envelope,
    /// Milliseconds since the epoch, local wall clock (no zone).
    t_ms: i64,
    counts: BTreeMap<&'static str, u64>,
    lines: u64,
    bytes: u64,
    breaker: &'static str,
    failures: u32,
    stop: Option<(String, String, f64, f64)>,
}

const SYMS: [&str; 6] = ["SPY", "QQQ", "IWM", "AAPL", "TSLA", "NVDA"];

impl Gen {
    fn stamp(&self) -> (String, u32) {
        let secs = self.t_ms.div_euclid(1000);
        let ms = self.t_ms.rem_euclid(1000) as u32;
        let dt = chrono::DateTime::from_timestamp(secs, 0)
            .unwrap_or_default()
            .naive_utc();
        (dt.format("%Y-%m-%d %H:%M:%S").to_string(), ms)
    }

    /// One record (possibly several physical lines for a traceback).
    fn record(
        &mut self,
        out: &mut impl Write,
        logger: &str,
        level: &str,
        msg: &str,
    ) -> std::io::Result<()> {
        let (date, ms) = self.stamp();
        let line = match self.env {
            Envelope::Python => format!("{date},{ms:03} - {logger} - {level} - {msg}\n"),
            Envelope::Loguru => {
                let func = logger.rsplit('.').next().unwrap_or("main");
                format!(
                    "{date}.{ms:03} | {level:<8} | {logger}:{func}:{} - {msg}\n",
                    40 + msg.len() % 200
                )
            }
            Envelope::Json => {
                // python-json-logger puts a traceback in `exc_info`, not in the message.
                let (m, exc) = msg.split_once('\n').unwrap_or((msg, ""));
                let m = serde_json::to_string(m).unwrap_or_default();
                let exc = if exc.is_empty() {
                    String::new()
                } else {
                    format!(
                        ", \"exc_info\": {}",
                        serde_json::to_string(exc).unwrap_or_default()
                    )
                };
                format!(
                    "{{\"asctime\": \"{date},{ms:03}\", \"name\": \"{logger}\", \"levelname\": \"{level}\", \"message\": {m}, \"execution_id\": null{exc}}}\n"
                )
            }
        };
        out.write_all(line.as_bytes())?;
        self.lines += line.matches('\n').count() as u64;
        self.bytes += line.len() as u64;
        // A busy engine: 1–40 ms between records.
        self.t_ms += 1 + self.rng.below(40) as i64;
        Ok(())
    }

    fn risk(
        &mut self,
        out: &mut impl Write,
        logger: &str,
        level: &str,
        kind: &'static str,
        msg: &str,
    ) -> std::io::Result<()> {
        *self.counts.entry(kind).or_default() += 1;
        self.record(out, logger, level, msg)
    }

    fn noise(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        let sym = self.rng.pick(&SYMS);
        let r = self.rng.below(1000);
        let (bid, ask) = (self.rng.uniform(1.0, 5.0), self.rng.uniform(1.0, 5.0));
        let msg = match r {
            0..550 => {
                let (b, a) = (self.rng.below(500), self.rng.below(500));
                let m = format!("quote {sym} bid={bid:.2} ask={ask:.2} size={b}x{a}");
                return self.record(out, "v6.feed", "DEBUG", &m);
            }
            550..700 => format!(
                "order ack id={} {sym} status=NEW side=BUY qty={}",
                self.rng.below(1_000_000),
                1 + self.rng.below(10)
            ),
            700..800 => format!(
                "fill {sym} qty={} @ {bid:.2} venue=CBOE",
                1 + self.rng.below(10)
            ),
            800..850 => "heartbeat ok latency_ms=3".into(),
            850..900 => format!(
                "position {sym} qty={} avg={ask:.2} pnl={:.2}",
                self.rng.below(20),
                self.rng.uniform(-500.0, 500.0)
            ),
            900..910 => {
                // A traceback that mentions the breaker: continuation lines, never events.
                let m = "Order submission failed\nTraceback (most recent call last):\n  File \"/opt/engine/v6/execution.py\", line 41, in submit\n    raise RuntimeError(\"Circuit breaker OPENED: refusing order\")\nRuntimeError: Circuit breaker OPENED: refusing order";
                return self.record(out, "v6.execution", "ERROR", m);
            }
            910..930 => format!("Market circuit breaker halt for {sym} (LULD band breach)"),
            930..940 => "Trailing stop configuration loaded: activation=2.0%, trailing=1.5%".into(),
            940..960 => format!(
                "Decision CLOSE for {sym}: Trailing stop triggered at {bid:.2} (peak {ask:.2})"
            ),
            _ => format!(
                "strategy tick {sym} iv={:.3} delta={:.3} gamma={:.4}",
                self.rng.uniform(0.1, 0.9),
                self.rng.uniform(-1.0, 1.0),
                self.rng.uniform(0.0, 0.1)
            ),
        };
        let logger = if r < 800 { "v6.orders" } else { "v6.engine" };
        self.record(out, logger, "INFO", &msg)
    }

    /// The next risk message, walking the three layers through their cycles.
    fn risk_line(&mut self, out: &mut impl Write) -> std::io::Result<()> {
        const CB: &str = "v6.risk.circuit_breaker";
        const TS: &str = "v6.risk.trailing_stop";
        const PL: &str = "v6.risk.portfolio_limits";
        let r = self.rng.below(100);
        if r < 20 {
            // The breaker: failures until it opens, then a recovery.
            match self.breaker {
                "CLOSED" => {
                    self.failures += 1;
                    if self.failures < 5 {
                        let m = format!(
                            "Circuit breaker failure recorded: {}/5 in 300s window (reason: Order rejected: insufficient buying power)",
                            self.failures
                        );
                        return self.risk(out, CB, "WARNING", "circuit_breaker_failure", &m);
                    }
                    self.failures = 0;
                    self.breaker = "OPEN";
                    return self.risk(
                        out,
                        CB,
                        "ERROR",
                        "circuit_breaker_state_change",
                        "Circuit breaker OPENED: 5 failures in 300s window (threshold 5)",
                    );
                }
                "OPEN" => {
                    self.breaker = "HALF_OPEN";
                    return self.risk(
                        out,
                        CB,
                        "INFO",
                        "circuit_breaker_state_change",
                        "Circuit breaker HALF_OPEN: cooldown of 60s elapsed, allowing test trades",
                    );
                }
                _ => {
                    return match self.rng.below(4) {
                        0 => {
                            self.breaker = "OPEN";
                            self.risk(out, CB, "WARNING", "circuit_breaker_state_change", "Circuit breaker re-OPENED: failure during HALF_OPEN (Order rejected: price moved)")
                        }
                        1 => self.risk(
                            out,
                            CB,
                            "INFO",
                            "circuit_breaker_success",
                            "Circuit breaker success recorded: 2/3 in HALF_OPEN",
                        ),
                        2 => {
                            self.breaker = "CLOSED";
                            self.risk(
                                out,
                                CB,
                                "INFO",
                                "circuit_breaker_state_change",
                                "Circuit breaker CLOSED: 3 consecutive successes in HALF_OPEN",
                            )
                        }
                        _ => {
                            self.breaker = "CLOSED";
                            self.risk(out, CB, "INFO", "circuit_breaker_init", "Circuit breaker initialized: state=CLOSED, failure_threshold=5, window=300s, cooldown=60s")
                        }
                    };
                }
            }
        }
        if r < 55 {
            // A trailing stop: add, activate, updates, trigger.
            let Some((ex, sym, entry, peak)) = self.stop.clone() else {
                let ex = format!(
                    "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                    self.rng.next() as u32,
                    self.rng.below(65536),
                    self.rng.below(4096),
                    self.rng.below(4096),
                    self.rng.below(1 << 48)
                );
                let sym = self.rng.pick(&SYMS).to_string();
                let entry = (self.rng.uniform(1.0, 4.0) * 100.0).round() / 100.0;
                let m = format!(
                    "Trailing stop added: execution_id={ex} symbol={sym} entry={entry:.2} activation=2.0% trailing=1.5%"
                );
                self.stop = Some((ex, sym, entry, 0.0));
                return self.risk(out, TS, "INFO", "trailing_stop_add", &m);
            };
            let ctx = format!("[exec={ex} sym={sym}] ");
            if peak == 0.0 {
                let peak = entry * self.rng.uniform(1.02, 1.05);
                self.stop = Some((ex, sym, entry, peak));
                let m = format!(
                    "{ctx}Trailing stop ACTIVATED: entry={entry:.2}, peak={peak:.2}, stop={:.2}",
                    peak * 0.985
                );
                return self.risk(out, TS, "INFO", "trailing_stop_activate", &m);
            }
            if self.rng.below(3) > 0 {
                let was = peak * 0.985;
                let peak = peak * self.rng.uniform(1.005, 1.03);
                self.stop = Some((ex, sym, entry, peak));
                let m = format!(
                    "{ctx}Trailing stop UPDATED: peak={peak:.2}, stop={:.2} (was {was:.2})",
                    peak * 0.985
                );
                return self.risk(out, TS, "INFO", "trailing_stop_update", &m);
            }
            self.stop = None;
            let stop = peak * 0.985;
            let m = format!(
                "{ctx}Trailing stop TRIGGERED: current={:.2}, stop={stop:.2}, peak={peak:.2}",
                stop * 0.995
            );
            return self.risk(out, TS, "WARNING", "trailing_stop_trigger", &m);
        }
        // Portfolio limits.
        let sym = self.rng.pick(&SYMS);
        let m = match self.rng.below(10) {
            0 => format!(
                "Entry REJECTED by portfolio limits: Portfolio delta {:.2} would exceed limit 5.00",
                self.rng.uniform(5.01, 6.0)
            ),
            1 => format!(
                "Entry REJECTED by portfolio limits: Symbol {sym} delta {:.2} would exceed limit 2.00",
                self.rng.uniform(2.01, 3.0)
            ),
            2 => format!(
                "Entry REJECTED by portfolio limits: Position count {} would exceed limit 10",
                11 + self.rng.below(3)
            ),
            3 => format!(
                "Entry REJECTED by portfolio limits: Total exposure ${} would exceed limit $50,000.00",
                thousands(self.rng.uniform(50_001.0, 60_000.0))
            ),
            4 => "Entry REJECTED by portfolio limits: market closed for new entries".into(),
            5 => {
                let p = self.rng.uniform(4.5, 4.99);
                let m = format!(
                    "Portfolio health warning: portfolio_delta at {:.0}% of limit ({p:.2}/5.00)",
                    p / 5.0 * 100.0
                );
                return self.risk(out, PL, "WARNING", "portfolio_health_warning", &m);
            }
            _ => {
                let d = self.rng.uniform(0.1, 1.9);
                format!(
                    "[sym={sym}] Entry allowed by portfolio limits: {sym} delta={d:.2} (portfolio {:.2}/5.00, symbol {d:.2}/2.00)",
                    self.rng.uniform(1.0, 4.9)
                )
            }
        };
        self.risk(out, PL, "INFO", "portfolio_limit_check", &m)
    }
}

/// `52,300.00` (positive amounts, as the engine prints them).
fn thousands(v: f64) -> String {
    let s = format!("{v:.2}");
    let (int, frac) = s.split_once('.').unwrap_or((&s, "00"));
    let int: u64 = int.parse().unwrap_or_default();
    format!("{}.{frac}", risktail::tally::thousands(int))
}
