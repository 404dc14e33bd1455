//! `report --html`: one self-contained page (inline SVG, inline CSS, no
//! scripts, nothing fetched) with, for each of the period's last days, three
//! charts drawn by `plotters`: the breaker's state over the session, every
//! trailing stop's peak and stop relative to its entry, and each limit check's
//! value against its limit. Times are the source's local clock, as in the logs.

use chrono::{DateTime, NaiveDate, Timelike, Utc};
use chrono_tz::Tz;
use plotters::prelude::*;
use std::collections::BTreeMap;
use std::fmt::Write;

use super::breaker;
use super::report::Report;
use super::stops::Stop;
use super::text;

use super::report::CHART_DAYS;

const W: u32 = 1100;
const RED: RGBColor = RGBColor(0xc6, 0x28, 0x28);
const AMBER: RGBColor = RGBColor(0xef, 0x8f, 0x00);
const GREEN: RGBColor = RGBColor(0x2e, 0x7d, 0x32);
const BLUE: RGBColor = RGBColor(0x15, 0x65, 0xc0);
const GREY: RGBColor = RGBColor(0x75, 0x75, 0x75);

/// Hours since local midnight of `day` (may run past 24 or below 0).
fn hours(t: DateTime<Utc>, tz: Tz, day: NaiveDate) -> f64 {
    let l = t.with_timezone(&tz);
    let days = (l.date_naive() - day).num_days() as f64;
    days * 24.0 + l.hour() as f64 + l.minute() as f64 / 60.0 + l.second() as f64 / 3600.0
}

fn hhmm(h: &f64) -> String {
    let m = (h * 60.0).round() as i64;
    format!(
        "{:02}:{:02}",
        m.div_euclid(60).rem_euclid(24),
        m.rem_euclid(60)
    )
}

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

type Draw<'a> = DrawingArea<SVGBackend<'a>, plotters::coord::Shift>;

/// Draws with `f` into an SVG string; a drawing error becomes a note.
fn svg(height: u32, f: impl FnOnce(&Draw) -> Result<(), String>) -> String {
    let mut buf = String::new();
    let result = {
        let backend = SVGBackend::with_string(&mut buf, (W, height));
        let root = backend.into_drawing_area();
        let r = root
            .fill(&WHITE)
            .map_err(|e| e.to_string())
            .and_then(|()| f(&root));
        r.and_then(|()| root.present().map_err(|e| e.to_string()))
    };
    match result {
        Ok(()) => buf,
        Err(e) => format!("<p class=err>chart failed: {}</p>", esc(&e)),
    }
}

/// The page.
pub fn page(r: &Report, zones: &BTreeMap<String, Tz>) -> String {
    let mut o = String::new();
    let _ = write!(
        o,
        "<!doctype html><html><head><meta charset=utf-8><title>risktail report {} .. {}</title><style>\
         body{{font:14px system-ui,sans-serif;margin:24px;color:#222;max-width:1160px}}\
         h1{{font-size:22px}} h2{{font-size:18px;margin-top:32px;border-bottom:1px solid #ccc}}\
         h3{{font-size:15px;margin:18px 0 4px}} .note{{color:#555;font-size:13px}}\
         .kpi{{display:inline-block;margin:0 18px 12px 0;padding:8px 12px;background:#f4f4f4;border-radius:6px}}\
         .kpi b{{display:block;font-size:20px}} .alert{{background:#fdecea;color:#8a1c1c}}\
         pre{{background:#fafafa;padding:12px;overflow-x:auto;font-size:12px}} .err{{color:#b00}}\
         </style></head><body>",
        r.from, r.to
    );
    let _ = write!(
        o,
        "<h1>risktail report {} .. {}</h1><p class=note>Table version {}; {} events. Days are UTC; chart clocks are each source's local time.</p>",
        r.from,
        r.to,
        r.table_version.map_or("-".into(), |v| v.to_string()),
        r.events
    );
    key_figures(&mut o, r);
    charts(&mut o, r, zones);
    let _ = write!(
        o,
        "<h2>All answers</h2><pre>{}</pre><p class=note>Made by risktail {}.</p></body></html>",
        esc(&text::report(r)),
        env!("CARGO_PKG_VERSION")
    );
    o
}

