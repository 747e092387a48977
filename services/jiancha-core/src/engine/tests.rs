//! One test per rule and per clock edge, each on a small hand-checked history.

use super::*;
use crate::calendar::Calendar;
use crate::event::parse_json_event;
use serde_json::{Value, json};
use std::collections::BTreeMap;

const CATALOG: &str = r#"
[[service]]
code = "S"
name = "标准事项"
department = "D"
statutory_days = 20
promised_days = 5
fee_cap_fen = 10000
[[service.step]]
name = "承办"
days = 2
[[service.step]]
name = "审核"
days = 2

[[service]]
code = "FREE"
name = "无步骤免费事项"
department = "D"
statutory_days = 20
promised_days = 10
allowed_suspensions = ["HEARING"]

[[service]]
code = "NOW"
name = "即办件"
department = "D"
statutory_days = 20
promised_days = 0
delivery_days = 0

[[service]]
code = "NAT"
name = "自然日事项"
department = "D"
day_kind = "natural"
statutory_days = 30
promised_days = 10

[[service]]
code = "OLD"
name = "已取消事项"
department = "D"
cancelled_on = 2024-07-01
"#;

/// A replay over the test catalog, recording every alert update.
struct Run {
    replay: Replay,
    updates: Vec<Alert>,
    n: usize,
}

impl Run {
    fn new() -> Run {
        Run::with_catalog(CATALOG)
    }

    fn with_catalog(toml: &str) -> Run {
        let calendars = Calendars::builtin();
        let catalog = Catalog::from_toml(toml, &calendars).expect("test catalog");
        Run { replay: Replay::new(Engine::new(Arc::new(catalog), calendars)), updates: Vec::new(), n: 0 }
    }

    /// An event of item I1 that arrives when it occurs.
    fn ev(&mut self, ty: &str, at: &str, extra: Value) -> &mut Run {
        self.ev_on("I1", ty, at, None, extra)
    }

    /// An event that arrives at `received` instead.
    fn late(&mut self, ty: &str, at: &str, received: &str, extra: Value) -> &mut Run {
        self.ev_on("I1", ty, at, Some(received), extra)
    }

    fn ev_on(&mut self, item: &str, ty: &str, at: &str, received: Option<&str>, extra: Value) -> &mut Run {
        self.n += 1;
        let mut v = json!({
            "event_id": format!("e{}", self.n),
            "item_id": item,
            "department_code": "D",
            "type": ty,
            "occurred_at": at,
            "actor": "经办人甲",
        });
        if ty == "SUBMITTED" {
            v["service_code"] = json!("S");
        }
        if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
            m.extend(x);
        }
        if let Some(r) = received {
            v["received_at"] = json!(r);
        }
        self.raw(&v)
    }

    fn raw(&mut self, v: &Value) -> &mut Run {
        let parsed = parse_json_event(v.to_string().as_bytes()).expect("valid test event");
        let arrival = parsed.received_at.unwrap_or(parsed.event.occurred_at);
        let updates = &mut self.updates;
        self.replay.arrive(&parsed.event, arrival, &mut |a| updates.push(a));
        self
    }

    fn until(&mut self, at: &str) -> &mut Run {
        let updates = &mut self.updates;
        self.replay.advance(Timestamp::parse_rfc3339(at).unwrap(), &mut |a| updates.push(a));
        self
    }

    /// The alerts in force: the last update of each id, when FIRED.
    fn state(&self) -> BTreeMap<String, &Alert> {
        let mut last: BTreeMap<String, &Alert> = BTreeMap::new();
        for a in &self.updates {
            last.insert(a.alert_id.clone(), a);
        }
        last.retain(|_, a| a.status == AlertStatus::Fired);
        last
    }

    /// (kind, triggered_at in +08:00) of the alerts in force, sorted.
    fn fired(&self) -> Vec<(AlertKind, String)> {
        let mut v: Vec<_> = self.state().values().map(|a| (a.kind, a.triggered_at.to_rfc3339_in(chrono_tz::Asia::Shanghai))).collect();
        v.sort();
        v
    }

    fn kinds(&self) -> Vec<AlertKind> {
        let mut v: Vec<_> = self.fired().into_iter().map(|(k, _)| k).collect();
        v.dedup();
        v
    }

    fn has(&self, kind: AlertKind, at: &str) -> bool {
        self.fired().iter().any(|(k, t)| *k == kind && t == at)
    }

    fn retracted(&self, kind: AlertKind) -> usize {
        self.updates.iter().filter(|a| a.kind == kind && a.status == AlertStatus::Retracted).count()
    }
}

fn svc(code: &str) -> Value {
    json!({ "service_code": code })
}

const NONE: fn() -> Value = || json!({});

// ---- acceptance ------------------------------------------------------------------

#[test]
fn acceptance_window_start_day_not_counted_and_silence_is_deemed_acceptance() {
    let mut r = Run::new();
    // Thu 2024-02-08 16:00, Spring Festival 02-10..02-17, 02-18 Sun worked: window ends 02-22 00:00.
    r.ev("SUBMITTED", "2024-02-08T16:00:00+08:00", NONE()).until("2024-02-21T23:59:59+08:00");
    assert!(r.fired().is_empty(), "{:?}", r.fired());
    r.until("2024-02-22T00:00:00+08:00");
    assert!(r.has(AlertKind::AcceptanceOverdue, "2024-02-22T00:00:00+08:00"), "{:?}", r.fired());
    // Deemed accepted at 02-08 16:00: the promised 5 days run from then (02-09, 18, 19, 20, 21).
    r.until("2024-02-23T00:00:00+08:00");
    assert!(r.has(AlertKind::PromisedOverdue, "2024-02-22T00:00:00+08:00"), "past deadline fires with its own instant: {:?}", r.fired());
    // A later ACCEPTED moves nothing.
    let before = r.fired();
    r.ev("ACCEPTED", "2024-02-23T10:00:00+08:00", NONE());
    assert_eq!(r.fired(), before);
}

