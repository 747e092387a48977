//! An item's timeline: its status, every clock with its deadline, remaining time and
//! derivation, and the alerts in force — what an inspector or a department reads to
//! check an alert by hand (the gateway's `GetItem`). A read: nothing in the engine
//! changes, and the words are the same functions the alerts use.

use super::derive;
use super::item::Item;
use super::rules::{self, ClockRecord, Fact, Input, OPEN, Scratch, Trigger};
use super::{Engine, HeldAlert, ItemRef, ItemState, fired, trigger_text};
use crate::alert::{Alert, AlertKind, Bilingual, Level};
use crate::catalog::DayKind;
use crate::clock::{ClockChange, Counter, Pause};
use crate::event::EventType;
use crate::time::Timestamp;

/// Where an item stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ItemStatus {
    /// Received, not yet accepted or refused.
    Received,
    /// Waiting for the applicant's missing materials (补正).
    CorrectionPending,
    /// Accepted (or deemed accepted), no decision yet.
    Accepted,
    /// In a special procedure (挂起), no decision yet.
    Suspended,
    /// Decided (approved), waiting for delivery.
    Decided,
    /// Closed: refused, withdrawn, denied, delivered, or approved with nothing to deliver.
    Closed,
}

impl ItemStatus {
    /// Every status, in workflow order.
    pub const ALL: [ItemStatus; 6] = [
        ItemStatus::Received,
        ItemStatus::CorrectionPending,
        ItemStatus::Accepted,
        ItemStatus::Suspended,
        ItemStatus::Decided,
        ItemStatus::Closed,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ItemStatus::Received => "RECEIVED",
            ItemStatus::CorrectionPending => "CORRECTION_PENDING",
            ItemStatus::Accepted => "ACCEPTED",
            ItemStatus::Suspended => "SUSPENDED",
            ItemStatus::Decided => "DECIDED",
            ItemStatus::Closed => "CLOSED",
        }
    }

    /// 中文.
    pub fn zh(self) -> &'static str {
        match self {
            ItemStatus::Received => "已收件",
            ItemStatus::CorrectionPending => "待补正",
            ItemStatus::Accepted => "已受理",
            ItemStatus::Suspended => "特别程序中",
            ItemStatus::Decided => "已决定待送达",
            ItemStatus::Closed => "已办结",
        }
    }
}

/// Where a clock stands at the instant asked about.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ClockStatus {
    /// Counting.
    Running,
    /// Not counting: a lawful suspension is in force.
    Paused,
    /// Stopped before its deadline.
    Met,
    /// Its deadline passed before it stopped.
    Overdue,
}

impl ClockStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            ClockStatus::Running => "RUNNING",
            ClockStatus::Paused => "PAUSED",
            ClockStatus::Met => "MET",
            ClockStatus::Overdue => "OVERDUE",
        }
    }
}

/// One clock of an item.
#[derive(Clone, Debug, PartialEq)]
pub struct ClockView {
    /// `acceptance`, `promised`, `statutory`, `step:NAME`, `suspension:EVENT_ID` or `delivery:EVENT_ID`.
    pub name: String,
    /// The clock's name in Chinese (受理期限, 承诺时限 …).
    pub label_zh: String,
    /// The alert the clock guards.
    pub guards: AlertKind,
    /// Counting, paused, met or overdue.
    pub status: ClockStatus,
    /// The instant it started (the start day itself is not counted).
    pub started_at: Timestamp,
    /// Its deadline, with lawful pauses and extensions applied.
    pub deadline: Timestamp,
    /// When it stopped, if it did.
    pub stopped_at: Option<Timestamp>,
    /// Its budget before extensions, in days of `day_kind`.
    pub budget_days: f64,
    /// Working or natural days.
    pub day_kind: DayKind,
    /// Counted time left between the instant asked about (or the stop) and the deadline,
    /// milliseconds; negative when overdue.
    pub remaining_ms: i64,
    /// `remaining_ms` in days of `day_kind`.
    pub remaining_days: f64,
    /// Counted time used from the start (start day not counted, pauses excluded) to the
    /// stop or the instant asked about, in days of `day_kind`.
    pub used_days: f64,
    /// How the deadline was counted: start, start day not counted, budget, pauses,
    /// extensions, holidays and 调休, the deadline.
    pub derivation: Bilingual,
}

