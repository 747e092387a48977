//! A deterministic simulator of department approval systems.
//!
//! It produces the event stream a set of departments would emit for a catalog: most
//! items handled on time, and a share handled irregularly in every way DOMAIN §5
//! watches for (late acceptance, repeated correction notices, overdue decisions,
//! unlawful suspensions and extensions, fees, procedure violations, late reporting,
//! late-arriving data that refutes an alert, duplicates). The same seed gives the same
//! stream. Used for the demo data, the live `up` command and load tests.

use chrono::{Datelike, NaiveDate, Weekday};
use jiancha_core::calendar::Calendar;
use jiancha_core::catalog::{Catalog, DayKind, Service};
use jiancha_core::time::{DAY_MS, HOUR_MS, Timestamp};
use serde_json::{Value, json};
use std::sync::Arc;

/// SplitMix64: small, fast, and the same on every platform.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Rng {
        Rng(seed ^ 0x9E37_79B9_7F4A_7C15)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// A number in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64 <= p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a, T>(&mut self, list: &'a [T]) -> &'a T {
        &list[self.below(list.len() as u64) as usize]
    }
}

/// How an item is handled. `Normal` is on time; each other scenario breaks one rule.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Accepted, processed step by step and decided on time, delivered.
    Normal,
    /// Never answered in the acceptance window; decided much later.
    SilentWindow,
    /// Two correction notices.
    RepeatedCorrection,
    /// Correction requested after acceptance.
    LateCorrection,
    /// Decided after the promised deadline but before the statutory one.
    PromisedOverdue,
    /// Decided after the statutory deadline.
    StatutoryOverdue,
    /// The first step runs over its limit.
    SlowStep,
    /// Suspended for a reason the law does not allow.
    IrregularSuspension,
    /// A lawful suspension that outlasts its expected days.
    LongSuspension,
    /// An extension approved by the same official who asked for it.
    IrregularExtension,
    /// A lawful extension, used.
    LawfulExtension,
    /// A denial with no reason.
    DeniedWithoutReason,
    /// A refusal to accept with no reason.
    RefusedWithoutReason,
    /// Fees over the cap.
    Overcharged,
    /// A step recorded before acceptance.
    StepBeforeAcceptance,
    /// The reviewer also decides.
    SameReviewerAndDecider,
    /// Approved, certificate delivered late.
    LateDelivery,
    /// An application for a service not in the catalog.
    UnknownService,
    /// Events reported days after they happened.
    LateReporting,
    /// A decision made in time that reaches the system after the deadline (refutes the alert).
    LateArrivingDecision,
    /// The applicant withdraws.
    Withdrawn,
    /// The department's system sends an event twice.
    DuplicateEvent,
}

impl Scenario {
    /// Every irregular scenario, so a stream can be sure to contain each.
    pub const IRREGULAR: [Scenario; 21] = [
        Scenario::SilentWindow,
        Scenario::RepeatedCorrection,
        Scenario::LateCorrection,
        Scenario::PromisedOverdue,
        Scenario::StatutoryOverdue,
        Scenario::SlowStep,
        Scenario::IrregularSuspension,
        Scenario::LongSuspension,
        Scenario::IrregularExtension,
        Scenario::LawfulExtension,
        Scenario::DeniedWithoutReason,
        Scenario::RefusedWithoutReason,
        Scenario::Overcharged,
        Scenario::StepBeforeAcceptance,
        Scenario::SameReviewerAndDecider,
        Scenario::LateDelivery,
        Scenario::UnknownService,
        Scenario::LateReporting,
        Scenario::LateArrivingDecision,
        Scenario::Withdrawn,
        Scenario::DuplicateEvent,
    ];
}

/// Settings of a simulated stream.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// Seed of the generator.
    pub seed: u64,
    /// How many items to submit.
    pub items: usize,
    /// The first day applications arrive (local date).
    pub first_day: NaiveDate,
    /// Working days over which submissions are spread.
    pub spread_days: u32,
    /// Share of items handled irregularly (0..1).
    pub irregular_share: f64,
}

/// One simulated event: the JSON line, and when it reaches the system.
#[derive(Clone, Debug)]
pub struct SimEvent {
    /// The event in the JSON form of DOMAIN §2, with `received_at`.
    pub json: Value,
    /// The item it belongs to.
    pub item_id: String,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// When it reaches the system.
    pub received_at: Timestamp,
}

const SURNAMES: [&str; 12] = ["王", "李", "张", "刘", "陈", "杨", "黄", "赵", "周", "吴", "徐", "孙"];
const GIVEN: [&str; 12] = ["伟", "芳", "娜", "敏", "静", "磊", "洋", "勇", "艳", "杰", "军", "婷"];

