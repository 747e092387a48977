//! The live monitor against a real Kafka-protocol broker (Tansu, started per test):
//! end to end against replay, dead letters, SIGKILL restarts, a rebalance between two
//! instances, and a broker restart. Tests run one at a time (each owns a broker).

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use jiancha_core::Timestamp;
use jiancha_scenarios::kafka::{
    Broker, MonitorProcess, Scratch, conflicting_ids, duplicated_ids, effective, effective_of_replay, read_alerts, read_topic, wait_for,
};
use jiancha_scenarios::{load_catalog, replay_lines, repo_root};
use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

const BIN: &str = env!("CARGO_BIN_EXE_jiancha-it");

fn now() -> Timestamp {
    Timestamp(std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_millis() as i64)
}

/// The demo events that have already happened (arrival not in the future), as lines.
fn demo_lines() -> Vec<String> {
    let text = std::fs::read_to_string(repo_root().join("deploy/demo/events.jsonl")).unwrap();
    let now = now();
    text.lines()
        .filter(|l| jiancha_core::parse_json_event(l.as_bytes()).is_ok_and(|e| e.received_at.unwrap_or(e.event.occurred_at) <= now))
        .map(str::to_owned)
        .collect()
}

fn expected(lines: &[String]) -> BTreeMap<String, (String, String)> {
    let catalog = load_catalog(&repo_root().join("deploy/demo/catalog.toml"));
    effective_of_replay(&replay_lines(&catalog, lines.iter().map(String::as_str), Some(now())))
}

fn produce(bootstrap: &str, lines: &[String]) {
    let report = jiancha_scenarios::kafka::produce_lines(bootstrap, lines.join("\n"), false);
    assert_eq!(report.sent, lines.len());
}

fn start_monitor(broker: &Broker, dir: &Scratch, name: &str, extra: &[&str]) -> MonitorProcess {
    let mut args = vec!["--partitions", "4"];
    args.extend_from_slice(extra);
    let m = MonitorProcess::start(BIN, &broker.bootstrap(), dir.0.join(format!("{name}.log")), &args);
    wait_for("partitions assigned", Duration::from_secs(60), || m.log_text().contains("Partitions assigned"));
    m
}

/// Waits until `m` has restored all four partitions since it started (a SIGKILLed
/// member keeps its partitions until its session expires).
fn wait_owns_all(m: &MonitorProcess) {
    wait_for("one monitor to own every partition", Duration::from_secs(90), || {
        m.log_text().matches("Partition restored from the changelog").count() >= 4
    });
}

/// Waits until the topic's effective alert set equals `want`; returns every update read.
/// On a timeout the monitors' logs are printed.
fn wait_for_alerts_of(
    monitors: &[&MonitorProcess],
    bootstrap: &str,
    want: &BTreeMap<String, (String, String)>,
    limit: Duration,
) -> Vec<serde_json::Value> {
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| wait_for_alerts(bootstrap, want, limit)));
    match result {
        Ok(updates) => updates,
        Err(e) => {
            for m in monitors {
                let log = m.log_text();
                let tail: Vec<&str> = log.lines().rev().take(40).collect();
                eprintln!("--- {} (last 40 lines)\n{}", m.log.display(), tail.into_iter().rev().collect::<Vec<_>>().join("\n"));
            }
            std::panic::resume_unwind(e)
        }
    }
}

