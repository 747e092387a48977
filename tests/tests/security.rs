//! The findings of a department-token attacker, each on the real stack (Tansu, the
//! monitor, the gateway over TLS): department isolation on gRPC and Kafka, hostile
//! cursors, calendar names that would leave their folder, private key files, records
//! written before department isolation, and Kafka over TLS.

use jiancha_platform::auth::Role;
use jiancha_proto::v1;
use jiancha_proto::v1::EventType as T;
use jiancha_scenarios::grpc::{OTHER, OWN, Stack, ago, event};
use jiancha_scenarios::kafka::{Broker, Scratch, client, free_port, wait_for};
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tonic::Code;

/// One record with its headers.
struct Record {
    key: Option<Vec<u8>>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, String)>,
}

/// Every record of `topic` so far, with headers; `client` carries the settings.
fn records(mut client: rdkafka::config::ClientConfig, topic: &str) -> Vec<Record> {
    let consumer: BaseConsumer =
        client.set("group.id", "jiancha-it-security").set("enable.auto.commit", "false").create().expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = rdkafka::TopicPartitionList::new();
    let mut highs = std::collections::HashMap::new();
    for p in metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())) {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks");
        if high > low {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).expect("assign");
            highs.insert(p, high);
        }
    }
    let mut out = Vec::new();
    if highs.is_empty() {
        return out;
    }
    consumer.assign(&tpl).expect("assign");
    let end = Instant::now() + Duration::from_secs(30);
    while !highs.is_empty() && Instant::now() < end {
        let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) else { continue };
        let headers = m
            .headers()
            .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
            .unwrap_or_default();
        out.push(Record { key: m.key().map(<[u8]>::to_vec), value: m.payload().map(<[u8]>::to_vec), headers });
        if highs.get(&m.partition()).is_some_and(|&h| m.offset() + 1 >= h) {
            highs.remove(&m.partition());
        }
    }
    out
}

fn header<'a>(r: &'a Record, key: &str) -> Option<&'a str> {
    r.headers.iter().find(|(k, _)| k == key).map(|(_, v)| v.as_str())
}

/// Sends one JSON event to `topic` as a department system's Kafka client would.
fn send_json(client: rdkafka::config::ClientConfig, topic: &str, key: &str, json: &str) {
    let producer: FutureProducer = client.create().expect("producer");
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(producer.send(FutureRecord::to(topic).key(key).payload(json), Duration::from_secs(30))).expect("sent");
}

fn event_ids(t: &v1::ItemTimeline) -> Vec<String> {
    t.events.iter().map(|e| e.event_id.clone()).collect()
}

