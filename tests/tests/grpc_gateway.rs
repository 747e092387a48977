//! The gRPC gateway over TLS with a real tonic client, against a real Kafka-protocol
//! broker (Tansu) and the monitor: every method, the resume of a dropped alert stream,
//! the authorization matrix, every field rule of DOMAIN §2 through Submit, mutual TLS
//! and per-caller limits. Tests run one at a time (each owns a broker).

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use futures::StreamExt;
use jiancha_platform::auth::Role;
use jiancha_proto::v1;
use jiancha_proto::v1::EventType as T;
use jiancha_scenarios::grpc::{OTHER, OWN, Stack, ago, event};
use jiancha_scenarios::kafka::wait_for;
use prost::Message as _;
use std::collections::BTreeSet;
use std::sync::Mutex;
use std::time::Duration;
use tonic::Code;
use tonic_types::StatusExt;

static ONE_AT_A_TIME: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

fn submit(s: &Stack, token: &str, e: v1::Event) -> Result<v1::SubmitResponse, tonic::Status> {
    let mut c = s.ingest(Some(token.to_owned()));
    s.rt.block_on(c.submit(v1::SubmitRequest { event: Some(e) })).map(|r| r.into_inner())
}

/// An item submitted `days` ago and never handled: ACCEPTANCE_OVERDUE (and more) at once.
fn overdue_item(s: &Stack, token: &str, item: &str, department: &str) {
    submit(s, token, event(&format!("{item}-1"), item, T::Submitted, &ago(10, 0), department)).unwrap();
}

fn first_violation_field(status: &tonic::Status) -> String {
    status.get_details_bad_request().and_then(|b| b.field_violations.first().map(|v| v.field.clone())).unwrap_or_default()
}