/// Waits until the topic's effective alert set equals `want`; returns every update read.
fn wait_for_alerts(bootstrap: &str, want: &BTreeMap<String, (String, String)>, limit: Duration) -> Vec<serde_json::Value> {
    let end = std::time::Instant::now() + limit;
    loop {
        let updates = read_alerts(bootstrap);
        let got = effective(&updates);
        if &got == want {
            return updates;
        }
        if std::time::Instant::now() > end {
            let missing: Vec<_> = want.iter().filter(|(k, _)| !got.contains_key(*k)).take(10).collect();
            let extra: Vec<_> = got.iter().filter(|(k, _)| !want.contains_key(*k)).take(10).collect();
            panic!(
                "alerts differ from replay after {limit:?}: {} wanted, {} got\nmissing {missing:#?}\nunexpected {extra:#?}",
                want.len(),
                got.len()
            );
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
fn end_to_end_alerts_equal_replay() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new("e2e");
    let broker = Broker::start(&dir.0);
    let mut monitor = start_monitor(&broker, &dir, "monitor", &[]);
    let lines = demo_lines();
    produce(&broker.bootstrap(), &lines);
    let want = expected(&lines);
    assert!(want.len() > 100, "the scenario raises alerts of every kind: {}", want.len());
    let updates = wait_for_alerts(&broker.bootstrap(), &want, Duration::from_secs(120));
    assert!(conflicting_ids(&updates).is_empty());
    assert!(monitor.terminate().success(), "clean exit on SIGTERM:\n{}", monitor.log_text());
    assert!(monitor.log_text().contains("Monitor stopped"));
}

#[test]
fn invalid_records_go_to_the_dead_letter_topic_byte_for_byte() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new("dlq");
    let broker = Broker::start(&dir.0);
    let config = dir.0.join("monitor.toml");
    std::fs::write(&config, "max_record_bytes = 4096\n").unwrap();
    let _monitor = start_monitor(&broker, &dir, "monitor", &["--config", config.to_str().unwrap()]);

    let good = jiancha_proto::v1::Event {
        event_id: "P-1".into(),
        item_id: "P".into(),
        department_code: "SCJG".into(),
        service_code: Some("NOT-IN-CATALOG".into()),
        r#type: jiancha_proto::v1::EventType::Submitted as i32,
        occurred_at: "2025-03-03T09:00:00+08:00".into(),
        ..Default::default()
    }
    .encode_to_vec();
    let big = format!(r#"{{"event_id":"B","item_id":"B","note":"{}"}}"#, "x".repeat(10_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("MALFORMED", b"\x00\x01 garbage \xff".to_vec()),
        ("MALFORMED", good[..good.len() - 4].to_vec()),
        ("MISSING_FIELD", br#"{"event_id":"J-1","department_code":"D","type":"SUBMITTED","service_code":"S","occurred_at":"2025-03-03T09:00:00+08:00"}"#.to_vec()),
        ("UNKNOWN_ENUM", br#"{"event_id":"J-2","item_id":"J","department_code":"D","type":"APPROVE","actor":"a","occurred_at":"2025-03-03T09:00:00+08:00"}"#.to_vec()),
        ("TOO_LARGE", big.into_bytes()),
    ];
    let rt = tokio::runtime::Runtime::new().unwrap();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", broker.bootstrap()).create().unwrap();
    rt.block_on(async {
        for (_, bytes) in &cases {
            producer.send(FutureRecord::<str, [u8]>::to("jiancha.events").key("K").payload(bytes), Duration::from_secs(30)).await.unwrap();
        }
        let headers = OwnedHeaders::new().insert(Header { key: "content-type", value: Some("application/x-protobuf") });
        producer
            .send(FutureRecord::<str, [u8]>::to("jiancha.events").key("P").payload(&good).headers(headers), Duration::from_secs(30))
            .await
            .unwrap();
    });

    // The valid event after the bad ones is processed as usual.
    wait_for("the valid event's alert", Duration::from_secs(60), || {
        read_alerts(&broker.bootstrap()).iter().any(|a| a["item_id"] == "P" && a["kind"] == "SERVICE_NOT_IN_CATALOG")
    });
    let dead = jiancha_scenarios::kafka::read_dead_letters(&broker.bootstrap(), "jiancha.events.dlq", cases.len());
    assert_eq!(dead.len(), cases.len(), "every invalid record is dead-lettered, nothing else");
    for (reason, bytes) in &cases {
        let found = dead.iter().find(|(_, b, _)| b == bytes).unwrap_or_else(|| panic!("{reason} record not found byte for byte"));
        assert_eq!(&found.0, reason);
        assert!(found.2.contains_key("jiancha.message") && found.2.contains_key("jiancha.source.offset"), "{:?}", found.2);
        assert_eq!(found.2.get("jiancha.source.topic").map(String::as_str), Some("jiancha.events"));
    }
}

#[test]
fn sigkill_mid_stream_loses_and_duplicates_nothing() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new("kill");
    let broker = Broker::start(&dir.0);
    let lines = demo_lines();
    let chunks: Vec<&[String]> = lines.chunks(lines.len() / 3 + 1).collect();
    let config = dir.0.join("monitor.toml");
    // A restarted instance keeps its identity in the group (static membership), so it
    // takes its partitions back at once instead of waiting for the crashed one's eviction.
    std::fs::write(&config, "rebalance_timeout = \"12s\"\ngroup_instance_id = \"monitor-1\"\n").unwrap();
    let config = ["--config", config.to_str().unwrap()];

    let mut first = start_monitor(&broker, &dir, "first", &config);
    produce(&broker.bootstrap(), chunks[0]);
    wait_for("some alerts", Duration::from_secs(60), || read_alerts(&broker.bootstrap()).len() > 10);
    first.kill9();

    let mut second = start_monitor(&broker, &dir, "second", &config);
    wait_owns_all(&second);
    produce(&broker.bootstrap(), chunks[1]);
    std::thread::sleep(Duration::from_millis(700));
    second.kill9();
    let second_log = second.log_text();
    assert!(
        second_log.lines().any(|l| l.contains("Partition restored from the changelog") && !l.contains("items=0")),
        "the restart restored items from the changelog:\n{second_log}"
    );

    let third = start_monitor(&broker, &dir, "third", &config);
    wait_owns_all(&third);
    produce(&broker.bootstrap(), chunks[2]);
    let updates = wait_for_alerts_of(&[&first, &second, &third], &broker.bootstrap(), &expected(&lines), Duration::from_secs(180));
    assert_eq!(conflicting_ids(&updates), Vec::<String>::new(), "no alert id with two different contents");
}

#[test]
fn a_second_instance_takes_over_partitions_without_gap_or_duplicate() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new("rebalance");
    let broker = Broker::start(&dir.0);
    let lines = demo_lines();
    let chunks: Vec<&[String]> = lines.chunks(lines.len() / 3 + 1).collect();

    let mut a = start_monitor(&broker, &dir, "a", &[]);
    produce(&broker.bootstrap(), chunks[0]);
    let b = start_monitor(&broker, &dir, "b", &[]);
    wait_for("a rebalance that gives b partitions", Duration::from_secs(60), || b.log_text().contains("Partition restored"));
    produce(&broker.bootstrap(), chunks[1]);
    assert!(a.terminate().success());
    wait_for("b to take over a's partitions", Duration::from_secs(60), || {
        b.log_text().matches("Partition restored from the changelog").count() >= 4
    });
    produce(&broker.bootstrap(), chunks[2]);
    let updates = wait_for_alerts(&broker.bootstrap(), &expected(&lines), Duration::from_secs(180));
    assert_eq!(conflicting_ids(&updates), Vec::<String>::new());
    assert_eq!(duplicated_ids(&updates), Vec::<String>::new(), "a clean handover publishes no state twice");
}

#[test]
fn the_monitor_rides_out_a_broker_restart() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new("broker-restart");
    let mut broker = Broker::start(&dir.0);
    let lines = demo_lines();
    let half = lines.len() / 2;
    let _monitor = start_monitor(&broker, &dir, "monitor", &[]);
    produce(&broker.bootstrap(), &lines[..half]);
    broker.restart(Duration::from_secs(3));
    produce(&broker.bootstrap(), &lines[half..]);
    let updates = wait_for_alerts(&broker.bootstrap(), &expected(&lines), Duration::from_secs(180));
    assert_eq!(conflicting_ids(&updates), Vec::<String>::new());
}