#[test]
fn correction_request_stops_the_window_and_submission_restarts_it() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T09:00:00+08:00", NONE())
        .ev("CORRECTION_REQUESTED", "2024-03-06T10:00:00+08:00", json!({"materials": ["身份证明"]}))
        .until("2024-03-20T00:00:00+08:00");
    assert!(r.fired().is_empty(), "the applicant's turn: {:?}", r.fired());
    // Materials arrive Wed 03-20: a new 5-day window from there ends Thu 03-28 00:00.
    r.ev("CORRECTION_SUBMITTED", "2024-03-20T10:00:00+08:00", NONE()).until("2024-03-28T00:00:00+08:00");
    assert!(r.has(AlertKind::AcceptanceOverdue, "2024-03-28T00:00:00+08:00"), "{:?}", r.fired());
}

#[test]
fn repeated_and_late_correction_requests() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T09:00:00+08:00", NONE())
        .ev("CORRECTION_REQUESTED", "2024-03-05T10:00:00+08:00", json!({"materials": ["a"]}))
        .ev("CORRECTION_SUBMITTED", "2024-03-06T10:00:00+08:00", NONE())
        .ev("CORRECTION_REQUESTED", "2024-03-07T10:00:00+08:00", json!({"materials": ["b"]}));
    assert_eq!(r.kinds(), vec![AlertKind::CorrectionRepeated]);
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T09:00:00+08:00", NONE()).ev("ACCEPTED", "2024-03-05T10:00:00+08:00", NONE()).ev(
        "CORRECTION_REQUESTED",
        "2024-03-06T10:00:00+08:00",
        json!({"materials": ["a"]}),
    );
    assert_eq!(r.kinds(), vec![AlertKind::CorrectionLate]);
}

#[test]
fn a_late_correction_request_makes_the_later_one_the_second() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T09:00:00+08:00", NONE()).ev(
        "CORRECTION_REQUESTED",
        "2024-03-07T10:00:00+08:00",
        json!({"materials": ["b"]}),
    );
    assert!(r.fired().is_empty());
    r.late("CORRECTION_REQUESTED", "2024-03-05T10:00:00+08:00", "2024-03-07T11:00:00+08:00", json!({"materials": ["a"]}));
    let state = r.state();
    let repeated: Vec<_> = state.values().filter(|a| a.kind == AlertKind::CorrectionRepeated).collect();
    assert_eq!(repeated.len(), 1);
    assert_eq!(repeated[0].event_id.as_deref(), Some("e2"), "the one that occurred second");
}

// ---- decision clocks ----------------------------------------------------------------

#[test]
fn promised_warning_and_statutory_clocks() {
    let mut r = Run::with_catalog(
        &CATALOG.replace("[[service.step]]\nname = \"承办\"\ndays = 2\n[[service.step]]\nname = \"审核\"\ndays = 2\n", ""),
    );
    // Accepted Mon 2024-03-04 09:00: promised 5 d ends 03-12 00:00, warning at 4 d 03-09 00:00 (end of Fri 03-08).
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", NONE()).ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE());
    r.until("2024-04-10T00:00:00+08:00");
    assert_eq!(
        r.fired(),
        vec![
            (AlertKind::PromisedDeadlineNear, "2024-03-09T00:00:00+08:00".into()),
            (AlertKind::PromisedOverdue, "2024-03-12T00:00:00+08:00".into()),
            // 20 working days from 03-05: Qingming 04-04..04-06, 04-07 Sun worked.
            (AlertKind::StatutoryOverdue, "2024-04-02T00:00:00+08:00".into()),
        ]
    );
}

#[test]
fn a_decision_at_the_deadline_instant_is_late_and_one_before_is_on_time() {
    let mut on_time = Run::with_catalog(CATALOG);
    on_time
        .ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE"))
        .ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE())
        .ev("DECIDED", "2024-03-18T23:59:59+08:00", json!({"outcome": "DENIED", "reason": "不符合条件"}))
        .until("2024-06-01T00:00:00+08:00");
    assert!(!on_time.kinds().contains(&AlertKind::PromisedOverdue), "{:?}", on_time.fired());
    let mut late = Run::with_catalog(CATALOG);
    late.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE")).ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE()).ev(
        "DECIDED",
        "2024-03-19T00:00:00+08:00",
        json!({"outcome": "DENIED", "reason": "不符合条件"}),
    );
    assert!(late.has(AlertKind::PromisedOverdue, "2024-03-19T00:00:00+08:00"), "{:?}", late.fired());
}

