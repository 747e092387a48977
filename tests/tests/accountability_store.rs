//! The accountability store on a real PostgreSQL (a cluster started by the test) and on
//! SQLite, with the same scenarios: the whole workflow, 督办 escalation across the
//! National Day holiday, repeat offenders, retraction, redelivery, audit tampering.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use jiancha_accountability::store::{CaseFilter, Incoming, Store, StoreError};
use jiancha_accountability::workflow::{self, Disposition, Status};
use jiancha_core::{Calendars, Catalog, Timestamp};
use jiancha_proto::v1;
use jiancha_scenarios::kafka::Scratch;
use jiancha_scenarios::pg::Postgres;
use jiancha_scenarios::repo_root;
use sqlx::Row;

fn at(text: &str) -> i64 {
    Timestamp::parse_rfc3339(text).unwrap().0
}

fn rules() -> (Catalog, Calendars) {
    let calendars = Calendars::builtin();
    let text = std::fs::read_to_string(repo_root().join("deploy/demo/catalog.toml")).unwrap();
    (Catalog::from_toml(&text, &calendars).unwrap(), calendars)
}

fn alert(id: &str, department: &str, level: v1::Level, status: v1::AlertStatus) -> v1::Alert {
    v1::Alert {
        alert_id: id.into(),
        status: status as i32,
        item_id: Some(format!("ITEM-{id}")),
        service_code: Some("SCJG-001".into()),
        department_code: Some(department.into()),
        kind: if level == v1::Level::Red { v1::AlertKind::StatutoryOverdue } else { v1::AlertKind::PromisedOverdue } as i32,
        level: level as i32,
        triggered_at: "2025-09-29T00:00:00+08:00".into(),
        event_id: None,
        message: Some(v1::Bilingual { zh: "办件超过承诺时限".into(), en: "over the promised limit".into() }),
        derivation: Some(v1::Bilingual { zh: "起算……".into(), en: "start …".into() }),
    }
}

fn incoming(a: v1::Alert, published: i64) -> Incoming {
    let (catalog, calendars) = rules();
    let escalate_at = Some(jiancha_accountability::escalation_deadline(&catalog, &calendars, a.service_code.as_deref(), published));
    Incoming { alert: a, published_at: published, escalate_at }
}

/// Runs `scenario` on SQLite and on PostgreSQL.
fn on_both(name: &str, scenario: impl Fn(Store) -> futures::future::BoxFuture<'static, ()>) {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let dir = Scratch::new(name);
    let sqlite = format!("sqlite://{}", dir.0.join("cases.db").display());
    rt.block_on(async { scenario(Store::open(&sqlite).await.unwrap()).await });
    let pg = Postgres::start(name);
    rt.block_on(async {
        let url = pg.database(&format!("t_{}", name.replace('-', "_"))).await;
        scenario(Store::open(&url).await.unwrap()).await
    });
}