#[test]
fn every_method_answers_over_tls() {
    let _g = serial();
    let s = Stack::start("grpc-methods", |_| {});
    let dept = s.token(Role::Department, Some(OWN));
    let inspector = s.token(Role::Inspector, None);
    let operator = s.token(Role::Operator, None);

    // Health and reflection, without a token.
    let mut health = tonic_health::pb::health_client::HealthClient::new(s.channel());
    wait_for("the gateway to report SERVING", Duration::from_secs(60), || {
        let req = tonic_health::pb::HealthCheckRequest { service: "jiancha.v1.MonitorService".into() };
        s.rt.block_on(health.check(req))
            .is_ok_and(|r| r.into_inner().status == tonic_health::pb::health_check_response::ServingStatus::Serving as i32)
    });
    let mut reflection = tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient::new(s.channel());
    let req = tonic_reflection::pb::v1::ServerReflectionRequest {
        host: String::new(),
        message_request: Some(tonic_reflection::pb::v1::server_reflection_request::MessageRequest::ListServices(String::new())),
    };
    let services: Vec<String> = s.rt.block_on(async {
        let mut stream = reflection.server_reflection_info(futures::stream::iter([req])).await.unwrap().into_inner();
        match stream.next().await.unwrap().unwrap().message_response.unwrap() {
            tonic_reflection::pb::v1::server_reflection_response::MessageResponse::ListServicesResponse(l) => {
                l.service.into_iter().map(|s| s.name).collect()
            }
            other => panic!("unexpected reflection answer {other:?}"),
        }
    });
    for name in ["jiancha.v1.IngestService", "jiancha.v1.MonitorService", "jiancha.v1.CatalogService", "grpc.health.v1.Health"] {
        assert!(services.iter().any(|s| s == name), "{name} not in {services:?}");
    }

    // Submit: answered with where the broker stored it.
    let stored = submit(&s, &dept, event("A-1", "IT-A", T::Submitted, &ago(10, 0), OWN)).unwrap();
    assert_eq!(stored.event_id, "A-1");
    assert!(stored.offset >= 0);

    // SubmitStream: one result per event, in order; an invalid one does not stop the others.
    let mut second = event("B-2", "IT-B", T::CorrectionRequested, &ago(0, 20), OWN);
    second.materials = vec!["营业执照".into()];
    let mut third = second.clone();
    third.event_id = "B-3".into();
    third.occurred_at = String::new();
    let mut fourth = second.clone();
    fourth.event_id = "B-4".into();
    fourth.occurred_at = ago(0, 10);
    let batch = [event("B-1", "IT-B", T::Submitted, &ago(0, 30), OWN), second, third, fourth];
    let mut ingest = s.ingest(Some(dept.clone()));
    let answer =
        s.rt.block_on(ingest.submit_stream(futures::stream::iter(batch.map(|e| v1::SubmitRequest { event: Some(e) }))))
            .unwrap()
            .into_inner();
    let codes: Vec<&str> = answer.results.iter().map(|r| r.code.as_str()).collect();
    assert_eq!(codes, ["OK", "OK", "INVALID_ARGUMENT", "OK"]);
    assert_eq!((answer.accepted, answer.rejected), (3, 1));
    assert_eq!(answer.results[2].violations[0].field, "occurred_at");
    assert_eq!(answer.results[2].event_id, "B-3");

    // GetItem: the timeline, with the overdue acceptance clock and its derivation.
    let mut monitor = s.monitor(Some(inspector.clone()));
    let mut timeline = s.wait_for_item("IT-A");
    wait_for("IT-A's alert history", Duration::from_secs(30), || {
        timeline =
            s.rt.block_on(monitor.get_item(v1::GetItemRequest { item_id: "IT-A".into(), ..Default::default() })).unwrap().into_inner();
        !timeline.history.is_empty()
    });
    assert_eq!(timeline.department_code, OWN);
    assert_eq!(timeline.service_name.as_deref(), Some("食品经营许可"));
    assert_eq!(timeline.status, v1::ItemStatus::Accepted as i32, "deemed accepted");
    let acceptance = timeline.clocks.iter().find(|c| c.name == "acceptance").expect("acceptance clock");
    assert_eq!(acceptance.status, v1::ClockStatus::Overdue as i32);
    assert!(acceptance.remaining_ms < 0);
    assert!(acceptance.derivation.as_ref().unwrap().zh.contains("起算当日不计入"), "{acceptance:?}");
    assert!(timeline.alerts.iter().any(|a| a.kind == v1::AlertKind::AcceptanceOverdue as i32));
    assert!(timeline.history.iter().any(|h| h.kind == v1::AlertKind::AcceptanceOverdue as i32));
    assert_eq!(timeline.events.len(), 1);
    let err = s.rt.block_on(monitor.get_item(v1::GetItemRequest { item_id: "NOPE".into(), ..Default::default() })).unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    // ListItems: filters and pages.
    s.wait_for_item("IT-B");
    let list = |req: v1::ListItemsRequest| s.rt.block_on(s.monitor(Some(inspector.clone())).list_items(req)).unwrap().into_inner();
    let all = list(v1::ListItemsRequest { department_code: Some(OWN.into()), ..Default::default() });
    let ids: BTreeSet<String> = all.items.iter().map(|i| i.item_id.clone()).collect();
    assert_eq!(ids, BTreeSet::from(["IT-A".to_owned(), "IT-B".to_owned()]));
    let overdue = list(v1::ListItemsRequest { overdue: Some(true), ..Default::default() });
    assert_eq!(overdue.items.iter().map(|i| i.item_id.as_str()).collect::<Vec<_>>(), ["IT-A"]);
    let pending = list(v1::ListItemsRequest { status: Some(v1::ItemStatus::CorrectionPending as i32), ..Default::default() });
    assert_eq!(pending.items.iter().map(|i| i.item_id.as_str()).collect::<Vec<_>>(), ["IT-B"]);
    let page1 = list(v1::ListItemsRequest { page_size: 1, ..Default::default() });
    assert_eq!(page1.items.len(), 1);
    assert!(!page1.next_page_token.is_empty());
    let page2 = list(v1::ListItemsRequest { page_size: 1, page_token: page1.next_page_token.clone(), ..Default::default() });
    assert_ne!(page1.items[0].item_id, page2.items[0].item_id);

    // WatchAlerts from the beginning: CORRECTION_REPEATED of IT-B and the overdue of IT-A.
    let kinds: BTreeSet<i32> = s.rt.block_on(async {
        let mut stream =
            monitor.watch_alerts(v1::WatchAlertsRequest { cursor: "earliest".into(), ..Default::default() }).await.unwrap().into_inner();
        let mut kinds = BTreeSet::new();
        while !(kinds.contains(&(v1::AlertKind::CorrectionRepeated as i32)) && kinds.contains(&(v1::AlertKind::AcceptanceOverdue as i32))) {
            let update =
                tokio::time::timeout(Duration::from_secs(60), stream.next()).await.expect("an update within 60 s").unwrap().unwrap();
            assert!(!update.cursor.is_empty());
            kinds.insert(update.alert.unwrap().kind);
        }
        kinds
    });
    assert!(kinds.len() >= 2);

    // Catalog: read, replace (checked version), refuse a stale version and an invalid text.
    let mut catalog = s.catalog(Some(operator.clone()));
    let doc = s.rt.block_on(catalog.get_catalog(v1::GetCatalogRequest {})).unwrap().into_inner();
    assert!(doc.services > 10);
    let changed = doc.toml.replacen("promised_days = 10", "promised_days = 12", 1);
    let replaced =
        s.rt.block_on(catalog.replace_catalog(v1::ReplaceCatalogRequest { toml: changed.clone(), expected_version: doc.version.clone() }))
            .unwrap()
            .into_inner();
    assert_ne!(replaced.version, doc.version);
    assert_eq!(std::fs::read_to_string(s.config.catalog.as_ref().unwrap()).unwrap(), changed);
    let stale =
        s.rt.block_on(catalog.replace_catalog(v1::ReplaceCatalogRequest { toml: changed.clone(), expected_version: doc.version }))
            .unwrap_err();
    assert_eq!(stale.code(), Code::Aborted);
    let broken = changed.replacen("promised_days = 12", "promised_days = 80", 1);
    let invalid =
        s.rt.block_on(catalog.replace_catalog(v1::ReplaceCatalogRequest { toml: broken, expected_version: String::new() })).unwrap_err();
    assert_eq!(invalid.code(), Code::InvalidArgument);
    assert!(first_violation_field(&invalid).contains("promised_days"), "{invalid:?}");

    // PreviewChange: a longer acceptance window moves IT-B's acceptance deadline, nothing is applied.
    let longer = changed.replacen("acceptance_days = 5", "acceptance_days = 7", 1);
    let request = v1::PreviewChangeRequest { catalog_toml: longer, calendar_tomls: vec![] };
    // The operator sees counts and deadline shifts, never which items (DOMAIN §6).
    let for_operator = s.rt.block_on(catalog.preview_change(request.clone())).unwrap().into_inner();
    assert!(for_operator.items_changed >= 1 && !for_operator.items.is_empty(), "{for_operator:?}");
    assert!(for_operator.items.iter().all(|i| i.item_id.is_empty()));
    assert!(!format!("{for_operator:?}").contains("IT-B") && !format!("{for_operator:?}").contains("李四"), "{for_operator:?}");
    let mut as_inspector = s.catalog(Some(s.token(Role::Inspector, None)));
    let preview = s.rt.block_on(as_inspector.preview_change(request)).unwrap().into_inner();
    assert!(preview.items_examined >= 2, "{preview:?}");
    let b = preview.items.iter().find(|i| i.item_id == "IT-B").expect("IT-B changes");
    assert!(b.deadlines.iter().any(|d| d.clock == "acceptance" && d.before != d.after), "{b:?}");
    assert_eq!(std::fs::read_to_string(s.config.catalog.as_ref().unwrap()).unwrap(), changed);

    // Calendars: list, replace (written where every monitor loads it), refuse a wrong name.
    let calendars = s.rt.block_on(catalog.list_calendars(v1::ListCalendarsRequest {})).unwrap().into_inner();
    let cn = calendars.calendars.iter().find(|c| c.name == "cn-mainland").expect("cn-mainland");
    assert!(cn.years.contains(&2025));
    let city = cn.toml.replacen("name = \"cn-mainland\"", "name = \"test-city\"", 1);
    assert_ne!(city, cn.toml, "the calendar text names itself");
    let written =
        s.rt.block_on(catalog.replace_calendar(v1::ReplaceCalendarRequest {
            name: "test-city".into(),
            toml: city.clone(),
            expected_version: String::new(),
        }))
        .unwrap()
        .into_inner();
    assert!(std::path::Path::new(&written.source).exists());
    let wrong =
        s.rt.block_on(catalog.replace_calendar(v1::ReplaceCalendarRequest {
            name: "other".into(),
            toml: city,
            expected_version: String::new(),
        }))
        .unwrap_err();
    assert_eq!(wrong.code(), Code::InvalidArgument);
    assert_eq!(first_violation_field(&wrong), "name");
}

