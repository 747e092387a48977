//! AccountabilityService and StatsService over TLS with a real tonic client: the role
//! of every caller on every method (DOMAIN §6), the workflow through the API, and the
//! statistics of a scenario whose figures are computed by hand.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use futures::StreamExt;
use jiancha_accountability::store::{Incoming, ItemFacts, Store};
use jiancha_accountability::workflow::{self, Disposition};
use jiancha_core::{Calendars, Catalog, Timestamp};
use jiancha_platform::Config;
use jiancha_platform::auth::Role;
use jiancha_proto::v1;
use jiancha_proto::v1::accountability_service_client::AccountabilityServiceClient;
use jiancha_proto::v1::stats_service_client::StatsServiceClient;
use jiancha_scenarios::grpc::Bearer;
use jiancha_scenarios::kafka::Scratch;
use jiancha_scenarios::repo_root;
use std::sync::Arc;
use tonic::Code;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig};
use tonic_types::StatusExt;

const OWN: &str = "SCJG";
const OTHER: &str = "ZRZY";

fn at(text: &str) -> i64 {
    Timestamp::parse_rfc3339(text).unwrap().0
}

fn rules() -> (Arc<Catalog>, Calendars) {
    let calendars = Calendars::builtin();
    let text = std::fs::read_to_string(repo_root().join("deploy/demo/catalog.toml")).unwrap();
    (Arc::new(Catalog::from_toml(&text, &calendars).unwrap()), calendars)
}

fn alert(id: &str, item: &str, department: &str, service: &str, kind: v1::AlertKind, level: v1::Level, triggered: &str) -> v1::Alert {
    v1::Alert {
        alert_id: id.into(),
        status: v1::AlertStatus::Fired as i32,
        item_id: Some(item.into()),
        service_code: Some(service.into()),
        department_code: Some(department.into()),
        kind: kind as i32,
        level: level as i32,
        triggered_at: triggered.into(),
        event_id: None,
        message: Some(v1::Bilingual { zh: "消息".into(), en: "message".into() }),
        derivation: Some(v1::Bilingual { zh: "推导".into(), en: "derivation".into() }),
    }
}

