//! Plain-text rendering of `state` and `report` for a terminal: UTC first,
//! the source's local time beside it (the engine's logs are in local time).

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::collections::BTreeMap;
use std::fmt::Write;

use super::report::{Answers, Report};
use super::state::{SourceAt, StateAt};

/// `2026-01-27 15:02:11.123 UTC`
pub fn utc(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%d %H:%M:%S%.3f UTC").to_string()
}

/// `15:02:11.123 UTC (10:02:11 EST)`
pub fn clock(t: DateTime<Utc>, tz: Option<Tz>) -> String {
    let mut s = t.format("%H:%M:%S%.3f").to_string();
    if let Some(tz) = tz.filter(|z| *z != Tz::UTC) {
        let _ = write!(s, " ({})", t.with_timezone(&tz).format("%H:%M:%S %Z"));
    }
    s
}

/// `7m 48s`, `2h 03m`, `3d 04h`.
pub fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as i64;
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {:02}s", s / 60, s % 60),
        3600..86400 => format!("{}h {:02}m", s / 3600, s % 3600 / 60),
        _ => format!("{}d {:02}h", s / 86400, s % 86400 / 3600),
    }
}

fn num(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.2}"))
}

fn pct(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.1}%"))
}

/// Armed (not activated) stops listed in the text; the rest are counted.
pub const ARMED_SHOWN: usize = 10;

/// `state --at` for a terminal.
pub fn state(s: &StateAt, zones: &BTreeMap<String, Tz>) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "risk state at {}   (table version {})",
        utc(s.at),
        s.table_version.map_or("-".into(), |v| v.to_string())
    );
    for src in &s.sources {
        let tz = zones.get(&src.source).copied();
        if let Some(z) = tz.filter(|z| *z != Tz::UTC) {
            let _ = writeln!(
                o,
                "\nsource {}  (local {} {})",
                src.source,
                s.at.with_timezone(&z).format("%Y-%m-%d %H:%M:%S%.3f %Z"),
                z
            );
        } else {
            let _ = writeln!(o, "\nsource {}", src.source);
        }
        breaker_at(&mut o, s.at, src, tz);
        stops_at(&mut o, src, tz);
        limits_at(&mut o, src, tz);
    }
    o
}

/// The breaker's state at `at`, restarts that reset it, recent failures.
fn breaker_at(o: &mut String, at: DateTime<Utc>, src: &SourceAt, tz: Option<Tz>) {
    match &src.transition {
        Some(t) => {
            let _ = writeln!(
                o,
                "  circuit breaker   {} since {} ({} before)",
                t.to,
                utc(t.at),
                duration(super::breaker::secs(at - t.at))
            );
            let _ = writeln!(
                o,
                "                    {} -> {}: {}",
                t.from.as_deref().unwrap_or("?"),
                t.to,
                t.reason
            );
        }
        None => {
            let _ = writeln!(
                o,
                "  circuit breaker   unknown: no breaker line in the table before this instant"
            );
        }
    }
    for r in &src.resets {
        let since = r
            .since
            .map(|x| {
                format!(
                    ", {} since {} ({})",
                    r.was,
                    clock(x, tz),
                    duration(super::breaker::secs(r.at - x))
                )
            })
            .unwrap_or_default();
        let in_force = if r.in_force {
            " — the state above comes from this reset"
        } else {
            ""
        };
        let _ = writeln!(
            o,
            "  !! RESET WHILE {}: the engine restarted at {} and initialized the breaker CLOSED{since}{in_force}",
            r.was,
            clock(r.at, tz),
        );
    }
    let _ = writeln!(
        o,
        "  failures in the {}s window before: {}",
        src.window_s,
        src.failures.len()
    );
    for f in &src.failures {
        let _ = writeln!(
            o,
            "    {}  {:>4}  {}",
            clock(f.at, tz),
            f.count.map_or("-".into(), |c| c.to_string()),
            f.reason.as_deref().unwrap_or("")
        );
    }
}

