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
    let name = unit
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let level: f64 = text
        .lines()
        .find_map(|l| {
            l.split(&format!("Overall exposure level for {name}: "))
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

/// The daily verify pair: both units verify clean, the service's exposure
/// is as low as the daemon's, and nothing enables the timer by itself.
#[test]
fn verify_service_and_timer_verify_clean() {
    let tmp = tempfile::tempdir().unwrap();
    for name in ["risktail-verify.service", "risktail-verify.timer"] {
        let unit = std::fs::read_to_string(root().join("systemd").join(name)).unwrap();
        let unit = unit.replace("/usr/bin/risktail", env!("CARGO_BIN_EXE_risktail"));
        std::fs::write(tmp.path().join(name), unit).unwrap();
    }
    let out = Command::new("systemd-analyze")
        .arg("verify")
        .arg(tmp.path().join("risktail-verify.timer"))
        .arg(tmp.path().join("risktail-verify.service"))
        .output()
        .unwrap();
    assert!(
        out.status.success() && stderr(&out).trim().is_empty(),
        "{}{}",
        stdout(&out),
        stderr(&out)
    );
    exposure_at_most_1_5(&tmp.path().join("risktail-verify.service"));
    // The package enables nothing by itself: a unit is enabled again on an
    // upgrade only where the admin had enabled it (debhelper's was-enabled).
    let postinst = std::fs::read_to_string(root().join("debian/postinst")).unwrap();
    let lines: Vec<&str> = postinst
        .lines()
        .filter(|l| !l.trim_start().starts_with('#'))
        .collect();
    assert!(
        !lines.iter().any(|l| l.contains("systemctl enable")),
        "the package enables a unit"
    );
    for (i, l) in lines.iter().enumerate() {
        if l.contains("deb-systemd-helper enable") {
            assert!(
                i > 0 && lines[i - 1].contains("was-enabled"),
                "the package enables a unit the admin had not: {l}"
            );
        }
    }
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

/// The daemon's lines under systemd: with stderr the file `JOURNAL_STREAM`
/// names (as systemd sets it for the journal), every line starts with its
/// priority (`<6>` info, `<3>` the fatal error), carries no time and no
/// colour; with stderr a pipe and a stale `JOURNAL_STREAM` inherited, plain
/// lines with their time and no colour.
#[test]
fn log_lines_fit_the_journal_and_pipes() {
    use std::os::unix::fs::MetadataExt;
    use std::process::Stdio;
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    std::fs::create_dir(dir.join("logs")).unwrap();
    std::fs::write(dir.join("logs/engine.log"), "").unwrap();
    std::fs::write(
        dir.join("risktail.toml"),
        "[table]\nuri = \"lake/risk_events\"\n[[source]]\nname = \"engine\"\npaths = [\"logs/engine.log\"]\nenvelope = \"python\"\n",
    )
    .unwrap();
    let journal = dir.join("journal");
    let file = std::fs::File::create(&journal).unwrap();
    let meta = file.metadata().unwrap();
    let stream = format!("{}:{}", meta.dev(), meta.ino());
    let mut d = Command::new(env!("CARGO_BIN_EXE_risktail"))
        .current_dir(dir)
        .args(["run", "--config", "risktail.toml"])
        .env("JOURNAL_STREAM", &stream)
        .stderr(file)
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !std::fs::read_to_string(&journal)
        .unwrap_or_default()
        .contains(" ready")
    {
        assert!(std::time::Instant::now() < deadline, "no ready line");
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    Command::new("kill")
        .args(["-TERM", &d.id().to_string()])
        .status()
        .unwrap();
    assert!(d.wait().unwrap().success());
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(!text.contains('\x1b'), "colour in the journal:\n{text}");
    for line in text.lines() {
        assert!(
            line.starts_with("<6>") || line.starts_with("<4>") || line.starts_with("<7>"),
            "{line:?}"
        );
        assert!(!line.contains("Z "), "a time of its own: {line:?}");
    }
    // The fatal error line too, at priority 3.
    let file = std::fs::File::create(&journal).unwrap();
    let meta = file.metadata().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_risktail"))
        .current_dir(dir)
        .args(["run", "--config", "missing.toml"])
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stderr(file)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.starts_with("<3>risktail: error:"), "{text:?}");
    // A pipe with a stale JOURNAL_STREAM: plain lines.
    let out = Command::new(env!("CARGO_BIN_EXE_risktail"))
        .current_dir(dir)
        .args(["backfill", "--config", "risktail.toml"])
        .env("JOURNAL_STREAM", &stream)
        .env("RISKTAIL_LOG", "info")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(
        !text.is_empty() && !text.contains('\x1b') && !text.starts_with('<'),
        "{text:?}"
    );
    assert!(
        text.lines().all(|l| l.starts_with("20")),
        "no time: {text:?}"
    );
}