/// The officials of a department: clerks, reviewers, approvers (distinct people).
fn officials(department: &str, role: &str, n: usize) -> Vec<String> {
    let h = department.bytes().fold(7u64, |a, b| a.wrapping_mul(31).wrapping_add(u64::from(b)));
    (0..n)
        .map(|i| {
            let k = (h as usize).wrapping_add(i * 5 + role.len() * 3);
            format!("{}{}{}", SURNAMES[k % 12], GIVEN[(k / 12 + i) % 12], role)
        })
        .collect()
}

/// Builds an item's events on a working-day timeline.
struct ItemBuilder<'a> {
    item_id: String,
    service_code: String,
    department: String,
    calendar: &'a Calendar,
    events: Vec<SimEvent>,
    rng: Rng,
    /// Default delay between occurrence and arrival.
    report_delay: i64,
}

impl ItemBuilder<'_> {
    fn push(&mut self, ty: &str, at: i64, actor: Option<&str>, extra: Value) -> usize {
        let n = self.events.len() + 1;
        let mut json = json!({
            "event_id": format!("{}-{:02}", self.item_id, n),
            "item_id": self.item_id,
            "department_code": self.department,
            "type": ty,
            "occurred_at": Timestamp(at).to_rfc3339_in(self.calendar.tz()),
            "seq": n,
        });
        if ty == "SUBMITTED" {
            json["service_code"] = Value::from(self.service_code.clone());
        }
        if let Some(actor) = actor {
            json["actor"] = Value::from(actor);
        }
        if let (Value::Object(map), Value::Object(more)) = (&mut json, extra) {
            map.extend(more);
        }
        let received = at + self.report_delay + self.rng.below(90_000) as i64;
        json["received_at"] = Value::from(Timestamp(received).to_rfc3339_in(self.calendar.tz()));
        self.events.push(SimEvent { json, item_id: self.item_id.clone(), occurred_at: Timestamp(at), received_at: Timestamp(received) });
        n - 1
    }

    /// An instant during office hours of the `n`-th working day after the day of `t`
    /// (n = 0: later the same day, or the next working day if `t`'s day is over or off).
    fn after_working_days(&mut self, t: i64, n: u32) -> i64 {
        let cal = self.calendar;
        let mut day = cal.day_of(t);
        let mut left = n;
        if n == 0 && (!cal.is_working_day(day) || t - cal.day_start(day) > 16 * HOUR_MS) {
            left = 1;
        }
        while left > 0 {
            day += 1;
            if cal.is_working_day(day) {
                left -= 1;
            }
        }
        let earliest = if day == cal.day_of(t) { t - cal.day_start(day) + 10 * 60_000 } else { 9 * HOUR_MS };
        let latest = 17 * HOUR_MS;
        let span = (latest - earliest).max(60_000);
        cal.day_start(day) + earliest + self.rng.below(span as u64) as i64
    }

    /// An instant `n` natural days after `t` at a daytime hour.
    fn after_natural_days(&mut self, t: i64, n: u32) -> i64 {
        let cal = self.calendar;
        let day = cal.day_of(t) + n as usize;
        cal.day_start(day) + 9 * HOUR_MS + self.rng.below(8 * HOUR_MS as u64) as i64
    }

    fn after_days(&mut self, t: i64, n: u32, kind: DayKind) -> i64 {
        match kind {
            DayKind::Working => self.after_working_days(t, n),
            DayKind::Natural => self.after_natural_days(t, n),
        }
    }
}

