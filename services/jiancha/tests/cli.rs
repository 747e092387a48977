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
    assert_eq!(out.status.code(), Some(2));
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

    // An empty store: the report has its header and no rows; the audit log is intact.
    let db = format!("sqlite://{}", dir.join("cases.db").display());
    let out = jiancha(&["report", "--period", "2025-03", "--format", "csv", "--database", &db]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let csv = String::from_utf8(out.stdout).unwrap();
    assert!(csv.starts_with("rank,key,name,department_code,received,"), "{csv}");
    assert_eq!(csv.lines().count(), 1);
    let out = jiancha(&["report", "--period", "March", "--database", &db]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("2025-Q1"), "the error shows the accepted forms");
    let out = jiancha(&["audit", "verify", "--database", &db]);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stdout).contains("intact"));
    let _ = std::fs::remove_dir_all(&dir);
}