#[test]
fn a_catalog_change_is_picked_up_without_a_restart() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new("reload");
    let broker = Broker::start(&dir.0);
    let catalog = dir.0.join("catalog.toml");
    let original = std::fs::read_to_string(repo_root().join("deploy/demo/catalog.toml")).unwrap();
    std::fs::write(&catalog, &original).unwrap();
    let config = dir.0.join("monitor.toml");
    std::fs::write(&config, "reload_interval = \"1s\"\n").unwrap();
    let monitor = start_monitor(&broker, &dir, "monitor", &["--config", config.to_str().unwrap(), "--catalog", catalog.to_str().unwrap()]);

    // JTJ-001 promises 12 working days: accepted Mon 2025-03-03, due 2025-03-20 00:00.
    let lines: Vec<String> = [
        r#"{"event_id":"R-1","item_id":"R","service_code":"JTJ-001","department_code":"JTJ","type":"SUBMITTED","occurred_at":"2025-03-03T09:00:00+08:00"}"#,
        r#"{"event_id":"R-2","item_id":"R","department_code":"JTJ","type":"ACCEPTED","actor":"甲","occurred_at":"2025-03-03T10:00:00+08:00"}"#,
    ]
    .map(str::to_owned)
    .to_vec();
    produce(&broker.bootstrap(), &lines);
    let promised = |updates: &[serde_json::Value]| -> Vec<String> {
        updates
            .iter()
            .filter(|u| u["item_id"] == "R" && u["kind"] == "PROMISED_OVERDUE")
            .map(|u| u["triggered_at"].as_str().unwrap().to_owned())
            .collect()
    };
    wait_for("the promised deadline to fire", Duration::from_secs(60), || {
        promised(&read_alerts(&broker.bootstrap())) == ["2025-03-20T00:00:00+08:00"]
    });

    // An invalid change is refused and changes nothing.
    std::fs::write(&catalog, original.replace("promised_days = 12", "promised_days = 99")).unwrap();
    wait_for("the invalid catalog to be rejected", Duration::from_secs(30), || monitor.log_text().contains("change rejected"));
    // A valid change moves the open item's alert: 15 working days end 2025-03-25 00:00.
    std::fs::write(&catalog, original.replace("promised_days = 12", "promised_days = 15")).unwrap();
    wait_for("the alert to move", Duration::from_secs(60), || {
        promised(&read_alerts(&broker.bootstrap())) == ["2025-03-20T00:00:00+08:00", "2025-03-25T00:00:00+08:00"]
    });
    assert!(monitor.log_text().contains("open items recomputed"));
}

