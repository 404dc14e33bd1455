//! `risktail state` and `risktail report` against the engine's own account.
//!
//! The sample generator (tests/samples/generate.py) logs three trading days
//! through Python's RotatingFileHandler and, beside the logs, writes what the
//! engine did (`--facts`): every breaker transition, every entry with the
//! breaker's state at that moment, every stop's life. The table is built by
//! `risktail backfill`; the expected answers are computed here from the facts,
//! never from the table.

use serde_json::Value;
use std::collections::BTreeMap;
use std::path::Path;

use crate::util::{risktail, root, run, run_python, stderr, stdout};

struct Sample {
    _tmp: tempfile::TempDir,
    dir: std::path::PathBuf,
    facts: Value,
}

fn sample() -> Sample {
    sample_of(&[])
}

/// The generator's sample with `args` added to its command line.
fn sample_of(args: &[&str]) -> Sample {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().to_path_buf();
    let gen_path = root().join("tests/samples/generate.py");
    let (out, facts) = (dir.join("logs"), dir.join("facts.json"));
    let mut argv = vec![
        gen_path.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--facts",
        facts.to_str().unwrap(),
    ];
    argv.extend(args);
    run_python(&argv, &dir);
    std::fs::write(
        dir.join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\n\
         paths = [\"logs/engine.log\"]\nenvelope = \"python\"\ntimezone = \"America/New_York\"\n",
    )
    .unwrap();
    let out = run(risktail().current_dir(&dir).arg("backfill"));
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let facts = serde_json::from_slice(&std::fs::read(dir.join("facts.json")).unwrap()).unwrap();
    Sample {
        _tmp: tmp,
        dir,
        facts,
    }
}

fn json(dir: &Path, args: &[&str]) -> Value {
    let out = run(risktail().current_dir(dir).args(args).arg("--json"));
    assert!(out.status.success(), "{args:?}: {}", stderr(&out));
    serde_json::from_slice(&out.stdout).expect("JSON")
}

fn rfc3339(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

fn ms(v: &Value) -> i64 {
    v.as_i64().expect("ms")
}

/// The engine's breaker state at `t` (ms), from its own transitions.
fn breaker_at(facts: &Value, t: i64) -> Option<String> {
    facts["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .take_while(|x| ms(&x["ms"]) <= t)
        .last()
        .map(|x| x["to"].as_str().unwrap().to_owned())
}

/// Execution ids of the stops alive at `t`, from the facts.
fn stops_alive(facts: &Value, t: i64) -> Vec<String> {
    let mut v: Vec<String> = facts["stops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| ms(&s["added_ms"]) <= t && s["ended_ms"].as_i64().is_none_or(|e| e > t))
        .map(|s| s["exec"].as_str().unwrap().to_owned())
        .collect();
    v.sort();
    v
}

/// A dozen and more instants around the breaker's transitions: just before and
/// just after each of the first day's and the restart's, inside an OPEN period,
/// right after the restart that reset an OPEN breaker.
#[test]
fn state_at_instants_around_every_kind_of_transition() {
    let s = sample();
    let f = &s.facts;
    let transitions = f["transitions"].as_array().unwrap();
    let restart = transitions
        .iter()
        .position(|t| t["restart_reset"] == true)
        .expect("the sample has a restart while OPEN");
    // Lines are at least 50 ms apart, so ±20 ms falls between neighbours.
    let mut instants: Vec<i64> = Vec::new();
    for t in transitions
        .iter()
        .take(6)
        .chain(&transitions[restart - 1..=restart])
    {
        instants.push(ms(&t["ms"]) - 20);
        instants.push(ms(&t["ms"]) + 20);
    }
    let open = ms(&transitions[restart - 1]["ms"]);
    let reset = ms(&transitions[restart]["ms"]);
    instants.push((open + reset) / 2);
    instants.push(reset + 1);
    let first_stop = &f["stops"][0];
    instants.push(ms(&first_stop["added_ms"]) + 1);
    assert!(instants.len() >= 12);

    for t in instants {
        let got = json(&s.dir, &["state", "--at", &rfc3339(t)]);
        let src = &got["sources"][0];
        assert_eq!(src["source"], "engine");
        let want = breaker_at(f, t);
        assert_eq!(
            src["breaker"].as_str().map(str::to_owned),
            want,
            "breaker at {}",
            rfc3339(t)
        );
        let mut alive: Vec<String> = src["stops"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["execution_id"].as_str().unwrap().to_owned())
            .collect();
        alive.sort();
        assert_eq!(alive, stops_alive(f, t), "stops alive at {}", rfc3339(t));
        // Rejections of the hour before.
        let want_rej = f["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["allowed"] == false && ms(&e["ms"]) > t - 3_600_000 && ms(&e["ms"]) <= t)
            .count();
        let got_rej = src["limits"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|l| l["event_type"] == "portfolio_limit_check")
            .count();
        assert_eq!(got_rej, want_rej, "rejections before {}", rfc3339(t));
        let resets: Vec<&Value> = src["resets"].as_array().unwrap().iter().collect();
        if t >= reset && t < reset + 48 * 3_600_000 {
            assert_eq!(resets.len(), 1, "the reset is flagged at {}", rfc3339(t));
            assert_eq!(resets[0]["was"], "OPEN");
            let next = transitions
                .get(restart + 1)
                .map_or(i64::MAX, |x| ms(&x["ms"]));
            assert_eq!(
                resets[0]["in_force"],
                t < next,
                "the reset is the state in force"
            );
            assert_eq!(resets[0]["since"], rfc3339_micros(open));
        } else {
            assert!(resets.is_empty(), "no reset flagged at {}", rfc3339(t));
        }
    }

    // During the OPEN period: the five failures of the window are listed.
    let got = json(&s.dir, &["state", "--at", &rfc3339((open + reset) / 2)]);
    assert_eq!(got["sources"][0]["failures"].as_array().unwrap().len(), 5);
    assert_eq!(got["sources"][0]["transition"]["from"], "CLOSED");

    // A local time without offset is read in the source's timezone.
    let utc = json(&s.dir, &["state", "--at", "2026-01-27T15:00:00Z"]);
    let local = json(&s.dir, &["state", "--at", "2026-01-27 10:00"]);
    assert_eq!(utc, local);

    // The text flags the reset for a person.
    let out = run(risktail()
        .current_dir(&s.dir)
        .args(["state", "--at", &rfc3339(reset + 1)]));
    assert!(out.status.success());
    let text = stdout(&out);
    assert!(text.contains("RESET WHILE OPEN"), "{text}");
    assert!(text.contains("CLOSED since"), "{text}");
}

fn rfc3339_micros(ms: i64) -> String {
    // serde's chrono format: RFC 3339 with as many digits as needed.
    let t = chrono::DateTime::from_timestamp_millis(ms).unwrap();
    serde_json::to_value(t)
        .unwrap()
        .as_str()
        .unwrap()
        .to_owned()
}

fn day_of(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .unwrap()
        .date_naive()
        .to_string()
}

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-6 * b.abs().max(1.0)
}

/// Every number of the report, per day and in total, against the facts.
#[test]
fn report_numbers_match_the_engines_own_account() {
    let s = sample();
    let r = json(&s.dir, &["report"]);
    let days: Vec<String> = r["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["day"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(days, ["2026-01-26", "2026-01-27", "2026-01-28"]);
    report_matches_facts(&r, &s.facts);
}

/// More days than the report charts (seven): the days before the charted
/// ones are counted without keeping their rows, and must count the same.
#[test]
fn report_of_more_days_than_it_charts_matches_the_engines_own_account() {
    let s = sample_of(&["--days", "10", "--trades", "40", "--seed", "11"]);
    let r = json(&s.dir, &["report"]);
    assert_eq!(r["days"].as_array().unwrap().len(), 10);
    report_matches_facts(&r, &s.facts);
    // Every row of the table read once: as many as Python's deltalake sees.
    let rows = python_row_count(&s.dir.join("lake/risk_events"));
    assert_eq!(r["events"].as_u64(), Some(rows), "events read");
}

/// Counts the table's rows with the Python `deltalake` package.
fn python_row_count(table: &Path) -> u64 {
    let code = "import sys, deltalake\n\
                print(deltalake.DeltaTable(sys.argv[1]).to_pyarrow_table().num_rows)";
    let out = run_python(&["-c", code, table.to_str().unwrap()], table);
    stdout(&out).trim().parse().expect("a count")
}

/// Every number of `r` (a report's JSON), per day and in total, against
/// what the generator says the engine did (`f`).
fn report_matches_facts(r: &Value, f: &Value) {
    let mut scopes: Vec<(Option<String>, &Value)> = r["days"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| (d["day"].as_str().map(str::to_owned), d))
        .collect();
    scopes.push((None, &r["total"]));

    for (day, got) in scopes {
        let on = |t: i64| day.as_deref().is_none_or(|d| day_of(t) == d);
        let label = day.clone().unwrap_or("total".into());
        // 1. stops
        let stops: Vec<&Value> = f["stops"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| on(ms(&x["added_ms"])))
            .collect();
        let triggered: Vec<&&Value> = stops
            .iter()
            .filter(|x| !x["triggered_ms"].is_null())
            .collect();
        assert_eq!(got["stops_added"], stops.len() as u64, "{label}");
        assert_eq!(
            got["stops_activated"],
            stops
                .iter()
                .filter(|x| !x["activated_ms"].is_null())
                .count() as u64,
            "{label}"
        );
        assert_eq!(got["stops_triggered"], triggered.len() as u64, "{label}");
        assert_eq!(
            got["stops_other_exit"],
            (stops.len() - triggered.len()) as u64,
            "{label}"
        );
        let mut by_sym: BTreeMap<String, u64> = BTreeMap::new();
        for x in &triggered {
            *by_sym
                .entry(x["symbol"].as_str().unwrap().into())
                .or_default() += 1;
        }
        assert_eq!(
            got["triggers_by_symbol"],
            serde_json::to_value(&by_sym).unwrap(),
            "{label}"
        );
        // 3. the one setting: 2.0 % / 1.5 %, captured at the trigger.
        let captured: Vec<f64> = triggered
            .iter()
            .map(|x| {
                let e = x["entry"].as_f64().unwrap();
                (x["exit"].as_f64().unwrap() - e) / e * 100.0
            })
            .collect();
        let set = &got["settings"][0];
        assert_eq!(got["settings"].as_array().unwrap().len(), 1, "{label}");
        assert_eq!(set["activation_pct"], 2.0);
        assert_eq!(set["trailing_pct"], 1.5);
        assert_eq!(set["stops"], stops.len() as u64);
        let mean = captured.iter().sum::<f64>() / captured.len() as f64;
        assert!(
            close(set["captured_mean_pct"].as_f64().unwrap(), mean),
            "{label}: {set} vs {mean}"
        );
        // 2. entries
        let entries: Vec<&Value> = f["entries"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| on(ms(&x["ms"])))
            .collect();
        let in_state = |st: &str| entries.iter().filter(|x| x["breaker"] == st).count() as u64;
        assert_eq!(got["entries_checked"], entries.len() as u64, "{label}");
        assert_eq!(
            got["entries_allowed"],
            entries.iter().filter(|x| x["allowed"] == true).count() as u64,
            "{label}"
        );
        assert_eq!(got["entries_breaker_open"], in_state("OPEN"), "{label}");
        assert_eq!(
            got["entries_breaker_half_open"],
            in_state("HALF_OPEN"),
            "{label}"
        );
        assert!(
            day.is_some() || in_state("OPEN") > 0 && in_state("HALF_OPEN") > 0,
            "the sample has both"
        );
        // 4. rejections by limit type, how far over.
        let mut over: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for x in entries.iter().filter(|x| x["allowed"] == false) {
            let (c, l) = (x["current"].as_f64().unwrap(), x["limit"].as_f64().unwrap());
            over.entry(x["limit_type"].as_str().unwrap().into())
                .or_default()
                .push((c - l) / l * 100.0);
        }
        let got_rej = got["rejections"].as_array().unwrap();
        assert_eq!(got_rej.len(), over.len(), "{label}");
        for g in got_rej {
            let v = &over[g["limit_type"].as_str().unwrap()];
            assert_eq!(g["count"], v.len() as u64, "{label} {g}");
            let m = v.iter().sum::<f64>() / v.len() as f64;
            let mx = v.iter().copied().fold(f64::MIN, f64::max);
            assert!(
                close(g["over_mean_pct"].as_f64().unwrap(), m),
                "{label} {g} {m}"
            );
            assert!(
                close(g["over_max_pct"].as_f64().unwrap(), mx),
                "{label} {g} {mx}"
            );
        }
        let warnings = f["warnings"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|x| on(ms(&x["ms"])))
            .count() as u64;
        assert_eq!(
            got["health_warnings"]["portfolio_delta"], warnings,
            "{label}"
        );
        // 5. the breaker: openings, recoveries, time OPEN and HALF_OPEN.
        let tr = f["transitions"].as_array().unwrap();
        let b = &got["breaker"]["engine"];
        let count = |from: &str, to: &str| {
            tr.iter()
                .filter(|x| on(ms(&x["ms"])) && x["from"] == from && x["to"] == to)
                .count() as u64
        };
        assert_eq!(b["opened"], count("CLOSED", "OPEN"), "{label}");
        assert_eq!(b["reopened"], count("HALF_OPEN", "OPEN"), "{label}");
        assert_eq!(
            b["restart_resets"],
            tr.iter()
                .filter(|x| on(ms(&x["ms"])) && x["restart_reset"] == true)
                .count() as u64,
            "{label}"
        );
        let mut recoveries = Vec::new();
        let mut start: Option<i64> = None;
        let mut secs: BTreeMap<&str, f64> = BTreeMap::new();
        for w in tr.windows(2) {
            let (a, z) = (ms(&w[0]["ms"]), ms(&w[1]["ms"]));
            if on(a) && on(z) {
                *secs.entry(w[0]["to"].as_str().unwrap()).or_default() += (z - a) as f64 / 1000.0;
            }
        }
        for x in tr {
            match (x["from"].as_str(), x["to"].as_str().unwrap()) {
                (Some("CLOSED"), "OPEN") => start = Some(ms(&x["ms"])),
                (_, "CLOSED") => {
                    if let Some(st) = start.take()
                        && on(st)
                        && x["restart_reset"] == false
                    {
                        recoveries.push((ms(&x["ms"]) - st) as f64 / 1000.0);
                    }
                }
                _ => {}
            }
        }
        assert_eq!(b["recovered"], recoveries.len() as u64, "{label}");
        let mean = recoveries.iter().sum::<f64>() / recoveries.len() as f64;
        assert!(
            close(b["mean_recovery_s"].as_f64().unwrap(), mean),
            "{label}: {b} vs {mean}"
        );
        for st in ["OPEN", "HALF_OPEN"] {
            let want = secs.get(st).copied().unwrap_or(0.0);
            assert!(
                close(b["seconds"][st].as_f64().unwrap(), want),
                "{label} {st}: {b} vs {want}"
            );
        }
    }
}

/// The HTML page: self-contained (no fetches, no scripts), a chart of each
/// kind for each day, and the restart drawn where it happened.
#[test]
fn html_report_is_self_contained_with_every_chart() {
    let s = sample();
    let out = run(risktail().current_dir(&s.dir).args([
        "report",
        "--from",
        "2026-01-27",
        "--to",
        "2026-01-27",
        "--html",
        "day.html",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    let page = std::fs::read_to_string(s.dir.join("day.html")).unwrap();
    assert_eq!(page.matches("<svg").count(), 3, "breaker, stops, limits");
    for bad in ["http://", "https://", "<script", "<link", "src="] {
        let hits: Vec<_> = page
            .match_indices(bad)
            .filter(|(i, _)| {
                // The SVG namespace is an identifier, not a fetch.
                !page[*i..].starts_with("http://www.w3.org/")
            })
            .collect();
        assert!(hits.is_empty(), "{bad} in the page");
    }
    assert!(page.contains("restart reset OPEN breaker"));
    assert!(page.contains("2026-01-27"));
    assert!(!page.contains("chart failed"));
    // The text of the same period is in the page too.
    assert!(page.contains("5. Circuit breaker: uptime and recovery"));
    // Keeping the charted days' rows and stops for the page changes no
    // number: the whole sample's answers with and without it.
    let charted = run(risktail()
        .current_dir(&s.dir)
        .args(["report", "--json", "--html", "all.html"]));
    assert!(charted.status.success(), "{}", stderr(&charted));
    let with: Value = serde_json::from_slice(&charted.stdout).expect("JSON");
    assert_eq!(with, json(&s.dir, &["report"]), "with --html and without");
}

/// A table that does not exist yet is named, with what to do.
#[test]
fn state_without_a_table_says_what_to_run() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::write(
        tmp.path().join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\npaths = [\"x.log\"]\nenvelope = \"python\"\n",
    )
    .unwrap();
    let out =
        run(risktail()
            .current_dir(tmp.path())
            .args(["state", "--at", "2026-01-27T15:00:00Z"]));
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("risktail backfill"), "{err}");
    // Nor do `report` and `verify`; none of them leaves a folder behind
    // (a mistyped path would then look like a table's folder).
    for args in [&["report"][..], &["verify"][..]] {
        let out = run(risktail().current_dir(tmp.path()).args(args));
        assert_ne!(out.status.code(), Some(0), "{args:?}");
        assert!(
            stderr(&out).contains("lake/risk_events"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    assert!(
        !tmp.path().join("lake").exists(),
        "a read left a folder behind"
    );
    let out = run(risktail()
        .current_dir(tmp.path())
        .args(["state", "--at", "tomorrow"]));
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("RFC 3339"));
}

/// The README's polars and DuckDB equivalents agree with `state` and `report`.
#[test]
fn readme_polars_and_duckdb_queries_agree() {
    let s = sample();
    let f = &s.facts;
    let reset = f["transitions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| t["restart_reset"] == true)
        .map(|t| ms(&t["ms"]))
        .unwrap();
    let at = rfc3339(reset + 1);
    let out = run_python(
        &[
            &root()
                .join("tests/readers/audit_equivalents.py")
                .to_string_lossy(),
            "lake/risk_events",
            &at,
        ],
        &s.dir,
    );
    let theirs: Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let state = json(&s.dir, &["state", "--at", &at]);
    assert_eq!(theirs["breaker_at"], state["sources"][0]["breaker"]);
    let report = json(&s.dir, &["report"]);
    let t = &report["total"];
    assert_eq!(
        theirs["entries_by_breaker"]["OPEN"],
        t["entries_breaker_open"]
    );
    assert_eq!(
        theirs["entries_by_breaker"]["HALF_OPEN"],
        t["entries_breaker_half_open"]
    );
    assert_eq!(
        theirs["restart_resets"],
        t["breaker"]["engine"]["restart_resets"]
    );
}

/// Question 1 when half of the ACTIVATED/UPDATED/TRIGGERED lines carry no
/// `[exec=… sym=…]` prefix and up to four stops are open at once: every add,
/// activation and trigger the engine logged is counted, each unprefixed line
/// is tied to its stop by the values it repeats, and no stop is invented.
/// The expected counts are what the Python engine below knows it logged.
#[test]
fn report_counts_every_stop_event_when_lines_carry_no_prefix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).unwrap();
    let engine = r#"
import json, logging, random, sys
random.seed(11)
h = logging.FileHandler(sys.argv[1], mode="w")
h.setFormatter(logging.Formatter("%(asctime)s - %(name)s - %(levelname)s - %(message)s"))
log = logging.getLogger("v6.risk.trailing_stop")
log.addHandler(h); log.setLevel(logging.INFO); log.propagate = False
opened, counts, k = [], {"add": 0, "activate": 0, "update": 0, "trigger": 0}, 0
def prefix(s):
    return f"[exec={s['id']} sym={s['sym']}] " if random.random() < 0.5 else ""
for step in range(3000):
    if len(opened) < 4 and (not opened or random.random() < 0.25):
        k += 1
        s = {"id": f"8f14e45f-ceea-4c2a-9a8d-{k:012d}", "sym": random.choice(["SPY", "QQQ"]),
             "entry": round(1.0 + k * 0.0137, 6), "act": False}
        s["peak"] = s["entry"]; s["stop"] = round(s["entry"] * 0.985, 6)
        opened.append(s); counts["add"] += 1
        log.info("[exec=%s sym=%s] Trailing stop added: execution_id=%s symbol=%s entry=%.6f activation=2.0%% trailing=1.5%%",
                 s["id"], s["sym"], s["id"], s["sym"], s["entry"])
        continue
    s = random.choice(opened)
    if not s["act"]:
        s["act"] = True; s["peak"] = round(s["entry"] * 1.021, 6); s["stop"] = round(s["peak"] * 0.985, 6)
        counts["activate"] += 1
        log.info("%sTrailing stop ACTIVATED: entry=%.6f, peak=%.6f, stop=%.6f", prefix(s), s["entry"], s["peak"], s["stop"])
    elif random.random() < 0.6:
        was = s["stop"]; s["peak"] = round(s["peak"] * 1.003 + 0.0001 * k, 6); s["stop"] = round(s["peak"] * 0.985, 6)
        counts["update"] += 1
        log.info("%sTrailing stop UPDATED: peak=%.6f, stop=%.6f (was %.6f)", prefix(s), s["peak"], s["stop"], was)
    else:
        counts["trigger"] += 1; opened.remove(s)
        log.info("%sTrailing stop TRIGGERED: current=%.6f, stop=%.6f, peak=%.6f", prefix(s), s["stop"] - 0.000001, s["stop"], s["peak"])
h.close()
print(json.dumps(counts))
"#;
    let out = run_python(
        &["-c", engine, &dir.join("logs/engine.log").to_string_lossy()],
        dir,
    );
    let logged: Value = serde_json::from_slice(&out.stdout).unwrap();
    std::fs::write(
        dir.join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\n",
    )
    .unwrap();
    let b = run(risktail().current_dir(dir).arg("backfill"));
    assert!(b.status.success(), "{}", stderr(&b));
    let r = json(dir, &["report"]);
    let t = &r["total"];
    assert!(logged["add"].as_u64().unwrap() > 100, "{logged}");
    assert_eq!(t["stops_added"], logged["add"], "{t}");
    assert_eq!(t["stops_activated"], logged["activate"], "{t}");
    assert_eq!(t["stops_triggered"], logged["trigger"], "{t}");
    // Unique values: every unprefixed line finds its stop.
    assert_eq!(t["stop_events_unattributed"], 0, "{t}");
    let per_symbol: u64 = t["triggers_by_symbol"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_u64().unwrap())
        .sum();
    assert_eq!(Some(per_symbol), logged["trigger"].as_u64());
    assert_eq!(
        t["stops_other_exit"].as_u64().unwrap(),
        logged["add"].as_u64().unwrap() - logged["trigger"].as_u64().unwrap(),
        "the stops still open at the end"
    );
}

/// Question 1 with the engine's alerts table (`[audit] alerts_uri`, written
/// here with the real `deltalake` package in the alerts schema): every stop's
/// position is counted under the rule of the CLOSE decision that closed it,
/// as the engine's own account says; without the table the answer is null.
#[test]
fn report_counts_exits_by_rule_from_the_alerts_table() {
    let s = sample();
    let without = json(&s.dir, &["report"]);
    assert!(without["total"]["exits_by_rule"].is_null());
    let text = stdout(&run(risktail().current_dir(&s.dir).arg("report")));
    eprintln!("report without the alerts table:\n{text}");
    let writer = r#"
import datetime as dt, json, sys
import pyarrow as pa
from deltalake import write_deltalake
facts = json.load(open(sys.argv[1]))
rows = []
for i, s in enumerate(facts["stops"]):
    at = lambda ms: dt.datetime.fromtimestamp(ms / 1000, dt.timezone.utc)
    if s["close_rule"]:
        rows.append({"alert_id": f"c{i}", "type": "CLOSE", "severity": "INFO", "status": "EXECUTED",
                     "title": f"Decision CLOSE for {s['symbol']}", "message": s["close_rule"],
                     "rule": s["close_rule"], "symbol": s["symbol"], "strategy_id": s["exec"],
                     "metadata": "{}", "created_at": at(s["closed_ms"])})
    # Other alerts the engine raises: not exits.
    rows.append({"alert_id": f"o{i}", "type": "RISK", "severity": "WARNING", "status": "OPEN",
                 "title": "Breaker watch", "message": "", "rule": "TakeProfit", "symbol": s["symbol"],
                 "strategy_id": s["exec"], "metadata": "{}", "created_at": at(s["added_ms"])})
schema = pa.schema([(c, pa.string()) for c in ["alert_id", "type", "severity", "status", "title", "message", "rule", "symbol", "strategy_id", "metadata"]]
                   + [("created_at", pa.timestamp("us", tz="UTC"))])
write_deltalake(sys.argv[2], pa.Table.from_pylist(rows, schema))
"#;
    run_python(
        &[
            "-c",
            writer,
            &s.dir.join("facts.json").to_string_lossy(),
            &s.dir.join("lake/alerts").to_string_lossy(),
        ],
        &s.dir,
    );
    let conf = std::fs::read_to_string(s.dir.join("risktail.toml")).unwrap();
    std::fs::write(
        s.dir.join("risktail.toml"),
        format!("{conf}\n[audit]\nalerts_uri = \"lake/alerts\"\n"),
    )
    .unwrap();
    let with = json(&s.dir, &["report"]);
    let stops = s.facts["stops"].as_array().unwrap();
    let count = |rule: Option<&str>| {
        stops
            .iter()
            .filter(|x| x["close_rule"].as_str() == rule)
            .count() as u64
    };
    let mut want = BTreeMap::new();
    for (rule, n) in [
        ("TrailingStop", count(Some("TrailingStop"))),
        ("TimeExit", count(Some("TimeExit"))),
        ("unmatched", count(None)),
    ] {
        if n > 0 {
            want.insert(rule.to_owned(), n);
        }
    }
    assert!(want["TrailingStop"] > 0 && want["TimeExit"] > 0, "{want:?}");
    assert_eq!(
        with["total"]["exits_by_rule"],
        serde_json::to_value(&want).unwrap(),
        "{}",
        with["total"]
    );
    let text = stdout(&run(risktail().current_dir(&s.dir).arg("report")));
    eprintln!("report with the alerts table:\n{text}");
    assert!(
        text.contains("TrailingStop") && text.contains("TimeExit"),
        "{text}"
    );
}

/// `report` in `dir`, killed (and the test failed) if it has not ended
/// within a minute: a reader that waits for a day that will never come
/// must not hang a command.
fn report_within_a_minute(dir: &Path) -> std::process::Output {
    let child = risktail()
        .current_dir(dir)
        .arg("report")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("the risktail binary runs");
    let pid = child.id();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(child.wait_with_output());
    });
    match rx.recv_timeout(std::time::Duration::from_secs(60)) {
        Ok(out) => out.expect("report's output"),
        Err(_) => {
            let _ = std::process::Command::new("kill")
                .args(["-9", &pid.to_string()])
                .status();
            panic!("report did not end within a minute");
        }
    }
}

/// A data file gone from under the table (deleted by hand, a partial
/// restore) fails `report` with the file's name, whether it is the first
/// day read or the last (after the days before it were decoded and passed):
/// no answer from the days that were read, and no hang.
#[test]
fn report_names_a_data_file_that_is_gone_and_ends() {
    let s = sample();
    let lake = s.dir.join("lake/risk_events");
    let mut days: Vec<_> = std::fs::read_dir(&lake)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with("event_date=")
        })
        .collect();
    days.sort();
    assert!(days.len() >= 3, "the sample spans several days: {days:?}");
    for day in [days.last().unwrap(), days.first().unwrap()] {
        let file = std::fs::read_dir(day)
            .unwrap()
            .map(|e| e.unwrap().path())
            .find(|p| p.extension().is_some_and(|x| x == "parquet"))
            .expect("a data file");
        std::fs::remove_file(&file).unwrap();
        let out = report_within_a_minute(&s.dir);
        let err = stderr(&out);
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        assert!(
            !out.status.success(),
            "a report without {name}: {}",
            stdout(&out)
        );
        // Once as the table knows it, once as the store looked for it.
        assert!(
            (1..=2).contains(&err.matches(&name).count()),
            "the error names {name}, once: {err}"
        );
    }
}

/// `report --source` counts the rows of that source only, on a table two
/// sources write (the filter runs as the table's files are decoded): each
/// source's entries are the lines written for it, and the whole report's
/// are both.
#[test]
fn report_of_one_source_counts_its_own_lines() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let mut config = "[table]\nuri = \"lake/risk_events\"\n".to_owned();
    for (name, n) in [("alpha", 7), ("beta", 3)] {
        let lines: String = (0..n)
            .map(|i| {
                format!(
                    "2026-01-28 10:00:{i:02},000 - v6.risk.portfolio_limits - WARNING - Entry REJECTED by portfolio limits: Position count {i} would exceed limit 10\n"
                )
            })
            .collect();
        std::fs::write(dir.join(format!("{name}.log")), lines).unwrap();
        config.push_str(&format!(
            "[[source]]\nname = \"{name}\"\npaths = [\"{name}.log\"]\nenvelope = \"python\"\n"
        ));
    }
    std::fs::write(dir.join("risktail.toml"), config).unwrap();
    let out = run(risktail().current_dir(dir).arg("backfill"));
    assert!(out.status.success(), "{}", stderr(&out));
    let checked = |args: &[&str]| {
        let mut all = vec!["report"];
        all.extend_from_slice(args);
        json(dir, &all)["total"]["entries_checked"].as_u64()
    };
    assert_eq!(checked(&["--source", "alpha"]), Some(7));
    assert_eq!(checked(&["--source", "beta"]), Some(3));
    assert_eq!(checked(&[]), Some(10));
}
