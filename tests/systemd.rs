//! The systemd unit and the notify protocol, checked with systemd's own tools.

use std::os::unix::net::UnixDatagram;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::util::{risktail, root, stderr, stdout};

#[test]
fn unit_exposure_is_at_most_1_5() {
    let out = Command::new("systemd-analyze")
        .args(["security", "--offline=true"])
        .arg(root().join("systemd/risktail.service"))
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
    let mut recv = || {
        let n = sock.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
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