#[test]
fn lawful_suspension_pauses_and_unlawful_one_does_not() {
    // FREE allows HEARING only. Promised 10 days from Mon 2024-03-04 ends 03-19 00:00 unpaused.
    let base = |kind: &str| {
        let mut r = Run::new();
        r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE"))
            .ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE())
            .ev("SUSPENDED", "2024-03-05T14:00:00+08:00", json!({"suspension_kind": kind, "expected_days": 5}))
            .ev("RESUMED", "2024-03-08T10:00:00+08:00", NONE())
            .until("2024-03-30T00:00:00+08:00");
        r
    };
    let lawful = base("HEARING");
    // Excluded 03-05 14:00 → 03-08 10:00 (2 d 20 h): deadline moves to 03-21 20:00.
    assert!(lawful.has(AlertKind::PromisedOverdue, "2024-03-21T20:00:00+08:00"), "{:?}", lawful.fired());
    let unlawful = base("TENDER");
    assert!(unlawful.has(AlertKind::SuspensionIrregular, "2024-03-05T14:00:00+08:00"));
    assert!(unlawful.has(AlertKind::PromisedOverdue, "2024-03-19T00:00:00+08:00"), "the clock did not stop: {:?}", unlawful.fired());
}

#[test]
fn suspension_overdue_ends_the_pause_at_its_expected_end() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE"))
        .ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE())
        .ev("SUSPENDED", "2024-03-05T14:00:00+08:00", json!({"suspension_kind": "HEARING", "expected_days": 2}))
        .until("2024-03-08T00:00:00+08:00");
    assert!(r.has(AlertKind::SuspensionOverdue, "2024-03-08T00:00:00+08:00"), "{:?}", r.fired());
    r.ev("RESUMED", "2024-03-08T10:00:00+08:00", NONE()).until("2024-03-30T00:00:00+08:00");
    // Pause 03-05 14:00 → 03-08 00:00 only: 10 days end 03-21 10:00 (14 h + 2 d 10 h consumed later...).
    assert!(r.has(AlertKind::PromisedOverdue, "2024-03-21T10:00:00+08:00"), "{:?}", r.fired());
}

#[test]
fn a_suspension_that_starts_before_the_anchor() {
    let mut r = Run::new();
    // Accepted Mon 09:00, suspended the same day 11:00 until Wed 12:00: no time consumed before;
    // 10 days from Wed 12:00 end Wed 03-20 12:00.
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE"))
        .ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE())
        .ev("SUSPENDED", "2024-03-04T11:00:00+08:00", json!({"suspension_kind": "HEARING", "expected_days": 5}))
        .ev("RESUMED", "2024-03-06T12:00:00+08:00", NONE())
        .until("2024-03-25T00:00:00+08:00");
    assert!(r.has(AlertKind::PromisedOverdue, "2024-03-20T12:00:00+08:00"), "{:?}", r.fired());
}

#[test]
fn lawful_extension_adds_to_both_budgets_and_irregular_ones_add_nothing() {
    let run = |extra: Value, actor: &str| {
        let mut r = Run::new();
        r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE")).ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE());
        let mut e = json!({"days": 10, "approver": "局长乙"});
        if let (Value::Object(m), Value::Object(x)) = (&mut e, extra) {
            m.extend(x);
        }
        e["actor"] = json!(actor);
        r.ev("EXTENDED", "2024-03-15T10:00:00+08:00", e).until("2024-05-01T00:00:00+08:00");
        r
    };
    let lawful = run(json!({}), "经办人甲");
    // Promised 10 d → 20 d: 03-05 .. 04-01 ends 04-02 00:00; statutory 20 → 30 d ends 04-17 00:00.
    assert!(lawful.has(AlertKind::PromisedOverdue, "2024-04-02T00:00:00+08:00"), "{:?}", lawful.fired());
    assert!(lawful.has(AlertKind::StatutoryOverdue, "2024-04-17T00:00:00+08:00"), "{:?}", lawful.fired());
    assert!(!lawful.kinds().contains(&AlertKind::ExtensionIrregular));

    for (extra, actor) in [(json!({"approver": ""}), "经办人甲"), (json!({}), "局长乙"), (json!({"days": 11}), "经办人甲")] {
        let r = run(extra.clone(), actor);
        assert!(r.kinds().contains(&AlertKind::ExtensionIrregular), "{extra} by {actor}: {:?}", r.fired());
        assert!(r.has(AlertKind::PromisedOverdue, "2024-03-19T00:00:00+08:00"), "nothing added: {:?}", r.fired());
    }
}

#[test]
fn a_second_extension_and_one_after_the_statutory_deadline_are_irregular() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE"))
        .ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE())
        .ev("EXTENDED", "2024-03-15T10:00:00+08:00", json!({"days": 5, "approver": "局长乙"}))
        .ev("EXTENDED", "2024-03-18T10:00:00+08:00", json!({"days": 5, "approver": "局长乙"}));
    assert_eq!(r.fired().iter().filter(|(k, _)| *k == AlertKind::ExtensionIrregular).count(), 1);
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE")).ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE()).ev(
        "EXTENDED",
        "2024-04-02T00:00:00+08:00",
        json!({"days": 5, "approver": "局长乙"}),
    );
    assert!(r.has(AlertKind::ExtensionIrregular, "2024-04-02T00:00:00+08:00"), "at the statutory deadline: {:?}", r.fired());
    assert!(r.has(AlertKind::StatutoryOverdue, "2024-04-02T00:00:00+08:00"), "an extension after the deadline does not undo it");
}