/// (alert_id, status, triggered_at) of an update.
fn key(a: &v1::Alert) -> (String, i32, String) {
    (a.alert_id.clone(), a.status, a.triggered_at.clone())
}

#[test]
fn a_dropped_alert_stream_resumes_without_gap_or_duplicate() {
    let _g = serial();
    // A small memory: the resume is served from the topic, the live tail from memory.
    let s = Stack::start("grpc-resume", |c| c.grpc.watch_buffer = 3);
    let dept = s.token(Role::Department, Some(OWN));
    let inspector = s.token(Role::Inspector, None);
    for i in 0..3 {
        overdue_item(&s, &dept, &format!("R-{i}"), OWN);
    }
    // Receive two updates, then drop the connection.
    let mut c = s.monitor(Some(inspector.clone()));
    let (first, cursor) = s.rt.block_on(async {
        let mut stream =
            c.watch_alerts(v1::WatchAlertsRequest { cursor: "earliest".into(), ..Default::default() }).await.unwrap().into_inner();
        let mut got = Vec::new();
        let mut cursor = String::new();
        while got.len() < 2 {
            let u = tokio::time::timeout(Duration::from_secs(60), stream.next()).await.expect("update").unwrap().unwrap();
            got.push(key(u.alert.as_ref().unwrap()));
            cursor = u.cursor;
        }
        (got, cursor)
    });
    drop(c);
    for i in 3..6 {
        overdue_item(&s, &dept, &format!("R-{i}"), OWN);
    }
    // Everything the monitor published, once it is quiet.
    let all = settled_alerts(&s);
    assert!(all.len() >= 12, "{} updates", all.len());

    let mut c = s.monitor(Some(inspector.clone()));
    let (resumed, last_cursor) = s.rt.block_on(async {
        let mut stream =
            c.watch_alerts(v1::WatchAlertsRequest { cursor: cursor.clone(), ..Default::default() }).await.unwrap().into_inner();
        let mut got = Vec::new();
        let mut last = cursor.clone();
        while first.len() + got.len() < all.len() {
            let u = tokio::time::timeout(Duration::from_secs(60), stream.next()).await.expect("resumed update").unwrap().unwrap();
            got.push(key(u.alert.as_ref().unwrap()));
            last = u.cursor;
        }
        // Nothing more arrives: nothing is sent twice.
        assert!(tokio::time::timeout(Duration::from_secs(2), stream.next()).await.is_err(), "an extra update after the last one");
        (got, last)
    });
    let mut seen: Vec<_> = first.iter().chain(resumed.iter()).cloned().collect();
    let mut want = all.clone();
    seen.sort();
    want.sort();
    assert_eq!(seen, want, "resumed stream differs from the topic");

    // Resuming from the last cursor then follows live updates from memory.
    overdue_item(&s, &dept, "R-live", OWN);
    let live = s.rt.block_on(async {
        let mut stream = c.watch_alerts(v1::WatchAlertsRequest { cursor: last_cursor, ..Default::default() }).await.unwrap().into_inner();
        let u = tokio::time::timeout(Duration::from_secs(60), stream.next()).await.expect("live update").unwrap().unwrap();
        u.alert.unwrap()
    });
    assert_eq!(live.item_id.as_deref(), Some("R-live"));
}