#[test]
fn another_department_can_neither_change_nor_preempt_nor_read_an_item() {
    let s = Stack::start("isolation", |_| {});
    let (own, other) = (s.token(Role::Department, Some(OWN)), s.token(Role::Department, Some(OTHER)));
    let submit = |token: &str, e: v1::Event| {
        let mut ingest = s.ingest(Some(token.to_owned()));
        s.rt.block_on(ingest.submit(v1::SubmitRequest { event: Some(e) })).map(|r| r.into_inner())
    };
    submit(&own, event("X1-01", "X1", T::Submitted, &ago(0, 50), OWN)).expect("A submits its item");
    // B uses A's item id under its own code: first with the id of A's next event, then a
    // fee that would be a RED case against whoever owns the item.
    submit(&other, event("X1-02", "X1", T::Submitted, &ago(0, 40), OTHER)).expect("B submits its own item X1");
    let mut fee = event("X1-fee", "X1", T::FeeCharged, &ago(0, 35), OTHER);
    fee.amount_fen = Some(999_999);
    submit(&other, fee).expect("B's fee on its own item");
    // B may not speak for A at all.
    let err = submit(&other, event("X1-03", "X1", T::Accepted, &ago(0, 30), OWN)).unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    // A's own event with the id B used first is not a duplicate.
    submit(&own, event("X1-02", "X1", T::Accepted, &ago(0, 20), OWN)).expect("A accepts");

    let inspector = s.token(Role::Inspector, None);
    let mut as_inspector = s.monitor(Some(inspector));
    // Both items reach the view; the inspector is asked which one.
    wait_for("both departments' items in the view", Duration::from_secs(60), || {
        let r = s.rt.block_on(as_inspector.get_item(v1::GetItemRequest { item_id: "X1".into(), ..Default::default() }));
        matches!(r, Err(e) if e.code() == Code::InvalidArgument && e.message().contains("department_code"))
    });
    let mut as_own = s.monitor(Some(own));
    wait_for("A's acceptance in the view", Duration::from_secs(60), || {
        s.rt.block_on(as_own.get_item(v1::GetItemRequest { item_id: "X1".into(), ..Default::default() }))
            .is_ok_and(|t| t.into_inner().events.len() == 2)
    });
    let a = s.rt.block_on(as_own.get_item(v1::GetItemRequest { item_id: "X1".into(), ..Default::default() })).unwrap().into_inner();
    assert_eq!(a.department_code, OWN);
    assert_eq!(event_ids(&a), ["X1-01", "X1-02"], "A's item holds A's events only");
    assert!(a.alerts.iter().all(|x| x.department_code.as_deref() == Some(OWN)));
    assert!(!a.alerts.iter().any(|x| x.kind == v1::AlertKind::ProcedureViolation as i32), "B's fee is no alert against A: {:?}", a.alerts);

    let mut as_other = s.monitor(Some(other));
    let b = s.rt.block_on(as_other.get_item(v1::GetItemRequest { item_id: "X1".into(), ..Default::default() })).unwrap().into_inner();
    assert_eq!(b.department_code, OTHER);
    assert_eq!(event_ids(&b), ["X1-02", "X1-fee"], "B sees its own item, none of A's events or officials");
    assert!(!format!("{b:?}").contains("X1-01"));
    // Asking for A's item by name: the same answer as for an id that does not exist.
    let foreign = s.rt.block_on(as_other.get_item(v1::GetItemRequest { item_id: "X1".into(), department_code: OWN.into() })).unwrap_err();
    let unknown = s.rt.block_on(as_other.get_item(v1::GetItemRequest { item_id: "NOPE".into(), ..Default::default() })).unwrap_err();
    assert_eq!((foreign.code(), unknown.code()), (Code::NotFound, Code::NotFound));
    // The inspector names the department.
    let mut as_inspector = s.monitor(Some(s.token(Role::Inspector, None)));
    let a2 =
        s.rt.block_on(as_inspector.get_item(v1::GetItemRequest { item_id: "X1".into(), department_code: OWN.into() }))
            .unwrap()
            .into_inner();
    assert_eq!(event_ids(&a2), ["X1-01", "X1-02"]);
}

#[test]
fn hostile_cursors_and_calendar_names_are_refused_and_the_gateway_keeps_serving() {
    let s = Stack::start("hostile", |_| {});
    let inspector = s.token(Role::Inspector, None);
    let mut monitor = s.monitor(Some(inspector.clone()));
    for cursor in ["1000000000000:0", "18446744073709551615:0", "0:99999999999999999999", "2:0"] {
        let r = s.rt.block_on(monitor.watch_alerts(v1::WatchAlertsRequest { cursor: cursor.into(), ..Default::default() }));
        let e = r.err().unwrap_or_else(|| panic!("cursor {cursor} was accepted"));
        assert_eq!(e.code(), Code::InvalidArgument, "{cursor}: {e:?}");
    }
    // Still serving.
    let mut catalog = s.catalog(Some(s.token(Role::Operator, None)));
    s.rt.block_on(catalog.get_catalog(v1::GetCatalogRequest {})).expect("the gateway still answers");

    let calendar_dir = s.config.calendar_dir.clone().expect("calendar_dir");
    for name in ["../../x", "../x", "a/b", "x\0y", ""] {
        let toml = format!("name = {name:?}\n[years.2027]\nholidays = []\nworkdays = []\n");
        let e = s.rt.block_on(catalog.replace_calendar(v1::ReplaceCalendarRequest {
            name: name.into(),
            toml,
            expected_version: String::new(),
        }));
        let e = e.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{name:?}: {e:?}");
    }
    assert!(!calendar_dir.join("../../x.toml").exists() && !calendar_dir.join("../x.toml").exists(), "nothing written outside");
}

