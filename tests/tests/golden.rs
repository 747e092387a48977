//! Golden scenarios: events in, alerts out, checked by hand (see tests/golden/README.md).

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use jiancha_core::Timestamp;
use jiancha_scenarios::{load_catalog, normalise, replay_lines, repo_root};

fn check(name: &str) {
    let dir = repo_root().join("tests/golden");
    let catalog = load_catalog(&dir.join("catalog.toml"));
    let events = std::fs::read_to_string(dir.join(format!("{name}.events.jsonl"))).expect("events file");
    let until = Timestamp::parse_rfc3339("2025-12-31T00:00:00+08:00").ok();
    let mut got: Vec<String> = replay_lines(&catalog, events.lines(), until).iter().map(|a| normalise(a).to_string()).collect();
    let expected_path = dir.join(format!("{name}.alerts.jsonl"));
    if std::env::var_os("JIANCHA_BLESS").is_some() {
        std::fs::write(&expected_path, got.join("\n") + "\n").expect("write golden");
    }
    let text = std::fs::read_to_string(&expected_path).expect("expected alerts file");
    let mut expected: Vec<String> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str::<serde_json::Value>(l).expect("expected line is JSON").to_string())
        .collect();
    got.sort();
    expected.sort();
    let missing: Vec<_> = expected.iter().filter(|e| !got.contains(e)).collect();
    let extra: Vec<_> = got.iter().filter(|g| !expected.contains(g)).collect();
    assert!(missing.is_empty() && extra.is_empty() && got.len() == expected.len(), "{name}: missing {missing:#?}\nunexpected {extra:#?}");
}

#[test]
fn worked_examples() {
    check("worked_examples");
}

#[test]
fn suspensions() {
    check("suspensions");
}

#[test]
fn late_data() {
    check("late_data");
}