/// Generates the stream, ordered by arrival.
pub fn simulate(catalog: &Catalog, calendars: &jiancha_core::Calendars, config: &SimConfig) -> Vec<SimEvent> {
    let mut rng = Rng::new(config.seed);
    let services: Vec<&Arc<Service>> = catalog.services().iter().filter(|s| s.cancelled_on.is_none()).collect();
    let cancelled: Vec<&Arc<Service>> = catalog.services().iter().filter(|s| s.cancelled_on.is_some()).collect();
    let mut out = Vec::new();
    if services.is_empty() {
        return out;
    }
    let calendar = calendars.default_calendar();
    let first = calendar.day_index(config.first_day).unwrap_or(0);
    let irregular_every = if config.irregular_share > 0.0 { (1.0 / config.irregular_share).round().max(1.0) as usize } else { usize::MAX };
    for n in 0..config.items {
        let scenario = if n % irregular_every == irregular_every - 1 {
            Scenario::IRREGULAR[(n / irregular_every) % Scenario::IRREGULAR.len()]
        } else {
            Scenario::Normal
        };
        let mut service = (*rng.pick(&services)).clone();
        if scenario == Scenario::UnknownService && !cancelled.is_empty() && n % 2 == 0 {
            service = (*rng.pick(&cancelled)).clone();
        }
        let cal = calendars.get(&service.calendar).unwrap_or(calendar);
        // A submission on a working day within the spread.
        let mut day = first + rng.below(u64::from(config.spread_days.max(1)) * 7 / 5) as usize;
        while !cal.is_working_day(day) {
            day += 1;
        }
        let submitted = cal.day_start(day) + 9 * HOUR_MS + rng.below(8 * HOUR_MS as u64) as i64;
        let date = cal.date(day);
        let item_id = format!("{}-{}{:02}{:02}-{:05}", service.department, date.year(), date.month(), date.day(), n + 1);
        let mut b = ItemBuilder {
            item_id,
            service_code: if scenario == Scenario::UnknownService && service.cancelled_on.is_none() {
                format!("{}-X", service.code)
            } else {
                service.code.to_string()
            },
            department: service.department.to_string(),
            calendar: cal,
            events: Vec::new(),
            rng: Rng::new(rng.next_u64()),
            report_delay: 5_000,
        };
        build_item(&mut b, &service, scenario, submitted);
        out.extend(b.events);
    }
    out.sort_by(|a, b| a.received_at.cmp(&b.received_at).then_with(|| a.json["event_id"].as_str().cmp(&b.json["event_id"].as_str())));
    out
}