#[test]
fn the_whole_workflow() {
    on_both("workflow", |store| {
        Box::pin(async move {
            let t0 = at("2025-03-03T10:00:00+08:00");
            let r = store.ingest(&[incoming(alert("a1", "SCJG", v1::Level::Yellow, v1::AlertStatus::Fired), t0)], t0).await.unwrap();
            assert_eq!(r.opened, 1);
            let case = store.case_of_alert("a1").await.unwrap().unwrap();
            assert_eq!(case.state.status, Status::Open);
            assert_eq!(case.department_code, "SCJG");
            let id = case.case_id;

            // Reply, assign, comment with an attachment, resolve.
            let replied = store
                .change(id, t0 + 1000, "system:SCJG", "DEPARTMENT", "REPLY", |s| workflow::reply(id, s, "system:SCJG", "材料补齐后已办结"))
                .await
                .unwrap();
            assert_eq!(replied.state.status, Status::Replied);
            assert_eq!(replied.replied_at, Some(t0 + 1000));
            store.change(id, t0 + 2000, "insp", "INSPECTOR", "ASSIGN", |s| workflow::assign(id, s, "wang")).await.unwrap();
            let attachment = ("说明.pdf".to_owned(), "application/pdf".to_owned(), 52_341, "ab".repeat(32));
            store.comment(id, t0 + 3000, "wang", "INSPECTOR", "已调阅卷宗", &[attachment]).await.unwrap();
            let err = store
                .change(id, t0 + 4000, "wang", "INSPECTOR", "RESOLVE", |s| workflow::resolve(id, s, "wang", Disposition::NoFault, " ", ""))
                .await;
            assert!(matches!(err, Err(StoreError::Workflow(workflow::WorkflowError::Field { field: "reason", .. }))), "{err:?}");
            let done = store
                .change(id, t0 + 5000, "wang", "INSPECTOR", "RESOLVE", |s| {
                    workflow::resolve(id, s, "wang", Disposition::Rectify, "限期整改", "张三")
                })
                .await
                .unwrap();
            assert_eq!(done.state.status, Status::Resolved);
            assert_eq!(done.state.disposition, Some(Disposition::Rectify));
            assert_eq!(done.state.assigned_to.as_deref(), Some("wang"));
            assert_eq!(done.resolved_at, Some(t0 + 5000));
            let again = store.change(id, t0 + 6000, "system:SCJG", "DEPARTMENT", "REPLY", |s| workflow::reply(id, s, "x", "y")).await;
            assert!(matches!(again, Err(StoreError::Workflow(workflow::WorkflowError::State(_)))));

            let comments = store.comments(id).await.unwrap();
            assert_eq!(comments.len(), 1);
            assert_eq!(comments[0].attachments[0].file_name, "说明.pdf");
            let entries = store.audit_entries(0, Some(id), 100).await.unwrap();
            let actions: Vec<&str> = entries.iter().map(|e| e.action.as_str()).collect();
            assert_eq!(actions, ["OPEN", "REPLY", "ASSIGN", "COMMENT", "RESOLVE"]);
            assert_eq!(store.verify_audit().await.unwrap().map(|h| h.entries), Ok(5));

            // A WARNING alert opens nothing.
            let r = store.ingest(&[incoming(alert("w1", "SCJG", v1::Level::Warning, v1::AlertStatus::Fired), t0)], t0).await.unwrap();
            assert_eq!((r.opened, r.unchanged), (0, 1));
        })
    });
}

#[test]
fn an_unreplied_yellow_case_escalates_after_five_working_days_across_national_day() {
    on_both("escalation", |store| {
        Box::pin(async move {
            // Opened Tuesday 2025-09-30. National Day and Mid-Autumn: 10-01..10-08 off,
            // Saturday 10-11 a working day (调休). Working days counted: 10-09, 10-10,
            // 10-11, 10-13, 10-14 — the deadline is the end of 10-14.
            let opened = at("2025-09-30T10:00:00+08:00");
            let inc = incoming(alert("y1", "SCJG", v1::Level::Yellow, v1::AlertStatus::Fired), opened);
            assert_eq!(inc.escalate_at, Some(at("2025-10-15T00:00:00+08:00")));
            let replied = incoming(alert("y2", "SCJG", v1::Level::Yellow, v1::AlertStatus::Fired), opened);
            let red = incoming(alert("r1", "SCJG", v1::Level::Red, v1::AlertStatus::Fired), opened);
            store.ingest(&[inc, replied, red], opened).await.unwrap();
            let y2 = store.case_of_alert("y2").await.unwrap().unwrap().case_id;
            store.change(y2, opened + 1000, "d", "DEPARTMENT", "REPLY", |s| workflow::reply(y2, s, "d", "已说明")).await.unwrap();

            assert!(store.escalate_due(at("2025-10-09T09:00:00+08:00")).await.unwrap().is_empty(), "the holiday is not counted");
            assert!(store.escalate_due(at("2025-10-14T23:59:59+08:00")).await.unwrap().is_empty());
            let y1 = store.case_of_alert("y1").await.unwrap().unwrap().case_id;
            assert_eq!(store.escalate_due(at("2025-10-15T00:00:00+08:00")).await.unwrap(), [y1]);
            let case = store.case(y1).await.unwrap();
            assert_eq!((case.state.level.as_str(), case.state.escalated, case.alert_level.as_str()), ("RED", true, "YELLOW"));
            assert!(store.escalate_due(at("2025-10-20T00:00:00+08:00")).await.unwrap().is_empty(), "once only");
            let escalated = store.cases(&CaseFilter { escalated: Some(true), limit: 10, ..CaseFilter::default() }).await.unwrap();
            assert_eq!(escalated.iter().map(|c| c.case_id).collect::<Vec<_>>(), [y1]);
            assert!(store.verify_audit().await.unwrap().is_ok());
        })
    });
}

