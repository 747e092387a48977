//! The accountability service on the real pipeline: a Tansu broker, the monitor, the
//! gateway, and `jiancha accountability` on SQLite. Alerts open cases, late data that
//! retracts an alert closes its case, and an alert consumed three times opens one case.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use jiancha_accountability::store::{CaseFilter, Store};
use jiancha_accountability::workflow::{Disposition, Status};
use jiancha_platform::auth::Role;
use jiancha_proto::v1;
use jiancha_proto::v1::EventType as T;
use jiancha_scenarios::grpc::{OWN, Stack, ago, event};
use jiancha_scenarios::kafka::wait_for;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::sync::Arc;
use std::time::Duration;

fn cases_of(s: &Stack, store: &Store, item: &str) -> Vec<jiancha_accountability::store::CaseRow> {
    let all = s.rt.block_on(store.cases(&CaseFilter { limit: 1000, ..CaseFilter::default() })).unwrap();
    all.into_iter().filter(|c| c.item_id.as_deref() == Some(item)).collect()
}

/// Whether `group` has committed every partition of `topic` up to its high watermark.
fn committed_everything(bootstrap: &str, group: &str, topic: &str) -> bool {
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", group).create().unwrap();
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).unwrap();
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition(topic, p.id());
    }
    let Ok(committed) = consumer.committed_offsets(tpl, Duration::from_secs(10)) else { return false };
    committed.elements().iter().all(|e| {
        let (_, high) = consumer.fetch_watermarks(topic, e.partition(), Duration::from_secs(10)).unwrap();
        match e.offset() {
            rdkafka::Offset::Offset(o) => o >= high,
            _ => high == 0,
        }
    })
}

#[test]
fn alerts_become_cases_once_and_a_retraction_closes_them() {
    let s = Stack::start("acc-kafka", |_| {});
    let mut config = s.config.clone();
    config.accountability.database = format!("sqlite://{}", s.dir.0.join("cases.db").display());
    config.accountability.listen = "127.0.0.1:0".into();
    config.accountability.escalation_interval = jiancha_platform::config::TimeSpan::secs(1);
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let running = s.rt.block_on(jiancha_accountability::service::start(config, shutdown)).unwrap();
    let store: Arc<Store> = running.store.clone();

    // Submitted ten days ago and never answered: ACCEPTANCE_OVERDUE (YELLOW) opens a case.
    let dept = s.token(Role::Department, Some(OWN));
    let mut ingest = s.ingest(Some(dept));
    s.rt.block_on(ingest.submit(v1::SubmitRequest { event: Some(event("K-1", "KAFKA-1", T::Submitted, &ago(10, 0), OWN)) })).unwrap();
    let mut opened = Vec::new();
    wait_for("a case for KAFKA-1", Duration::from_secs(60), || {
        opened = cases_of(&s, &store, "KAFKA-1");
        opened.iter().any(|c| c.kind == "ACCEPTANCE_OVERDUE")
    });
    let case = opened.iter().find(|c| c.kind == "ACCEPTANCE_OVERDUE").unwrap().clone();
    assert_eq!(case.state.status, Status::Open);
    assert_eq!(case.clock_from, case.opened_at, "the reply clock counts from the alert's publication");
    assert!(opened.iter().all(|c| c.alert_level != "WARNING"), "WARNING alerts open no case");
    let entries_before = s.rt.block_on(store.audit_entries(0, None, 10_000)).unwrap().len();

    // The same alert record delivered twice more.
    let records = s.topic_records("jiancha.alerts");
    let (key, payload) = records.iter().find(|(k, _)| k == case.alert_id.as_bytes()).unwrap().clone();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", s.broker.bootstrap()).create().unwrap();
    for _ in 0..2 {
        s.rt.block_on(producer.send(FutureRecord::to("jiancha.alerts").key(&key).payload(&payload), Duration::from_secs(10))).unwrap();
    }
    wait_for("the accountability consumer to commit past the redelivered records", Duration::from_secs(60), || {
        committed_everything(&s.broker.bootstrap(), "jiancha-accountability", "jiancha.alerts")
    });
    let same: Vec<_> = cases_of(&s, &store, "KAFKA-1").into_iter().filter(|c| c.alert_id == case.alert_id).collect();
    assert_eq!(same.len(), 1, "one case per alert id");
    assert_eq!(s.rt.block_on(store.audit_entries(0, None, 10_000)).unwrap().len(), entries_before, "redelivery wrote nothing");

    // Late data: the item was accepted the day after submission. The monitor retracts
    // ACCEPTANCE_OVERDUE; its case closes as NO_FAULT.
    let dept = s.token(Role::Department, Some(OWN));
    let mut ingest = s.ingest(Some(dept));
    s.rt.block_on(ingest.submit(v1::SubmitRequest { event: Some(event("K-2", "KAFKA-1", T::Accepted, &ago(9, 0), OWN)) })).unwrap();
    wait_for("the case to close on retraction", Duration::from_secs(60), || {
        s.rt.block_on(store.case(case.case_id)).unwrap().state.status == Status::Resolved
    });
    let closed = s.rt.block_on(store.case(case.case_id)).unwrap();
    assert_eq!(closed.state.disposition, Some(Disposition::NoFault));
    assert_eq!(closed.state.resolution_reason.as_deref(), Some("retracted: late data"));
    assert!(s.rt.block_on(store.verify_audit()).unwrap().is_ok());

    // The item's figures for the statistics came from the state changelog.
    wait_for("the item's figures", Duration::from_secs(30), || {
        s.rt.block_on(sqlx::query("SELECT accepted_at FROM items WHERE item_id = 'KAFKA-1'").fetch_optional(store.pool()))
            .unwrap()
            .is_some_and(|r| sqlx::Row::get::<Option<i64>, _>(&r, 0).is_some())
    });
}

