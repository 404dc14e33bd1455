//! The user-facing contract cannot drift from the code: docs/SCHEMA.md against
//! `event::schema`, docs/DIALECT.md against the default pattern files (through
//! `risktail parse`), and no user-facing file sends a reader outside the
//! repository.

use std::collections::BTreeSet;

use risktail::event::schema::{ColType, ColumnDef, QUARANTINE_COLUMNS, RISK_EVENT_COLUMNS};
use serde_json::Value;

use crate::util::{risktail, root, run, stderr, stdout};

fn read(rel: &str) -> String {
    std::fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The rows of the first markdown table after `heading`, as cells.
fn table_after(doc: &str, heading: &str) -> Vec<Vec<String>> {
    let start = doc
        .find(heading)
        .unwrap_or_else(|| panic!("no heading {heading:?}"));
    doc[start..]
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // header and separator
        .map(|l| {
            l.trim_matches('|')
                .split(" | ")
                .map(|c| c.trim().to_owned())
                .collect()
        })
        .collect()
}

fn type_text(t: ColType) -> &'static str {
    match t {
        ColType::Utf8 => "Utf8 / string",
        ColType::TimestampUtc => "Timestamp(µs, \"UTC\") / timestamp",
        ColType::Int32 => "Int32 / integer",
        ColType::Int64 => "Int64 / long",
        ColType::Float64 => "Float64 / double",
        ColType::Boolean => "Boolean / boolean",
        ColType::Date32 => "Date32 / date",
    }
}

fn check_columns(rows: &[Vec<String>], cols: &[ColumnDef], table: &str) {
    assert_eq!(rows.len(), cols.len(), "{table}: number of columns");
    for (i, (row, col)) in rows.iter().zip(cols).enumerate() {
        let want = [
            (i + 1).to_string(),
            format!("`{}`", col.name),
            type_text(col.ty).to_owned(),
            if col.nullable { "yes" } else { "no" }.to_owned(),
        ];
        assert_eq!(&row[..4], &want[..], "{table}: column {}", i + 1);
    }
}

#[test]
fn schema_page_is_the_schema_in_the_code() {
    let doc = read("docs/SCHEMA.md");
    check_columns(
        &table_after(&doc, "## `risk_events`: columns"),
        &RISK_EVENT_COLUMNS,
        "risk_events",
    );
    check_columns(
        &table_after(&doc, "## `risk_events_quarantine`: columns"),
        &QUARANTINE_COLUMNS,
        "risk_events_quarantine",
    );
    // Every quarantine reason the code can store is explained.
    let reasons: BTreeSet<String> = table_after(&doc, "| `reason` | meaning |")
        .iter()
        .map(|r| r[0].trim_matches('`').to_owned())
        .collect();
    let hay = read("src/event/mod.rs");
    for code in hay
        .lines()
        .filter_map(|l| l.trim().strip_prefix("Reason::"))
        .filter_map(|l| l.split_once("=> \""))
        .map(|(_, c)| c.trim_end_matches("\",").to_owned())
    {
        assert!(reasons.contains(&code), "reason {code} is not on SCHEMA.md");
    }
}