#[cfg(unix)]
#[test]
fn secrets_keys_and_tokens_are_the_owners_alone() {
    use std::os::unix::fs::PermissionsExt;
    let dir = Scratch::new("file-modes");
    let local = jiancha_platform::local::prepare(&dir.0.join("local"), "jiancha", &[OWN], 3600).unwrap();
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    for file in [&local.secret_file, &local.server_key, &local.client_key] {
        assert_eq!(mode(file), 0o600, "{}", file.display());
    }
    for (_, _, token) in &local.tokens {
        assert_eq!(mode(token), 0o600, "{}", token.display());
    }
    for d in [dir.0.join("local"), dir.0.join("local/tls"), dir.0.join("local/tokens")] {
        assert_eq!(mode(&d), 0o700, "{}", d.display());
    }
}

#[test]
fn a_record_on_a_departments_topic_naming_another_department_is_dead_lettered() {
    let s = Stack::start("mismatch", |_| {});
    let bootstrap = s.broker.bootstrap();
    let topic = s.config.topics.department_topic(OWN).expect("topic");
    wait_for("the monitor to create the department topics", Duration::from_secs(60), || {
        let c: BaseConsumer = client(&bootstrap).create().expect("consumer");
        c.fetch_metadata(Some(&topic), Duration::from_secs(5)).is_ok_and(|m| m.topics().iter().any(|t| !t.partitions().is_empty()))
    });
    let when = ago(0, 10);
    let line = |id: &str, item: &str, dept: &str| {
        format!(
            r#"{{"event_id":"{id}","item_id":"{item}","department_code":"{dept}","type":"SUBMITTED","service_code":"SCJG-001","occurred_at":"{when}"}}"#
        )
    };
    // OTHER's event written to OWN's input topic: refused.
    send_json(client(&bootstrap), &topic, "M1", &line("M1-01", "M1", OTHER));
    // OWN's event on its own topic: taken.
    send_json(client(&bootstrap), &topic, "M2", &line("M2-01", "M2", OWN));
    let timeline = s.wait_for_item("M2");
    assert_eq!(timeline.department_code, OWN);
    let mut dead = Vec::new();
    wait_for("the dead letter", Duration::from_secs(60), || {
        dead = records(client(&bootstrap), "jiancha.events.dlq");
        !dead.is_empty()
    });
    assert_eq!(dead.len(), 1);
    assert_eq!(header(&dead[0], "jiancha.reason"), Some("DEPARTMENT_MISMATCH"));
    assert_eq!(header(&dead[0], "jiancha.field"), Some("department_code"));
    assert_eq!(header(&dead[0], "jiancha.source.topic"), Some(topic.as_str()));
    assert!(header(&dead[0], "jiancha.message").is_some_and(|m| m.contains(OTHER) && m.contains(OWN)));
    assert_eq!(dead[0].value.as_deref(), Some(line("M1-01", "M1", OTHER).as_bytes()), "byte for byte");
    let mut inspector = s.monitor(Some(s.token(Role::Inspector, None)));
    let r = s.rt.block_on(inspector.get_item(v1::GetItemRequest { item_id: "M1".into(), ..Default::default() }));
    assert_eq!(r.unwrap_err().code(), Code::NotFound, "the refused event changed no item");
}