/// The figures at the top of the page, alarming ones marked.
fn key_figures(o: &mut String, r: &Report) {
    let t = &r.total;
    let opened: u64 = t.breaker.values().map(|b| b.opened).sum();
    let resets: u64 = t.breaker.values().map(|b| b.restart_resets).sum();
    let open_s: f64 = t
        .breaker
        .values()
        .map(|b| b.seconds.get("OPEN").copied().unwrap_or(0.0))
        .sum();
    let rejected: u64 = t.rejections.iter().map(|x| x.count).sum();
    let kpi = |o: &mut String, label: &str, value: String, alert: bool| {
        let _ = write!(
            o,
            "<div class=\"kpi{}\"><b>{}</b>{}</div>",
            if alert { " alert" } else { "" },
            esc(&value),
            esc(label)
        );
    };
    kpi(o, "breaker opened", opened.to_string(), false);
    kpi(o, "time OPEN", text::duration(open_s), false);
    kpi(
        o,
        "restarts that reset an OPEN breaker",
        resets.to_string(),
        resets > 0,
    );
    kpi(
        o,
        "entries while OPEN/HALF_OPEN",
        format!(
            "{} of {}",
            t.entries_breaker_open + t.entries_breaker_half_open,
            t.entries_checked
        ),
        t.entries_breaker_open > 0,
    );
    kpi(o, "entries rejected by limits", rejected.to_string(), false);
    kpi(
        o,
        "stops triggered / added",
        format!("{} / {}", t.stops_triggered, t.stops_added),
        false,
    );
}

/// Per charted day and source: the breaker, the stops and the limits on one
/// time axis.
fn charts(o: &mut String, r: &Report, zones: &BTreeMap<String, Tz>) {
    let days: Vec<NaiveDate> = r.days.iter().filter_map(|a| a.day).collect();
    let charted = &days[days.len().saturating_sub(CHART_DAYS)..];
    if charted.len() < days.len() {
        let _ = write!(
            o,
            "<p class=note>Charts for the last {} of {} days; the tables below cover every day.</p>",
            charted.len(),
            days.len()
        );
    }
    let sources: Vec<&String> = r.timelines.keys().collect();
    for day in charted.iter().rev() {
        let _ = write!(o, "<h2>{day}</h2>");
        for s in &sources {
            let tz = zones.get(*s).copied().unwrap_or(Tz::UTC);
            // One time axis for the day's three charts.
            let x_range = span(r, s, tz, *day);
            let _ = write!(o, "<h3>{} — circuit breaker ({})</h3>", esc(s), tz);
            o.push_str(&breaker_chart(r, s, tz, *day, x_range));
            let _ = write!(
                o,
                "<h3>{} — trailing stops: peak (solid) and stop (dashed) relative to entry; ✕ trigger</h3>",
                esc(s)
            );
            o.push_str(&stops_chart(r, s, tz, *day, x_range));
            let _ = write!(
                o,
                "<h3>{} — portfolio limits: value as % of its limit (● rejected, ○ allowed, ▲ health warning)</h3>",
                esc(s)
            );
            o.push_str(&limits_chart(r, s, tz, *day, x_range));
        }
    }
}

/// The local-hour span of a source's events on a UTC day, with a margin.
fn span(r: &Report, source: &str, tz: Tz, day: NaiveDate) -> (f64, f64) {
    let hs: Vec<f64> = r
        .rows
        .iter()
        .filter(|x| x.source == source && x.timestamp.date_naive() == day)
        .map(|x| hours(x.timestamp, tz, day))
        .collect();
    let lo = hs.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = hs.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if lo.is_finite() && hi > lo {
        let m = ((hi - lo) * 0.02).max(0.05);
        (lo - m, hi + m)
    } else {
        (0.0, 24.0)
    }
}

fn level(state: &str) -> f64 {
    match state {
        "CLOSED" => 0.0,
        "HALF_OPEN" => 1.0,
        "OPEN" => 2.0,
        _ => -1.0,
    }
}

type Chart<'a, 'b> = ChartContext<
    'a,
    SVGBackend<'b>,
    Cartesian2d<plotters::coord::types::RangedCoordf64, plotters::coord::types::RangedCoordf64>,
>;