#[test]
fn a_late_decided_retracts_promised_overdue() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE"))
        .ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE())
        .until("2024-03-20T00:00:00+08:00");
    assert!(r.has(AlertKind::PromisedOverdue, "2024-03-19T00:00:00+08:00"));
    r.late("DECIDED", "2024-03-18T15:00:00+08:00", "2024-03-20T09:00:00+08:00", json!({"outcome": "APPROVED", "reason": "符合条件"}));
    assert!(!r.kinds().contains(&AlertKind::PromisedOverdue), "{:?}", r.fired());
    assert_eq!(r.retracted(AlertKind::PromisedOverdue), 1);
    assert_eq!(r.retracted(AlertKind::PromisedDeadlineNear), 0, "the warning still held: decided after its instant");
    let retraction = r.updates.iter().find(|a| a.status == AlertStatus::Retracted).unwrap();
    let original = r.updates.iter().find(|a| a.kind == AlertKind::PromisedOverdue).unwrap();
    assert_eq!(retraction.alert_id, original.alert_id, "a retraction carries the alert's id");
    assert!(r.kinds().contains(&AlertKind::LateReport));
}

#[test]
fn duplicates_change_nothing() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", NONE());
    let v = json!({"event_id": "dup", "item_id": "I1", "department_code": "D", "type": "FEE_CHARGED", "actor": "甲", "occurred_at": "2024-03-04T08:30:00+08:00", "amount_fen": 20000});
    r.raw(&v);
    let after_first = r.updates.len();
    let parsed = parse_json_event(v.to_string().as_bytes()).unwrap();
    let applied = r.replay.arrive(&parsed.event, parsed.event.occurred_at, &mut |_| panic!("a duplicate emits nothing"));
    assert_eq!(applied, Applied::Duplicate);
    assert_eq!(r.updates.len(), after_first);
}

// ---- steps, fees, procedure ------------------------------------------------------------

#[test]
fn step_clocks_follow_the_workflow() {
    let mut r = Run::new();
    // 承办 2 d from Mon 03-04 09:00 ends 03-07 00:00; done 03-06. 审核 2 d from 03-06 ends 03-09 00:00, not done.
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", NONE())
        .ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE())
        .ev("STEP_COMPLETED", "2024-03-06T10:00:00+08:00", json!({"step": "承办"}))
        .ev("STEP_COMPLETED", "2024-03-06T11:00:00+08:00", json!({"step": "不存在的环节"}))
        .until("2024-03-10T00:00:00+08:00");
    let steps: Vec<_> = r.fired().into_iter().filter(|(k, _)| *k == AlertKind::StepOverdue).collect();
    assert_eq!(steps, vec![(AlertKind::StepOverdue, "2024-03-09T00:00:00+08:00".to_owned())]);
}

#[test]
fn fees_over_the_cap_fire_once() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", NONE())
        .ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE())
        .ev("FEE_CHARGED", "2024-03-04T10:00:00+08:00", json!({"amount_fen": 6000}))
        .ev("FEE_CHARGED", "2024-03-04T11:00:00+08:00", json!({"amount_fen": 6000}))
        .ev("FEE_CHARGED", "2024-03-04T12:00:00+08:00", json!({"amount_fen": 6000}));
    assert_eq!(
        r.fired().iter().filter(|(k, _)| *k == AlertKind::FeeIrregular).cloned().collect::<Vec<_>>(),
        vec![(AlertKind::FeeIrregular, "2024-03-04T11:00:00+08:00".into())]
    );
}

#[test]
fn procedure_violations() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE"))
        .ev("FEE_CHARGED", "2024-03-04T08:30:00+08:00", json!({"amount_fen": 0}))
        .ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE())
        .ev("DELIVERED", "2024-03-05T09:00:00+08:00", NONE())
        .ev("DECIDED", "2024-03-06T09:00:00+08:00", json!({"outcome": "APPROVED", "reason": "符合"}))
        .ev("DELIVERED", "2024-03-07T09:00:00+08:00", NONE())
        .ev("STEP_COMPLETED", "2024-03-08T09:00:00+08:00", json!({"step": "补录"}));
    let v: Vec<_> = r.fired().into_iter().filter(|(k, _)| *k == AlertKind::ProcedureViolation).map(|(_, t)| t).collect();
    assert_eq!(
        v,
        vec!["2024-03-04T08:30:00+08:00", "2024-03-05T09:00:00+08:00", "2024-03-08T09:00:00+08:00"],
        "fee before acceptance, delivery before approval, change after closing"
    );
}

#[test]
fn a_late_accepted_retracts_a_before_acceptance_violation() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE")).ev("STEP_COMPLETED", "2024-03-04T10:00:00+08:00", json!({"step": "x"}));
    assert_eq!(r.kinds(), vec![AlertKind::ProcedureViolation]);
    r.late("ACCEPTED", "2024-03-04T09:30:00+08:00", "2024-03-04T10:15:00+08:00", NONE());
    assert!(r.fired().is_empty(), "{:?}", r.fired());
    assert_eq!(r.retracted(AlertKind::ProcedureViolation), 1);
}