#[test]
fn changelog_records_from_before_department_isolation_restore_and_keep_their_alert_ids() {
    let dir = Scratch::new("legacy-restore");
    let broker = Broker::start(&dir.0);
    let bootstrap = broker.bootstrap();
    let config = jiancha_platform::Config {
        kafka_bootstrap: bootstrap.clone(),
        partitions: 1,
        metrics_listen: String::new(),
        group_id: "it-legacy".into(),
        ..jiancha_platform::Config::default()
    };
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(jiancha_platform::kafka::ensure_topics(&config, &[])).expect("topics");
    // An item as the monitor recorded it before: key = item_id, identity 0. Submitted
    // three weeks ago and never accepted.
    let submitted = jiancha_core::Timestamp(jiancha_platform::wall_clock().0 - 21 * 86_400_000);
    let state = jiancha_core::engine::ItemState {
        item_id: "L1".into(),
        service_code: Some("SCJG-001".into()),
        service_from_submitted: true,
        department_code: OWN.into(),
        events: vec![jiancha_core::engine::StoredEvent {
            event_id: "L1-01".into(),
            event_type: jiancha_core::event::EventType::Submitted,
            occurred_at: submitted,
            delay_ms: 0,
            actor: None,
            text: Some("SCJG-001".into()),
            number: 0,
            blank_reason: false,
        }],
        held: vec![],
        legacy_ids: true,
    };
    let mut record = v1::ItemState::from(&state);
    record.identity = jiancha_proto::LEGACY_IDENTITY;
    let producer: FutureProducer = client(&bootstrap).create().unwrap();
    rt.block_on(
        producer.send(
            FutureRecord::to("jiancha.monitor.state").partition(0).key("L1").payload(&record.encode_to_vec()),
            Duration::from_secs(30),
        ),
    )
    .expect("legacy record");

    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let monitor = rt.spawn(jiancha_monitor::monitor::run(config.clone(), shutdown));
    // A new event for the item: applied to the restored item (a duplicate of its event id
    // changes nothing), so its acceptance window is overdue under the legacy alert id.
    let line = format!(
        r#"{{"event_id":"L1-01","item_id":"L1","department_code":"{OWN}","type":"SUBMITTED","service_code":"SCJG-001","occurred_at":"{}"}}"#,
        submitted.to_rfc3339_in(chrono_tz::Asia::Shanghai)
    );
    jiancha_scenarios::kafka::produce_lines(&bootstrap, line, false);
    let expected = jiancha_core::alert::legacy_alert_id("L1", jiancha_core::AlertKind::AcceptanceOverdue, "L1-01");
    wait_for("the acceptance window's alert under the legacy id", Duration::from_secs(60), || {
        jiancha_scenarios::kafka::read_alerts(&bootstrap).iter().any(|a| a["alert_id"] == expected.as_str())
    });
    let updates = jiancha_scenarios::kafka::read_alerts(&bootstrap);
    assert_eq!(updates.iter().filter(|a| a["kind"] == "ACCEPTANCE_OVERDUE").count(), 1, "{updates:?}");
    // The record is rewritten under its new key, and the old key is tombstoned.
    let new_key = jiancha_proto::state_key(OWN, "L1");
    wait_for("the record under its new key and a tombstone", Duration::from_secs(30), || {
        let recs = records(client(&bootstrap), "jiancha.monitor.state");
        recs.iter().any(|r| r.key.as_deref() == Some(new_key.as_slice()) && r.value.is_some())
            && recs.iter().any(|r| r.key.as_deref() == Some(b"L1".as_slice()) && r.value.is_none())
    });
    let recs = records(client(&bootstrap), "jiancha.monitor.state");
    let newest = recs.iter().rev().find(|r| r.key.as_deref() == Some(new_key.as_slice())).and_then(|r| r.value.clone()).unwrap();
    assert!(jiancha_proto::decode_state(&newest).unwrap().legacy_ids, "the item keeps its legacy ids");
    let _ = stop.send(true);
    rt.block_on(monitor).unwrap().unwrap();
}

/// stunnel terminating TLS in front of the broker; killed on drop.
struct Tunnel(Child);