/// Shades `[a, b]` of the breaker chart when the state `s` is not CLOSED:
/// red for OPEN, amber for HALF_OPEN.
fn shade(chart: &mut Chart<'_, '_>, a: f64, b: f64, s: f64) -> Result<(), String> {
    if s < 1.0 {
        return Ok(());
    }
    let color = if s >= 2.0 { RED } else { AMBER };
    chart
        .draw_series(std::iter::once(Rectangle::new(
            [(a, -0.3), (b, s)],
            color.mix(0.25).filled(),
        )))
        .map(|_| ())
        .map_err(|e| e.to_string())
}

fn breaker_chart(r: &Report, source: &str, tz: Tz, day: NaiveDate, (x0, x1): (f64, f64)) -> String {
    let tl = r.timelines.get(source).cloned().unwrap_or_default();
    let day_start = day.and_hms_opt(0, 0, 0).unwrap_or_default().and_utc();
    svg(230, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(90)
            .build_cartesian_2d(x0..x1, -0.3f64..2.5f64)
            .map_err(|e| e.to_string())?;
        let ylab = |v: &f64| match v.round() as i64 {
            0 => "CLOSED".into(),
            1 => "HALF_OPEN".into(),
            2 => "OPEN".into(),
            _ => String::new(),
        };
        chart
            .configure_mesh()
            .disable_y_mesh()
            .y_labels(3)
            .y_label_formatter(&ylab)
            .x_label_formatter(&hhmm)
            .draw()
            .map_err(|e| e.to_string())?;
        // Steps: the state in force at the span's start, then each change.
        let mut pts: Vec<(f64, f64)> = Vec::new();
        let mut state = breaker::state_at(&tl, day_start).map(level);
        let mut x = x0;
        for t in &tl {
            let h = hours(t.at, tz, day);
            if h < x0 || h > x1 {
                continue;
            }
            if let Some(s) = state {
                pts.push((x, s));
                pts.push((h, s));
                shade(&mut chart, x, h, s)?;
            }
            state = Some(level(&t.to));
            x = h;
            if t.restart_reset {
                chart
                    .draw_series(LineSeries::new(
                        vec![(h, -0.3), (h, 2.5)],
                        RED.stroke_width(2),
                    ))
                    .map_err(|e| e.to_string())?;
                chart
                    .draw_series(std::iter::once(Text::new(
                        format!("restart reset {} breaker", t.from.as_deref().unwrap_or("?")),
                        (h, 2.35),
                        ("sans-serif", 13).into_font().color(&RED),
                    )))
                    .map_err(|e| e.to_string())?;
            }
        }
        if let Some(s) = state {
            pts.push((x, s));
            pts.push((x1, s));
            shade(&mut chart, x, x1, s)?;
        }
        chart
            .draw_series(LineSeries::new(pts, BLACK.stroke_width(2)))
            .map_err(|e| e.to_string())?;
        Ok(())
    })
}

fn stops_chart(r: &Report, source: &str, tz: Tz, day: NaiveDate, (x0, x1): (f64, f64)) -> String {
    let stops: Vec<_> = r
        .stops
        .iter()
        .filter(|s| s.source == source && s.added_at.date_naive() == day && s.entry.is_some())
        .collect();
    let rel = |v: f64, e: f64| (v / e - 1.0) * 100.0;
    let mut ymin: f64 = -3.0;
    let mut ymax: f64 = 3.0;
    for s in &stops {
        let e = s.entry.unwrap_or(1.0);
        for p in &s.path {
            for v in [p.peak, p.stop, p.current].into_iter().flatten() {
                ymin = ymin.min(rel(v, e));
                ymax = ymax.max(rel(v, e));
            }
        }
    }
    svg(300, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(90)
            .build_cartesian_2d(x0..x1, (ymin - 1.0)..(ymax + 1.0))
            .map_err(|e| e.to_string())?;
        let ylab = |v: &f64| format!("{v:+.0}%");
        chart
            .configure_mesh()
            .y_label_formatter(&ylab)
            .x_label_formatter(&hhmm)
            .y_desc("vs entry")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                vec![(x0, 0.0), (x1, 0.0)],
                GREY.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        for s in &stops {
            draw_stop(&mut chart, s, tz, day)?;
        }
        Ok(())
    })
}