#[test]
fn reasons_separation_of_duties_and_delivery() {
    let mut r = Run::new();
    r.ev_on("A", "SUBMITTED", "2024-03-04T08:00:00+08:00", None, NONE()).ev_on(
        "A",
        "NOT_ACCEPTED",
        "2024-03-04T09:00:00+08:00",
        None,
        json!({"reason": "  "}),
    );
    assert_eq!(r.kinds(), vec![AlertKind::ReasonMissing]);

    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", NONE())
        .ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE())
        .ev("STEP_COMPLETED", "2024-03-05T09:00:00+08:00", json!({"step": "承办", "actor": "张三"}))
        .ev("STEP_COMPLETED", "2024-03-05T10:00:00+08:00", json!({"step": "审核", "actor": "李四"}))
        .ev("DECIDED", "2024-03-05T11:00:00+08:00", json!({"outcome": "APPROVED", "reason": "符合", "actor": "张三"}))
        .until("2024-03-20T00:00:00+08:00");
    // 承办 is the review step by default (the first step); 10 working days to deliver from 03-05 end 03-20 00:00.
    assert_eq!(r.kinds(), vec![AlertKind::SeparationOfDuties, AlertKind::DeliveryOverdue]);
    assert!(r.has(AlertKind::DeliveryOverdue, "2024-03-20T00:00:00+08:00"));
}

#[test]
fn closed_items_fire_no_timer() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-03-04T08:00:00+08:00", svc("FREE")).ev("ACCEPTED", "2024-03-04T09:00:00+08:00", NONE()).ev(
        "WITHDRAWN",
        "2024-03-05T09:00:00+08:00",
        NONE(),
    );
    r.until("2025-01-01T00:00:00+08:00");
    assert!(r.fired().is_empty(), "{:?}", r.fired());
}

#[test]
fn instant_service_has_no_warning_and_ends_with_its_day() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-06-07T10:00:00+08:00", svc("NOW"))
        .ev("ACCEPTED", "2024-06-07T11:00:00+08:00", NONE())
        .until("2024-06-09T00:00:00+08:00");
    assert_eq!(r.fired(), vec![(AlertKind::PromisedOverdue, "2024-06-08T00:00:00+08:00".into())]);
}

#[test]
fn natural_day_service_runs_past_a_holiday_end() {
    let mut r = Run::new();
    // 10 natural days from 2024-09-24 end with 10-04, inside National Day: run to the end of 10-08.
    r.ev("SUBMITTED", "2024-09-24T09:00:00+08:00", svc("NAT"))
        .ev("ACCEPTED", "2024-09-24T10:00:00+08:00", NONE())
        .until("2024-10-10T00:00:00+08:00");
    assert!(r.has(AlertKind::PromisedOverdue, "2024-10-09T00:00:00+08:00"), "{:?}", r.fired());
}

#[test]
fn unknown_and_cancelled_services() {
    let mut r = Run::new();
    r.ev_on("A", "SUBMITTED", "2024-08-01T09:00:00+08:00", None, svc("NOPE"));
    r.ev_on("B", "SUBMITTED", "2024-08-01T09:00:00+08:00", None, svc("OLD"));
    r.ev_on("C", "SUBMITTED", "2024-06-30T09:00:00+08:00", None, svc("OLD"));
    let items: Vec<_> = r.state().values().map(|a| (a.item_id.clone().unwrap(), a.kind)).collect();
    assert!(items.contains(&("A".into(), AlertKind::ServiceNotInCatalog)));
    assert!(items.contains(&("B".into(), AlertKind::ServiceNotInCatalog)));
    assert!(!items.contains(&("C".into(), AlertKind::ServiceNotInCatalog)), "submitted before the abolition date");
}

#[test]
fn late_report_uses_the_arrival_and_the_configured_limit() {
    let mut r = Run::new();
    r.late("SUBMITTED", "2024-03-04T08:00:00+08:00", "2024-03-04T09:00:00+08:00", NONE());
    assert!(r.fired().is_empty(), "exactly the limit is not more than it");
    r.late("ACCEPTED", "2024-03-04T08:00:00+08:00", "2024-03-04T09:00:01+08:00", NONE());
    assert_eq!(r.kinds(), vec![AlertKind::LateReport]);
}

#[test]
fn calendar_missing_fires_once_and_data_arriving_recomputes() {
    let mut r = Run::new();
    r.ev_on("A", "SUBMITTED", "2026-12-28T09:00:00+08:00", None, svc("FREE"));
    r.ev_on("B", "SUBMITTED", "2026-12-29T09:00:00+08:00", None, svc("FREE"));
    let missing: Vec<_> = r.updates.iter().filter(|a| a.kind == AlertKind::CalendarMissing).collect();
    assert_eq!(missing.len(), 1);
    assert_eq!(missing[0].triggered_at.to_rfc3339_in(chrono_tz::Asia::Shanghai), "2027-01-01T00:00:00+08:00");
    assert_eq!(missing[0].item_id, None);
    // Counted Mon-Fri: A's window (12-29, 30, 31, 01-01, 01-04) ends 2027-01-05 00:00.
    r.until("2027-01-05T00:00:00+08:00");
    assert!(r.has(AlertKind::AcceptanceOverdue, "2027-01-05T00:00:00+08:00"), "{:?}", r.fired());
    // The 2027 notice arrives with 01-01..01-03 off and Sun 01-04 worked... (a hypothetical notice).
    let mut calendars = Calendars::builtin();
    let mut spec = calendars.default_calendar().spec().clone();
    spec.year.push(crate::calendar::YearSpec {
        year: 2027,
        holidays: vec![crate::calendar::HolidaySpec {
            name: "元旦".into(),
            name_en: None,
            from: "2027-01-01".into(),
            to: "2027-01-03".into(),
        }],
        workdays: vec![],
    });
    calendars.insert(Calendar::compile(spec).unwrap());
    let mut out = Vec::new();
    let engine = r.replay.engine_mut();
    engine.replace_calendars(calendars, Timestamp::parse_rfc3339("2027-01-05T00:00:00+08:00").unwrap(), &mut out);
    let moved: Vec<_> = out.iter().filter_map(|e| if let Effect::Alert(a) = e { Some(a) } else { None }).collect();
    assert!(
        moved.iter().any(|a| a.kind == AlertKind::AcceptanceOverdue && a.status == AlertStatus::Retracted),
        "A's window now ends 01-06: {moved:?}"
    );
}