fn build_item(b: &mut ItemBuilder<'_>, sv: &Service, scenario: Scenario, submitted: i64) {
    use Scenario::*;
    let clerks = officials(&sv.department, "", 4);
    let reviewers = officials(&sv.department, "审", 2);
    let approvers = officials(&sv.department, "批", 2);
    let clerk = b.rng.pick(&clerks).clone();
    let reviewer = b.rng.pick(&reviewers).clone();
    let approver = b.rng.pick(&approvers).clone();
    let kind = sv.day_kind;
    if scenario == LateReporting {
        b.report_delay = 2 * DAY_MS + 3 * HOUR_MS;
    }
    b.push("SUBMITTED", submitted, None, json!({}));
    if scenario == UnknownService {
        let t = b.after_working_days(submitted, 1);
        b.push("ACCEPTED", t, Some(&clerk), json!({}));
        return;
    }

    // Acceptance.
    let mut t = submitted;
    match scenario {
        RepeatedCorrection => {
            t = b.after_working_days(t, 1);
            b.push("CORRECTION_REQUESTED", t, Some(&clerk), json!({"materials": ["营业执照副本"]}));
            t = b.after_working_days(t, 2);
            b.push("CORRECTION_SUBMITTED", t, None, json!({}));
            t = b.after_working_days(t, 1);
            b.push("CORRECTION_REQUESTED", t, Some(&clerk), json!({"materials": ["法定代表人身份证明"]}));
            t = b.after_working_days(t, 1);
            b.push("CORRECTION_SUBMITTED", t, None, json!({}));
        }
        StepBeforeAcceptance => {
            if let Some(step) = sv.steps.first() {
                let early = b.after_working_days(t, 0);
                b.push("STEP_COMPLETED", early, Some(&clerk), json!({"step": &*step.name}));
            } else {
                let early = b.after_working_days(t, 0);
                b.push("FEE_CHARGED", early, Some(&clerk), json!({"amount_fen": 0}));
            }
        }
        RefusedWithoutReason => {
            t = b.after_working_days(t, 2);
            b.push("NOT_ACCEPTED", t, Some(&clerk), json!({"reason": ""}));
            return;
        }
        _ => {}
    }
    let accept_after =
        if scenario == SilentWindow { sv.acceptance_days + 3 } else { b.rng.below(u64::from(sv.acceptance_days.clamp(1, 3))) as u32 };
    t = b.after_working_days(t, accept_after);
    b.push("ACCEPTED", t, Some(&clerk), json!({}));
    let accepted = t;
    if scenario == LateCorrection {
        let late = b.after_working_days(t, 1);
        b.push("CORRECTION_REQUESTED", late, Some(&clerk), json!({"materials": ["现场核查补充材料"]}));
    }
    if scenario == Withdrawn {
        let w = b.after_working_days(t, 1);
        b.push("WITHDRAWN", w, None, json!({}));
        return;
    }

    // Special procedures and extensions that shape the time available.
    let mut extra_days = 0u32;
    match scenario {
        IrregularSuspension => {
            let s = b.after_working_days(t, 1);
            b.push("SUSPENDED", s, Some(&clerk), json!({"suspension_kind": "INTERNAL_MEETING", "expected_days": 3}));
            let r = b.after_working_days(s, 3);
            b.push("RESUMED", r, Some(&clerk), json!({}));
            t = r;
        }
        LongSuspension => {
            let lawful = ["HEARING", "EXPERT_REVIEW", "INSPECTION", "TESTING"];
            let kind_name = lawful.iter().find(|k| jiancha_core::event::LawfulSuspension::parse(k).is_some_and(|k| sv.allows(k))).copied();
            if let Some(kind_name) = kind_name {
                let s = b.after_working_days(t, 1);
                b.push("SUSPENDED", s, Some(&clerk), json!({"suspension_kind": kind_name, "expected_days": 5}));
                let r = b.after_working_days(s, 8);
                b.push("RESUMED", r, Some(&clerk), json!({}));
                extra_days = 8;
                t = r;
            }
        }
        IrregularExtension | LawfulExtension => {
            let e = b.after_days(t, sv.promised_days.saturating_sub(2).max(1), kind);
            let (days, by) = if scenario == LawfulExtension {
                (sv.extension_max_days.min(5), approver.clone())
            } else {
                (sv.extension_max_days + 5, clerk.clone())
            };
            b.push("EXTENDED", e, Some(&clerk), json!({"days": days, "approver": by}));
            if scenario == LawfulExtension {
                extra_days = days;
            }
        }
        _ => {}
    }

    // Steps.
    let mut step_t = t;
    for (k, step) in sv.steps.iter().enumerate() {
        let slow = scenario == SlowStep && k == 0;
        let took = if slow { step.days + 2 } else { b.rng.below(u64::from(step.days.max(1))) as u32 };
        step_t = b.after_days(step_t, took, kind);
        let actor = if Some(k) == sv.review_step { reviewer.clone() } else { clerk.clone() };
        b.push("STEP_COMPLETED", step_t, Some(&actor), json!({"step": &*step.name}));
    }

    // Fees.
    if sv.fee_cap_fen > 0 || scenario == Overcharged {
        let amount = if scenario == Overcharged { sv.fee_cap_fen + 5_000 } else { sv.fee_cap_fen };
        let f = b.after_working_days(step_t, 0);
        b.push("FEE_CHARGED", f, Some(&clerk), json!({"amount_fen": amount}));
        step_t = f;
    }

    // Decision.
    let budget = sv.promised_days + extra_days;
    let decide_after = match scenario {
        PromisedOverdue => sv.promised_days + 1 + (sv.statutory_days.saturating_sub(sv.promised_days + 2)) / 2,
        StatutoryOverdue | SilentWindow => sv.statutory_days + 3,
        _ => budget.saturating_sub(1),
    };
    let mut decided = b.after_days(accepted, decide_after, kind).max(step_t + 60_000);
    if scenario == PromisedOverdue && sv.promised_days == sv.statutory_days {
        decided = b.after_days(accepted, sv.promised_days + 1, kind).max(step_t + 60_000);
    }
    let denied = scenario == DeniedWithoutReason;
    let decider = if scenario == SameReviewerAndDecider && !sv.steps.is_empty() { reviewer.clone() } else { approver.clone() };
    let reason = if denied { "" } else { "材料齐全，符合法定条件" };
    let idx = b.push("DECIDED", decided, Some(&decider), json!({"outcome": if denied { "DENIED" } else { "APPROVED" }, "reason": reason}));
    if scenario == LateArrivingDecision {
        // Decided in time, but the department's system reported it only after the deadline.
        let promised_end = b.after_days(accepted, budget + 2, kind);
        b.events[idx].received_at = Timestamp(promised_end);
        b.events[idx].json["received_at"] = Value::from(Timestamp(promised_end).to_rfc3339_in(b.calendar.tz()));
    }
    if denied {
        return;
    }
    if sv.delivery_days > 0 {
        let after = if scenario == LateDelivery { sv.delivery_days + 2 } else { b.rng.below(u64::from(sv.delivery_days.min(3))) as u32 };
        let d = b.after_working_days(decided, after);
        b.push("DELIVERED", d, Some(&clerk), json!({}));
    }
    if scenario == DuplicateEvent {
        let again = b.events[1].clone();
        b.events.push(again);
    }
}

/// Whether a date is a Saturday or Sunday (for callers choosing start days).
pub fn is_weekend(date: NaiveDate) -> bool {
    matches!(date.weekday(), Weekday::Sat | Weekday::Sun)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rng_is_deterministic() {
        let (mut a, mut b) = (Rng::new(7), Rng::new(7));
        for _ in 0..100 {
            assert_eq!(a.next_u64(), b.next_u64());
        }
        assert!((0..1000).all(|_| a.below(10) < 10));
    }
}