/// Each message of section 2 (and each near miss of section 3), as a line of
/// the engine's default format, through `risktail parse`.
fn parse_messages(messages: &[String]) -> Vec<Option<String>> {
    let tmp = tempfile::tempdir().expect("tmp");
    let mut log = String::new();
    for (i, m) in messages.iter().enumerate() {
        log.push_str(&format!(
            "2026-01-28 10:{:02}:{:02},000 - v6.risk - WARNING - {m}\n",
            i / 60,
            i % 60
        ));
    }
    std::fs::write(tmp.path().join("x.log"), log).expect("log");
    std::fs::write(
        tmp.path().join("c.toml"),
        "[table]\nuri = \"t\"\n[[source]]\nname = \"e\"\npaths = [\"x.log\"]\nenvelope = \"python\"\n",
    )
    .expect("config");
    let out =
        run(risktail()
            .current_dir(tmp.path())
            .args(["parse", "--quarantine", "-c", "c.toml"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let mut got = vec![None; messages.len()];
    for line in stdout(&out).lines() {
        let v: Value = serde_json::from_str(line).expect("json");
        let i = v["source_offset"].as_u64().expect("offset");
        // Map the offset back to the message's index.
        let mut off = 0u64;
        for (k, m) in messages.iter().enumerate() {
            if off == i {
                got[k] = if v["quarantine"] == Value::Bool(true) {
                    Some(format!("quarantine:{}", v["reason"].as_str().unwrap_or("")))
                } else {
                    v["event_type"].as_str().map(str::to_owned)
                };
                break;
            }
            off += format!("2026-01-28 10:00:00,000 - v6.risk - WARNING - {m}\n").len() as u64;
        }
    }
    got
}

#[test]
fn dialect_page_is_what_the_default_patterns_do() {
    let doc = read("docs/DIALECT.md");
    let mut rows = Vec::new();
    for heading in [
        "### Circuit breaker",
        "### Trailing stop",
        "### Portfolio limits",
    ] {
        rows.extend(table_after(&doc, heading));
    }
    let unquote = |c: &str| c.trim().trim_matches('`').to_owned();
    let messages: Vec<String> = rows.iter().map(|r| unquote(&r[0])).collect();
    let types: Vec<String> = rows.iter().map(|r| unquote(&r[1])).collect();
    assert!(
        messages.len() >= 19,
        "section 2 has {} rows",
        messages.len()
    );
    let got = parse_messages(&messages);
    for ((m, want), got) in messages.iter().zip(&types).zip(&got) {
        assert_eq!(got.as_deref(), Some(want.as_str()), "{m}");
    }
    // Every event type the default patterns can make is on the page.
    let documented: BTreeSet<&String> = types.iter().collect();
    for file in ["circuit_breaker", "trailing_stop", "portfolio_limits"] {
        let toml = read(&format!("patterns/{file}.toml"));
        for t in toml
            .lines()
            .filter_map(|l| l.strip_prefix("event_type = \""))
            .map(|l| l.trim_end_matches('"').to_owned())
        {
            assert!(
                documented.contains(&t),
                "{t} of patterns/{file}.toml is not on DIALECT.md"
            );
        }
    }
    // Near misses make no event.
    let near: Vec<String> = table_after(&doc, "## 3. Near misses")
        .iter()
        .map(|r| unquote(&r[0]))
        .collect();
    assert!(near.len() >= 4);
    for (m, got) in near.iter().zip(parse_messages(&near)) {
        assert!(
            got.as_deref().is_none_or(|g| g.starts_with("quarantine")),
            "near miss became an event: {m} → {got:?}"
        );
    }
}

#[test]
fn no_user_facing_file_points_outside_the_repository() {
    let mut files = vec![
        "README.md".to_owned(),
        "patterns/README.md".to_owned(),
        "risktail.toml".to_owned(),
    ];
    for dir in ["docs", "systemd", "patterns"] {
        for e in std::fs::read_dir(root().join(dir)).expect(dir).flatten() {
            files.push(format!("{dir}/{}", e.file_name().to_string_lossy()));
        }
    }
    for f in files {
        let text = read(&f);
        assert!(
            !text.contains("../shared"),
            "{f} sends readers to ../shared"
        );
    }
}

/// The keys serde accepts in one section, as it lists them when it meets an
/// unknown one ("expected one of `a`, `b`"): the parser's own word.
fn accepted_keys(config: &str) -> Vec<String> {
    let err = risktail::config::Config::from_str(std::path::Path::new("x.toml"), config)
        .expect_err("an unknown key is an error")
        .to_string();
    let expected = err
        .split("expected")
        .nth(1)
        .unwrap_or_else(|| panic!("no list of accepted keys in {err:?}"));
    expected
        .split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_owned)
        .collect()
}

/// Every key the config parser accepts is documented in docs/CONFIG.md and
/// every key documented there is accepted; the page's complete example loads.
#[test]
fn config_page_documents_every_key_the_parser_accepts() {
    const SOURCE: &str = "[[source]]\nname = \"s\"\npaths = [\"x.log\"]\nenvelope = \"python\"\n";
    const TABLE: &str = "[table]\nuri = \"t\"\n";
    let mut accepted = BTreeSet::new();
    let top = accepted_keys(&format!("zz_unknown = 1\n{TABLE}{SOURCE}"));
    for section in &top {
        let text = match section.as_str() {
            "table" => format!("{TABLE}zz_unknown = 1\n{SOURCE}"),
            "source" => format!("{TABLE}{SOURCE}zz_unknown = 1\n"),
            s => format!("{TABLE}{SOURCE}[{s}]\nzz_unknown = 1\n"),
        };
        for key in accepted_keys(&text) {
            accepted.insert(format!("{section}.{key}"));
        }
    }
    assert!(accepted.len() > 15, "{accepted:?}");
    let doc = read("docs/CONFIG.md");
    let documented: BTreeSet<String> = doc
        .lines()
        .filter_map(|l| l.strip_prefix("| `"))
        .filter_map(|l| l.split('`').next())
        .map(str::to_owned)
        .collect();
    assert_eq!(documented, accepted, "docs/CONFIG.md against the parser");

    let example = doc
        .split("```toml\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the complete example");
    let tmp = tempfile::tempdir().expect("tmp");
    std::fs::create_dir(tmp.path().join("patterns")).expect("patterns");
    let path = tmp.path().join("risktail.toml");
    let config = risktail::config::Config::from_str(&path, example)
        .unwrap_or_else(|e| panic!("CONFIG.md's example: {e}"));
    assert_eq!(config.sources.len(), 1);
}

/// One `$ command` of a README block and the output shown under it.
struct Shown {
    command: String,
    output: Vec<String>,
}

/// The `$ …` commands of README's code blocks, with their shown output.
fn readme_commands(readme: &str) -> Vec<Shown> {
    let mut out: Vec<Shown> = Vec::new();
    let mut in_block = false;
    // The command whose output the block's lines are, until the block ends.
    let mut current: Option<usize> = None;
    for line in readme.lines() {
        if line.starts_with("```") {
            in_block = !in_block;
            current = None;
            continue;
        }
        if !in_block {
            continue;
        }
        if let Some(cmd) = line.strip_prefix("$ ") {
            out.push(Shown {
                command: cmd.to_owned(),
                output: Vec::new(),
            });
            current = Some(out.len() - 1);
        } else if let Some(i) = current {
            out[i].output.push(line.to_owned());
        }
    }
    out
}

fn squeeze(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Whether every shown line is a line of `actual`, in order; a shown line
/// ending in `…` stands for any line that starts like it, and a line of
/// its own `…` for any lines.
fn shown_in(shown: &[String], actual: &str) -> Result<(), String> {
    let mut lines = actual.lines().map(squeeze);
    for want in shown
        .iter()
        .map(|s| squeeze(s))
        .filter(|s| !s.is_empty() && s != "…")
    {
        let prefix = want.strip_suffix('…').map(str::trim_end);
        let hit = lines.by_ref().any(|got| match prefix {
            Some(p) => got.starts_with(p),
            None => got == want,
        });
        if !hit {
            return Err(want);
        }
    }
    Ok(())
}

/// Every command README shows is run, on a copy of the sample, in the order
/// shown, and prints what README says it prints; the first block's commands
/// are the build of that same binary and this test suite.
#[test]
fn every_readme_command_prints_what_readme_shows() {
    let readme = read("README.md");
    let first = readme
        .split("```sh\n")
        .nth(1)
        .and_then(|b| b.split("```").next())
        .expect("the first block");
    let firsts: Vec<&str> = first
        .lines()
        .map(|l| l.split('#').next().unwrap_or("").trim())
        .collect();
    assert_eq!(firsts, ["cargo run -- backfill", ".ci/run"]);
    let tmp = tempfile::tempdir().expect("tmp");
    let dir = tmp.path();
    std::fs::copy(root().join("risktail.toml"), dir.join("risktail.toml")).expect("config");
    let samples = dir.join("tests/samples/engine");
    std::fs::create_dir_all(&samples).expect("samples");
    for e in std::fs::read_dir(root().join("tests/samples/engine"))
        .expect("sample")
        .flatten()
    {
        std::fs::copy(e.path(), samples.join(e.file_name())).expect("copy");
    }
    let bin = std::path::Path::new(env!("CARGO_BIN_EXE_risktail"))
        .parent()
        .expect("bin dir")
        .to_owned();
    let path = format!(
        "{}:{}",
        bin.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let commands = readme_commands(&readme);
    assert!(
        commands.len() >= 5,
        "README shows {} commands",
        commands.len()
    );
    assert_eq!(commands[0].command, "risktail backfill");
    for c in &commands {
        let out = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("{} 2>&1", c.command))
            .current_dir(dir)
            .env("PATH", &path)
            .env("NO_COLOR", "1")
            .output()
            .expect("sh");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "`{}` exited {:?}:\n{text}",
            c.command,
            out.status.code()
        );
        if let Err(line) = shown_in(&c.output, &text) {
            panic!(
                "`{}` did not print the line README shows:\n  {line}\nit printed:\n{text}",
                c.command
            );
        }
    }
}