#[test]
fn alerts_carry_a_readable_derivation() {
    let mut r = Run::new();
    r.ev("SUBMITTED", "2024-09-27T14:00:00+08:00", svc("FREE"))
        .ev("ACCEPTED", "2024-09-27T15:00:00+08:00", NONE())
        .until("2024-11-01T00:00:00+08:00");
    let state = r.state();
    let statutory = state.values().find(|a| a.kind == AlertKind::StatutoryOverdue).unwrap();
    assert_eq!(statutory.triggered_at.to_rfc3339_in(chrono_tz::Asia::Shanghai), "2024-10-31T00:00:00+08:00");
    let zh = &statutory.derivation.zh;
    for needle in [
        "受理",
        "2024-09-27 15:00",
        "当日不计入",
        "2024-09-28 00:00",
        "国庆节 2024-10-01至2024-10-07",
        "2024-09-29（周日）",
        "2024-10-12（周六）",
        "2024-10-31 00:00",
    ] {
        assert!(zh.contains(needle), "missing {needle} in {zh}");
    }
    assert!(statutory.derivation.en.contains("National Day"), "{}", statutory.derivation.en);
    assert!(statutory.message.zh.contains("法定时限20个工作日"), "{}", statutory.message.zh);
}

#[test]
fn export_and_import_continue_exactly() {
    let calendars = Calendars::builtin();
    let catalog = Arc::new(Catalog::from_toml(CATALOG, &calendars).unwrap());
    let lines: Vec<Value> = vec![
        json!({"event_id":"a1","item_id":"A","service_code":"S","department_code":"D","type":"SUBMITTED","occurred_at":"2024-03-04T08:00:00+08:00"}),
        json!({"event_id":"a2","item_id":"A","department_code":"D","type":"ACCEPTED","actor":"甲","occurred_at":"2024-03-04T09:00:00+08:00"}),
        json!({"event_id":"b1","item_id":"B","service_code":"FREE","department_code":"D","type":"SUBMITTED","occurred_at":"2024-03-04T10:00:00+08:00"}),
        json!({"event_id":"a3","item_id":"A","department_code":"D","type":"SUSPENDED","actor":"甲","suspension_kind":"HEARING","expected_days":2,"occurred_at":"2024-03-05T14:00:00+08:00"}),
        json!({"event_id":"a4","item_id":"A","department_code":"D","type":"EXTENDED","actor":"甲","days":3,"approver":"乙","occurred_at":"2024-03-06T14:00:00+08:00"}),
        json!({"event_id":"b2","item_id":"B","department_code":"D","type":"FEE_CHARGED","actor":"甲","amount_fen":5,"occurred_at":"2024-03-07T10:00:00+08:00"}),
        // -- the restart happens here --
        json!({"event_id":"a5","item_id":"A","department_code":"D","type":"RESUMED","actor":"甲","occurred_at":"2024-03-12T10:00:00+08:00"}),
        json!({"event_id":"b3","item_id":"B","department_code":"D","type":"ACCEPTED","actor":"甲","occurred_at":"2024-03-13T10:00:00+08:00"}),
        json!({"event_id":"a6","item_id":"A","department_code":"D","type":"DECIDED","actor":"丙","outcome":"DENIED","reason":"","occurred_at":"2024-03-20T10:00:00+08:00"}),
    ];
    let events: Vec<_> = lines.iter().map(|v| parse_json_event(v.to_string().as_bytes()).unwrap().event).collect();
    let end = Timestamp::parse_rfc3339("2024-06-01T00:00:00+08:00").unwrap();
    let run = |replay: &mut Replay, events: &[Event], all: &mut Vec<Alert>| {
        for e in events {
            replay.arrive(e, e.occurred_at, &mut |a| all.push(a));
        }
    };

    let mut straight = Vec::new();
    let mut a = Replay::new(Engine::new(catalog.clone(), calendars.clone()));
    run(&mut a, &events, &mut straight);
    a.advance(end, &mut |x| straight.push(x));

    let mut restarted = Vec::new();
    let mut b = Replay::new(Engine::new(catalog.clone(), calendars.clone()));
    run(&mut b, &events[..6], &mut restarted);
    let states: Vec<ItemState> = b.engine().item_refs().filter_map(|i| b.engine().export(i)).collect();
    assert!(states.iter().any(|s| !s.held.is_empty()), "the snapshot carries alerts in force");
    let mut fresh = Engine::new(catalog, calendars);
    let mut effects = Vec::new();
    for s in &states {
        fresh.import(s, &mut effects);
    }
    assert!(effects.iter().all(|e| matches!(e, Effect::SetTimer { .. })), "a restore publishes nothing");
    for (s, i) in states.iter().zip(fresh.item_refs()) {
        assert_eq!(fresh.export(i).as_ref(), Some(s), "export(import(s)) == s");
    }
    let mut c = Replay::resume(fresh, b.clock(), &effects);
    run(&mut c, &events[6..], &mut restarted);
    c.advance(end, &mut |x| restarted.push(x));

    let last = |all: &[Alert]| {
        let mut m = BTreeMap::new();
        for x in all {
            m.insert(x.alert_id.clone(), (x.status, x.triggered_at, x.message.clone(), x.derivation.clone()));
        }
        m
    };
    assert_eq!(last(&straight), last(&restarted));
}