/// Everything an inspector needs about one item at one instant.
#[derive(Clone, Debug)]
pub struct Timeline {
    /// The item's events (§3.4 order) and alerts recorded as in force.
    pub state: ItemState,
    /// Where it stands.
    pub status: ItemStatus,
    /// Every clock the rules count, in the order of the workflow.
    pub clocks: Vec<ClockView>,
    /// Every alert that holds at the instant asked about, with message and derivation.
    pub alerts: Vec<Alert>,
    /// The same alerts as a changelog records them (kind, trigger, instant).
    pub holding: Vec<HeldAlert>,
    /// The zone of its calendar.
    pub zone: chrono_tz::Tz,
}

/// A line of a list of items: what filters and sorts need, without counting clocks.
#[derive(Clone, Debug, PartialEq)]
pub struct ItemSummary {
    /// The item.
    pub item_id: String,
    /// Its service, where known.
    pub service_code: Option<String>,
    /// Its department.
    pub department_code: String,
    /// Where it stands.
    pub status: ItemStatus,
    /// The highest card in force, if any.
    pub level: Option<Level>,
    /// Whether a deadline alert (acceptance, promised, statutory, step, suspension, delivery) is in force.
    pub overdue: bool,
    /// How many alerts are in force.
    pub alerts_in_force: usize,
    /// The next instant a deadline rule may fire.
    pub next_deadline: Option<Timestamp>,
}

impl Engine {
    /// The timeline of an item at `now`, or None if the engine does not hold it.
    pub fn timeline(&self, item: ItemRef, now: Timestamp) -> Option<Timeline> {
        let it = self.items.get(item.0 as usize).filter(|it| !it.events.is_empty())?;
        let r = self.resolved_for(it.service);
        let mut s = Scratch::default();
        let late_limit_ms = self.catalog.late_report_limit_ms;
        rules::evaluate(&Input { events: &it.events, resolved: r, late_limit_ms, now: now.0 }, &mut s);
        let calendar = r.map_or_else(|| self.calendars.default_calendar().clone(), |r| r.calendar.clone());
        let view = derive::View {
            item: it,
            resolved: r,
            names: &self.names,
            calendar: &calendar,
            changes: &s.changes,
            step_changes: &s.step_changes,
            late_limit_ms,
        };
        let clocks = s.clocks.iter().filter(|c| c.kind != AlertKind::PromisedDeadlineNear).map(|c| clock_view(&view, c, now.0)).collect();
        let alerts = s.facts.iter().map(|f| fired(&view, f)).collect();
        let holding = s
            .facts
            .iter()
            .map(|f| HeldAlert { kind: f.kind, trigger: trigger_text(it, r, f.trigger).to_owned(), triggered_at: Timestamp(f.at) })
            .collect();
        Some(Timeline { state: self.export(item)?, status: status(it, &s, now.0), clocks, alerts, holding, zone: calendar.tz() })
    }

    /// A line about an item for lists and filters, from the alerts in force (no clock is counted).
    pub fn summary(&self, item: ItemRef) -> Option<ItemSummary> {
        let it = self.items.get(item.0 as usize).filter(|it| !it.events.is_empty())?;
        let held = it.held.as_deref().map_or(&[][..], |h| h.as_slice());
        let deadline_kinds = [
            AlertKind::AcceptanceOverdue,
            AlertKind::PromisedOverdue,
            AlertKind::StatutoryOverdue,
            AlertKind::StepOverdue,
            AlertKind::SuspensionOverdue,
            AlertKind::DeliveryOverdue,
        ];
        Some(ItemSummary {
            item_id: it.item_id().to_owned(),
            service_code: (it.service != 0).then(|| self.names.name(it.service).to_string()),
            department_code: self.names.name(it.department).to_string(),
            status: light_status(it),
            level: held.iter().map(|h| h.kind.level()).max(),
            overdue: held.iter().any(|h| deadline_kinds.contains(&h.kind)),
            alerts_in_force: held.len(),
            next_deadline: self.timer_of(item),
        })
    }

    /// The department code of an item, without building anything.
    pub fn department_of(&self, item: ItemRef) -> Option<&str> {
        self.items.get(item.0 as usize).map(|it| -> &str { self.names.name(it.department) })
    }
}