#[test]
fn closed_items_are_retired_after_the_window_and_their_late_events_dead_lettered() {
    let _serial = ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner());
    let dir = Scratch::new("retention");
    let broker = Broker::start(&dir.0);
    let config = dir.0.join("monitor.toml");
    std::fs::write(&config, "closed_item_retention = \"3s\"\n").unwrap();
    let args = ["--config", config.to_str().unwrap()];
    let mut monitor = start_monitor(&broker, &dir, "monitor", &args);

    // Q, a 即办件 approved at once, is closed; R stays open.
    let today = now().to_rfc3339_in(chrono_tz::Asia::Shanghai);
    let lines: Vec<String> = vec![
        r#"{"event_id":"Q-1","item_id":"Q","service_code":"SCJG-002","department_code":"SCJG","type":"SUBMITTED","occurred_at":"2025-03-03T09:00:00+08:00"}"#.into(),
        r#"{"event_id":"Q-2","item_id":"Q","department_code":"SCJG","type":"ACCEPTED","actor":"甲","occurred_at":"2025-03-03T09:05:00+08:00"}"#.into(),
        r#"{"event_id":"Q-3","item_id":"Q","department_code":"SCJG","type":"DECIDED","outcome":"APPROVED","actor":"乙","occurred_at":"2025-03-03T09:10:00+08:00"}"#.into(),
        format!(r#"{{"event_id":"R-1","item_id":"R","service_code":"SCJG-001","department_code":"SCJG","type":"SUBMITTED","occurred_at":"{today}"}}"#),
    ];
    produce(&broker.bootstrap(), &lines);

    // Q's tombstone reaches the state topic; R keeps its state.
    let q_key = jiancha_proto::state_key("SCJG", "Q");
    let r_key = jiancha_proto::state_key("SCJG", "R");
    wait_for("Q's tombstone in the state topic", Duration::from_secs(60), || {
        read_topic(&broker.bootstrap(), "jiancha.monitor.state").last_of(&q_key).is_some_and(|v| v.is_empty())
    });
    let state = read_topic(&broker.bootstrap(), "jiancha.monitor.state");
    assert!(state.last_of(&r_key).is_some_and(|v| !v.is_empty()), "the open item stays");
    assert!(monitor.log_text().contains("retired"));

    // A late event of Q from before the window is dead-lettered with its reason.
    let late = r#"{"event_id":"Q-4","item_id":"Q","department_code":"SCJG","type":"STEP_COMPLETED","step":"审核","actor":"丙","occurred_at":"2025-03-03T09:20:00+08:00"}"#;
    produce(&broker.bootstrap(), &[late.to_owned()]);
    let dead = jiancha_scenarios::kafka::read_dead_letters(&broker.bootstrap(), "jiancha.events.dlq", 1);
    assert_eq!(dead.len(), 1, "the late event is kept in the dead-letter topic");
    assert_eq!(dead[0].0, "ITEM_RETIRED");
    assert_eq!(dead[0].1, late.as_bytes());

    // A restart restores R alone.
    monitor.terminate();
    let monitor = start_monitor(&broker, &dir, "monitor-2", &args);
    wait_owns_all(&monitor);
    let log = monitor.log_text();
    let restored: usize = log
        .lines()
        .filter(|l| l.contains("Partition restored from the changelog"))
        .filter_map(|l| l.split("items=").nth(1)?.split_whitespace().next()?.parse::<usize>().ok())
        .sum();
    assert_eq!(restored, 1, "only the open item is restored:\n{}", monitor.log_text());
}

/// The last value of a key among (key, value) records.
trait LastOf {
    fn last_of(&self, key: &[u8]) -> Option<&Vec<u8>>;
}

impl LastOf for Vec<(Vec<u8>, Vec<u8>)> {
    fn last_of(&self, key: &[u8]) -> Option<&Vec<u8>> {
        self.iter().rev().find(|(k, _)| k == key).map(|(_, v)| v)
    }
}
