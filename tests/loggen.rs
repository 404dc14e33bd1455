//! The benchmark's log generator (examples/loggen) writes what it claims: for
//! every envelope, `risktail parse` finds exactly its risk lines, type by type,
//! and quarantines nothing (its near misses and tracebacks stay noise).

#[path = "../examples/loggen/generator.rs"]
#[allow(dead_code)]
mod generator;

use generator::{Envelope, Options, generate};
use std::collections::BTreeMap;

use crate::util::{risktail, run, stderr};

#[test]
fn every_generated_risk_line_parses_into_its_event_and_nothing_is_quarantined() {
    let tmp = tempfile::tempdir().unwrap();
    for (name, envelope) in [
        ("python", Envelope::Python),
        ("loguru", Envelope::Loguru),
        ("json", Envelope::Json),
    ] {
        let path = tmp.path().join(format!("{name}.log"));
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        let opts = Options {
            size: 1 << 20,
            dense: None,
            risk_every: 20,
            envelope,
            seed: 11,
        };
        let written = generate(&mut f, &opts).unwrap();
        drop(f);
        assert!(
            written.by_type.len() >= 10,
            "{name}: every event type: {:?}",
            written.by_type
        );
        let cfg = tmp.path().join(format!("{name}.toml"));
        std::fs::write(
            &cfg,
            format!("[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"e\"\npaths = [\"{name}.log\"]\nenvelope = \"{name}\"\n"),
        )
        .unwrap();
        let out = run(risktail()
            .arg("parse")
            .arg("-c")
            .arg(&cfg)
            .arg("--quarantine"));
        assert!(out.status.success(), "{name}: {}", stderr(&out));
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let v: serde_json::Value = serde_json::from_str(line).unwrap();
            assert!(v.get("quarantine").is_none(), "{name}: quarantined {line}");
            *seen
                .entry(v["event_type"].as_str().unwrap().into())
                .or_default() += 1;
        }
        let want: BTreeMap<String, u64> = written
            .by_type
            .iter()
            .map(|(k, v)| ((*k).into(), *v))
            .collect();
        assert_eq!(seen, want, "{name}");
    }
}
