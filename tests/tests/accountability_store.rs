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
    Incoming { alert: a, published_at: published }
}

/// Takes the escalation steps due at `now` with the demo rules and the default chain.
async fn advance(store: &Store, now: i64) -> Vec<(i64, &'static str)> {
    let (catalog, calendars) = rules();
    let chain = jiancha_platform::config::EscalationChain::default();
    store.advance(now, |c| jiancha_accountability::schedule(&catalog, &calendars, &chain, c)).await.unwrap()
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
                .change(id, t0 + 4000, "wang", "INSPECTOR", "RESOLVE", |s| {
                    workflow::resolve(id, s, "wang", Disposition::NoFault, " ", "", None, t0)
                })
                .await;
            assert!(matches!(err, Err(StoreError::Workflow(workflow::WorkflowError::Field { field: "reason", .. }))), "{err:?}");
            let done = store
                .change(id, t0 + 5000, "wang", "INSPECTOR", "RESOLVE", |s| {
                    workflow::resolve(id, s, "wang", Disposition::Rectify, "限期整改", "张三", Some(t0 + 86_400_000), t0)
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
fn the_escalation_chain_counts_working_days_across_national_day() {
    on_both("escalation", |store| {
        Box::pin(async move {
            // Published Tuesday 2025-09-30. National Day and Mid-Autumn: 10-01..10-08 off,
            // Saturday 10-11 a working day (调休). Working days counted: 10-09, 10-10, 10-11
            // (催办 at the end of the 3rd), 10-13, 10-14 (督办 at the end of the 5th),
            // 10-15, 10-16, 10-17, 10-20, 10-21 (通报 at the end of the 10th).
            let published = at("2025-09-30T10:00:00+08:00");
            // The store reads the alerts a week after publication (an outage): the clock
            // still counts from the publication.
            let read = at("2025-10-09T08:00:00+08:00");
            let batch = [
                incoming(alert("y1", "SCJG", v1::Level::Yellow, v1::AlertStatus::Fired), published),
                incoming(alert("y2", "SCJG", v1::Level::Yellow, v1::AlertStatus::Fired), published),
                incoming(alert("r1", "SCJG", v1::Level::Red, v1::AlertStatus::Fired), published),
            ];
            store.ingest(&batch, read).await.unwrap();
            let id = |a: &'static str| {
                let store = &store;
                async move { store.case_of_alert(a).await.unwrap().unwrap().case_id }
            };
            let (y1, y2, r1) = (id("y1").await, id("y2").await, id("r1").await);
            assert_eq!(store.case(y1).await.unwrap().clock_from, published);
            store.change(y2, read + 1000, "d", "DEPARTMENT", "REPLY", |s| workflow::reply(y2, s, "d", "已说明")).await.unwrap();

            assert!(advance(&store, at("2025-10-09T09:00:00+08:00")).await.is_empty(), "the holiday is not counted");
            assert!(advance(&store, at("2025-10-11T23:59:59+08:00")).await.is_empty());
            assert_eq!(advance(&store, at("2025-10-12T00:00:00+08:00")).await, [(y1, "REMIND"), (r1, "REMIND")]);
            assert!(advance(&store, at("2025-10-14T23:59:59+08:00")).await.is_empty());
            assert_eq!(advance(&store, at("2025-10-15T00:00:00+08:00")).await, [(y1, "ESCALATE"), (r1, "ESCALATE")]);
            let case = store.case(y1).await.unwrap();
            assert_eq!((case.state.level.as_str(), case.state.escalated, case.alert_level.as_str()), ("RED", true, "YELLOW"));
            let red = store.case(r1).await.unwrap();
            assert_eq!((red.state.level.as_str(), red.state.escalated), ("RED", true), "a RED case is flagged too");
            assert!(advance(&store, at("2025-10-21T23:00:00+08:00")).await.is_empty(), "each step once");
            assert_eq!(advance(&store, at("2025-10-22T00:00:00+08:00")).await, [(y1, "PUBLICIZE"), (r1, "PUBLICIZE")]);
            assert!(store.case(y1).await.unwrap().state.publicized);
            assert_eq!(
                store.case(y2).await.unwrap().state,
                workflow::reply(y2, &workflow::CaseState::opened("YELLOW"), "d", "已说明").unwrap()
            );
            let escalated = store.cases(&CaseFilter { escalated: Some(true), limit: 10, ..CaseFilter::default() }).await.unwrap();
            assert_eq!(escalated.iter().map(|c| c.case_id).collect::<Vec<_>>(), [y1, r1]);
            let actions: Vec<String> = store.audit_entries(0, Some(y1), 100).await.unwrap().into_iter().map(|e| e.action).collect();
            assert_eq!(actions, ["OPEN", "REMIND", "ESCALATE", "PUBLICIZE"]);
            // Every step is a fact for the notifications, written with its audit entry.
            let outbox: i64 =
                sqlx::query_scalar("SELECT COUNT(*) FROM outbox WHERE case_id = $1").bind(y1).fetch_one(store.pool()).await.unwrap();
            assert_eq!(outbox, 4);

            // A send-back restarts the department's clock.
            let back_at = at("2025-10-23T10:00:00+08:00");
            store.change(y2, back_at, "insp", "INSPECTOR", "SEND_BACK", |s| workflow::send_back(y2, s, "请补充超期原因")).await.unwrap();
            let sent_back = store.case(y2).await.unwrap();
            assert_eq!((sent_back.state.status, sent_back.clock_from), (Status::Open, back_at));
            assert!(advance(&store, at("2025-10-28T23:00:00+08:00")).await.is_empty(), "the send-back's day is not counted");
            assert_eq!(advance(&store, at("2025-10-29T00:00:00+08:00")).await, [(y2, "REMIND")], "end of 10-24, 10-27, 10-28");
            assert!(store.verify_audit().await.unwrap().is_ok());
        })
    });
}

#[test]
fn a_moved_alert_updates_its_case_and_a_reopened_case_starts_clean() {
    on_both("moved", |store| {
        Box::pin(async move {
            let t = at("2025-03-03T10:00:00+08:00");
            store.ingest(&[incoming(alert("m1", "SCJG", v1::Level::Yellow, v1::AlertStatus::Fired), t)], t).await.unwrap();
            let id = store.case_of_alert("m1").await.unwrap().unwrap().case_id;
            let mut moved = alert("m1", "SCJG", v1::Level::Yellow, v1::AlertStatus::Fired);
            moved.triggered_at = "2025-10-09T00:00:00+08:00".into();
            moved.message =
                Some(v1::Bilingual { zh: "办件超过承诺时限（延期后）".into(), en: "over the extended limit".into() });
            let r = store.ingest(&[incoming(moved.clone(), t + 1000)], t + 1000).await.unwrap();
            assert_eq!(r.moved, 1);
            let case = store.case(id).await.unwrap();
            assert_eq!((case.triggered_at.as_str(), case.message_zh.as_str()), ("2025-10-09T00:00:00+08:00", "办件超过承诺时限（延期后）"));
            assert_eq!(store.ingest(&[incoming(moved.clone(), t + 2000)], t + 2000).await.unwrap().unchanged, 1, "redelivery");

            // Replied, then the alert is retracted (case closed) and fires again: the case
            // opens as new, the old reply and resolution gone from it (kept in the log).
            store.change(id, t + 3000, "d", "DEPARTMENT", "REPLY", |s| workflow::reply(id, s, "d", "已说明")).await.unwrap();
            let mut retracted = moved.clone();
            retracted.status = v1::AlertStatus::Retracted as i32;
            assert_eq!(store.ingest(&[incoming(retracted, t + 4000)], t + 4000).await.unwrap().retracted, 1);
            let closed = store.case(id).await.unwrap();
            assert!(closed.state.retracted && closed.resolved_at.is_some());
            let again = t + 86_400_000;
            assert_eq!(store.ingest(&[incoming(moved, again)], again).await.unwrap().reopened, 1);
            let reopened = store.case(id).await.unwrap();
            assert_eq!(reopened.state, workflow::CaseState::opened("YELLOW"));
            assert_eq!((reopened.replied_at, reopened.resolved_at, reopened.clock_from), (None, None, again));
            let actions: Vec<String> = store.audit_entries(0, Some(id), 100).await.unwrap().into_iter().map(|e| e.action).collect();
            assert_eq!(actions, ["OPEN", "MOVE", "REPLY", "RETRACT", "REOPEN"]);

            // Resolved with a fault, then retracted: the decision stands, flagged 复核.
            let done = store
                .change(id, again + 1, "i", "INSPECTOR", "RESOLVE", |s| {
                    workflow::resolve(id, s, "i", Disposition::Criticism, "", "张三", None, again)
                })
                .await
                .unwrap();
            let mut retracted = alert("m1", "SCJG", v1::Level::Yellow, v1::AlertStatus::Retracted);
            retracted.triggered_at = "2025-10-09T00:00:00+08:00".into();
            assert_eq!(store.ingest(&[incoming(retracted, again + 2)], again + 2).await.unwrap().flagged, 1);
            let flagged = store.case(id).await.unwrap();
            assert_eq!((flagged.state.status, flagged.state.disposition), (Status::Resolved, Some(Disposition::Criticism)));
            assert!(flagged.state.review.as_deref().unwrap().contains("复核"), "{:?}", flagged.state.review);
            assert_eq!(flagged.resolved_at, done.resolved_at);
            let review = store.cases(&CaseFilter { review: Some(true), limit: 10, ..CaseFilter::default() }).await.unwrap();
            assert_eq!(review.len(), 1);
            store
                .change(id, again + 3, "i", "INSPECTOR", "REVIEW", |s| workflow::review(id, s, "i", false, "数据迟报，撤销"))
                .await
                .unwrap();
            assert_eq!(store.case(id).await.unwrap().state.disposition, Some(Disposition::NoFault));
            assert!(store.verify_audit().await.unwrap().is_ok());
        })
    });
}

#[test]
fn a_complaint_is_filed_accepted_and_its_contact_is_in_the_chain_as_a_hash() {
    on_both("complaint", |store| {
        Box::pin(async move {
            use jiancha_accountability::store::{NewCase, Origin};
            let t = at("2025-03-03T10:00:00+08:00");
            let new = NewCase {
                origin: Origin::Complaint,
                department_code: "SCJG".into(),
                item_id: None,
                service_code: None,
                level: "YELLOW".into(),
                summary: "窗口要求提供法规未规定的材料".into(),
                derivation: "投诉，渠道 HOTLINE".into(),
                at_text: "2025-03-03T10:00:00+08:00".into(),
                complaint_channel: Some("HOTLINE".into()),
                complainant: Some("赵女士 13800000000".into()),
            };
            let case = store.open_case(&new, t, "insp", "INSPECTOR").await.unwrap();
            assert_eq!((case.state.status, case.origin.as_str(), case.alert_id.as_str()), (Status::Filed, "COMPLAINT", "C1"));
            let snapshot: String =
                sqlx::query_scalar("SELECT snapshot FROM audit_log WHERE seq = 1").fetch_one(store.pool()).await.unwrap();
            assert!(!snapshot.contains("13800000000"), "the contact is not in the log auditors read");
            // 5 working days without an answer: escalated (the office's own 督办).
            assert_eq!(advance(&store, at("2025-03-08T00:00:00+08:00")).await, [(case.case_id, "REMIND")]);
            assert_eq!(advance(&store, at("2025-03-11T00:00:00+08:00")).await, [(case.case_id, "ESCALATE")]);
            let accepted_at = at("2025-03-11T09:00:00+08:00");
            let accepted = store
                .change(case.case_id, accepted_at, "insp", "INSPECTOR", "ACCEPT", |s| workflow::accept_complaint(case.case_id, s))
                .await
                .unwrap();
            assert_eq!((accepted.state.status, accepted.state.escalated, accepted.clock_from), (Status::Open, false, accepted_at));
            // Editing the contact is found.
            sqlx::query("UPDATE cases SET complainant = 'x' WHERE case_id = $1").bind(case.case_id).execute(store.pool()).await.unwrap();
            assert!(store.verify_audit().await.unwrap().is_err());
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
                        .change(case_id, when, "insp", "INSPECTOR", "RESOLVE", |s| {
                            let deadline = (d == Disposition::Rectify).then_some(when + 30 * day);
                            workflow::resolve(case_id, s, "insp", d, "理由", actor, deadline, when)
                        })
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
            assert_eq!(store.offences(Some("ZJJ"), None, t + 300 * day).await.unwrap(), 3);
            assert_eq!(store.offences(None, Some("李四"), t + 300 * day).await.unwrap(), 2);
        })
    });
}

#[test]
fn the_yellow_and_red_cases_of_one_item_are_one_offence() {
    on_both("offence", |store| {
        Box::pin(async move {
            let t = at("2025-01-10T10:00:00+08:00");
            let on_item = |id: &str, item: &str, level| {
                let mut a = alert(id, "WJW", level, v1::AlertStatus::Fired);
                a.item_id = Some(item.into());
                incoming(a, t)
            };
            // Item A: a YELLOW and a RED case; item B: one RED case.
            store
                .ingest(
                    &[on_item("a-y", "A", v1::Level::Yellow), on_item("a-r", "A", v1::Level::Red), on_item("b-r", "B", v1::Level::Red)],
                    t,
                )
                .await
                .unwrap();
            for (n, id) in [1, 2, 3].into_iter().enumerate() {
                let c = store
                    .change(id, t + n as i64, "i", "INSPECTOR", "RESOLVE", |s| {
                        workflow::resolve(id, s, "i", Disposition::Criticism, "", "", None, t)
                    })
                    .await
                    .unwrap();
                assert!(!c.state.repeat_department, "case {id}: two offences (items A and B), not three");
            }
            assert_eq!(store.offences(Some("WJW"), None, t + 10).await.unwrap(), 2);
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

#[test]
fn a_calendar_year_loaded_later_moves_the_chain_without_a_restart() {
    let dir = Scratch::new("chain-reload");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = std::sync::Arc::new(rt.block_on(Store::open(&format!("sqlite://{}", dir.0.join("cases.db").display()))).unwrap());
    // Published Monday 2027-01-04, a year the built-in calendar does not cover yet: Mon–Fri.
    let published = at("2027-01-04T10:00:00+08:00");
    rt.block_on(store.ingest(&[incoming(alert("c27", "SCJG", v1::Level::Yellow, v1::AlertStatus::Fired), published)], published)).unwrap();
    let case = rt.block_on(store.case(1)).unwrap();
    let calendar_dir = dir.0.join("calendars");
    std::fs::create_dir_all(&calendar_dir).unwrap();
    let catalog = dir.0.join("catalog.toml");
    std::fs::copy(repo_root().join("deploy/demo/catalog.toml"), &catalog).unwrap();
    let mut config = jiancha_platform::Config {
        catalog: Some(catalog.clone()),
        calendar_dir: Some(calendar_dir.clone()),
        reload_interval: jiancha_platform::config::TimeSpan::millis(100),
        ..jiancha_platform::Config::default()
    };
    config.accountability.escalation_interval = jiancha_platform::config::TimeSpan::millis(100);
    let (watch, catalog_now, calendars_now) = jiancha_platform::rules::RulesWatch::load(&config).unwrap();
    let rules = jiancha_accountability::Rules::new(catalog_now, calendars_now);
    let remind_at = || {
        let (catalog, calendars) = rules.get();
        jiancha_accountability::schedule(&catalog, &calendars, &config.accountability.chain, &case)[0].1
    };
    assert_eq!(remind_at(), at("2027-01-08T00:00:00+08:00"), "Tue, Wed, Thu counted");
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let clock = rt.spawn(jiancha_accountability::service::escalation_clock(
        store.clone(),
        rules.clone(),
        watch,
        config.clone(),
        std::time::Duration::from_millis(100),
        shutdown,
    ));
    // The 2027 notice arrives: New Year's holiday on Tuesday to Thursday.
    std::fs::write(
        calendar_dir.join("cn-mainland-2027.toml"),
        r#"name = "cn-mainland"
time_zone = "Asia/Shanghai"
weekend = ["Sat", "Sun"]

[[year]]
year = 2027
holidays = [ { name = "元旦", name_en = "New Year", from = "2027-01-05", to = "2027-01-07" } ]
workdays = []
"#,
    )
    .unwrap();
    let started = std::time::Instant::now();
    while remind_at() != at("2027-01-13T00:00:00+08:00") {
        assert!(started.elapsed() < std::time::Duration::from_secs(20), "the chain did not follow the new calendar: {}", remind_at());
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    stop.send_replace(true);
    rt.block_on(clock).unwrap();
}