/// The stops alive: every activated one, the newest armed ones.
fn stops_at(o: &mut String, src: &SourceAt, tz: Option<Tz>) {
    let (active, armed): (Vec<_>, Vec<_>) = src.stops.iter().partition(|s| s.activated);
    let _ = writeln!(
        o,
        "  trailing stops alive: {} activated, {} armed (added, not activated)",
        active.len(),
        armed.len()
    );
    let shown_armed = armed.len().min(ARMED_SHOWN);
    let shown: Vec<_> = active
        .iter()
        .chain(armed[armed.len() - shown_armed..].iter())
        .collect();
    if !shown.is_empty() {
        let _ = writeln!(
            o,
            "    {:<24} {:<6} {:>8} {:>8} {:>8}  {:<9} last update",
            "execution", "symbol", "entry", "peak", "stop", "activated"
        );
    }
    for st in shown {
        let _ = writeln!(
            o,
            "    {:<24} {:<6} {:>8} {:>8} {:>8}  {:<9} {}",
            st.execution_id.as_deref().unwrap_or("?"),
            st.symbol.as_deref().unwrap_or("?"),
            num(st.entry),
            num(st.peak),
            num(st.stop),
            if st.activated { "yes" } else { "no" },
            clock(st.last_update, tz)
        );
    }
    if armed.len() > shown_armed {
        let _ = writeln!(
            o,
            "    … and {} older armed stops (all of them with --json)",
            armed.len() - shown_armed
        );
    }
    if !armed.is_empty() {
        let _ = writeln!(
            o,
            "    (a stop closed by another exit leaves no risk line: it shows here until a trigger or an engine restart)"
        );
    }
    if src.unattributed_stop_events > 0 {
        let _ = writeln!(
            o,
            "    ({} stop events could not be tied to a stop: no execution id and several open stops)",
            src.unattributed_stop_events
        );
    }
}

/// Portfolio-limit rejections and warnings of the hour before.
fn limits_at(o: &mut String, src: &SourceAt, tz: Option<Tz>) {
    let rejections = src
        .limits
        .iter()
        .filter(|l| &*l.event_type == "portfolio_limit_check")
        .count();
    let _ = writeln!(
        o,
        "  portfolio limits, hour before: {} rejections, {} health warnings",
        rejections,
        src.limits.len() - rejections
    );
    for l in &src.limits {
        let what = if &*l.event_type == "portfolio_limit_check" {
            format!("REJECTED  {}", l.reason.as_deref().unwrap_or(""))
        } else {
            format!(
                "warning   {} at {} of {}",
                l.limit_type.as_deref().unwrap_or("?"),
                num(l.current_value),
                num(l.limit_value)
            )
        };
        let _ = writeln!(o, "    {}  {}", clock(l.at, tz), what);
    }
}

/// `report` for a terminal.
pub fn report(r: &Report) -> String {
    let mut o = String::new();
    let _ = writeln!(
        o,
        "risk report {} .. {} (UTC days)   table version {}   {} events read",
        r.from,
        r.to,
        r.table_version.map_or("-".into(), |v| v.to_string()),
        r.events
    );
    let mut all: Vec<&Answers> = r.days.iter().collect();
    all.push(&r.total);

    stops_section(&mut o, r, &all);
    entries_section(&mut o, &all);
    settings_section(&mut o, &all);
    limits_section(&mut o, &all);
    breaker_section(&mut o, &all);
    o
}

/// 1. Trailing stops: triggers versus other exits.
fn stops_section(o: &mut String, r: &Report, all: &[&Answers]) {
    let _ = writeln!(o, "\n1. Trailing stops: triggers versus other exits");
    let _ = writeln!(
        o,
        "   {:<10} {:>6} {:>9} {:>9} {:>10}  triggers by symbol",
        "day", "added", "activated", "triggered", "no trigger"
    );
    for a in all {
        let syms: Vec<String> = a
            .triggers_by_symbol
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        let _ = writeln!(
            o,
            "   {:<10} {:>6} {:>9} {:>9} {:>10}  {}",
            label(a),
            a.stops_added,
            a.stops_activated,
            a.stops_triggered,
            a.stops_other_exit,
            syms.join(", ")
        );
    }

    exits(o, r, all);
    if r.total.stop_events_unattributed > 0 {
        let _ = writeln!(
            o,
            "   {} stop events named no execution and fit no single open stop (counted above, tied to no stop).",
            r.total.stop_events_unattributed
        );
    }
}

/// How the positions were closed, where the alerts table says.
fn exits(o: &mut String, r: &Report, all: &[&Answers]) {
    match &r.total.exits_by_rule {
        Some(_) => {
            let _ = writeln!(
                o,
                "   how the positions were closed (the engine's CLOSE decisions, alerts table):"
            );
            for a in all {
                let Some(by_rule) = &a.exits_by_rule else {
                    continue;
                };
                let parts: Vec<String> = shares(by_rule)
                    .into_iter()
                    .map(|(rule, n, pct)| format!("{rule} {n} ({pct:.1}%)"))
                    .collect();
                let _ = writeln!(o, "   {:<10} {}", label(a), parts.join(", "));
            }
        }
        None => {
            let _ = writeln!(
                o,
                "   \"no trigger\": stops closed by another exit (take profit, stop loss, …) or still open;\n   which exit closed them is in the engine's alerts table: set [audit] alerts_uri to count them."
            );
        }
    }
}