// ---- department isolation (DOMAIN §2) ----------------------------------------------

/// An event of `department`'s item `item`.
fn dept_event(event_id: &str, department: &str, item: &str, ty: &str, at: &str, extra: Value) -> Event {
    let mut v = json!({
        "event_id": event_id, "item_id": item, "department_code": department, "type": ty,
        "occurred_at": at, "actor": "经办人甲",
    });
    if let (Value::Object(m), Value::Object(x)) = (&mut v, extra) {
        m.extend(x);
    }
    parse_json_event(v.to_string().as_bytes()).expect("valid test event").event
}

#[test]
fn another_departments_events_neither_change_nor_preempt_an_item() {
    let calendars = Calendars::builtin();
    let catalog = Arc::new(Catalog::from_toml(CATALOG, &calendars).unwrap());
    let mut engine = Engine::new(catalog, calendars);
    let mut out = Vec::new();
    let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
    let apply = |engine: &mut Engine, e: Event, out: &mut Vec<Effect>| engine.apply(&e, e.occurred_at, e.occurred_at, out);

    // Department A's item X, submitted and accepted.
    let a1 = dept_event("X-01", "A", "X", "SUBMITTED", "2024-03-04T09:00:00+08:00", svc("S"));
    assert_eq!(apply(&mut engine, a1, &mut out), Applied::New);
    assert!(!out.iter().any(|e| matches!(e, Effect::ItemIdShared { .. })));
    // Department B uses the same item id and, first, the id of A's next event.
    out.clear();
    let b1 = dept_event("X-02", "B", "X", "SUBMITTED", "2024-03-04T10:00:00+08:00", svc("S"));
    assert_eq!(apply(&mut engine, b1, &mut out), Applied::New);
    let shared: Vec<&Effect> = out.iter().filter(|e| matches!(e, Effect::ItemIdShared { .. })).collect();
    assert_eq!(shared.len(), 1, "an operator is told that two departments use X: {out:?}");
    assert!(matches!(shared[0], Effect::ItemIdShared { other_department, .. } if other_department == "A"));
    let b_fee = dept_event("X-fee", "B", "X", "FEE_CHARGED", "2024-03-05T10:00:00+08:00", json!({"amount_fen": 999_999}));
    apply(&mut engine, b_fee, &mut out);
    // A's own X-02 is not a duplicate of B's.
    let a2 = dept_event("X-02", "A", "X", "ACCEPTED", "2024-03-04T11:00:00+08:00", NONE());
    assert_eq!(apply(&mut engine, a2, &mut out), Applied::New);

    let a = engine.find("A", "X").expect("A's item");
    let b = engine.find("B", "X").expect("B's item");
    assert_ne!(a, b);
    assert_eq!(engine.find_all("X"), vec![a, b]);
    assert_eq!(engine.find("C", "X"), None);
    let a_state = engine.export(a).unwrap();
    assert_eq!(a_state.department_code, "A");
    assert_eq!(a_state.events.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["X-01", "X-02"]);
    let b_state = engine.export(b).unwrap();
    assert_eq!(b_state.department_code, "B");
    assert_eq!(b_state.events.iter().map(|e| e.event_id.as_str()).collect::<Vec<_>>(), ["X-02", "X-fee"]);

    // B's fee before acceptance (a procedure violation, RED) is an alert against B's
    // item, never A's.
    let t = engine.timeline(a, at("2024-03-06T00:00:00+08:00")).unwrap();
    assert!(t.alerts.is_empty(), "A's item holds no alert: {:?}", t.alerts);
    let t = engine.timeline(b, at("2024-03-06T00:00:00+08:00")).unwrap();
    let kinds: Vec<AlertKind> = t.alerts.iter().map(|a| a.kind).collect();
    assert!(kinds.contains(&AlertKind::ProcedureViolation), "{kinds:?}");
    assert!(t.alerts.iter().all(|x| x.department_code.as_deref() == Some("B")));
    // Same item id, kind and trigger, different departments: different alert ids.
    assert_ne!(
        engine.alert_id_of(a, AlertKind::PromisedOverdue, "promised"),
        engine.alert_id_of(b, AlertKind::PromisedOverdue, "promised")
    );
}

