//! `jiancha loadtest` end to end: it starts its broker and monitors, sends, measures,
//! and checks the live alerts against replay. These tests assert what a run must get
//! right (every alert accounted for, every probe timed, every invalid record
//! dead-lettered or refused, the output files), never a speed.

use serde_json::Value;
use std::path::Path;
use std::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_jiancha-it");

fn run(dir: &Path, args: &[&str]) -> Value {
    let out = dir.join("out");
    let output = Command::new(BIN)
        .arg("loadtest")
        .args(args)
        .arg("--out")
        .arg(&out)
        .arg("--no-progress")
        .env("JIANCHA_LOG", "warn")
        .output()
        .expect("run jiancha loadtest");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(output.status.success(), "loadtest failed ({}):\n{stdout}\n{stderr}", output.status);
    for f in ["result.json", "report.md", "rates.svg", "latency.svg", "latency-cdf.svg"] {
        let text = std::fs::read_to_string(out.join(f)).unwrap_or_else(|e| panic!("{f}: {e}"));
        if f.ends_with(".svg") {
            assert!(text.starts_with("<svg") && text.contains("polyline"), "{f} is not a plot");
        }
    }
    let report = std::fs::read_to_string(out.join("report.md")).expect("report.md");
    assert!(report.contains("**correct**"), "{report}");
    let result = serde_json::from_slice(&std::fs::read(out.join("result.json")).expect("result.json")).expect("result.json is JSON");
    let _ = std::fs::remove_dir_all(dir);
    result
}