#[test]
fn an_alert_record_the_service_cannot_trust_goes_to_the_dead_letter_topic_and_blocks_nothing() {
    let s = Stack::start("acc-dlq", |_| {});
    let mut config = s.config.clone();
    config.accountability.database = format!("sqlite://{}", s.dir.0.join("cases.db").display());
    config.accountability.listen = "127.0.0.1:0".into();
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let running = s.rt.block_on(jiancha_accountability::service::start(config, shutdown)).unwrap();
    let store: Arc<Store> = running.store.clone();
    let bootstrap = s.broker.bootstrap();
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &bootstrap).create().unwrap();
    // Garbage, then a forged alert whose level is not its kind's (a RED made YELLOW).
    let forged = v1::Alert {
        alert_id: "00000000000000000000000000000001".into(),
        status: v1::AlertStatus::Fired as i32,
        item_id: Some("FORGED-1".into()),
        department_code: Some(OWN.into()),
        kind: v1::AlertKind::StatutoryOverdue as i32,
        level: v1::Level::Yellow as i32,
        triggered_at: ago(1, 0),
        ..v1::Alert::default()
    };
    use prost::Message as _;
    for (key, payload) in [("junk", b"\xff\xfe not an alert".to_vec()), ("forged", forged.encode_to_vec())] {
        s.rt.block_on(producer.send(FutureRecord::to("jiancha.alerts").key(key).payload(&payload), Duration::from_secs(30))).unwrap();
    }
    // A real alert after them still opens its case: nothing is blocked.
    let mut ingest = s.ingest(Some(s.token(Role::Department, Some(OWN))));
    s.rt.block_on(ingest.submit(v1::SubmitRequest { event: Some(event("D-1", "DLQ-1", T::Submitted, &ago(10, 0), OWN)) })).unwrap();
    wait_for("the real alert's case", Duration::from_secs(60), || !cases_of(&s, &store, "DLQ-1").is_empty());
    wait_for("both refused records on the dead-letter topic", Duration::from_secs(60), || s.topic_records("jiancha.alerts.dlq").len() == 2);
    let dead = s.topic_records("jiancha.alerts.dlq");
    assert!(dead.iter().any(|(k, v)| k == b"junk" && v == b"\xff\xfe not an alert"), "byte for byte");
    assert!(dead.iter().any(|(k, _)| k == b"forged"));
    assert!(cases_of(&s, &store, "FORGED-1").is_empty(), "a forged alert opens no case");
}