#[test]
fn an_item_restored_from_a_record_before_department_isolation_keeps_its_alert_ids() {
    let calendars = Calendars::builtin();
    let catalog = Arc::new(Catalog::from_toml(CATALOG, &calendars).unwrap());
    let mut replay = Replay::new(Engine::new(catalog.clone(), calendars.clone()));
    let mut updates = Vec::new();
    let e = dept_event("L-01", "D", "L", "SUBMITTED", "2024-03-04T09:00:00+08:00", svc("S"));
    replay.arrive(&e, e.occurred_at, &mut |a| updates.push(a));
    let mut state = replay.engine().export(replay.engine().find("D", "L").unwrap()).unwrap();
    assert!(!state.legacy_ids);
    state.legacy_ids = true; // As decoded from a record with identity 0.

    let mut engine = Engine::new(catalog, calendars);
    let mut effects = Vec::new();
    let item = engine.import(&state, &mut effects);
    let mut replay = Replay::resume(engine, e.occurred_at, &effects);
    let mut later = Vec::new();
    replay.advance(Timestamp::parse_rfc3339("2024-04-30T00:00:00+08:00").unwrap(), &mut |a| later.push(a));
    let overdue = later.iter().find(|a| a.kind == AlertKind::AcceptanceOverdue).expect("the window runs out");
    assert_eq!(overdue.alert_id, crate::alert::legacy_alert_id("L", AlertKind::AcceptanceOverdue, "L-01"));
    assert_eq!(replay.engine().alert_id_of(item, AlertKind::AcceptanceOverdue, "L-01").as_deref(), Some(overdue.alert_id.as_str()));
    assert!(replay.engine().export(item).unwrap().legacy_ids, "it stays legacy in the changelog");
}

#[test]
fn closed_items_leave_after_the_retention_window_and_their_slots_are_reused() {
    let calendars = Calendars::builtin();
    let catalog = Arc::new(Catalog::from_toml(CATALOG, &calendars).unwrap());
    let mut engine = Engine::new(catalog, calendars);
    engine.set_retention(Some(std::time::Duration::from_secs(30 * 86_400)));
    let at = |s: &str| Timestamp::parse_rfc3339(s).unwrap();
    let apply = |engine: &mut Engine, e: Event, out: &mut Vec<Effect>| engine.apply(&e, e.occurred_at, e.occurred_at, out);
    let mut out = Vec::new();

    // C closes on 4 March (即办件: approved with nothing to deliver); O stays open.
    for e in [
        dept_event("C-01", "D", "C", "SUBMITTED", "2024-03-04T09:00:00+08:00", svc("NOW")),
        dept_event("C-02", "D", "C", "ACCEPTED", "2024-03-04T09:10:00+08:00", NONE()),
        dept_event("C-03", "D", "C", "DECIDED", "2024-03-04T09:20:00+08:00", json!({"outcome": "APPROVED", "actor": "张三"})),
        dept_event("O-01", "D", "O", "SUBMITTED", "2024-03-04T09:00:00+08:00", svc("S")),
    ] {
        assert_eq!(apply(&mut engine, e, &mut out), Applied::New);
    }
    assert_eq!((engine.len(), engine.open_items()), (2, 1));
    let open = engine.find("D", "O").unwrap();
    let open_timer = engine.timer_of(open);

    // Within the window nothing leaves; after it, the closed item does, with its key.
    out.clear();
    assert_eq!(engine.retire_closed(at("2024-04-01T00:00:00+08:00"), &mut out), 0);
    assert_eq!(engine.retire_closed(at("2024-04-05T00:00:00+08:00"), &mut out), 1);
    assert_eq!(out, [Effect::ItemRetired { department_code: "D".into(), item_id: "C".into() }]);
    assert_eq!((engine.len(), engine.open_items()), (1, 1));
    assert_eq!(engine.find("D", "C"), None);
    assert_eq!(engine.find("D", "O"), Some(open), "the open item keeps its handle");
    assert_eq!(engine.timer_of(open), open_timer, "and its timer");
    assert_eq!(engine.item_refs().collect::<Vec<_>>(), [open]);

    // A late event of the retired item, from before the window: refused, nothing created.
    let late = dept_event("C-04", "D", "C", "DELIVERED", "2024-03-05T09:00:00+08:00", NONE());
    let now = at("2024-04-06T00:00:00+08:00");
    assert_eq!(engine.apply(&late, now, now, &mut out), Applied::Retired);
    assert_eq!(engine.find("D", "C"), None);
    // A recent event of an unknown item is applied as ever (it may precede its SUBMITTED).
    let recent = dept_event("N-02", "D", "N", "ACCEPTED", "2024-04-05T09:00:00+08:00", NONE());
    assert_eq!(engine.apply(&recent, now, now, &mut out), Applied::New);
    // The new item takes the retired item's slot; the engine does not grow.
    let n = engine.find("D", "N").unwrap();
    assert!(n.0 < 2, "slot {} reused", n.0);
    assert_eq!(engine.len(), 2);
    // A SUBMITTED from before the window is applied: an old item reported late.
    let old = dept_event("P-01", "D", "P", "SUBMITTED", "2024-01-02T09:00:00+08:00", svc("S"));
    assert_eq!(engine.apply(&old, now, now, &mut out), Applied::New);
    assert_eq!(engine.len(), 3);
    // Without a window every item stays.
    engine.set_retention(None);
    assert_eq!(engine.retire_closed(at("2030-01-01T00:00:00+08:00"), &mut out), 0);
}

#[test]
fn a_tombstone_removes_an_item() {
    let calendars = Calendars::builtin();
    let catalog = Arc::new(Catalog::from_toml(CATALOG, &calendars).unwrap());
    let mut engine = Engine::new(catalog, calendars);
    let e = dept_event("T-01", "D", "T", "SUBMITTED", "2024-03-04T09:00:00+08:00", svc("S"));
    engine.apply(&e, e.occurred_at, e.occurred_at, &mut Vec::new());
    assert!(engine.remove("D", "T"));
    assert!(!engine.remove("D", "T"));
    assert!(engine.is_empty());
    assert_eq!(engine.export(ItemRef(0)), None);
}