/// 2. Entries that met an open breaker.
fn entries_section(o: &mut String, all: &[&Answers]) {
    let _ = writeln!(o, "\n2. Entries that met an open breaker");
    let _ = writeln!(
        o,
        "   {:<10} {:>8} {:>8} {:>6} {:>10} {:>8}",
        "day", "checked", "allowed", "OPEN", "HALF_OPEN", "share"
    );
    for a in all {
        let _ = writeln!(
            o,
            "   {:<10} {:>8} {:>8} {:>6} {:>10} {:>8}",
            label(a),
            a.entries_checked,
            a.entries_allowed,
            a.entries_breaker_open,
            a.entries_breaker_half_open,
            pct(a.entries_breaker_not_closed_pct)
        );
    }
}

/// 3. Activation threshold: stops by setting.
fn settings_section(o: &mut String, all: &[&Answers]) {
    let _ = writeln!(o, "\n3. Activation threshold: stops by setting");
    let _ = writeln!(
        o,
        "   {:<10} {:>10} {:>9} {:>6} {:>10} {:>10} {:>15} {:>15}",
        "day",
        "activation",
        "trailing",
        "stops",
        "activated",
        "triggered",
        "captured mean",
        "captured median"
    );
    for a in all {
        for s in &a.settings {
            let _ = writeln!(
                o,
                "   {:<10} {:>10} {:>9} {:>6} {:>10} {:>10} {:>15} {:>15}",
                label(a),
                pct(s.activation_pct),
                pct(s.trailing_pct),
                s.stops,
                pct(super::report::share(s.activated, s.stops)),
                pct(super::report::share(s.triggered, s.stops)),
                pct(s.captured_mean_pct),
                pct(s.captured_median_pct)
            );
        }
    }
    let _ = writeln!(o, "   (captured: premium at the trigger relative to entry)");
}

/// 4. Portfolio limits: rejections and how far over.
fn limits_section(o: &mut String, all: &[&Answers]) {
    let _ = writeln!(o, "\n4. Portfolio limits: rejections and how far over");
    let _ = writeln!(
        o,
        "   {:<10} {:<16} {:>6} {:>10} {:>10}",
        "day", "limit", "count", "over mean", "over max"
    );
    for a in all {
        for x in &a.rejections {
            let _ = writeln!(
                o,
                "   {:<10} {:<16} {:>6} {:>10} {:>10}",
                label(a),
                x.limit_type,
                x.count,
                pct(x.over_mean_pct),
                pct(x.over_max_pct)
            );
        }
        for (t, n) in &a.health_warnings {
            let _ = writeln!(o, "   {:<10} {:<16} {:>6} health warnings", label(a), t, n);
        }
    }
}

/// 5. Circuit breaker: uptime and recovery.
fn breaker_section(o: &mut String, all: &[&Answers]) {
    let _ = writeln!(o, "\n5. Circuit breaker: uptime and recovery");
    let _ = writeln!(
        o,
        "   {:<10} {:<10} {:>9} {:>9} {:>9} {:>6} {:>8} {:>9} {:>12} {:>14}",
        "day",
        "source",
        "CLOSED",
        "OPEN",
        "HALF_OPEN",
        "opened",
        "reopened",
        "recovered",
        "mean recover",
        "restart resets"
    );
    for a in all {
        for (src, b) in &a.breaker {
            let sec = |k: &str| duration(b.seconds.get(k).copied().unwrap_or(0.0));
            let _ = writeln!(
                o,
                "   {:<10} {:<10} {:>9} {:>9} {:>9} {:>6} {:>8} {:>9} {:>12} {:>14}",
                label(a),
                src,
                sec("CLOSED"),
                sec("OPEN"),
                sec("HALF_OPEN"),
                b.opened,
                b.reopened,
                b.recovered,
                b.mean_recovery_s.map_or("-".into(), duration),
                if b.restart_resets > 0 {
                    format!("{} !!", b.restart_resets)
                } else {
                    "0".into()
                }
            );
        }
    }
}

/// A row's day, or TOTAL for the whole range.
fn label(a: &Answers) -> String {
    a.day.map_or("TOTAL".into(), |d| d.to_string())
}

/// Shares of a rule count, for the report: `(rule, count, percent)`.
fn shares(by_rule: &BTreeMap<String, u64>) -> Vec<(String, u64, f64)> {
    let total: u64 = by_rule.values().sum();
    by_rule
        .iter()
        .map(|(r, n)| (r.clone(), *n, *n as f64 * 100.0 / total.max(1) as f64))
        .collect()
}