/// The status from the full evaluation.
fn status(it: &Item, s: &Scratch, now: i64) -> ItemStatus {
    if s.closed {
        return ItemStatus::Closed;
    }
    if s.decided {
        return ItemStatus::Decided;
    }
    if s.suspensions.iter().any(|sp| sp.start <= now && now < sp.ended_by_event) {
        return ItemStatus::Suspended;
    }
    if s.accepted {
        return ItemStatus::Accepted;
    }
    light_status(it)
}

/// The status from the events and the alerts in force alone.
fn light_status(it: &Item) -> ItemStatus {
    if it.closed {
        return ItemStatus::Closed;
    }
    let last = |ty: EventType| it.events.iter().rposition(|e| e.ty == ty);
    if last(EventType::Decided).is_some() {
        return ItemStatus::Decided;
    }
    if last(EventType::Suspended) > last(EventType::Resumed) {
        return ItemStatus::Suspended;
    }
    let deemed = it.held.as_deref().is_some_and(|h| h.iter().any(|h| h.kind == AlertKind::AcceptanceOverdue));
    if last(EventType::Accepted).is_some() || deemed {
        return ItemStatus::Accepted;
    }
    if last(EventType::CorrectionRequested) > last(EventType::CorrectionSubmitted) {
        return ItemStatus::CorrectionPending;
    }
    ItemStatus::Received
}