impl Drop for Tunnel {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn stunnel() -> Option<&'static str> {
    ["stunnel4", "stunnel"]
        .into_iter()
        .find(|b| Command::new(b).arg("-version").stdout(Stdio::null()).stderr(Stdio::null()).status().is_ok())
}

#[test]
fn every_kafka_client_speaks_tls_when_the_kafka_table_says_so() {
    let bin = stunnel().expect("stunnel4 is installed by ./scripts/test (apt-get install stunnel4)");
    let dir = Scratch::new("kafka-tls");
    let local = jiancha_platform::local::prepare(&dir.0.join("local"), "jiancha", &[OWN], 3600).unwrap();
    // Tansu listens in plaintext on one port and advertises the TLS port stunnel serves.
    let tls_port = free_port();
    let broker = Broker::start_advertising(&dir.0, &format!("tcp://127.0.0.1:{tls_port}"));
    let conf = dir.0.join("stunnel.conf");
    std::fs::write(
        &conf,
        format!(
            "foreground = yes\npid =\n[kafka]\naccept = 127.0.0.1:{tls_port}\nconnect = 127.0.0.1:{}\ncert = {}\nkey = {}\n",
            broker.port,
            local.server_cert.display(),
            local.server_key.display()
        ),
    )
    .unwrap();
    let log = std::fs::File::create(dir.0.join("stunnel.log")).unwrap();
    let _tunnel = Tunnel(Command::new(bin).arg(&conf).stdout(log.try_clone().unwrap()).stderr(log).spawn().expect("stunnel"));
    wait_for("stunnel to listen", Duration::from_secs(30), || std::net::TcpStream::connect(("127.0.0.1", tls_port)).is_ok());

    let settings = format!(
        "kafka_bootstrap = \"127.0.0.1:{tls_port}\"\npartitions = 2\nmetrics_listen = \"\"\ngroup_id = \"it-tls\"\n[kafka]\n\"security.protocol\" = \"SSL\"\n\"ssl.ca.location\" = {:?}\n",
        local.ca_cert.display().to_string()
    );
    let config: jiancha_platform::Config = toml::from_str(&settings).unwrap();
    config.validate().unwrap();
    let tls_client = || jiancha_platform::kafka::client(&config);
    // Without the [kafka] settings the TLS port answers nothing a client can read.
    let plain: BaseConsumer = client(&config.kafka_bootstrap).set("socket.timeout.ms", "3000").create().unwrap();
    assert!(plain.fetch_metadata(None, Duration::from_secs(4)).is_err(), "a plaintext client must not get through");

    let rt = tokio::runtime::Runtime::new().unwrap();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let monitor = rt.spawn(jiancha_monitor::monitor::run(config.clone(), shutdown));
    let topic = config.topics.department_topic(OWN).unwrap();
    wait_for("the monitor to create topics over TLS", Duration::from_secs(60), || {
        let c: BaseConsumer = tls_client().create().unwrap();
        c.fetch_metadata(Some(&topic), Duration::from_secs(5)).is_ok_and(|m| m.topics().iter().any(|t| !t.partitions().is_empty()))
    });
    // A department system over TLS: an item whose acceptance window ran out.
    let json = format!(
        r#"{{"event_id":"T1-01","item_id":"T1","department_code":"{OWN}","type":"SUBMITTED","service_code":"SCJG-001","occurred_at":"{}"}}"#,
        ago(21, 0)
    );
    send_json(tls_client(), &topic, "T1", &json);
    wait_for("an alert read back over TLS", Duration::from_secs(60), || {
        let mut out = Vec::new();
        jiancha::tools::print_alerts(tls_client(), "jiancha.alerts", false, None, &mut out).is_ok()
            && String::from_utf8_lossy(&out).contains("ACCEPTANCE_OVERDUE")
    });
    let _ = stop.send(true);
    rt.block_on(monitor).unwrap().unwrap();
}