/// The API on a SQLite store, over TLS with the local tokens.
struct Api {
    rt: tokio::runtime::Runtime,
    store: Arc<Store>,
    _dir: Scratch,
    local: jiancha_platform::local::LocalSetup,
    addr: std::net::SocketAddr,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Api {
    fn start(name: &str) -> Api {
        let dir = Scratch::new(name);
        let local = jiancha_platform::local::prepare(&dir.0.join("local"), "jiancha", &[OWN, OTHER], 3600).unwrap();
        let mut config = Config::default();
        config.accountability.listen = "127.0.0.1:0".into();
        local.apply(&mut config);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let (catalog, calendars) = rules();
        let url = format!("sqlite://{}", dir.0.join("cases.db").display());
        let (store, addr) = rt.block_on(async {
            let store = Arc::new(Store::open(&url).await.unwrap());
            let (addr, _server) =
                jiancha_accountability::service::serve_api(&config, store.clone(), catalog, &calendars, shutdown).await.unwrap();
            (store, addr)
        });
        Api { rt, store, _dir: dir, local, addr, _stop: stop }
    }

    fn token(&self, role: Role, department: Option<&str>) -> String {
        let (_, _, f) = self.local.tokens.iter().find(|(r, d, _)| *r == role && d.as_deref() == department).unwrap();
        std::fs::read_to_string(f).unwrap()
    }

    fn channel(&self) -> Channel {
        let ca = std::fs::read(&self.local.ca_cert).unwrap();
        let tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
        let endpoint = Channel::from_shared(format!("https://127.0.0.1:{}", self.addr.port())).unwrap().tls_config(tls).unwrap();
        self.rt.block_on(endpoint.connect()).unwrap()
    }

    fn cases(&self, token: Option<String>) -> AccountabilityServiceClient<InterceptedService<Channel, Bearer>> {
        AccountabilityServiceClient::with_interceptor(self.channel(), Bearer(token))
    }

    fn stats(&self, token: Option<String>) -> StatsServiceClient<InterceptedService<Channel, Bearer>> {
        StatsServiceClient::with_interceptor(self.channel(), Bearer(token))
    }
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Who {
    Nobody,
    Forged,
    Inspector,
    Department,
    Operator,
    Auditor,
    Intake,
}

/// The code each method must give `who` acting on a case of `own` (true) or another department.
fn expected(method: &str, who: Who, own: bool) -> Code {
    let role = match who {
        Who::Nobody | Who::Forged => return Code::Unauthenticated,
        Who::Inspector => Role::Inspector,
        Who::Department => Role::Department,
        Who::Operator => Role::Operator,
        Who::Auditor => Role::Auditor,
        Who::Intake => Role::Intake,
    };
    let allowed: &[Role] = match method {
        "ListCases" | "GetCase" | "WatchCases" => &[Role::Inspector, Role::Department, Role::Auditor],
        "Reply" => &[Role::Department],
        "Assign" | "Resolve" => &[Role::Inspector],
        "Comment" => &[Role::Inspector, Role::Department],
        "ListAuditEntries" | "VerifyAudit" => &[Role::Inspector, Role::Auditor],
        "GetStats" | "ListReports" | "GetReport" => &[Role::Inspector, Role::Department, Role::Operator, Role::Auditor],
        "SendBack" | "OpenCase" | "AnswerComplaint" | "VerifyRectification" | "Review" => &[Role::Inspector],
        "FileComplaint" => &[Role::Inspector, Role::Intake],
        "ReportRectification" => &[Role::Department],
        other => panic!("unknown method {other}"),
    };
    if !allowed.contains(&role) {
        return Code::PermissionDenied;
    }
    match method {
        // Another department's case answers as one that does not exist (ids reveal nothing).
        "GetCase" | "Reply" | "Comment" if role == Role::Department && !own => Code::NotFound,
        // Asking to list another department's cases is refused outright.
        "ListCases" if role == Role::Department && !own => Code::PermissionDenied,
        "ReportRectification" if !own => Code::NotFound,
        // The cases are fresh OPEN alert cases: these actions do not apply to them yet.
        "SendBack" | "AnswerComplaint" | "ReportRectification" | "VerifyRectification" | "Review" => Code::FailedPrecondition,
        "GetReport" => Code::NotFound,
        _ => Code::Ok,
    }
}

#[test]
fn every_method_checks_the_role_and_the_department() {
    let api = Api::start("acc-authz");
    let t = at("2025-03-03T10:00:00+08:00");
    // Plenty of fresh cases in both departments: every call that changes a case gets its own.
    let mut batch = Vec::new();
    for dept in [OWN, OTHER] {
        for i in 0..160 {
            let a = alert(
                &format!("{dept}-{i}"),
                &format!("{dept}-ITEM-{i}"),
                dept,
                "SCJG-001",
                v1::AlertKind::PromisedOverdue,
                v1::Level::Yellow,
                "2025-03-01T00:00:00+08:00",
            );
            batch.push(Incoming { alert: a, published_at: t });
        }
    }
    api.rt.block_on(api.store.ingest(&batch, t)).unwrap();
    let case_ids = |dept: &str| -> Vec<i64> {
        let f = jiancha_accountability::store::CaseFilter { department_code: Some(dept.into()), limit: 1000, ..Default::default() };
        api.rt.block_on(api.store.cases(&f)).unwrap().iter().map(|c| c.case_id).collect()
    };
    let (mut own_cases, mut other_cases) = (case_ids(OWN).into_iter(), case_ids(OTHER).into_iter());

    let methods = [
        "ListCases",
        "GetCase",
        "Reply",
        "Assign",
        "Comment",
        "Resolve",
        "WatchCases",
        "ListAuditEntries",
        "VerifyAudit",
        "GetStats",
        "SendBack",
        "OpenCase",
        "FileComplaint",
        "AnswerComplaint",
        "ReportRectification",
        "VerifyRectification",
        "Review",
        "ListReports",
        "GetReport",
    ];
    let whos = [Who::Nobody, Who::Forged, Who::Inspector, Who::Department, Who::Operator, Who::Auditor, Who::Intake];
    let mut failures = Vec::new();
    let mut n = 0;
    for method in methods {
        for who in whos {
            for own in [true, false] {
                n += 1;
                let token = match who {
                    Who::Nobody => None,
                    Who::Forged => Some("eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJ4In0.c2lnbmF0dXJl".to_owned()),
                    Who::Inspector => Some(api.token(Role::Inspector, None)),
                    Who::Department => Some(api.token(Role::Department, Some(OWN))),
                    Who::Operator => Some(api.token(Role::Operator, None)),
                    Who::Auditor => Some(api.token(Role::Auditor, None)),
                    Who::Intake => Some(api.token(Role::Intake, None)),
                };
                let dept = if own { OWN } else { OTHER };
                let case_id = if own { own_cases.next() } else { other_cases.next() }.unwrap();
                let (mut cases, mut stats) = (api.cases(token.clone()), api.stats(token));
                let code = |r: Result<(), tonic::Status>| r.err().map_or(Code::Ok, |e| e.code());
                let got = api.rt.block_on(async {
                    match method {
                        "ListCases" => code(
                            cases
                                .list_cases(v1::ListCasesRequest { department_code: Some(dept.into()), ..Default::default() })
                                .await
                                .map(drop),
                        ),
                        "GetCase" => code(cases.get_case(v1::GetCaseRequest { case_id }).await.map(drop)),
                        "Reply" => code(cases.reply(v1::ReplyRequest { case_id, explanation: "说明".into() }).await.map(drop)),
                        "Assign" => code(cases.assign(v1::AssignRequest { case_id, inspector: "wang".into() }).await.map(drop)),
                        "Comment" => {
                            code(cases.comment(v1::CommentRequest { case_id, text: "意见".into(), attachments: vec![] }).await.map(drop))
                        }
                        "Resolve" => code(
                            cases
                                .resolve(v1::ResolveRequest {
                                    case_id,
                                    disposition: v1::Disposition::Rectify as i32,
                                    reason: String::new(),
                                    responsible_actor: "张三".into(),
                                    rectify_deadline: Some("2099-01-01T00:00:00+08:00".into()),
                                })
                                .await
                                .map(drop),
                        ),
                        "WatchCases" => code(cases.watch_cases(v1::WatchCasesRequest { after_seq: 0 }).await.map(drop)),
                        "ListAuditEntries" => code(cases.list_audit_entries(v1::ListAuditEntriesRequest::default()).await.map(drop)),
                        "VerifyAudit" => code(cases.verify_audit(v1::VerifyAuditRequest {}).await.map(drop)),
                        "GetStats" => {
                            code(stats.get_stats(v1::GetStatsRequest { period: "2025-03".into(), group_by: String::new() }).await.map(drop))
                        }
                        "SendBack" => code(cases.send_back(v1::SendBackRequest { case_id, reason: "补充".into() }).await.map(drop)),
                        "OpenCase" => code(
                            cases
                                .open_case(v1::OpenCaseRequest {
                                    department_code: dept.into(),
                                    item_id: None,
                                    level: v1::Level::Yellow as i32,
                                    summary: "现场检查发现".into(),
                                })
                                .await
                                .map(drop),
                        ),
                        "FileComplaint" => code(
                            cases
                                .file_complaint(v1::FileComplaintRequest {
                                    department_code: dept.into(),
                                    item_id: None,
                                    summary: "窗口推诿".into(),
                                    channel: "HOTLINE".into(),
                                    complainant: "赵女士 13800000000".into(),
                                })
                                .await
                                .map(drop),
                        ),
                        "AnswerComplaint" => code(
                            cases
                                .answer_complaint(v1::AnswerComplaintRequest { case_id, accept: true, reason: String::new() })
                                .await
                                .map(drop),
                        ),
                        "ReportRectification" => code(
                            cases.report_rectification(v1::ReportRectificationRequest { case_id, report: "已整改".into() }).await.map(drop),
                        ),
                        "VerifyRectification" => code(
                            cases
                                .verify_rectification(v1::VerifyRectificationRequest { case_id, accepted: true, ..Default::default() })
                                .await
                                .map(drop),
                        ),
                        "Review" => code(cases.review(v1::ReviewRequest { case_id, uphold: true, reason: "维持".into() }).await.map(drop)),
                        "ListReports" => code(stats.list_reports(v1::ListReportsRequest {}).await.map(drop)),
                        "GetReport" => {
                            code(stats.get_report(v1::GetReportRequest { number: "无此号".into(), format: "html".into() }).await.map(drop))
                        }
                        other => panic!("{other}"),
                    }
                });
                let want = expected(method, who, own);
                if got != want {
                    failures.push(format!("{method} as {who:?} on {dept}: expected {want:?}, got {got:?}"));
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {n} cases wrong:\n{}", failures.len(), failures.join("\n"));

    // Contents, not only codes: a department's list and stream hold its own cases only.
    let mut mine = api.cases(Some(api.token(Role::Department, Some(OWN))));
    let listed = api.rt.block_on(mine.list_cases(v1::ListCasesRequest { page_size: 1000, ..Default::default() })).unwrap().into_inner();
    assert!(!listed.cases.is_empty());
    assert!(listed.cases.iter().all(|c| c.department_code == OWN));
    let streamed: Vec<v1::CaseUpdate> = api.rt.block_on(async {
        let mut stream = mine.watch_cases(v1::WatchCasesRequest { after_seq: 0 }).await.unwrap().into_inner();
        let mut got = Vec::new();
        while let Ok(Some(Ok(u))) = tokio::time::timeout(std::time::Duration::from_secs(2), stream.next()).await {
            got.push(u);
        }
        got
    });
    assert!(streamed.len() >= 80, "{} updates", streamed.len());
    assert!(streamed.iter().all(|u| u.case.as_ref().unwrap().department_code == OWN), "another department's case leaked");
}

#[test]
fn an_inspector_works_a_case_through_the_api_and_watchers_see_each_step() {
    let api = Api::start("acc-flow");
    let t = at("2025-03-03T10:00:00+08:00");
    let a = alert("flow-1", "SCJG-ITEM-1", OWN, "SCJG-001", v1::AlertKind::StatutoryOverdue, v1::Level::Red, "2025-03-01T00:00:00+08:00");
    api.rt.block_on(api.store.ingest(&[Incoming { alert: a, published_at: t }], t)).unwrap();
    let inspector = api.token(Role::Inspector, None);
    let dept = api.token(Role::Department, Some(OWN));
    let mut watcher = api.cases(Some(dept.clone()));
    let mut stream = api.rt.block_on(watcher.watch_cases(v1::WatchCasesRequest { after_seq: 0 })).unwrap().into_inner();

    let mut d = api.cases(Some(dept));
    let mut i = api.cases(Some(inspector));
    let replied = api.rt.block_on(d.reply(v1::ReplyRequest { case_id: 1, explanation: "已补办".into() })).unwrap().into_inner();
    assert_eq!(replied.status, v1::CaseStatus::CaseReplied as i32);
    let attachment = v1::AttachmentMeta {
        file_name: "整改报告.pdf".into(),
        media_type: "application/pdf".into(),
        size_bytes: 1024,
        sha256: "0f".repeat(32),
    };
    let detail = api
        .rt
        .block_on(d.comment(v1::CommentRequest { case_id: 1, text: "附整改报告".into(), attachments: vec![attachment.clone()] }))
        .unwrap()
        .into_inner();
    assert_eq!(detail.comments[0].attachments[0].file_name, "整改报告.pdf");
    assert!(detail.audit.is_empty(), "a department does not read the audit log");
    let bad = v1::AttachmentMeta { sha256: "xyz".into(), ..attachment };
    let err = api.rt.block_on(d.comment(v1::CommentRequest { case_id: 1, text: "x".into(), attachments: vec![bad] })).unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert_eq!(err.get_details_bad_request().unwrap().field_violations[0].field, "attachments[0].sha256");

    let err = api
        .rt
        .block_on(i.resolve(v1::ResolveRequest {
            case_id: 1,
            disposition: v1::Disposition::NoFault as i32,
            reason: String::new(),
            responsible_actor: String::new(),
            rectify_deadline: None,
        }))
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "NO_FAULT needs a reason");
    let done = api
        .rt
        .block_on(i.resolve(v1::ResolveRequest {
            case_id: 1,
            disposition: v1::Disposition::Criticism as i32,
            reason: "超法定时限".into(),
            responsible_actor: "李四".into(),
            rectify_deadline: None,
        }))
        .unwrap()
        .into_inner();
    assert_eq!(done.status, v1::CaseStatus::CaseResolved as i32);
    assert_eq!(done.disposition, v1::Disposition::Criticism as i32);
    let err = api
        .rt
        .block_on(i.resolve(v1::ResolveRequest { case_id: 1, disposition: v1::Disposition::Rectify as i32, ..Default::default() }))
        .unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    let err = api.rt.block_on(i.get_case(v1::GetCaseRequest { case_id: 99 })).unwrap_err();
    assert_eq!(err.code(), Code::NotFound);

    let actions: Vec<String> = api.rt.block_on(async {
        let mut actions = Vec::new();
        while actions.len() < 4 {
            let u = tokio::time::timeout(std::time::Duration::from_secs(10), stream.next()).await.unwrap().unwrap().unwrap();
            actions.push(u.entry.unwrap().action);
        }
        actions
    });
    assert_eq!(actions, ["OPEN", "REPLY", "COMMENT", "RESOLVE"]);
    let verdict = api.rt.block_on(i.verify_audit(v1::VerifyAuditRequest {})).unwrap().into_inner();
    assert!(verdict.ok, "{verdict:?}");
    assert_eq!(verdict.entries, 4);
}

/// Items of a department decided in March 2025, with figures simple enough to check by hand.
#[allow(clippy::too_many_arguments)]
fn facts(
    id: &str,
    department: &str,
    submitted: &str,
    decided: Option<&str>,
    promised: f64,
    used: f64,
    met: Option<bool>,
    late: i64,
) -> ItemFacts {
    ItemFacts {
        item_id: id.into(),
        department_code: department.into(),
        service_code: Some(if department == "A" { "SCJG-001" } else { "ZJJ-001" }.into()),
        submitted_at: Some(at(submitted)),
        accepted_at: Some(at(submitted) + 3_600_000),
        decided_at: decided.map(at),
        closed: decided.is_some(),
        promised_days: Some(promised),
        used_days: Some(used),
        promised_deadline: None,
        promised_met: met,
        statutory_deadline: None,
        statutory_met: met,
        late_reports: late,
        actor: None,
        natural_days: false,
    }
}

#[test]
fn statistics_match_figures_computed_by_hand() {
    let api = Api::start("acc-stats");
    let store = &api.store;
    let t = at("2025-03-20T10:00:00+08:00");
    let items = vec![
        // Department A: 4 received in March (one in February, decided in March), 4 decided in March.
        facts("A1", "A", "2025-03-03T09:00:00+08:00", Some("2025-03-07T10:00:00+08:00"), 10.0, 4.0, Some(true), 0),
        facts("A2", "A", "2025-03-04T09:00:00+08:00", Some("2025-03-20T10:00:00+08:00"), 10.0, 9.5, Some(true), 1),
        facts("A3", "A", "2025-03-05T09:00:00+08:00", Some("2025-03-28T10:00:00+08:00"), 10.0, 12.0, Some(false), 0),
        facts("A4", "A", "2025-02-25T09:00:00+08:00", Some("2025-03-03T10:00:00+08:00"), 10.0, 2.0, Some(true), 0),
        facts("A5", "A", "2025-03-25T09:00:00+08:00", None, 10.0, 1.0, None, 0),
        // Department B: 2 received, 1 decided (late), a decision in April does not count.
        facts("B1", "B", "2025-03-10T09:00:00+08:00", Some("2025-03-31T10:00:00+08:00"), 5.0, 6.0, Some(false), 1),
        facts("B2", "B", "2025-03-11T09:00:00+08:00", Some("2025-04-02T10:00:00+08:00"), 5.0, 4.0, Some(true), 0),
    ];
    api.rt.block_on(store.upsert_items(&items, t)).unwrap();
    let march = "2025-03-15T00:00:00+08:00";
    let alerts = [
        alert("a-w", "A1", "A", "SCJG-001", v1::AlertKind::StepOverdue, v1::Level::Warning, march),
        alert("a-y", "A3", "A", "SCJG-001", v1::AlertKind::PromisedOverdue, v1::Level::Yellow, march),
        alert("b-y", "B1", "B", "ZJJ-001", v1::AlertKind::PromisedOverdue, v1::Level::Yellow, march),
        alert("b-r", "B1", "B", "ZJJ-001", v1::AlertKind::StatutoryOverdue, v1::Level::Red, march),
        alert("b-april", "B2", "B", "ZJJ-001", v1::AlertKind::FeeIrregular, v1::Level::Red, "2025-04-01T10:00:00+08:00"),
    ];
    let batch: Vec<Incoming> = alerts.into_iter().map(|a| Incoming { alert: a, published_at: t }).collect();
    api.rt.block_on(store.ingest(&batch, t)).unwrap();
    let b_case = api.rt.block_on(store.case_of_alert("b-r")).unwrap().unwrap().case_id;
    api.rt
        .block_on(store.change(b_case, t, "insp", "INSPECTOR", "RESOLVE", |s| {
            workflow::resolve(b_case, s, "insp", Disposition::Criticism, "", "赵六", None, t)
        }))
        .unwrap();

    let mut client = api.stats(Some(api.token(Role::Inspector, None)));
    let report = api
        .rt
        .block_on(client.get_stats(v1::GetStatsRequest { period: "2025-03".into(), group_by: "department".into() }))
        .unwrap()
        .into_inner();
    assert_eq!((report.from.as_str(), report.to.as_str()), ("2025-03-01", "2025-03-31"));
    let row = |k: &str| report.rows.iter().find(|r| r.key == k).unwrap().clone();
    let a = row("A");
    assert_eq!((a.received, a.accepted, a.decided), (4, 4, 4), "{a:?}");
    assert_eq!((a.decided_on_time, a.decided_early), (3, 2), "A1 and A4 had a working day to spare; A2 did not");
    assert!((a.on_time_rate - 0.75).abs() < 1e-9);
    // Used days 4, 9.5, 12, 2: mean 6.875, p90 (nearest rank: ceil(3.6) = 4th of 4) 12.
    assert!((a.mean_working_days - 6.875).abs() < 1e-9, "{}", a.mean_working_days);
    assert!((a.p90_working_days - 12.0).abs() < 1e-9);
    assert!((a.promised_share_used - 0.6875).abs() < 1e-9);
    assert_eq!((a.warnings, a.yellow, a.red, a.step_overdue, a.overdue_promised), (1, 1, 0, 1, 1));
    assert!((a.late_report_share - 0.25).abs() < 1e-9, "A2 of 4 received");
    // Score: 100 − (1×1 step + 2×1 yellow) × 100 / 4 decided = 25.
    assert!((a.score - 25.0).abs() < 1e-9, "{}", a.score);
    let b = row("B");
    assert_eq!((b.received, b.decided, b.decided_on_time), (2, 1, 0));
    assert_eq!((b.yellow, b.red, b.overdue_statutory), (1, 1, 1), "the April alert is not in March");
    assert_eq!(b.dispositions["CRITICISM"], 1);
    // Score: 100 − (2×1 + 5×1) × 100 / 1 → below 0, shown as 0.
    assert_eq!(b.score, 0.0);
    assert_eq!((a.rank, b.rank), (1, 2));

    // The same figures as CSV (the monthly publication).
    let (catalog, calendars) = rules();
    let period = jiancha_accountability::stats::parse_period("2025-03", calendars.default_calendar().tz()).unwrap();
    let r = api
        .rt
        .block_on(jiancha_accountability::stats::report(
            store,
            &catalog,
            &period,
            jiancha_accountability::stats::GroupBy::Department,
            &Default::default(),
        ))
        .unwrap();
    let csv = r.to_csv();
    assert!(csv.lines().nth(1).unwrap().starts_with("1,A,A,A,4,4,4,3,0.7500,2,0.5000,1,0,6.88,12.00,0.6875,1,1,0,1,0.2500,"), "{csv}");
    assert!(r.to_html().contains("绩效评估通报"));
    let by_service = api
        .rt
        .block_on(jiancha_accountability::stats::report(
            store,
            &catalog,
            &period,
            jiancha_accountability::stats::GroupBy::Service,
            &Default::default(),
        ))
        .unwrap();
    assert_eq!(by_service.rows.iter().find(|r| r.key == "SCJG-001").unwrap().name, "食品经营许可");
}

#[test]
fn hostile_input_is_refused_by_field_and_a_flood_is_slowed_down() {
    let api = Api::start("acc-hostile");
    let t = at("2025-03-03T10:00:00+08:00");
    let a = alert("H-1", "H-ITEM-1", OWN, "SCJG-001", v1::AlertKind::PromisedOverdue, v1::Level::Yellow, "2025-03-01T00:00:00+08:00");
    api.rt.block_on(api.store.ingest(&[Incoming { alert: a, published_at: t }], t)).unwrap();
    let case_id = api.rt.block_on(api.store.cases(&Default::default())).unwrap()[0].case_id;
    let field = |e: &tonic::Status| {
        e.get_details_bad_request().and_then(|b| b.field_violations.first().map(|v| v.field.clone())).unwrap_or_default()
    };
    let mut dept = api.cases(Some(api.token(Role::Department, Some(OWN))));
    for (explanation, why) in [("说明\0隐藏".to_owned(), "NUL"), ("长".repeat(10_001), "too long")] {
        let e = api.rt.block_on(dept.reply(v1::ReplyRequest { case_id, explanation })).unwrap_err();
        assert_eq!((e.code(), field(&e).as_str()), (Code::InvalidArgument, "explanation"), "{why}");
    }
    let file =
        |name: &str| v1::AttachmentMeta { file_name: name.into(), media_type: "image/png".into(), size_bytes: 1, sha256: "ab".repeat(32) };
    let too_many: Vec<_> = (0..21).map(|i| file(&format!("{i}.png"))).collect();
    let e = api.rt.block_on(dept.comment(v1::CommentRequest { case_id, text: "附件".into(), attachments: too_many })).unwrap_err();
    assert_eq!((e.code(), field(&e).as_str()), (Code::InvalidArgument, "attachments"));
    let e = api
        .rt
        .block_on(dept.comment(v1::CommentRequest { case_id, text: String::new(), attachments: vec![file("a\nb.png")] }))
        .unwrap_err();
    assert_eq!((e.code(), field(&e).as_str()), (Code::InvalidArgument, "attachments[0].file_name"));
    let mut stats = api.stats(Some(api.token(Role::Inspector, None)));
    for period in ["2147483647", "1971-01-01..2119-12-31"] {
        let e = api.rt.block_on(stats.get_stats(v1::GetStatsRequest { period: period.into(), ..Default::default() })).unwrap_err();
        assert_eq!((e.code(), field(&e).as_str()), (Code::InvalidArgument, "period"), "{period}");
    }
    // Nothing was stored by the refused calls.
    assert!(api.rt.block_on(api.store.comments(case_id)).unwrap().is_empty());
    // A flood from one caller: past the burst, RESOURCE_EXHAUSTED with when to retry.
    let mut refused = None;
    for _ in 0..400 {
        if let Err(e) = api.rt.block_on(dept.list_cases(v1::ListCasesRequest::default())) {
            refused = Some(e);
            break;
        }
    }
    let e = refused.expect("a caller over its rate is refused");
    assert_eq!(e.code(), Code::ResourceExhausted);

    assert!(e.get_details_retry_info().is_some_and(|r| r.retry_delay.is_some()));
    // Another caller keeps its share.
    let mut inspector = api.cases(Some(api.token(Role::Inspector, None)));
    api.rt.block_on(inspector.list_cases(v1::ListCasesRequest::default())).expect("another caller is served");
}

/// The actions of a case's audit entries, oldest first (as an auditor reads them), after
/// checking that the whole chain verifies.
fn audit_of(api: &Api, case_id: i64) -> Vec<String> {
    let mut auditor = api.cases(Some(api.token(Role::Auditor, None)));
    let verdict = api.rt.block_on(auditor.verify_audit(v1::VerifyAuditRequest {})).unwrap().into_inner();
    assert!(verdict.ok, "{verdict:?}");
    let entries = api
        .rt
        .block_on(auditor.list_audit_entries(v1::ListAuditEntriesRequest { after_seq: 0, case_id: Some(case_id), limit: 100 }))
        .unwrap()
        .into_inner()
        .entries;
    entries.into_iter().map(|e| format!("{}:{}", e.action, e.role)).collect()
}

#[test]
fn every_workflow_path_through_grpc_leaves_its_audit_entry() {
    let api = Api::start("acc-paths");
    let t = jiancha_platform::wall_clock().0;
    let item = |id: &str| ItemFacts {
        actor: Some("王五".into()),
        service_code: Some("SCJG-001".into()),
        ..facts(id, OWN, "2025-03-03T09:00:00+08:00", None, 10.0, 1.0, None, 0)
    };
    api.rt.block_on(api.store.upsert_items(&[item("P-1"), item("P-2"), item("P-3"), item("P-4")], t)).unwrap();
    let fired =
        |id: &str, item: &str, level| alert(id, item, OWN, "SCJG-001", v1::AlertKind::PromisedOverdue, level, "2025-03-01T00:00:00+08:00");
    let batch: Vec<Incoming> =
        [fired("p1", "P-1", v1::Level::Yellow), fired("p2", "P-2", v1::Level::Red), fired("p3", "P-3", v1::Level::Yellow)]
            .into_iter()
            .map(|a| Incoming { alert: a, published_at: t })
            .collect();
    api.rt.block_on(api.store.ingest(&batch, t)).unwrap();
    let mut i = api.cases(Some(api.token(Role::Inspector, None)));
    let mut d = api.cases(Some(api.token(Role::Department, Some(OWN))));
    let mut intake = api.cases(Some(api.token(Role::Intake, None)));
    let field = |e: tonic::Status| {
        assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
        e.get_details_bad_request().unwrap().field_violations[0].field.clone()
    };
    let in_days = |n: i64| Timestamp(jiancha_platform::wall_clock().0 + n * 86_400_000).to_rfc3339_in(chrono_tz::Asia::Shanghai);

    // Case 1: reply, sent back (退回补充说明), replied again, RECTIFY with a deadline, the
    // rectification reported, reopened, reported again and verified (整改销号).
    api.rt.block_on(d.reply(v1::ReplyRequest { case_id: 1, explanation: "已办结".into() })).unwrap();
    assert_eq!(field(api.rt.block_on(i.send_back(v1::SendBackRequest { case_id: 1, reason: " ".into() })).unwrap_err()), "reason");
    let back = api.rt.block_on(i.send_back(v1::SendBackRequest { case_id: 1, reason: "请说明超期原因".into() })).unwrap().into_inner();
    assert_eq!((back.status, back.sent_back.as_deref()), (v1::CaseStatus::CaseOpen as i32, Some("请说明超期原因")));
    assert!(back.remind_at.is_some() && back.supervise_at.is_some() && back.publicize_at.is_some(), "the chain restarts: {back:?}");
    api.rt.block_on(d.reply(v1::ReplyRequest { case_id: 1, explanation: "系统故障导致超期，已修复".into() })).unwrap();
    let resolve = |deadline: Option<String>| v1::ResolveRequest {
        case_id: 1,
        disposition: v1::Disposition::Rectify as i32,
        reason: "限期整改".into(),
        responsible_actor: "王五".into(),
        rectify_deadline: deadline,
    };
    assert_eq!(field(api.rt.block_on(i.resolve(resolve(None))).unwrap_err()), "rectify_deadline");
    assert_eq!(field(api.rt.block_on(i.resolve(resolve(Some(in_days(-1))))).unwrap_err()), "rectify_deadline");
    assert_eq!(field(api.rt.block_on(i.resolve(resolve(Some("next week".into())))).unwrap_err()), "rectify_deadline");
    let ordered = api.rt.block_on(i.resolve(resolve(Some(in_days(30))))).unwrap().into_inner();
    assert_eq!(ordered.rectification.as_deref(), Some("PENDING"));
    let report = |text: &str| v1::ReportRectificationRequest { case_id: 1, report: text.into() };
    api.rt.block_on(d.report_rectification(report("已整改：增加超期提醒"))).unwrap();
    let verify = |accepted, deadline: Option<String>| v1::VerifyRectificationRequest {
        case_id: 1,
        accepted,
        reason: if accepted { String::new() } else { "未见制度文件".into() },
        new_deadline: deadline,
    };
    assert_eq!(field(api.rt.block_on(i.verify_rectification(verify(false, None))).unwrap_err()), "rectify_deadline");
    let reopened = api.rt.block_on(i.verify_rectification(verify(false, Some(in_days(40))))).unwrap().into_inner();
    assert_eq!(reopened.rectification.as_deref(), Some("PENDING"));
    api.rt.block_on(d.report_rectification(report("补充制度文件"))).unwrap();
    let verified = api.rt.block_on(i.verify_rectification(verify(true, None))).unwrap().into_inner();
    assert_eq!((verified.rectification.as_deref(), verified.rectification_report.as_deref()), (Some("VERIFIED"), Some("补充制度文件")));
    assert_eq!(
        audit_of(&api, 1),
        [
            "OPEN:SYSTEM",
            "REPLY:DEPARTMENT",
            "SEND_BACK:INSPECTOR",
            "REPLY:DEPARTMENT",
            "RESOLVE:INSPECTOR",
            "RECTIFICATION_REPORT:DEPARTMENT",
            "RECTIFICATION_VERIFY:INSPECTOR",
            "RECTIFICATION_REPORT:DEPARTMENT",
            "RECTIFICATION_VERIFY:INSPECTOR"
        ]
    );

    // Case 2: resolved while OPEN (never replied), then its alert is retracted: the
    // decision stands, flagged 复核, and the inspector annuls it.
    let open = api.rt.block_on(i.get_case(v1::GetCaseRequest { case_id: 2 })).unwrap().into_inner().case.unwrap();
    assert_eq!(open.offences_department, 1, "case 1 (RECTIFY on item P-1) is one offence of the department so far");
    assert_eq!((open.official.as_deref(), open.offences_official), (Some("王五"), 1), "the item's official and his offences");
    let judged = api
        .rt
        .block_on(i.resolve(v1::ResolveRequest {
            case_id: 2,
            disposition: v1::Disposition::Criticism as i32,
            reason: "逾期未说明".into(),
            responsible_actor: "王五".into(),
            rectify_deadline: None,
        }))
        .unwrap()
        .into_inner();
    assert_eq!(judged.status, v1::CaseStatus::CaseResolved as i32);
    let mut retracted = fired("p2", "P-2", v1::Level::Red);
    retracted.status = v1::AlertStatus::Retracted as i32;
    api.rt.block_on(api.store.ingest(&[Incoming { alert: retracted, published_at: t + 1 }], t + 1)).unwrap();
    let flagged =
        api.rt.block_on(i.list_cases(v1::ListCasesRequest { review: Some(true), ..Default::default() })).unwrap().into_inner().cases;
    assert_eq!(flagged.iter().map(|c| c.case_id).collect::<Vec<_>>(), [2]);
    assert!(flagged[0].review.as_deref().unwrap().contains("复核"));
    assert_eq!(
        api.rt.block_on(d.review(v1::ReviewRequest { case_id: 2, uphold: false, reason: "x".into() })).unwrap_err().code(),
        Code::PermissionDenied
    );
    let annulled =
        api.rt.block_on(i.review(v1::ReviewRequest { case_id: 2, uphold: false, reason: "数据迟报".into() })).unwrap().into_inner();
    assert_eq!((annulled.disposition, annulled.review), (v1::Disposition::NoFault as i32, None));
    assert_eq!(audit_of(&api, 2), ["OPEN:SYSTEM", "RESOLVE:INSPECTOR", "REVIEW_FLAG:SYSTEM", "REVIEW:INSPECTOR"]);

    // A complaint through the intake API: the intake system learns the case number only;
    // the complainant's contact is for inspectors alone.
    let complaint = v1::FileComplaintRequest {
        department_code: OWN.into(),
        item_id: Some("P-3".into()),
        summary: "窗口要求提供法规未规定的材料".into(),
        channel: "ONLINE".into(),
        complainant: "赵女士 13800000000".into(),
    };
    assert_eq!(
        field(
            api.rt.block_on(intake.file_complaint(v1::FileComplaintRequest { channel: "EMAIL".into(), ..complaint.clone() })).unwrap_err()
        ),
        "channel"
    );
    assert_eq!(
        field(
            api.rt
                .block_on(intake.file_complaint(v1::FileComplaintRequest { item_id: Some("NOPE".into()), ..complaint.clone() }))
                .unwrap_err()
        ),
        "item_id"
    );
    let filed = api.rt.block_on(intake.file_complaint(complaint.clone())).unwrap().into_inner();
    assert_eq!((filed.status, filed.department_code.as_str(), filed.complainant.as_deref()), (v1::CaseStatus::CaseFiled as i32, "", None));
    let c = filed.case_id;
    assert_eq!(api.rt.block_on(intake.get_case(v1::GetCaseRequest { case_id: c })).unwrap_err().code(), Code::PermissionDenied);
    let seen = |client: &mut AccountabilityServiceClient<InterceptedService<Channel, Bearer>>| {
        api.rt.block_on(client.get_case(v1::GetCaseRequest { case_id: c })).unwrap().into_inner().case.unwrap().complainant
    };
    assert_eq!(seen(&mut i).as_deref(), Some("赵女士 13800000000"));
    assert_eq!(seen(&mut d), None, "a department never sees the complainant");
    assert_eq!(seen(&mut api.cases(Some(api.token(Role::Auditor, None)))), None);
    assert_eq!(
        api.rt.block_on(d.reply(v1::ReplyRequest { case_id: c, explanation: "x".into() })).unwrap_err().code(),
        Code::FailedPrecondition
    );
    let accepted = api
        .rt
        .block_on(i.answer_complaint(v1::AnswerComplaintRequest { case_id: c, accept: true, reason: String::new() }))
        .unwrap()
        .into_inner();
    assert_eq!(accepted.status, v1::CaseStatus::CaseOpen as i32);
    api.rt.block_on(d.reply(v1::ReplyRequest { case_id: c, explanation: "已向申请人致歉并一次性告知".into() })).unwrap();
    assert_eq!(audit_of(&api, c), ["FILE:INTAKE", "ACCEPT:INSPECTOR", "REPLY:DEPARTMENT"]);
    let second = api
        .rt
        .block_on(i.file_complaint(v1::FileComplaintRequest { channel: "HOTLINE".into(), item_id: None, ..complaint }))
        .unwrap()
        .into_inner();
    assert_eq!(
        field(
            api.rt
                .block_on(i.answer_complaint(v1::AnswerComplaintRequest { case_id: second.case_id, accept: false, reason: String::new() }))
                .unwrap_err()
        ),
        "reason"
    );
    let rejected = api
        .rt
        .block_on(i.answer_complaint(v1::AnswerComplaintRequest { case_id: second.case_id, accept: false, reason: "重复投诉".into() }))
        .unwrap()
        .into_inner();
    assert!(rejected.rejected && rejected.status == v1::CaseStatus::CaseResolved as i32);
    assert_eq!(audit_of(&api, second.case_id), ["FILE:INSPECTOR", "REJECT:INSPECTOR"]);

    // A case opened by hand.
    let manual = |department: &str, item: Option<&str>| v1::OpenCaseRequest {
        department_code: department.into(),
        item_id: item.map(str::to_owned),
        level: v1::Level::Red as i32,
        summary: "暗访发现窗口推诿".into(),
    };
    assert_eq!(field(api.rt.block_on(i.open_case(manual("NOWHERE", None))).unwrap_err()), "department_code");
    assert_eq!(field(api.rt.block_on(i.open_case(manual(OTHER, Some("P-4")))).unwrap_err()), "item_id", "P-4 is SCJG's, not ZRZY's");
    let opened = api.rt.block_on(i.open_case(manual(OWN, Some("P-4")))).unwrap().into_inner();
    assert_eq!((opened.origin.as_str(), opened.level, opened.status), ("MANUAL", v1::Level::Red as i32, v1::CaseStatus::CaseOpen as i32));
    assert_eq!(opened.service_code.as_deref(), Some("SCJG-001"));
    assert_eq!(audit_of(&api, opened.case_id), ["OPEN:INSPECTOR"]);
    let manual_cases = api
        .rt
        .block_on(i.list_cases(v1::ListCasesRequest { origin: Some("MANUAL".into()), ..Default::default() }))
        .unwrap()
        .into_inner()
        .cases;
    assert_eq!(manual_cases.len(), 1);
    // Offences so far: items P-1 (RECTIFY) only; P-2's CRITICISM was annulled.
    assert_eq!(opened.offences_department, 1);
}

const BIN: &str = env!("CARGO_BIN_EXE_jiancha-it");

fn cli(args: &[&str]) -> (Vec<u8>, String) {
    let out = std::process::Command::new(BIN).args(args).output().unwrap();
    assert!(out.status.success(), "jiancha {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    (out.stdout, String::from_utf8_lossy(&out.stderr).into_owned())
}

#[test]
fn a_published_report_is_numbered_immutable_and_the_same_over_grpc() {
    let api = Api::start("acc-publish");
    let db = format!("sqlite://{}", api._dir.0.join("cases.db").display());
    let t = at("2025-03-20T10:00:00+08:00");
    let item = |id: &str, dept: &str, service: &str, used: f64, met: bool| ItemFacts {
        service_code: Some(service.into()),
        ..facts(id, dept, "2025-03-03T09:00:00+08:00", Some("2025-03-14T10:00:00+08:00"), 10.0, used, Some(met), 0)
    };
    let items =
        [item("S1", "SCJG", "SCJG-001", 3.0, true), item("S2", "SCJG", "SCJG-001", 4.0, true), item("Z1", "ZJJ", "ZJJ-001", 12.0, false)];
    api.rt.block_on(api.store.upsert_items(&items, t)).unwrap();
    let red = alert("z-red", "Z1", "ZJJ", "ZJJ-001", v1::AlertKind::StatutoryOverdue, v1::Level::Red, "2025-03-10T00:00:00+08:00");
    api.rt.block_on(api.store.ingest(&[Incoming { alert: red, published_at: t }], t)).unwrap();
    // The case went unanswered past 通报: it is listed in the next report.
    for step in [workflow::Step::Remind, workflow::Step::Supervise, workflow::Step::Publicize] {
        api.rt
            .block_on(api.store.change(1, t, "system", "SYSTEM", step.action(), |s| {
                workflow::escalate(s, step).ok_or_else(|| workflow::WorkflowError::State("x".into()))
            }))
            .unwrap();
    }

    let (out, _) = cli(&["report", "publish", "--period", "2025-03", "--database", &db]);
    let out = String::from_utf8(out).unwrap();
    let number = out.lines().last().unwrap().to_owned();
    assert!(number.starts_with("监察绩效通报〔") && number.ends_with("1号"), "the number alone on the last line: {out}");
    let (again, _) = cli(&["report", "publish", "--period", "2025-03", "--database", &db]);
    let again = String::from_utf8(again).unwrap();
    assert_eq!(again.lines().last().unwrap(), number, "republishing names the same report: {again}");
    assert!(again.contains("published before"));
    let (list, _) = cli(&["report", "list", "--database", &db]);
    assert!(String::from_utf8(list).unwrap().starts_with(&format!("{number}\t2025-03\t")));

    let show = |format: &str| cli(&["report", "show", &number, "--format", format, "--database", &db]).0;
    let html = String::from_utf8(show("html")).unwrap();
    assert!(html.contains(&number) && html.contains("纪检监察机关") && html.contains("size:A4 landscape"));
    assert!(html.contains("市场监督管理局") && html.contains("住房和城乡建设局"), "department names, not codes");
    assert!(html.contains("通报案件") && html.contains("<td>1</td>"), "the case marked 通报 is listed");
    assert!(html.contains("基础分100"), "the weights in force");
    let csv = String::from_utf8(show("csv")).unwrap();
    assert!(csv.starts_with("\u{feff}rank,"), "UTF-8 with a BOM");
    let json: serde_json::Value = serde_json::from_slice(&show("json")).unwrap();
    assert_eq!(json["publication"]["number"], number.as_str());
    let scjg = json["report"]["rows"].as_array().unwrap().iter().find(|r| r["key"] == "SCJG").unwrap().clone();
    assert_eq!((scjg["rank"].as_u64(), scjg["score"].as_f64()), (Some(1), Some(100.0)));
    let jtj = json["report"]["rows"].as_array().unwrap().iter().find(|r| r["key"] == "JTJ").unwrap().clone();
    assert!(jtj["score"].is_null() && jtj["on_time_rate"].is_null(), "nothing decided: no score, no rate");
    let xlsx = show("xlsx");
    assert_eq!(&xlsx[..2], b"PK", "an XLSX (zip) workbook");
    let strings = std::process::Command::new("python3")
        .args(["-c", "import sys, zipfile; print(zipfile.ZipFile(sys.argv[1]).read('xl/sharedStrings.xml').decode())"])
        .arg({
            let p = api._dir.0.join("report.xlsx");
            std::fs::write(&p, &xlsx).unwrap();
            p
        })
        .output()
        .unwrap();
    let strings = String::from_utf8(strings.stdout).unwrap();
    assert!(strings.contains("市场监督管理局") && strings.contains(&number), "{strings}");
    let audit = api.rt.block_on(api.store.audit_entries(0, Some(1), 100)).unwrap();
    assert_eq!(audit.last().unwrap().action, "REPORTED");

    // Later data changes the live figures, never the published report.
    let late = alert("s-red", "S1", "SCJG", "SCJG-001", v1::AlertKind::FeeIrregular, v1::Level::Red, "2025-03-12T10:00:00+08:00");
    api.rt.block_on(api.store.ingest(&[Incoming { alert: late, published_at: t }], t)).unwrap();
    let mut stats = api.stats(Some(api.token(Role::Department, Some("SCJG"))));
    let live =
        api.rt.block_on(stats.get_stats(v1::GetStatsRequest { period: "2025-03".into(), group_by: String::new() })).unwrap().into_inner();
    assert!(live.rows.iter().find(|r| r.key == "SCJG").unwrap().score < 100.0);
    for format in ["html", "csv", "json", "xlsx"] {
        let before = match format {
            "html" => html.clone().into_bytes(),
            "csv" => csv.clone().into_bytes(),
            "xlsx" => xlsx.clone(),
            _ => serde_json::to_vec_pretty(&json).unwrap(),
        };
        let now = show(format);
        if format != "json" {
            assert_eq!(now, before, "{format} byte for byte");
        }
        let file =
            api.rt.block_on(stats.get_report(v1::GetReportRequest { number: number.clone(), format: format.into() })).unwrap().into_inner();
        assert_eq!(file.content, now, "{format} over gRPC is the stored file");
    }
    let listed = api.rt.block_on(stats.list_reports(v1::ListReportsRequest {})).unwrap().into_inner().reports;
    assert_eq!(listed.iter().map(|r| r.number.as_str()).collect::<Vec<_>>(), [number.as_str()]);
    assert_eq!(listed[0].sha256, jiancha_accountability::audit::sha256_hex(&show("json")));
}