fn clock_view(view: &derive::View<'_>, c: &ClockRecord, now: i64) -> ClockView {
    let tr = c.trace;
    let counter = Counter { calendar: view.calendar, kind: tr.kind };
    let unit = counter.unit().max(1);
    let changes = if tr.pauses_only { view.step_changes } else { view.changes };
    let pauses: Vec<Pause> = changes
        .iter()
        .take(tr.applied as usize)
        .filter_map(|ch| match ch {
            ClockChange::Pause(p) => Some(*p),
            ClockChange::Extend { .. } => None,
        })
        .collect();
    let anchor = counter.anchor(tr.start);
    // An acceptance window that ran out in silence ends, for the reader, at the event
    // that finally answered the application (late acceptance, refusal, notice, withdrawal).
    let mut c = *c;
    if c.kind == AlertKind::AcceptanceOverdue && c.stop == OPEN {
        let answered = view.item.events.iter().find(|e| {
            e.at >= c.deadline
                && e.at <= now
                && matches!(e.ty, EventType::Accepted | EventType::NotAccepted | EventType::CorrectionRequested | EventType::Withdrawn)
        });
        if let Some(e) = answered {
            c.stop = e.at;
        }
    }
    let until = now.min(c.stop);
    let remaining = counter.consumed(anchor, c.deadline, &pauses) - counter.consumed(anchor, until.max(anchor), &pauses);
    let remaining = if until > c.deadline { -(counter.elapsed(until) - counter.elapsed(c.deadline)) } else { remaining };
    let status = if c.stop != OPEN && c.stop < c.deadline {
        ClockStatus::Met
    } else if c.deadline <= until {
        ClockStatus::Overdue
    } else if pauses.iter().any(|p| p.from <= now && now < p.to) {
        ClockStatus::Paused
    } else {
        ClockStatus::Running
    };
    let event_id = |i: u32| view.item.event_id(&view.item.events[i as usize]).to_owned();
    let step = |k: u16| view.resolved.map_or_else(|| "?".to_owned(), |r| r.service.steps[k as usize].name.to_string());
    let (name, label_zh) = match (c.kind, c.trigger) {
        (AlertKind::AcceptanceOverdue, _) => ("acceptance".to_owned(), "受理期限".to_owned()),
        (AlertKind::PromisedOverdue, _) => ("promised".to_owned(), "承诺时限".to_owned()),
        (AlertKind::StatutoryOverdue, _) => ("statutory".to_owned(), "法定时限".to_owned()),
        (AlertKind::StepOverdue, Trigger::Step(k)) => (format!("step:{}", step(k)), format!("环节时限（{}）", step(k))),
        (AlertKind::SuspensionOverdue, Trigger::StartedBy(i)) => {
            (format!("suspension:{}", event_id(i)), format!("特别程序预计期限（{}）", event_id(i)))
        }
        (AlertKind::DeliveryOverdue, Trigger::StartedBy(i)) => (format!("delivery:{}", event_id(i)), "送达期限".to_owned()),
        (kind, _) => (kind.as_str().to_ascii_lowercase(), kind.zh().to_owned()),
    };
    let fact = Fact { kind: c.kind, trigger: c.trigger, at: c.deadline, info: 0, trace: Some(tr) };
    ClockView {
        name,
        label_zh,
        guards: c.kind,
        status,
        started_at: Timestamp(tr.start),
        deadline: Timestamp(c.deadline),
        stopped_at: (c.stop != OPEN).then_some(Timestamp(c.stop)),
        budget_days: tr.budget as f64 / unit as f64,
        day_kind: tr.kind,
        remaining_ms: remaining,
        remaining_days: remaining as f64 / unit as f64,
        used_days: counter.consumed(anchor, until.max(anchor), &pauses) as f64 / unit as f64,
        derivation: derive::derivation(view, &fact),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::calendar::Calendars;
    use crate::catalog::Catalog;
    use crate::event::RawEvent;
    use std::sync::Arc;

    const CATALOG: &str = r#"
[[service]]
code = "S1"
name = "测试事项"
department = "D1"
statutory_days = 20
promised_days = 10
[[service.step]]
name = "审核"
days = 3
[[service.step]]
name = "批准"
days = 2
"#;

    fn engine() -> Engine {
        let calendars = Calendars::builtin();
        let catalog = Catalog::from_toml(CATALOG, &calendars).expect("catalog");
        Engine::new(Arc::new(catalog), calendars)
    }

    fn ev(engine: &mut Engine, id: &str, ty: &str, at: &str, extra: impl FnOnce(&mut RawEvent)) {
        let mut raw = RawEvent {
            event_id: Some(id.into()),
            item_id: Some("I1".into()),
            service_code: Some("S1".into()),
            department_code: Some("D1".into()),
            type_name: Some(ty.into()),
            occurred_at: Some(at.into()),
            actor: Some("张三".into()),
            ..RawEvent::default()
        };
        extra(&mut raw);
        let e = raw.validate().expect("valid");
        let t = e.occurred_at;
        engine.apply(&e, t, t, &mut Vec::new());
    }

    fn at(text: &str) -> Timestamp {
        Timestamp::parse_rfc3339(text).expect("instant")
    }

    #[test]
    fn clocks_show_deadlines_remaining_time_and_status() {
        let mut e = engine();
        // Monday 2025-03-03: submitted; Tuesday accepted (acceptance met).
        ev(&mut e, "e1", "SUBMITTED", "2025-03-03T09:00:00+08:00", |_| {});
        ev(&mut e, "e2", "ACCEPTED", "2025-03-04T09:00:00+08:00", |_| {});
        let item = e.find("D1", "I1").expect("item");
        let t = e.timeline(item, at("2025-03-06T12:00:00+08:00")).expect("timeline");
        assert_eq!(t.status, ItemStatus::Accepted);
        let clock = |name: &str| t.clocks.iter().find(|c| c.name == name).unwrap_or_else(|| panic!("no clock {name}: {:?}", t.clocks));
        let acceptance = clock("acceptance");
        assert_eq!(acceptance.status, ClockStatus::Met);
        assert_eq!(acceptance.stopped_at, Some(at("2025-03-04T09:00:00+08:00")));
        // Promised 10 working days from the end of 2025-03-04: ends 2025-03-18 24:00.
        let promised = clock("promised");
        assert_eq!(promised.status, ClockStatus::Running);
        assert_eq!(promised.deadline, at("2025-03-19T00:00:00+08:00"));
        assert_eq!(promised.budget_days, 10.0);
        // At Thursday noon, 1.5 working days are used (Wed, half of Thu): 8.5 remain.
        assert!((promised.remaining_days - 8.5).abs() < 1e-9, "{}", promised.remaining_days);
        assert!((promised.used_days - 1.5).abs() < 1e-9, "{}", promised.used_days);
        assert!(promised.derivation.zh.contains("起算当日不计入"), "{}", promised.derivation.zh);
        assert!(promised.derivation.zh.contains("2025-03-19 00:00"), "{}", promised.derivation.zh);
        // Only the current step has a clock.
        assert!(t.clocks.iter().any(|c| c.name == "step:审核"));
        assert!(!t.clocks.iter().any(|c| c.name == "step:批准"));
        assert!(t.alerts.is_empty());
    }

    #[test]
    fn overdue_clock_has_negative_remaining_time_and_its_alert() {
        let mut e = engine();
        ev(&mut e, "e1", "SUBMITTED", "2025-03-03T09:00:00+08:00", |_| {});
        let item = e.find("D1", "I1").expect("item");
        // Five working days from the end of Monday: Tuesday to the next Monday. On Wednesday
        // 2025-03-12 noon the window ended 1.5 working days ago; the item is deemed accepted.
        let t = e.timeline(item, at("2025-03-12T12:00:00+08:00")).expect("timeline");
        let acceptance = t.clocks.iter().find(|c| c.name == "acceptance").expect("acceptance clock");
        assert_eq!(acceptance.status, ClockStatus::Overdue);
        assert_eq!(acceptance.deadline, at("2025-03-11T00:00:00+08:00"));
        assert!((acceptance.remaining_days + 1.5).abs() < 1e-9, "{}", acceptance.remaining_days);
        assert_eq!(t.status, ItemStatus::Accepted);
        // Deemed accepted on 03-03, the first step's 3 days have run out too.
        let kinds: Vec<AlertKind> = t.alerts.iter().map(|a| a.kind).collect();
        assert_eq!(kinds, [AlertKind::AcceptanceOverdue, AlertKind::StepOverdue]);
        // The same alerts as a changelog records them: their ids come back from the triggers.
        let ids: Vec<String> = t.holding.iter().map(|h| crate::alert::alert_id("D1", "I1", h.kind, &h.trigger)).collect();
        assert_eq!(ids, t.alerts.iter().map(|a| a.alert_id.clone()).collect::<Vec<_>>());
    }

    #[test]
    fn a_late_acceptance_stops_the_overdue_window_where_it_happened() {
        let mut e = engine();
        ev(&mut e, "e1", "SUBMITTED", "2025-03-03T09:00:00+08:00", |_| {});
        // The window ended 2025-03-11 00:00; accepted Wednesday noon, 1.5 working days late.
        ev(&mut e, "e2", "ACCEPTED", "2025-03-12T12:00:00+08:00", |_| {});
        let item = e.find("D1", "I1").expect("item");
        let t = e.timeline(item, at("2025-03-20T12:00:00+08:00")).expect("timeline");
        let acceptance = t.clocks.iter().find(|c| c.name == "acceptance").expect("acceptance clock");
        assert_eq!(acceptance.status, ClockStatus::Overdue);
        assert_eq!(acceptance.stopped_at, Some(at("2025-03-12T12:00:00+08:00")));
        assert!((acceptance.remaining_days + 1.5).abs() < 1e-9, "{}", acceptance.remaining_days);
    }

    #[test]
    fn suspension_pauses_the_clock_and_shows_in_status() {
        let mut e = engine();
        ev(&mut e, "e1", "SUBMITTED", "2025-03-03T09:00:00+08:00", |_| {});
        ev(&mut e, "e2", "ACCEPTED", "2025-03-03T10:00:00+08:00", |_| {});
        ev(&mut e, "e3", "SUSPENDED", "2025-03-05T10:00:00+08:00", |r| {
            r.suspension_kind = Some("HEARING".into());
            r.expected_days = Some(5);
        });
        let item = e.find("D1", "I1").expect("item");
        let t = e.timeline(item, at("2025-03-06T10:00:00+08:00")).expect("timeline");
        assert_eq!(t.status, ItemStatus::Suspended);
        let promised = t.clocks.iter().find(|c| c.name == "promised").expect("promised");
        assert_eq!(promised.status, ClockStatus::Paused);
        assert!(promised.derivation.zh.contains("不计入"), "{}", promised.derivation.zh);
        let s = e.summary(item).expect("summary");
        assert_eq!(s.status, ItemStatus::Suspended);
        assert!(!s.overdue);
    }

    #[test]
    fn summary_reads_held_alerts() {
        let mut e = engine();
        ev(&mut e, "e1", "SUBMITTED", "2025-03-03T09:00:00+08:00", |_| {});
        let item = e.find("D1", "I1").expect("item");
        let mut out = Vec::new();
        e.fire(item, at("2025-03-11T00:00:00+08:00"), &mut out);
        let s = e.summary(item).expect("summary");
        assert!(s.overdue);
        assert_eq!(s.level, Some(Level::Yellow));
        assert_eq!(s.status, ItemStatus::Accepted);
        assert_eq!(e.department_of(item), Some("D1"));
    }
}