/// One stop's peak (solid) and stop (dashed) relative to its entry, and its
/// trigger (✕), coloured by what the trigger captured.
fn draw_stop(chart: &mut Chart<'_, '_>, s: &Stop, tz: Tz, day: NaiveDate) -> Result<(), String> {
    let rel = |v: f64, e: f64| (v / e - 1.0) * 100.0;
    let e = s.entry.unwrap_or(1.0);
    let add = hours(s.added_at, tz, day);
    let mut peak = vec![(add, 0.0)];
    let mut stop: Vec<(f64, f64)> = Vec::new();
    for p in &s.path {
        let h = hours(p.at, tz, day);
        if let Some(v) = p.peak {
            peak.push((h, rel(v, e)));
        }
        if let Some(v) = p.stop {
            stop.push((h, rel(v, e)));
        }
    }
    let color = match s.captured_pct() {
        Some(c) if c >= 0.0 => GREEN,
        Some(_) => RED,
        None => BLUE,
    };
    chart
        .draw_series(LineSeries::new(peak, color.stroke_width(2)))
        .map_err(|e| e.to_string())?;
    // Dashes: every other segment of the stop's path.
    let segs: Vec<((f64, f64), (f64, f64))> = stop.windows(2).map(|w| (w[0], w[1])).collect();
    for (a, b) in segs {
        let n = 6;
        for k in (0..n).step_by(2) {
            let f0 = k as f64 / n as f64;
            let f1 = (k + 1) as f64 / n as f64;
            let p = |f: f64| (a.0 + (b.0 - a.0) * f, a.1 + (b.1 - a.1) * f);
            chart
                .draw_series(LineSeries::new(vec![p(f0), p(f1)], color.stroke_width(1)))
                .map_err(|e| e.to_string())?;
        }
    }
    if let Some(t) = s.trigger() {
        let h = hours(t.at, tz, day);
        let y = rel(t.current.or(t.stop).unwrap_or(e), e);
        chart
            .draw_series(std::iter::once(Cross::new(
                (h, y),
                5,
                color.stroke_width(2),
            )))
            .map_err(|e| e.to_string())?;
    }
    Ok(())
}

fn limits_chart(r: &Report, source: &str, tz: Tz, day: NaiveDate, (x0, x1): (f64, f64)) -> String {
    let pts: Vec<(f64, f64, &str, Option<bool>)> = r
        .rows
        .iter()
        .filter(|x| x.source == source && x.timestamp.date_naive() == day)
        .filter(|x| x.component == "portfolio_limits")
        .filter_map(|x| {
            let (c, l) = (x.current_value?, x.limit_value?);
            (l != 0.0).then(|| {
                (
                    hours(x.timestamp, tz, day),
                    c / l * 100.0,
                    &*x.event_type,
                    x.allowed,
                )
            })
        })
        .collect();
    let ymax = pts.iter().map(|p| p.1).fold(110.0, f64::max) + 5.0;
    svg(260, |root| {
        let mut chart = ChartBuilder::on(root)
            .margin(10)
            .x_label_area_size(30)
            .y_label_area_size(90)
            .build_cartesian_2d(x0..x1, 0f64..ymax)
            .map_err(|e| e.to_string())?;
        let ylab = |v: &f64| format!("{v:.0}%");
        chart
            .configure_mesh()
            .y_label_formatter(&ylab)
            .x_label_formatter(&hhmm)
            .y_desc("of limit")
            .draw()
            .map_err(|e| e.to_string())?;
        chart
            .draw_series(LineSeries::new(
                vec![(x0, 100.0), (x1, 100.0)],
                RED.stroke_width(1),
            ))
            .map_err(|e| e.to_string())?;
        for (h, y, ty, allowed) in &pts {
            let p = (*h, *y);
            let res = if *ty == "portfolio_health_warning" {
                chart
                    .draw_series(std::iter::once(TriangleMarker::new(p, 5, AMBER.filled())))
                    .map(|_| ())
            } else if *allowed == Some(false) {
                chart
                    .draw_series(std::iter::once(Circle::new(p, 4, RED.filled())))
                    .map(|_| ())
            } else {
                chart
                    .draw_series(std::iter::once(Circle::new(p, 3, BLUE.stroke_width(1))))
                    .map(|_| ())
            };
            res.map_err(|e| e.to_string())?;
        }
        Ok(())
    })
}