#[test]
fn three_fault_dispositions_within_a_year_mark_a_repeat_offender() {
    on_both("repeat", |store| {
        Box::pin(async move {
            let t = at("2025-01-10T10:00:00+08:00");
            let day = 86_400_000;
            let ids: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
            let batch: Vec<Incoming> = ids.iter().map(|id| incoming(alert(id, "ZJJ", v1::Level::Red, v1::AlertStatus::Fired), t)).collect();
            store.ingest(&batch, t).await.unwrap();
            let case = |i: usize| {
                let store = &store;
                let id = ids[i].clone();
                async move { store.case_of_alert(&id).await.unwrap().unwrap().case_id }
            };
            let resolve = |case_id: i64, when: i64, d: Disposition, actor: &'static str| {
                let store = &store;
                async move {
                    store
                        .change(case_id, when, "insp", "INSPECTOR", "RESOLVE", |s| workflow::resolve(case_id, s, "insp", d, "理由", actor))
                        .await
                        .unwrap()
                }
            };
            // A fault 400 days ago does not count; NO_FAULT never counts.
            let c0 = resolve(case(0).await, t - 400 * day, Disposition::Criticism, "李四").await;
            assert!(!c0.state.repeat_department);
            let c1 = resolve(case(1).await, t + day, Disposition::NoFault, "").await;
            assert!(!c1.state.repeat_department);
            let c2 = resolve(case(2).await, t + 2 * day, Disposition::Rectify, "李四").await;
            let c3 = resolve(case(3).await, t + 3 * day, Disposition::EfficiencyWarning, "王五").await;
            assert!(!c2.state.repeat_department && !c3.state.repeat_department);
            let c4 = resolve(case(4).await, t + 300 * day, Disposition::Admonition, "李四").await;
            assert!(c4.state.repeat_department, "third fault of ZJJ within 365 days");
            assert!(!c4.state.repeat_actor, "李四 has two within 365 days (the third is 700 days apart)");
            let marked = store.cases(&CaseFilter { repeat_offender: Some(true), limit: 10, ..CaseFilter::default() }).await.unwrap();
            assert_eq!(marked.len(), 1);
        })
    });
}