fn n(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[test]
fn two_monitors_on_the_embedded_broker_raise_what_replay_raises_and_every_probe_is_timed() {
    let dir = tempfile_dir("embedded");
    let r = run(&dir, &["--rate", "300", "--duration", "8s", "--probes", "150", "--monitors", "2", "--partitions", "4"]);
    let j = &r["jiancha"];
    assert_eq!(r["driver"], "embedded");
    assert_eq!(r["consumersPerTopic"], 2);
    assert_eq!(j["correct"], true, "{j:#}");
    let c = &j["check"];
    assert_eq!((n(&c["missing"]), n(&c["extra"]), n(&c["differing"])), (0, 0, 0));
    // Every probe's acceptance window ended inside the run: 150 timer alerts, timed.
    assert!(n(&c["expected"]) >= 150, "{c}");
    // (The stream's own items may have a deadline inside the run too; the probes are counted apart.)
    assert_eq!(n(&j["stream"]["probe_alerts"]), 150, "{j:#}");
    assert!(n(&j["timer_alerts_timed"]) >= 150, "{j:#}");
    assert!(j["timer_lateness"]["p99_ms"].as_f64().is_some());
    // Event rules fired and were timed from their scheduled send.
    assert!(n(&j["event_alerts_timed"]) > 0, "{j:#}");
    assert!(j["event_to_alert_latency"]["max_ms"].as_f64().is_some_and(|m| m > 0.0));
    // Every record sent was acknowledged; every invalid one was dead-lettered.
    assert_eq!(n(&j["sent"]), 2400);
    assert_eq!(n(&j["acknowledged"]), 2400);
    assert_eq!(c["dead_lettered"].as_i64(), c["invalid_in_replay"].as_i64());
    assert_eq!(n(&c["invalid_in_replay"]), n(&j["stream"]["invalid"]));
    // The per-second series account for what was sent, and the monitors were sampled.
    let published: f64 = r["publishRate"].as_array().expect("publishRate").iter().filter_map(Value::as_f64).sum();
    assert!((published - 2400.0).abs() < 1.0, "{published}");
    assert!(n(&j["monitor_rss_max_bytes"]) > 1 << 20);
    assert!(j["raw_consume_rate"].as_f64().is_some_and(|r| r > 0.0));
    // Not a --backlog run: no drain to split the CPU of.
    assert!(j["drain_cpu_per_record"].is_null(), "{j:#}");
    for key in ["aggregatedEndToEndLatency50pct", "aggregatedEndToEndLatency99pct", "aggregatedEndToEndLatencyMax"] {
        assert!(r[key].as_f64().is_some(), "{key}");
    }
}

#[test]
fn through_the_grpc_gateway_on_tansu_invalid_events_are_refused_and_the_rest_agree_with_replay() {
    let dir = tempfile_dir("tansu-grpc");
    let scenario = dir.join("scenario.toml");
    std::fs::write(&scenario, "seed = 9\n[arrival]\nrate = 80\nduration = \"6s\"\n[items]\ninvalid_share = 0.05\n[timers]\nprobes = 0\n")
        .expect("scenario");
    let scenario = scenario.to_string_lossy().into_owned();
    let r = run(&dir, &["--scenario", &scenario, "--broker", "tansu", "--ingest", "grpc", "--partitions", "2"]);
    let j = &r["jiancha"];
    assert_eq!(r["driver"], "tansu");
    assert_eq!(j["correct"], true, "{j:#}");
    let invalid = n(&j["stream"]["invalid"]);
    assert!(invalid > 0, "the scenario asks for invalid records");
    assert_eq!(n(&j["stream"]["refused_invalid_by_gateway"]), invalid);
    // Refused at the gateway, so nothing reached the topic or its dead-letter topic.
    assert_eq!(j["check"]["dead_lettered"].as_i64(), Some(0));
    assert_eq!(n(&j["raw_records"]) + invalid, n(&j["sent"]) + n(&j["stream"]["warm_up_records"]));
    assert_eq!(j["check"]["replayed_from"], "the event topic, read back");
}

#[test]
fn a_backlog_written_while_the_monitor_is_paused_is_drained_and_agrees_with_replay() {
    let dir = tempfile_dir("backlog");
    // A second of sending: a monitor left running would commit some of it meanwhile.
    let r = run(&dir, &["--backlog", "--rate", "10000", "--events", "10000", "--partitions", "4"]);
    let j = &r["jiancha"];
    assert_eq!(j["setup"]["backlog"], true);
    assert_eq!(j["correct"], true, "{j:#}");
    assert_eq!(n(&j["acknowledged"]), 10000);
    // Paused for the whole send: every record was still waiting when it was resumed.
    assert_eq!(j["backlog_when_resumed"].as_i64(), Some(10000), "{j:#}");
    // No probes: a paused monitor's timers are late on purpose.
    assert_eq!(n(&j["stream"]["timer_probes"]), 0);
    assert!(j["consume_seconds"].as_f64().is_some_and(|s| s > 0.0), "{j:#}");
    let share = j["monitor_share_of_raw"].as_f64().expect("share");
    let rates = j["consume_rate"].as_f64().unwrap() / j["raw_consume_rate"].as_f64().unwrap();
    assert!((share - rates).abs() < 1e-9, "the share is the drain rate over the raw rate: {share} {rates}");
    // The drain's CPU, each side: the monitor applied 10 000 records, the embedded broker
    // is this load test's own process, no broker process of its own.
    let cpu = &j["drain_cpu_per_record"];
    assert!(cpu["monitors_us"].as_f64().is_some_and(|us| us > 0.0), "{cpu}");
    assert!(cpu["load_test_us"].as_f64().is_some_and(|us| us >= 0.0), "{cpu}");
    assert!(cpu["broker_us"].is_null(), "{cpu}");
    assert!(cpu["cores_busy"].as_f64().is_some_and(|c| c > 0.0), "{cpu}");
}

#[test]
fn a_bad_scenario_is_a_usage_error_that_names_the_key() {
    let dir = tempfile_dir("bad");
    let scenario = dir.join("bad.toml");
    std::fs::write(&scenario, "[items]\nlate_share = 3\n").expect("scenario");
    let output =
        Command::new(BIN).arg("loadtest").arg("--scenario").arg(&scenario).arg("--out").arg(dir.join("out")).output().expect("run");
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("items.late_share"), "{stderr}");
}

fn tempfile_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("jiancha-loadtest-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}
