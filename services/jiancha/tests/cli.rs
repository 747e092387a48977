//! The `jiancha replay` contract (DOMAIN §8), through the built binary.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use std::path::PathBuf;
use std::process::Command;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn jiancha(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_jiancha")).args(args).current_dir(root()).output().expect("run jiancha")
}

#[test]
fn replay_prints_alerts_on_stdout_and_invalid_events_on_stderr() {
    let out = jiancha(&["replay", "--catalog", "deploy/demo/catalog.toml", "--events", "deploy/demo/events.jsonl"]);
    assert!(out.status.success(), "exit 0 even with invalid lines: {}", String::from_utf8_lossy(&out.stderr));
    let stdout = String::from_utf8(out.stdout).unwrap();
    let mut kinds = std::collections::BTreeSet::new();
    for line in stdout.lines() {
        let v: serde_json::Value = serde_json::from_str(line).expect("each stdout line is JSON");
        for field in
            ["alert_id", "status", "item_id", "service_code", "department_code", "kind", "level", "triggered_at", "event_id", "message"]
        {
            assert!(v.get(field).is_some(), "{field} missing in {line}");
        }
        assert!(v["derivation"]["zh"].as_str().is_some_and(|d| !d.is_empty()), "derivation in {line}");
        kinds.insert(v["kind"].as_str().unwrap().to_owned());
    }
    assert_eq!(kinds.len(), 18, "the demo exercises every alert kind: {kinds:?}");

    let stderr = String::from_utf8(out.stderr).unwrap();
    let reasons: Vec<String> = stderr
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("each stderr line is JSON")["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(reasons, ["MALFORMED", "MISSING_FIELD", "UNKNOWN_ENUM", "OUT_OF_RANGE"]);
}

#[test]
fn the_output_is_the_same_whatever_the_threads() {
    // The demo stream: every alert kind, invalid lines, a missing calendar year.
    let args = ["replay", "--catalog", "deploy/demo/catalog.toml", "--events", "deploy/demo/events.jsonl", "--summary"];
    let one = jiancha(&[&args[..], &["--threads", "1"]].concat());
    assert!(one.status.success());
    assert!(String::from_utf8_lossy(&one.stdout).contains("CALENDAR_MISSING"));
    for threads in ["2", "3", "7", "0"] {
        let many = jiancha(&[&args[..], &["--threads", threads]].concat());
        assert!(many.status.success());
        assert!(many.stdout == one.stdout, "--threads {threads}: alerts differ");
        assert_eq!(String::from_utf8_lossy(&many.stderr), String::from_utf8_lossy(&one.stderr), "--threads {threads}");
    }
    let too_many = jiancha(&[&args[..], &["--threads", "300"]].concat());
    assert_eq!(too_many.status.code(), Some(i32::from(jiancha::exit::USAGE)));
    assert!(String::from_utf8_lossy(&too_many.stderr).contains("--threads"), "{}", String::from_utf8_lossy(&too_many.stderr));
}

#[test]
fn until_moves_only_the_final_clock() {
    let args = ["replay", "--catalog", "tests/golden/catalog.toml", "--events", "tests/golden/suspensions.events.jsonl"];
    let plain = jiancha(&args);
    let earlier = jiancha(&[&args[..], &["--until", "2000-01-01T00:00:00+08:00"]].concat());
    assert_eq!(plain.stdout, earlier.stdout, "an --until before the last arrival changes nothing");
    let later = jiancha(&[&args[..], &["--until", "2024-12-31T00:00:00+08:00"]].concat());
    assert!(later.stdout.len() > plain.stdout.len());
    assert!(String::from_utf8_lossy(&later.stdout).contains("STATUTORY_OVERDUE"));
}

#[test]
fn a_bad_catalog_names_the_problem_and_fails() {
    let dir = std::env::temp_dir().join(format!("jiancha-cli-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let catalog = dir.join("bad.toml");
    std::fs::write(&catalog, "[[service]]\ncode = \"A\"\nname = \"a\"\ndepartment = \"D\"\nstatutory_days = 5\npromised_days = 9\n")
        .unwrap();
    let out = jiancha(&["replay", "--catalog", catalog.to_str().unwrap(), "--events", "deploy/demo/events.jsonl"]);
    assert_eq!(out.status.code(), Some(i32::from(jiancha::exit::CONFIG)), "a configuration error, not a usage error");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("promised_days") && stderr.contains("service \"A\""), "{stderr}");
}

#[test]
fn token_report_and_audit_verify_work_from_the_command_line() {
    let dir = std::env::temp_dir().join(format!("jiancha-cli-acc-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = dir.join("jwt.secret");
    std::fs::write(&secret, "0123456789abcdef0123456789abcdef").unwrap();
    let s = secret.to_str().unwrap();

    // A token: three base64url parts whose claims carry the role and department.
    let out = jiancha(&[
        "token",
        "--role",
        "DEPARTMENT",
        "--department",
        "SCJG",
        "--subject",
        "system:SCJG",
        "--audience",
        "jiancha-local",
        "--secret-file",
        s,
    ]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let token = String::from_utf8(out.stdout).unwrap();
    assert_eq!(token.trim().split('.').count(), 3);
    let out = jiancha(&["token", "--role", "DEPARTMENT", "--subject", "x", "--audience", "jiancha-local", "--secret-file", s]);
    assert!(!out.status.success(), "a DEPARTMENT token needs its department");
    assert!(String::from_utf8_lossy(&out.stderr).contains("department"));

    // An empty store: the report has its header and a row for every department of the
    // catalog, none with a rate or a score; the audit log is intact.
    let db = format!("sqlite://{}", dir.join("cases.db").display());
    let out = jiancha(&["report", "--period", "2025-03", "--format", "csv", "--database", &db]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("\u{feff}rank,key,name,department_code,received,"), "UTF-8 with a BOM: {csv}");
    assert_eq!(csv.lines().count(), 9, "{csv}");
    assert!(csv.lines().skip(1).all(|l| l.starts_with("1,") && l.ends_with(",0,0,0,0,0,0,0,")), "{csv}");
    assert!(csv.contains(",SCJG,市场监督管理局,SCJG,"), "{csv}");
    let out = jiancha(&["report", "--period", "March", "--database", &db]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2025-Q1"), "the error shows the accepted forms");
    let out = jiancha(&["audit", "verify", "--database", &db]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn exit_statuses_tell_usage_configuration_unavailable_and_verification_apart() {
    use jiancha::exit;
    let code = |out: std::process::Output| out.status.code();
    assert_eq!(code(jiancha(&["replay", "--no-such-flag"])), Some(i32::from(exit::USAGE)));
    assert_eq!(
        code(jiancha(&["replay", "--catalog", "/nonexistent/catalog.toml", "--events", "deploy/demo/events.jsonl"])),
        Some(i32::from(exit::CONFIG))
    );
    let dir = std::env::temp_dir().join(format!("jiancha-cli-exit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("cases.db").display());
    // A published head that the log does not hold: verification failed, not a crash.
    let out = jiancha(&["audit", "verify", "--database", &db, "--head", "7:00ff"]);
    assert_eq!(code(out), Some(i32::from(exit::VERIFICATION)));
    // Nothing listens on port 1: the broker is unavailable.
    let out = jiancha(&["alerts", "--kafka-bootstrap", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(i32::from(exit::UNAVAILABLE)), "{}", String::from_utf8_lossy(&out.stderr));
}

/// `jiancha up` on free ports, with `config` as its configuration; returns once it serves.
/// A running `jiancha up`: the process, its console's address and its stderr, line by line.
struct Up {
    child: std::process::Child,
    console: String,
    stderr: std::sync::mpsc::Receiver<String>,
}

fn start_up(dir: &std::path::Path, config: &str) -> Up {
    use std::io::BufRead;
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(dir.join("jiancha.toml"), config).unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_jiancha"))
        .args(["up", "--no-simulator", "--grpc-listen", "127.0.0.1:0", "--console-listen", "127.0.0.1:0", "--state-dir"])
        .arg(dir.join("state"))
        .arg("--config")
        .arg(dir.join("jiancha.toml"))
        .current_dir(dir)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, stderr) = std::sync::mpsc::channel();
    let err = std::io::BufReader::new(child.stderr.take().unwrap());
    std::thread::spawn(move || err.lines().map_while(Result::ok).for_each(|line| drop(tx.send(line))));
    let out = std::io::BufReader::new(child.stdout.take().unwrap());
    let mut lines = out.lines();
    let mut console = None;
    for line in lines.by_ref().map_while(Result::ok) {
        if let Some(url) = line.strip_prefix("console: ") {
            console = Some(url.trim_end_matches('/').to_string());
        }
        if line.starts_with("console login INSPECTOR") {
            // Keep reading, so that what it prints while stopping does not meet a closed pipe.
            std::thread::spawn(move || lines.for_each(drop));
            return Up { child, console: console.expect("the console's address is printed before its logins"), stderr };
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("jiancha up did not start");
}

/// Waits for a stderr line containing `text`.
fn await_stderr(up: &Up, text: &str) {
    let end = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while let Some(left) = end.checked_duration_since(std::time::Instant::now()) {
        match up.stderr.recv_timeout(left) {
            Ok(line) if line.contains(text) => return,
            Ok(_) => {}
            Err(_) => break,
        }
    }
    panic!("no stderr line with {text:?}");
}

fn signal(child: &std::process::Child) {
    let status = Command::new("kill").args(["-TERM", &child.id().to_string()]).status().unwrap();
    assert!(status.success());
}

fn wait(child: &mut std::process::Child, limit: std::time::Duration) -> Option<i32> {
    let end = std::time::Instant::now() + limit;
    while std::time::Instant::now() < end {
        if let Some(status) = child.try_wait().unwrap() {
            return status.code();
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    let _ = child.kill();
    panic!("still running after {limit:?}");
}

#[test]
fn a_second_signal_or_the_shutdown_deadline_ends_the_process() {
    let base = std::env::temp_dir().join(format!("jiancha-cli-stop-{}", std::process::id()));
    let config = "metrics_listen = \"\"\n[accountability]\nlisten = \"127.0.0.1:0\"\n";
    // Two signals: the second ends it at once, whatever the clean stop is waiting for.
    let mut up = start_up(&base.join("twice"), config);
    let held = hold_a_request(&up);
    signal(&up.child);
    // Said once the second signal is listened for.
    await_stderr(&up, "Signal received; stopping");
    signal(&up.child);
    assert_eq!(wait(&mut up.child, std::time::Duration::from_secs(20)), Some(jiancha_platform::lifecycle::FORCED_EXIT));
    drop(held);
    // A clean stop that takes longer than shutdown_timeout ends with its own status.
    let mut up = start_up(&base.join("deadline"), &format!("shutdown_timeout = \"1s\"\n{config}"));
    let held = hold_a_request(&up);
    signal(&up.child);
    assert_eq!(wait(&mut up.child, std::time::Duration::from_secs(20)), Some(jiancha_platform::lifecycle::SHUTDOWN_TIMED_OUT));
    drop(held);
}

/// Starts a request to `up`'s console whose body never comes, so that a clean stop (which
/// lets requests in progress finish) waits for it. The server has begun the request once
/// it answers `100 Continue`: it asks for the body when the handler reads it.
fn hold_a_request(up: &Up) -> std::net::TcpStream {
    use std::io::{Read, Write};
    let address = up.console.trim_start_matches("http://");
    let mut held = std::net::TcpStream::connect(address).unwrap();
    write!(
        held,
        "POST /progress HTTP/1.1\r\nHost: {address}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\nExpect: 100-continue\r\n\r\n"
    )
    .unwrap();
    let mut answer = [0u8; 21];
    held.read_exact(&mut answer).unwrap();
    assert_eq!(&answer, b"HTTP/1.1 100 Continue", "{}", String::from_utf8_lossy(&answer));
    held
}

#[test]
fn log_lines_can_be_json_for_collectors() {
    let dir = std::env::temp_dir().join(format!("jiancha-cli-log-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let db = format!("sqlite://{}", dir.join("cases.db").display());
    let out = jiancha(&["--log-format", "json", "audit", "verify", "--database", &db]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let stderr = String::from_utf8_lossy(&out.stderr);
    let lines: Vec<&str> = stderr.lines().filter(|l| !l.trim().is_empty()).collect();
    assert!(!lines.is_empty(), "opening the store logs at info");
    for line in lines {
        let v: serde_json::Value = serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v.get("level").is_some() && v.get("fields").is_some(), "{line}");
    }
}

#[test]
fn config_check_names_line_column_and_rule_and_print_shows_every_layer() {
    let dir = std::env::temp_dir().join(format!("jiancha-cli-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("jiancha.toml");
    std::fs::write(&file, "kafka_bootstrap = \"kafka:9092\"\n\n[grpc]\nrequest_timeout = \"1x\"\n").unwrap();
    let out = jiancha(&["config", "check", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "a configuration error: {stderr}");
    assert!(stderr.contains("jiancha.toml:4:19:") && stderr.contains("`1x` is not a duration"), "{stderr}");

    std::fs::write(&file, "kafka_bootstrap = \"kafka:9092\"\ncatalog = \"/nowhere/catalog.toml\"\n").unwrap();
    let out = jiancha(&["config", "check", file.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(3));
    assert!(String::from_utf8_lossy(&out.stderr).contains("`catalog` names /nowhere/catalog.toml"));

    std::fs::write(&file, "kafka_bootstrap = \"kafka:9092\"\npartitions = 12\n").unwrap();
    let out = jiancha(&["config", "check", file.to_str().unwrap()]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));

    let out = Command::new(env!("CARGO_BIN_EXE_jiancha"))
        .args(["config", "print", "--config", file.to_str().unwrap()])
        .env("JIANCHA_PARTITIONS", "24")
        .env("JIANCHA_GRPC_TLS_CERT", "/etc/jiancha/tls/gateway.pem")
        .env("JIANCHA_KAFKA_PROP_SASL_PASSWORD", "hunter2")
        .output()
        .unwrap();
    let printed = String::from_utf8(out.stdout).unwrap();
    assert!(printed.contains("kafka_bootstrap = \"kafka:9092\""), "the file: {printed}");
    assert!(printed.contains("partitions = 24"), "the environment over the file: {printed}");
    assert!(printed.contains("tls_cert = \"/etc/jiancha/tls/gateway.pem\""), "{printed}");
    assert!(!printed.contains("hunter2"), "secrets hidden: {printed}");
    let defaults = jiancha(&["config", "print", "--defaults"]);
    assert!(String::from_utf8_lossy(&defaults.stdout).contains("commit_interval = \"200ms\""));
}