#[test]
fn a_retraction_closes_the_case_and_redelivery_opens_nothing_twice() {
    on_both("retraction", |store| {
        Box::pin(async move {
            let t = at("2025-03-03T10:00:00+08:00");
            let fired = incoming(alert("x1", "GAJ", v1::Level::Yellow, v1::AlertStatus::Fired), t);
            // The same alert consumed three times (redelivery after a crash, say).
            for _ in 0..3 {
                store.ingest(std::slice::from_ref(&fired), t).await.unwrap();
            }
            let all = store.cases(&CaseFilter { limit: 100, ..CaseFilter::default() }).await.unwrap();
            assert_eq!(all.len(), 1, "one case per alert id");
            assert_eq!(store.audit_entries(0, None, 100).await.unwrap().len(), 1, "one OPEN entry");

            let retracted = incoming(alert("x1", "GAJ", v1::Level::Yellow, v1::AlertStatus::Retracted), t + 60_000);
            let r = store.ingest(std::slice::from_ref(&retracted), t + 60_000).await.unwrap();
            assert_eq!(r.retracted, 1);
            let case = store.case_of_alert("x1").await.unwrap().unwrap();
            assert_eq!(case.state.status, Status::Resolved);
            assert_eq!(case.state.disposition, Some(Disposition::NoFault));
            assert_eq!(case.state.resolution_reason.as_deref(), Some("retracted: late data"));
            // Redelivered retraction: nothing more.
            assert_eq!(store.ingest(&[retracted], t + 70_000).await.unwrap().retracted, 0);
            assert_eq!(store.audit_entries(0, None, 100).await.unwrap().len(), 2);
            assert!(store.verify_audit().await.unwrap().is_ok());
        })
    });
}

