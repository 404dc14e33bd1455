//! The systemd unit and the notify protocol, checked with systemd's own tools.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{risktail, root, stderr, stdout};

#[test]
fn unit_exposure_is_at_most_1_5() {
    exposure_at_most_1_5(&root().join("systemd/risktail.service"));
}

/// The unit with `systemd/objectstore.conf` applied as its drop-in (its
/// `[Unit]` and `[Service]` lines after the unit's own, as systemd merges
/// them): still verifies clean and stays at exposure ≤ 1.5 with the network
/// open.
#[test]
fn object_store_drop_in_keeps_exposure_at_most_1_5() {
    let unit = std::fs::read_to_string(root().join("systemd/risktail.service")).unwrap();
    let drop_in = std::fs::read_to_string(root().join("systemd/objectstore.conf")).unwrap();
    let lines = |section: &str| -> String {
        let body = drop_in
            .split(&format!("[{section}]\n"))
            .nth(1)
            .unwrap_or("");
        body.split("\n[")
            .next()
            .unwrap_or("")
            .lines()
            .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
            .map(|l| format!("{l}\n"))
            .collect()
    };
    let (unit_lines, service_lines) = (lines("Unit"), lines("Service"));
    assert!(
        service_lines.contains("IPAddressDeny=\n"),
        "{service_lines}"
    );
    let merged = unit
        .replacen("\n[Service]\n", &format!("\n{unit_lines}\n[Service]\n"), 1)
        .replacen(
            "\n[Install]\n",
            &format!("\n{service_lines}\n[Install]\n"),
            1,
        )
        .replace("/usr/bin/risktail", env!("CARGO_BIN_EXE_risktail"));
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("risktail.service");
    std::fs::write(&path, merged).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}{}", stdout(&out), stderr(&out));
    let level = exposure_at_most_1_5(&path);
    assert!(level > 0.5, "the network is open: exposure {level}");
}

/// Asserts the unit's exposure is ≤ 1.5 and returns it.
fn exposure_at_most_1_5(unit: &std::path::Path) -> f64 {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(unit)
        .output()
        .expect("systemd-analyze is installed (.ci/run installs systemd)");
    let text = stdout(&out) + &stderr(&out);
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split("Overall exposure level for risktail.service: ")
                .nth(1)
        })
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in:\n{text}"));
    assert!(level <= 1.5, "exposure {level}:\n{text}");
    level
}

#[test]
fn unit_verifies_clean() {
    let tmp = tempfile::tempdir().unwrap();
    let unit = std::fs::read_to_string(root().join("systemd/risktail.service")).unwrap();
    // verify checks that ExecStart exists: point it at the binary under test.
    let unit = unit.replace("/usr/bin/risktail", env!("CARGO_BIN_EXE_risktail"));
    let path = tmp.path().join("risktail.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(&path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && stderr(&out).trim().is_empty() && stdout(&out).trim().is_empty(),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
}

#[test]
fn example_config_is_valid() {
    let tmp = tempfile::tempdir().unwrap();
    let text = std::fs::read_to_string(root().join("systemd/risktail.toml.example")).unwrap();
    let text = text.replace("/var/lib/risktail", &tmp.path().to_string_lossy());
    risktail::config::Config::from_str(&tmp.path().join("risktail.toml"), &text)
        .expect("the example config loads");
}

/// READY=1 after recovery, WATCHDOG=1 within the interval, STOPPING=1 on SIGTERM.
#[test]
fn notify_protocol_ready_watchdog_stopping() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).unwrap();
    std::fs::write(dir.join("logs/engine.log"), "").unwrap();
    std::fs::write(
        dir.join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\n",
    )
    .unwrap();
    let sock_path = dir.join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    sock.set_read_timeout(Some(Duration::from_secs(20)))
        .unwrap();
    let mut child = risktail()
        .current_dir(dir)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "400000")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut buf = [0u8; 512];
    // A signal to this test process (the object-store clients' SIGCHLD
    // handling) can interrupt the wait: wait again.
    let mut recv = || loop {
        match sock.recv(&mut buf) {
            Ok(n) => break String::from_utf8_lossy(&buf[..n]).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => panic!("a notification: {e}"),
        }
    };
    assert!(recv().starts_with("READY=1"));
    let t = Instant::now();
    assert_eq!(recv(), "WATCHDOG=1");
    assert!(
        t.elapsed() < Duration::from_millis(400),
        "watchdog ping late: {:?}",
        t.elapsed()
    );
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let mut seen = Vec::new();
    loop {
        let m = recv();
        if m == "STOPPING=1" {
            break;
        }
        seen.push(m);
        assert!(seen.len() < 50, "no STOPPING=1: {seen:?}");
    }
    assert_eq!(child.wait().unwrap().code(), Some(0));
}