/// Every alert update on the topic once its count stops changing for 3 s.
fn settled_alerts(s: &Stack) -> Vec<(String, i32, String)> {
    let mut last = usize::MAX;
    let mut stable_since = std::time::Instant::now();
    loop {
        let records = s.topic_records("jiancha.alerts");
        if records.len() != last {
            last = records.len();
            stable_since = std::time::Instant::now();
        } else if stable_since.elapsed() > Duration::from_secs(3) && last > 0 {
            return records.iter().map(|(_, v)| key(&v1::Alert::decode(v.as_slice()).unwrap())).collect();
        }
        std::thread::sleep(Duration::from_millis(300));
    }
}

#[test]
fn every_method_checks_the_role_and_the_department() {
    let _g = serial();
    let s = Stack::start("grpc-authz", |_| {});
    let own_token = s.token(Role::Department, Some(OWN));
    let other_token = s.token(Role::Department, Some(OTHER));
    overdue_item(&s, &own_token, "OWN-1", OWN);
    overdue_item(&s, &other_token, "OTHER-1", OTHER);
    s.wait_for_item("OWN-1");
    s.wait_for_item("OTHER-1");
    let catalog_text = std::fs::read_to_string(s.config.catalog.as_ref().unwrap()).unwrap();
    let calendar_text = jiancha_core::calendar::CN_MAINLAND_TOML.replacen("name = \"cn-mainland\"", "name = \"authz-city\"", 1);

    // (caller, target department) → the status each method must give.
    #[derive(Clone, Copy, Debug, PartialEq)]
    enum Who {
        Nobody,
        Forged,
        Inspector,
        Own,
        Operator,
        Auditor,
    }
    let token = |who: Who| -> Option<String> {
        match who {
            Who::Nobody => None,
            Who::Forged => Some("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl".into()),
            Who::Inspector => Some(s.token(Role::Inspector, None)),
            Who::Own => Some(s.token(Role::Department, Some(OWN))),
            Who::Operator => Some(s.token(Role::Operator, None)),
            Who::Auditor => Some(s.token(Role::Auditor, None)),
        }
    };
    let methods = [
        "Submit",
        "SubmitStream",
        "GetItem",
        "ListItems",
        "WatchAlerts",
        "GetCatalog",
        "ReplaceCatalog",
        "ListCalendars",
        "ReplaceCalendar",
        "PreviewChange",
    ];
    let mut n = 0;
    let mut failures = Vec::new();
    for method in methods {
        for who in [Who::Nobody, Who::Forged, Who::Inspector, Who::Own, Who::Operator, Who::Auditor] {
            for target in [OWN, OTHER] {
                n += 1;
                let expected = expected_code(
                    method,
                    who == Who::Own,
                    matches!(who, Who::Nobody | Who::Forged),
                    match who {
                        Who::Inspector => Some(Role::Inspector),
                        Who::Own => Some(Role::Department),
                        Who::Operator => Some(Role::Operator),
                        Who::Auditor => Some(Role::Auditor),
                        _ => None,
                    },
                    target == OWN,
                );
                let got = call(&s, method, token(who), target, &catalog_text, &calendar_text, n);
                if got != expected {
                    failures.push(format!("{method} as {who:?} on {target}: expected {expected:?}, got {got:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {n} cases wrong:\n{}", failures.len(), failures.join("\n"));
}

/// The status a call must end with (the per-event code for SubmitStream).
fn expected_code(method: &str, is_department: bool, unauthenticated: bool, role: Option<Role>, own_target: bool) -> Code {
    if unauthenticated {
        return Code::Unauthenticated;
    }
    let role = role.unwrap();
    let allowed: &[Role] = match method {
        "Submit" | "SubmitStream" => &[Role::Department],
        "GetItem" | "ListItems" | "WatchAlerts" => &[Role::Inspector, Role::Department, Role::Auditor],
        "GetCatalog" | "ListCalendars" => &Role::ALL,
        "ReplaceCatalog" | "ReplaceCalendar" => &[Role::Operator],
        "PreviewChange" => &[Role::Inspector, Role::Operator, Role::Auditor],
        other => panic!("unknown method {other}"),
    };
    if !allowed.contains(&role) {
        return Code::PermissionDenied;
    }
    match method {
        // Another department's item answers as one that does not exist (ids reveal nothing).
        "GetItem" if is_department && !own_target => Code::NotFound,
        "Submit" | "SubmitStream" | "ListItems" | "WatchAlerts" if is_department && !own_target => Code::PermissionDenied,
        _ => Code::Ok,
    }
}

#[allow(clippy::too_many_arguments)]
fn call(s: &Stack, method: &str, token: Option<String>, target: &str, catalog: &str, calendar: &str, n: usize) -> Code {
    let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |e| e.code());
    let item = if target == OWN { "OWN-1" } else { "OTHER-1" };
    let ev = event(&format!("authz-{n}"), &format!("AUTHZ-{n}"), T::Submitted, &ago(0, 5), target);
    let (mut ingest, mut monitor, mut catalogs) = (s.ingest(token.clone()), s.monitor(token.clone()), s.catalog(token));
    s.rt.block_on(async {
        match method {
            "Submit" => code(ingest.submit(v1::SubmitRequest { event: Some(ev) }).await.map(drop)),
            "SubmitStream" => {
                let r = ingest.submit_stream(futures::stream::iter([v1::SubmitRequest { event: Some(ev) }])).await;
                match r {
                    Err(e) => e.code(),
                    Ok(resp) => match resp.into_inner().results[0].code.as_str() {
                        "OK" => Code::Ok,
                        "PERMISSION_DENIED" => Code::PermissionDenied,
                        other => panic!("unexpected per-event code {other}"),
                    },
                }
            }
            "GetItem" => code(monitor.get_item(v1::GetItemRequest { item_id: item.into(), ..Default::default() }).await.map(drop)),
            "ListItems" => code(
                monitor.list_items(v1::ListItemsRequest { department_code: Some(target.into()), ..Default::default() }).await.map(drop),
            ),
            "WatchAlerts" => code(
                monitor
                    .watch_alerts(v1::WatchAlertsRequest { department_codes: vec![target.into()], ..Default::default() })
                    .await
                    .map(drop),
            ),
            "GetCatalog" => code(catalogs.get_catalog(v1::GetCatalogRequest {}).await.map(drop)),
            "ReplaceCatalog" => code(
                catalogs
                    .replace_catalog(v1::ReplaceCatalogRequest { toml: catalog.into(), expected_version: String::new() })
                    .await
                    .map(drop),
            ),
            "ListCalendars" => code(catalogs.list_calendars(v1::ListCalendarsRequest {}).await.map(drop)),
            "ReplaceCalendar" => code(
                catalogs
                    .replace_calendar(v1::ReplaceCalendarRequest {
                        name: "authz-city".into(),
                        toml: calendar.into(),
                        expected_version: String::new(),
                    })
                    .await
                    .map(drop),
            ),
            "PreviewChange" => code(catalogs.preview_change(v1::PreviewChangeRequest::default()).await.map(drop)),
            other => panic!("unknown method {other}"),
        }
    })
}

#[test]
fn every_field_rule_of_domain_2_is_refused_by_name_and_nothing_is_published() {
    let _g = serial();
    let s = Stack::start("grpc-invalid", |_| {});
    let dept = s.token(Role::Department, Some(OWN));
    let at = ago(0, 5);
    let base = || event("E-1", "BAD-1", T::Accepted, &at, OWN);
    let long = "x".repeat(129);
    type Breaker = Box<dyn Fn(&mut v1::Event)>;
    let cases: Vec<(&str, Breaker)> = vec![
        ("event_id", Box::new(|e| e.event_id.clear())),
        (
            "event_id",
            Box::new({
                let l = long.clone();
                move |e| e.event_id = l.clone()
            }),
        ),
        ("item_id", Box::new(|e| e.item_id.clear())),
        (
            "item_id",
            Box::new({
                let l = long.clone();
                move |e| e.item_id = l.clone()
            }),
        ),
        ("department_code", Box::new(|e| e.department_code.clear())),
        ("type", Box::new(|e| e.r#type = 0)),
        ("type", Box::new(|e| e.r#type = 99)),
        ("occurred_at", Box::new(|e| e.occurred_at.clear())),
        ("occurred_at", Box::new(|e| e.occurred_at = "2025-03-03T09:00:00".into())),
        ("occurred_at", Box::new(|e| e.occurred_at = "yesterday".into())),
        (
            "service_code",
            Box::new(|e| {
                e.r#type = T::Submitted as i32;
                e.service_code = None;
            }),
        ),
        ("actor", Box::new(|e| e.actor = None)),
        ("materials", Box::new(|e| e.r#type = T::CorrectionRequested as i32)),
        ("step", Box::new(|e| e.r#type = T::StepCompleted as i32)),
        (
            "suspension_kind",
            Box::new(|e| {
                e.r#type = T::Suspended as i32;
                e.expected_days = Some(5);
            }),
        ),
        (
            "expected_days",
            Box::new(|e| {
                e.r#type = T::Suspended as i32;
                e.suspension_kind = Some("HEARING".into());
                e.expected_days = Some(0);
            }),
        ),
        (
            "days",
            Box::new(|e| {
                e.r#type = T::Extended as i32;
                e.days = Some(-3);
            }),
        ),
        (
            "amount_fen",
            Box::new(|e| {
                e.r#type = T::FeeCharged as i32;
                e.amount_fen = Some(-1);
            }),
        ),
        ("amount_fen", Box::new(|e| e.r#type = T::FeeCharged as i32)),
        ("outcome", Box::new(|e| e.r#type = T::Decided as i32)),
        (
            "outcome",
            Box::new(|e| {
                e.r#type = T::Decided as i32;
                e.outcome = 7;
            }),
        ),
    ];
    for (i, (field, breaker)) in cases.iter().enumerate() {
        let mut e = base();
        breaker(&mut e);
        let err = submit(&s, &dept, e).expect_err(&format!("case {i} ({field}) must be refused"));
        assert_eq!(err.code(), Code::InvalidArgument, "case {i} ({field}): {err:?}");
        let bad = err.get_details_bad_request().unwrap_or_else(|| panic!("case {i}: no BadRequest details: {err:?}"));
        assert_eq!(bad.field_violations[0].field, format!("event.{field}"), "case {i}: {err:?}");
        assert!(err.message().contains(field), "case {i}: the message names the field: {}", err.message());
        let info = err.get_details_error_info().expect("ErrorInfo");
        assert!(!info.reason.is_empty());
    }
    let err = s.rt.block_on(s.ingest(Some(dept.clone())).submit(v1::SubmitRequest { event: None })).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(first_violation_field(&err), "event");

    // A valid event afterwards is the only record on the topic.
    submit(&s, &dept, base()).unwrap();
    let records = s.topic_records("jiancha.events");
    assert_eq!(records.len(), 1, "only the valid event reaches the topic");
    let stored = v1::Event::decode(records[0].1.as_slice()).unwrap();
    assert_eq!(stored, base());
    assert_eq!(records[0].0, b"BAD-1", "keyed by item_id");
}

#[test]
fn mutual_tls_and_per_caller_limits() {
    let _g = serial();
    let s = Stack::start("grpc-mtls", |c| {
        c.grpc.require_client_cert = true;
        c.grpc.rate_per_caller = 0.01;
        c.grpc.burst_per_caller = 3.0;
        c.grpc.watchers_per_caller = 1;
    });
    let dept = s.token(Role::Department, Some(OWN));
    // Without a client certificate the handshake fails.
    let ca = std::fs::read(&s.local.ca_cert).unwrap();
    let tls = tonic::transport::ClientTlsConfig::new().ca_certificate(tonic::transport::Certificate::from_pem(ca)).domain_name("localhost");
    let endpoint = tonic::transport::Channel::from_shared(format!("https://127.0.0.1:{}", s.addr.port())).unwrap().tls_config(tls).unwrap();
    let refused = s.rt.block_on(async {
        match endpoint.connect().await {
            Err(_) => true,
            Ok(ch) => {
                let mut c = v1::ingest_service_client::IngestServiceClient::new(ch);
                // TLS 1.3 finishes the handshake before the server checks the client: the
                // server then closes the connection, and no gRPC answer (not even
                // UNAUTHENTICATED) comes back.
                let r = c.submit(v1::SubmitRequest::default()).await;
                r.is_err_and(|e| matches!(e.code(), Code::Cancelled | Code::Unavailable | Code::Unknown))
            }
        }
    });
    assert!(refused, "a client without a certificate must not get through");
    // With the certificate: three submits in the burst, the fourth is over the rate.
    let channel = s.channel_with(Some(s.client_identity()));
    let mut ingest = v1::ingest_service_client::IngestServiceClient::with_interceptor(
        channel.clone(),
        jiancha_scenarios::grpc::Bearer(Some(dept.clone())),
    );
    for i in 0..3 {
        let e = event(&format!("L-{i}"), "LIMIT-1", T::Submitted, &ago(0, 5), OWN);
        s.rt.block_on(ingest.submit(v1::SubmitRequest { event: Some(e) })).unwrap();
    }
    let e = event("L-3", "LIMIT-1", T::Submitted, &ago(0, 5), OWN);
    let err = s.rt.block_on(ingest.submit(v1::SubmitRequest { event: Some(e) })).unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.get_details_retry_info().is_some());
    // Another caller is not affected by this one's rate.
    let other = s.token(Role::Department, Some(OTHER));
    let mut other_ingest =
        v1::ingest_service_client::IngestServiceClient::with_interceptor(channel.clone(), jiancha_scenarios::grpc::Bearer(Some(other)));
    s.rt.block_on(other_ingest.submit(v1::SubmitRequest { event: Some(event("O-1", "LIMIT-2", T::Submitted, &ago(0, 5), OTHER)) }))
        .unwrap();
    // One live stream per caller here: the second is refused.
    let mut monitor =
        v1::monitor_service_client::MonitorServiceClient::with_interceptor(channel, jiancha_scenarios::grpc::Bearer(Some(dept)));
    let first = s.rt.block_on(monitor.watch_alerts(v1::WatchAlertsRequest::default())).unwrap();
    let second = s.rt.block_on(monitor.watch_alerts(v1::WatchAlertsRequest::default())).unwrap_err();
    assert_eq!(second.code(), Code::ResourceExhausted);
    drop(first);
}

/// The demo events that already happened, squeezed into the last 40 minutes (order kept),
/// so that neither path reports them late and no deadline passes during the test.
fn recent_demo_lines() -> Vec<String> {
    let text = std::fs::read_to_string(jiancha_scenarios::repo_root().join("deploy/demo/events.jsonl")).unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let mut events: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| {
            jiancha_core::parse_json_event(l.as_bytes()).ok().filter(|e| e.received_at.unwrap_or(e.event.occurred_at).0 <= now).map(|_| l)
        })
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let at = |v: &serde_json::Value| jiancha_core::Timestamp::parse_rfc3339(v["occurred_at"].as_str().unwrap()).unwrap().0;
    let (t0, t1) = (events.iter().map(at).min().unwrap(), events.iter().map(at).max().unwrap());
    let span = (t1 - t0).max(1) as f64;
    for v in &mut events {
        let t = now - 40 * 60_000 + ((at(v) - t0) as f64 / span * 30.0 * 60_000.0) as i64;
        let when = chrono::DateTime::from_timestamp_millis(t).unwrap().with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).unwrap());
        v["occurred_at"] = when.to_rfc3339_opts(chrono::SecondsFormat::Millis, true).into();
        v.as_object_mut().unwrap().remove("received_at");
    }
    events.iter().map(|v| v.to_string()).collect()
}

/// The effective alert set once the topic is quiet for 3 s.
fn settled_effective(s: &Stack) -> std::collections::BTreeMap<String, (String, String)> {
    settled_alerts(s);
    jiancha_scenarios::kafka::effective(&jiancha_scenarios::kafka::read_alerts(&s.broker.bootstrap()))
}

#[test]
fn events_through_grpc_give_the_same_alerts_as_through_jiancha_produce() {
    let _g = serial();
    let lines = recent_demo_lines();
    assert!(lines.len() > 500, "{} lines", lines.len());

    // Through `jiancha produce` (the Kafka path).
    let via_produce = {
        let s = Stack::start("grpc-vs-produce-a", |_| {});
        let text = lines.join("\n");
        let report = jiancha_scenarios::kafka::produce_lines(&s.broker.bootstrap(), text, true);
        assert_eq!(report.sent, lines.len());
        settled_effective(&s)
    };

    // Through SubmitStream, one stream per department with that department's token.
    let via_grpc = {
        let s = Stack::start("grpc-vs-produce-b", |_| {});
        let mut by_department: std::collections::BTreeMap<String, Vec<v1::SubmitRequest>> = Default::default();
        for line in &lines {
            let e = jiancha_core::parse_json_event(line.as_bytes()).unwrap().event;
            by_department.entry(e.department_code.clone()).or_default().push(v1::SubmitRequest { event: Some(v1::Event::from(&e)) });
        }
        let mut accepted = 0;
        for (department, requests) in by_department {
            let mut ingest = s.ingest(Some(s.token(Role::Department, Some(&department))));
            let answer = s.rt.block_on(ingest.submit_stream(futures::stream::iter(requests))).unwrap().into_inner();
            assert_eq!(answer.rejected, 0, "{:?}", answer.results.iter().find(|r| r.code != "OK"));
            accepted += answer.accepted;
        }
        assert_eq!(accepted as usize, lines.len());
        settled_effective(&s)
    };
    assert!(via_produce.len() > 50, "{} alerts", via_produce.len());
    assert_eq!(via_grpc, via_produce);
}

#[test]
fn a_department_sees_only_its_own_items_and_alerts() {
    let _g = serial();
    let s = Stack::start("grpc-scope", |_| {});
    let own = s.token(Role::Department, Some(OWN));
    let other = s.token(Role::Department, Some(OTHER));
    for i in 0..3 {
        overdue_item(&s, &own, &format!("MINE-{i}"), OWN);
        overdue_item(&s, &other, &format!("THEIRS-{i}"), OTHER);
    }
    s.wait_for_item("MINE-2");
    s.wait_for_item("THEIRS-2");
    // Every alert of both departments is on the topic before the department looks.
    let all = settled_alerts(&s);
    assert!(all.len() >= 6);

    let mut monitor = s.monitor(Some(own));
    let list = s.rt.block_on(monitor.list_items(v1::ListItemsRequest::default())).unwrap().into_inner();
    let ids: BTreeSet<String> = list.items.iter().map(|i| i.item_id.clone()).collect();
    assert_eq!(ids, (0..3).map(|i| format!("MINE-{i}")).collect::<BTreeSet<_>>());
    let seen: Vec<v1::Alert> = s.rt.block_on(async {
        let mut stream =
            monitor.watch_alerts(v1::WatchAlertsRequest { cursor: "earliest".into(), ..Default::default() }).await.unwrap().into_inner();
        let mut seen = Vec::new();
        while let Ok(Some(Ok(u))) = tokio::time::timeout(Duration::from_secs(3), stream.next()).await {
            seen.push(u.alert.unwrap());
        }
        seen
    });
    assert!(!seen.is_empty());
    assert!(seen.iter().all(|a| a.department_code.as_deref() == Some(OWN)), "another department's alert leaked");
    let own_on_topic = s
        .topic_records("jiancha.alerts")
        .iter()
        .filter(|(_, v)| v1::Alert::decode(v.as_slice()).unwrap().department_code.as_deref() == Some(OWN))
        .count();
    assert_eq!(seen.len(), own_on_topic, "every update of its own department, once");
}