#[test]
fn a_department_token_counts_only_with_that_departments_client_certificate() {
    let s = Stack::start("cert-binding", |c| c.grpc.bind_client_certificate = true);
    // The local client certificate names the first department of the set-up.
    let cert_department = jiancha_scenarios::grpc::DEPARTMENTS[0];
    let pem = std::fs::read(&s.local.client_cert).expect("client certificate");
    let (_, pem) = x509_parser::pem::parse_x509_pem(&pem).expect("PEM");
    let names = jiancha_platform::server::certificate_names(&pem.contents);
    assert_eq!(names, [cert_department]);
    let list = |token: String, with_cert: bool| {
        let channel = if with_cert { s.channel_with(Some(s.client_identity())) } else { s.channel() };
        let mut client =
            v1::monitor_service_client::MonitorServiceClient::with_interceptor(channel, jiancha_scenarios::grpc::Bearer(Some(token)));
        s.rt.block_on(client.list_items(v1::ListItemsRequest::default())).map(drop)
    };
    let reason = |e: &tonic::Status| {
        use tonic_types::StatusExt;
        e.get_details_error_info().map(|i| i.reason).unwrap_or_default()
    };
    let own = s.token(Role::Department, Some(cert_department));
    let other = s.token(Role::Department, Some(OWN));
    assert!(list(own.clone(), true).is_ok(), "the department's token with its certificate");
    let e = list(own, false).unwrap_err();
    assert_eq!((e.code(), reason(&e).as_str()), (Code::Unauthenticated, "CLIENT_CERT_REQUIRED"));
    let e = list(other, true).unwrap_err();
    assert_eq!((e.code(), reason(&e).as_str()), (Code::PermissionDenied, "CLIENT_CERT_MISMATCH"));
    assert!(list(s.token(Role::Inspector, None), false).is_ok(), "other roles are not bound");
}

#[test]
fn connections_beyond_the_limit_are_closed_and_the_others_keep_working() {
    let s = Stack::start("connection-limit", |c| c.grpc.max_connections = 2);
    let token = s.token(Role::Inspector, None);
    let try_connect = || {
        let ca = std::fs::read(&s.local.ca_cert).expect("ca");
        let tls =
            tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(ca)).domain_name("localhost");
        let endpoint = tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{}", s.addr.port()))
            .unwrap()
            .tls_config(tls)
            .unwrap()
            .connect_timeout(Duration::from_secs(5));
        s.rt.block_on(endpoint.connect())
    };
    let first = try_connect().expect("first connection");
    let second = try_connect().expect("second connection");
    assert!(try_connect().is_err(), "a third connection is closed at once");
    let mut client =
        v1::catalog_service_client::CatalogServiceClient::with_interceptor(first, jiancha_scenarios::grpc::Bearer(Some(token)));
    s.rt.block_on(client.get_catalog(v1::GetCatalogRequest {})).expect("an open connection keeps working");
    drop(second);
    wait_for("a place freed by a closed connection", Duration::from_secs(30), || try_connect().is_ok());
}

#[test]
fn a_client_that_never_finishes_the_tls_handshake_is_cut_off() {
    use std::io::Read;
    let s = Stack::start("handshake", |c| c.grpc.tls_handshake_timeout = jiancha_platform::config::TimeSpan::secs(1));
    let mut socket = std::net::TcpStream::connect(s.addr).expect("connect");
    socket.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let started = Instant::now();
    // Say nothing: the server closes the connection once the handshake time is up.
    let mut buf = [0u8; 16];
    let n = socket.read(&mut buf).unwrap_or(0);
    assert_eq!(n, 0, "the server closed the silent connection");
    assert!(started.elapsed() < Duration::from_secs(15), "closed after {:?}", started.elapsed());
    let mut catalog = s.catalog(Some(s.token(Role::Operator, None)));
    s.rt.block_on(catalog.get_catalog(v1::GetCatalogRequest {})).expect("others are served");
}