#[test]
fn audit_tampering_is_found_and_named() {
    on_both("tamper", |store| {
        Box::pin(async move {
            let t = at("2025-03-03T10:00:00+08:00");
            let batch: Vec<Incoming> =
                (0..3).map(|i| incoming(alert(&format!("t{i}"), "JTJ", v1::Level::Yellow, v1::AlertStatus::Fired), t)).collect();
            store.ingest(&batch, t).await.unwrap();
            for case_id in 1..=3 {
                store.change(case_id, t + case_id, "d", "DEPARTMENT", "REPLY", |s| workflow::reply(case_id, s, "d", "说明")).await.unwrap();
            }
            assert_eq!(store.verify_audit().await.unwrap().map(|h| h.entries), Ok(6));
            let pool = store.pool();
            let exec = |sql: &'static str| async move { sqlx::query(sql).execute(pool).await.unwrap() };

            // Edit entry 4's author.
            exec("UPDATE audit_log SET who = 'nobody' WHERE seq = 4").await;
            let b = store.verify_audit().await.unwrap().unwrap_err();
            assert_eq!(b.seq, 4, "{b}");
            assert!(b.problem.contains("edited"), "{b}");
            exec("UPDATE audit_log SET who = 'd' WHERE seq = 4").await;
            assert!(store.verify_audit().await.unwrap().is_ok());

            // Reorder: swap the contents of entries 2 and 3 (sequence numbers kept).
            exec("UPDATE audit_log SET seq = -2 WHERE seq = 2").await;
            exec("UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
            exec("UPDATE audit_log SET seq = 3 WHERE seq = -2").await;
            let b = store.verify_audit().await.unwrap().unwrap_err();
            assert_eq!(b.seq, 2, "{b}");
            exec("UPDATE audit_log SET seq = -2 WHERE seq = 2").await;
            exec("UPDATE audit_log SET seq = 2 WHERE seq = 3").await;
            exec("UPDATE audit_log SET seq = 3 WHERE seq = -2").await;
            assert!(store.verify_audit().await.unwrap().is_ok());

            // Delete entry 5.
            exec("DELETE FROM audit_log WHERE seq = 5").await;
            let b = store.verify_audit().await.unwrap().unwrap_err();
            assert_eq!(b.seq, 5, "{b}");
            assert!(b.problem.contains("missing"), "{b}");

            // Delete the newest entry: the chain is intact, but its case says otherwise.
            exec("DELETE FROM audit_log WHERE seq >= 5").await;
            let b = store.verify_audit().await.unwrap().unwrap_err();
            assert!(b.problem.contains("case"), "{b}");
        })
    });
}

#[test]
fn every_column_comment_and_attachment_is_in_the_chain() {
    on_both("columns", |store| {
        Box::pin(async move {
            let t = at("2025-03-03T10:00:00+08:00");
            let batch: Vec<Incoming> =
                (0..2).map(|i| incoming(alert(&format!("c{i}"), "JTJ", v1::Level::Yellow, v1::AlertStatus::Fired), t)).collect();
            store.ingest(&batch, t).await.unwrap();
            let file = ("现场照片.jpg".to_owned(), "image/jpeg".to_owned(), 2048, "ab".repeat(32));
            store.comment(1, t + 1, "d", "DEPARTMENT", "已整改", &[file]).await.unwrap();
            let head = store.verify_audit().await.unwrap().unwrap();
            assert_eq!((head.entries, head.seq, head.hash.len()), (3, 3, 64));
            let pool = store.pool();
            let exec = |sql: &'static str| async move { sqlx::query(sql).execute(pool).await.unwrap() };
            // Each tampering is found, then undone.
            for (tamper, undo) in [
                ("UPDATE cases SET message_zh = '无' WHERE case_id = 2", None),
                ("UPDATE cases SET derivation_en = 'x' WHERE case_id = 1", None),
                (
                    "UPDATE cases SET department_code = 'OTHER' WHERE case_id = 1",
                    Some("UPDATE cases SET department_code = 'JTJ' WHERE case_id = 1"),
                ),
                ("UPDATE cases SET opened_at = 1 WHERE case_id = 2", None),
                (
                    "UPDATE case_comments SET text = '未整改' WHERE case_id = 1",
                    Some("UPDATE case_comments SET text = '已整改' WHERE case_id = 1"),
                ),
                ("UPDATE case_attachments SET sha256 = 'cd' WHERE case_id = 1", None),
                (
                    "UPDATE case_attachments SET size_bytes = 1 WHERE case_id = 1",
                    Some("UPDATE case_attachments SET size_bytes = 2048 WHERE case_id = 1"),
                ),
            ] {
                let snapshot_rows = sqlx::query("SELECT case_id, message_zh, derivation_en, opened_at FROM cases ORDER BY case_id")
                    .fetch_all(pool)
                    .await
                    .unwrap();
                let sha: String =
                    sqlx::query_scalar("SELECT sha256 FROM case_attachments WHERE case_id = 1").fetch_one(pool).await.unwrap();
                exec(tamper).await;
                let b = store.verify_audit().await.unwrap().unwrap_err();
                assert!(b.problem.contains("differs from its newest audit entry"), "{tamper}: {b}");
                match undo {
                    Some(sql) => {
                        exec(sql).await;
                    }
                    None => {
                        for r in &snapshot_rows {
                            let id: i64 = r.get("case_id");
                            sqlx::query("UPDATE cases SET message_zh = $1, derivation_en = $2, opened_at = $3 WHERE case_id = $4")
                                .bind(r.get::<String, _>("message_zh"))
                                .bind(r.get::<String, _>("derivation_en"))
                                .bind(r.get::<i64, _>("opened_at"))
                                .bind(id)
                                .execute(pool)
                                .await
                                .unwrap();
                        }
                        sqlx::query("UPDATE case_attachments SET sha256 = $1 WHERE case_id = 1").bind(&sha).execute(pool).await.unwrap();
                    }
                }
                assert!(store.verify_audit().await.unwrap().is_ok(), "undone: {tamper}");
            }
            // A comment added without an entry; a case removed.
            exec("INSERT INTO case_comments (comment_id, case_id, author, role, text, at) VALUES (99, 2, 'x', 'DEPARTMENT', '补', 0)")
                .await;
            assert!(store.verify_audit().await.unwrap().unwrap_err().problem.contains("case 2 differs"));
            exec("DELETE FROM case_comments WHERE comment_id = 99").await;
            exec("DELETE FROM cases WHERE case_id = 2").await;
            let b = store.verify_audit().await.unwrap().unwrap_err();
            assert!(b.problem.contains("case 2 is in the audit log but missing"), "{b}");
        })
    });
}
