//! The rules of DOMAIN §5, as one pass over an item's events in §3.4 order.
//!
//! [`evaluate`] is a pure function of the events, the service, the calendar and `now`:
//! it lists every alert that holds (a [`Fact`]) and the next instant a timer rule may
//! start to hold. The engine compares the facts with the alerts it already emitted to
//! find what to fire and what to retract, so a late event, a catalog change or a
//! calendar change all take the same path.

use super::item::Ev;
use crate::alert::AlertKind;
use crate::calendar::Calendar;
use crate::catalog::{DayKind, Service};
use crate::clock::{ClockChange, Counter, Pause};
use crate::event::EventType;
use crate::intern::NameId;
use std::sync::Arc;

/// A catalog service bound to its calendar and interned step names.
#[derive(Debug)]
pub(crate) struct Resolved {
    pub service: Arc<Service>,
    pub calendar: Arc<Calendar>,
    pub step_names: Vec<NameId>,
}

/// What an alert is about; with the item and kind it determines the alert id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Trigger {
    /// An event rule: the event's index.
    Event(u32),
    /// The promised clock (PROMISED_OVERDUE and PROMISED_DEADLINE_NEAR).
    Promised,
    /// The statutory clock.
    Statutory,
    /// A step's clock, by catalog index.
    Step(u16),
    /// A clock started by an event (acceptance window, suspension, delivery): its index.
    StartedBy(u32),
}

/// Where a clock started, for the derivation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Origin {
    /// An ACCEPTED event.
    Accepted(u32),
    /// Deemed acceptance at the start of a silent window (its starting event).
    Deemed(u32),
    /// A step clock started at acceptance or at the last completion of the steps before it.
    Step(Option<u32>),
    /// The event that started the clock (SUBMITTED/CORRECTION_SUBMITTED, SUSPENDED, DECIDED).
    Event(u32),
}

/// How a timer alert's deadline was counted.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Trace {
    pub start: i64,
    pub origin: Origin,
    /// Budget before extensions, milliseconds.
    pub budget: i64,
    /// How many of the clock's changes were applied (a prefix).
    pub applied: u16,
    /// Whether the changes were the pauses only (step clocks).
    pub pauses_only: bool,
    pub kind: DayKind,
}

/// An alert that holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Fact {
    pub kind: AlertKind,
    pub trigger: Trigger,
    /// `triggered_at`.
    pub at: i64,
    /// Rule-specific detail for the message (see the `info_*` constants and each rule).
    pub info: u64,
    pub trace: Option<Trace>,
}

/// PROCEDURE_VIOLATION detail: before (deemed) acceptance.
pub(crate) const VIOLATION_BEFORE_ACCEPTANCE: u64 = 1;
/// PROCEDURE_VIOLATION detail: after a decision.
pub(crate) const VIOLATION_AFTER_DECISION: u64 = 2;
/// PROCEDURE_VIOLATION detail: after the item was closed.
pub(crate) const VIOLATION_AFTER_CLOSURE: u64 = 3;
/// PROCEDURE_VIOLATION detail: DELIVERED with no APPROVED decision.
pub(crate) const VIOLATION_DELIVERED_UNAPPROVED: u64 = 4;

/// EXTENSION_IRREGULAR detail bits.
pub(crate) const EXT_NOT_FIRST: u64 = 1;
pub(crate) const EXT_NO_APPROVER: u64 = 2;
pub(crate) const EXT_SELF_APPROVED: u64 = 4;
pub(crate) const EXT_OVER_MAX: u64 = 8;
pub(crate) const EXT_AFTER_DEADLINE: u64 = 16;

/// A clock as the rules counted it, for an item's timeline: the deadline, what stops it
/// and how it was counted. Recorded for every clock the pass meets, running or not.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ClockRecord {
    /// The alert the clock guards.
    pub kind: AlertKind,
    pub trigger: Trigger,
    pub deadline: i64,
    /// When the clock stopped (the event that met or ended it), or OPEN.
    pub stop: i64,
    pub trace: Trace,
}

/// A lawful suspension and when it ends.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Suspension {
    pub index: u32,
    pub start: i64,
    pub expected_end: i64,
    /// The first RESUMED or DECIDED after it, or i64::MAX.
    pub ended_by_event: i64,
}

/// Reusable buffers and the results of one evaluation.
#[derive(Debug, Default)]
pub(crate) struct Scratch {
    pub facts: Vec<Fact>,
    pub changes: Vec<ClockChange>,
    pub step_changes: Vec<ClockChange>,
    pub pauses: Vec<Pause>,
    pub suspensions: Vec<Suspension>,
    pub step_done: Vec<Option<(i64, u32)>>,
    pub review_actors: Vec<NameId>,
    /// (calendar, year) pairs a computation needed that no notice covers.
    pub missing: Vec<(Arc<str>, i32)>,
    /// The earliest instant after `now` at which a timer rule may start to hold.
    pub next_due: i64,
    /// Whether the item is closed (DOMAIN §5: refused, withdrawn, denied, delivered, or approved with nothing to deliver).
    pub closed: bool,
    /// Every clock met, in the order the pass met them.
    pub clocks: Vec<ClockRecord>,
    /// Whether the item is accepted or deemed accepted.
    pub accepted: bool,
    /// Whether a decision was made.
    pub decided: bool,
}

/// The inputs of one evaluation.
pub(crate) struct Input<'a> {
    pub events: &'a [Ev],
    pub resolved: Option<&'a Resolved>,
    pub late_limit_ms: i64,
    pub now: i64,
}

/// The acceptance window in force.
#[derive(Clone, Copy)]
struct Window {
    index: u32,
    start: i64,
    deadline: i64,
}

/// Acceptance: the instant the decision clocks start from, and the event behind it.
#[derive(Clone, Copy)]
struct Acceptance {
    clock_start: i64,
    origin: Origin,
}

#[derive(Clone, Copy)]
struct Decision {
    index: u32,
    at: i64,
    denied: bool,
}

pub(crate) const OPEN: i64 = i64::MAX;

impl Scratch {
    fn fact(&mut self, kind: AlertKind, trigger: Trigger, at: i64, info: u64) {
        self.facts.push(Fact { kind, trigger, at, info, trace: None });
    }

    /// A timer rule: holds if its deadline passed before `stop` and by `now`.
    fn timer(&mut self, kind: AlertKind, trigger: Trigger, deadline: i64, stop: i64, now: i64, trace: Trace) {
        self.clocks.push(ClockRecord { kind, trigger, deadline, stop, trace });
        if stop < deadline {
            return; // Done strictly before the deadline: on time.
        }
        if deadline <= now {
            self.facts.push(Fact { kind, trigger, at: deadline, info: 0, trace: Some(trace) });
        } else {
            self.next_due = self.next_due.min(deadline);
        }
    }

    fn needs_days(&mut self, calendar: &Calendar, from: i64, to: i64) {
        let missing = &mut self.missing;
        calendar.uncovered_years_between(from, to, |year| {
            if !missing.iter().any(|(c, y)| *y == year && **c == *calendar.name()) {
                missing.push((calendar.name_arc().clone(), year));
            }
        });
    }
}

/// Evaluates every rule of §5 for one item; results are left in `s`.
pub(crate) fn evaluate(input: &Input<'_>, s: &mut Scratch) {
    s.facts.clear();
    s.changes.clear();
    s.suspensions.clear();
    s.review_actors.clear();
    s.missing.clear();
    s.clocks.clear();
    s.next_due = OPEN;
    let events = input.events;
    let resolved = input.resolved;
    let service = resolved.map(|r| &*r.service);
    s.step_done.clear();
    s.step_done.resize(service.map_or(0, |sv| sv.steps.len()), None);

    let mut submitted = false;
    let mut window: Option<Window> = None;
    let mut accepted: Option<Acceptance> = None;
    let mut decision: Option<Decision> = None;
    let mut closed_at = OPEN;
    let mut closed_by_decision = false;
    let mut delivered: Option<(u32, i64)> = None;
    let mut corrections = 0u64;
    let mut fees = 0u64;
    let mut fee_fired = false;
    let mut extensions = 0u32;

    for (i, e) in events.iter().enumerate() {
        let i = i as u32;
        if i64::from(e.delay_ms) > input.late_limit_ms {
            s.fact(AlertKind::LateReport, Trigger::Event(i), e.at, u64::from(e.delay_ms));
        }
        // The acceptance window ran out before this event: deemed acceptance.
        if let Some(w) = window.filter(|w| e.at >= w.deadline) {
            window = None;
            accepted = Some(deem(s, w, resolved));
        }
        let ends_window = matches!(
            e.ty,
            EventType::CorrectionRequested
                | EventType::Accepted
                | EventType::NotAccepted
                | EventType::Withdrawn
                | EventType::CorrectionSubmitted
        );
        if ends_window
            && (decision.is_none() && closed_at == OPEN)
            && let Some(w) = window
        {
            // Met (or ended) by this event; a correction received opens a new window below.
            s.clocks.push(window_clock(w, e.at, resolved));
        }
        if decision.is_some() || closed_at != OPEN {
            let first_delivery = e.ty == EventType::Delivered
                && delivered.is_none()
                && decision.is_some_and(|d| !d.denied)
                && (closed_at == OPEN || closed_by_decision);
            if !first_delivery {
                let why = if closed_at != OPEN { VIOLATION_AFTER_CLOSURE } else { VIOLATION_AFTER_DECISION };
                s.fact(AlertKind::ProcedureViolation, Trigger::Event(i), e.at, why);
                continue;
            }
        }
        match e.ty {
            EventType::StepCompleted | EventType::Suspended | EventType::Extended | EventType::FeeCharged | EventType::Decided
                if accepted.is_none() =>
            {
                s.fact(AlertKind::ProcedureViolation, Trigger::Event(i), e.at, VIOLATION_BEFORE_ACCEPTANCE);
                continue;
            }
            EventType::Delivered if decision.is_none() => {
                s.fact(AlertKind::ProcedureViolation, Trigger::Event(i), e.at, VIOLATION_DELIVERED_UNAPPROVED);
                continue;
            }
            _ => {}
        }
        match e.ty {
            EventType::Submitted => {
                if submitted {
                    continue;
                }
                submitted = true;
                match resolved {
                    None => s.fact(AlertKind::ServiceNotInCatalog, Trigger::Event(i), e.at, 0),
                    Some(r) => {
                        if r.service.cancelled_on.is_some_and(|c| c <= r.calendar.date_of(crate::time::Timestamp(e.at))) {
                            s.fact(AlertKind::ServiceNotInCatalog, Trigger::Event(i), e.at, 1);
                        }
                        if accepted.is_none() && closed_at == OPEN {
                            window = Some(open_window(s, r, i, e.at));
                        }
                    }
                }
            }
            EventType::CorrectionRequested => {
                corrections += 1;
                if corrections >= 2 {
                    s.fact(AlertKind::CorrectionRepeated, Trigger::Event(i), e.at, corrections);
                }
                if accepted.is_some() {
                    s.fact(AlertKind::CorrectionLate, Trigger::Event(i), e.at, 0);
                }
                window = None;
            }
            EventType::CorrectionSubmitted => {
                if let (None, Some(r), true) = (accepted, resolved, submitted) {
                    window = Some(open_window(s, r, i, e.at));
                }
            }
            EventType::Accepted => {
                if accepted.is_none() {
                    accepted = Some(Acceptance { clock_start: e.at, origin: Origin::Accepted(i) });
                    window = None;
                }
            }
            EventType::NotAccepted => {
                if e.blank_reason() {
                    s.fact(AlertKind::ReasonMissing, Trigger::Event(i), e.at, 0);
                }
                closed_at = e.at;
                window = None;
            }
            EventType::StepCompleted => {
                if let Some(r) = resolved
                    && let Some(k) = r.step_names.iter().position(|&n| n == e.arg as NameId)
                {
                    if s.step_done[k].is_none() {
                        s.step_done[k] = Some((e.at, i));
                    }
                    if r.service.review_step == Some(k) {
                        s.review_actors.push(e.actor);
                    }
                }
            }
            EventType::Suspended => {
                let lawful = match (service, e.lawful_kind()) {
                    (Some(sv), Some(k)) => sv.allowed_suspensions & (1 << k) != 0,
                    _ => false,
                };
                match resolved {
                    Some(r) if lawful => {
                        let unit = r.calendar.day_len();
                        let expected_end = Counter::working(&r.calendar).deadline(e.at, i64::from(e.expected_days()) * unit, &[]);
                        s.needs_days(&r.calendar, e.at, expected_end);
                        let ended_by_event = events[i as usize + 1..]
                            .iter()
                            .find(|x| matches!(x.ty, EventType::Resumed | EventType::Decided))
                            .map_or(OPEN, |x| x.at);
                        s.suspensions.push(Suspension { index: i, start: e.at, expected_end, ended_by_event });
                        s.changes.push(ClockChange::Pause(Pause { from: e.at, to: ended_by_event.min(expected_end) }));
                    }
                    _ => s.fact(AlertKind::SuspensionIrregular, Trigger::Event(i), e.at, 0),
                }
            }
            EventType::Resumed => {}
            EventType::Extended => {
                extensions += 1;
                let mut why = 0;
                if extensions > 1 {
                    why |= EXT_NOT_FIRST;
                }
                if e.approver() == 0 {
                    why |= EXT_NO_APPROVER;
                } else if e.approver() == e.actor {
                    why |= EXT_SELF_APPROVED;
                }
                if let (Some(r), Some(acc)) = (resolved, accepted) {
                    if e.days() > r.service.extension_max_days {
                        why |= EXT_OVER_MAX;
                    }
                    let c = Counter { calendar: &r.calendar, kind: r.service.day_kind };
                    let budget = i64::from(r.service.statutory_days) * c.unit();
                    let (statutory, _) = c.judged_deadline(acc.clock_start, budget, &s.changes, &mut s.pauses);
                    if e.at >= statutory {
                        why |= EXT_AFTER_DEADLINE;
                    }
                    if why == 0 {
                        s.changes.push(ClockChange::Extend { at: e.at, budget: i64::from(e.days()) * c.unit() });
                    }
                }
                if why != 0 {
                    s.fact(AlertKind::ExtensionIrregular, Trigger::Event(i), e.at, why);
                }
            }
            EventType::FeeCharged => {
                fees = fees.saturating_add(e.arg);
                if let Some(sv) = service
                    && !fee_fired
                    && fees > sv.fee_cap_fen
                {
                    fee_fired = true;
                    s.fact(AlertKind::FeeIrregular, Trigger::Event(i), e.at, fees);
                }
            }
            EventType::Decided => {
                let denied = e.denied();
                decision = Some(Decision { index: i, at: e.at, denied });
                if denied && e.blank_reason() {
                    s.fact(AlertKind::ReasonMissing, Trigger::Event(i), e.at, 0);
                }
                if let Some(sv) = service
                    && sv.separation_of_duties
                    && !sv.steps.is_empty()
                    && s.review_actors.contains(&e.actor)
                {
                    s.fact(AlertKind::SeparationOfDuties, Trigger::Event(i), e.at, 0);
                }
                if denied || service.is_none_or(|sv| sv.delivery_days == 0) {
                    closed_at = e.at;
                    closed_by_decision = !denied;
                }
            }
            EventType::Delivered => {
                delivered = Some((i, e.at));
                if closed_at == OPEN {
                    closed_at = e.at;
                }
            }
            EventType::Withdrawn => {
                closed_at = e.at;
                window = None;
            }
        }
    }

    s.closed = closed_at != OPEN;
    s.decided = decision.is_some();
    let now = input.now;
    if let Some(w) = window {
        if w.deadline <= now {
            accepted = Some(deem(s, w, resolved));
        } else {
            s.clocks.push(window_clock(w, OPEN, resolved));
            s.next_due = s.next_due.min(w.deadline);
        }
    }
    s.accepted = accepted.is_some();
    let (Some(r), Some(acc)) = (resolved, accepted) else {
        return;
    };
    decision_clocks(s, r, acc, decision.map_or(OPEN, |d| d.at).min(closed_at), now);

    // Suspensions that outlast their expected days (lawful ones; an irregular one pauses nothing).
    for k in 0..s.suspensions.len() {
        let sp = s.suspensions[k];
        let trace = Trace {
            start: sp.start,
            origin: Origin::Event(sp.index),
            budget: i64::from(events[sp.index as usize].expected_days()) * r.calendar.day_len(),
            applied: 0,
            pauses_only: true,
            kind: DayKind::Working,
        };
        s.timer(AlertKind::SuspensionOverdue, Trigger::StartedBy(sp.index), sp.expected_end, sp.ended_by_event.min(closed_at), now, trace);
    }

    // Delivery after an approval (ALL art. 44), in working days.
    if let Some(d) = decision.filter(|d| !d.denied && r.service.delivery_days > 0) {
        let c = Counter::working(&r.calendar);
        let budget = i64::from(r.service.delivery_days) * c.unit();
        let deadline = c.deadline(d.at, budget, &[]);
        s.needs_days(&r.calendar, d.at, deadline);
        let trace = Trace { start: d.at, origin: Origin::Event(d.index), budget, applied: 0, pauses_only: true, kind: DayKind::Working };
        let stop = delivered.map_or(closed_at, |(_, at)| at);
        s.timer(AlertKind::DeliveryOverdue, Trigger::StartedBy(d.index), deadline, stop, now, trace);
    }
}

/// Opens an acceptance window at `start`, counted in working days.
fn open_window(s: &mut Scratch, r: &Resolved, index: u32, start: i64) -> Window {
    let c = Counter::working(&r.calendar);
    let deadline = c.deadline(start, i64::from(r.service.acceptance_days) * c.unit(), &[]);
    s.needs_days(&r.calendar, start, deadline);
    Window { index, start, deadline }
}

/// The acceptance window as a clock record, stopped at `stop`.
fn window_clock(w: Window, stop: i64, resolved: Option<&Resolved>) -> ClockRecord {
    let budget = resolved.map_or(0, |r| i64::from(r.service.acceptance_days) * r.calendar.day_len());
    ClockRecord {
        kind: AlertKind::AcceptanceOverdue,
        trigger: Trigger::StartedBy(w.index),
        deadline: w.deadline,
        stop,
        trace: Trace { start: w.start, origin: Origin::Event(w.index), budget, applied: 0, pauses_only: true, kind: DayKind::Working },
    }
}

/// The window ran out in silence: ACCEPTANCE_OVERDUE, and the item is deemed accepted
/// at the instant the window started.
fn deem(s: &mut Scratch, w: Window, resolved: Option<&Resolved>) -> Acceptance {
    let clock = window_clock(w, OPEN, resolved);
    s.clocks.push(clock);
    s.facts.push(Fact { kind: clock.kind, trigger: clock.trigger, at: w.deadline, info: 0, trace: Some(clock.trace) });
    Acceptance { clock_start: w.start, origin: Origin::Deemed(w.index) }
}

/// The promised, warning, statutory and step clocks, which stop at `stop` (the decision
/// or the closing of the item).
fn decision_clocks(s: &mut Scratch, r: &Resolved, acc: Acceptance, stop: i64, now: i64) {
    let sv = &*r.service;
    let c = Counter { calendar: &r.calendar, kind: sv.day_kind };
    let unit = c.unit();
    let promised = i64::from(sv.promised_days) * unit;
    let warn = i64::from(sv.warn_millidays) * unit / 1000;
    let statutory = i64::from(sv.statutory_days) * unit;
    let trace = |budget: i64, applied: usize| Trace {
        start: acc.clock_start,
        origin: acc.origin,
        budget,
        applied: applied as u16,
        pauses_only: false,
        kind: sv.day_kind,
    };

    let changes = std::mem::take(&mut s.changes);
    for (kind, trigger, budget) in [
        (AlertKind::PromisedDeadlineNear, Trigger::Promised, promised - warn),
        (AlertKind::PromisedOverdue, Trigger::Promised, promised),
        (AlertKind::StatutoryOverdue, Trigger::Statutory, statutory),
    ] {
        if kind == AlertKind::PromisedDeadlineNear && budget <= 0 {
            continue; // No warning when the warning budget is 0 (即办件).
        }
        let (deadline, applied) = c.judged_deadline(acc.clock_start, budget, &changes, &mut s.pauses);
        s.needs_days(&r.calendar, acc.clock_start, deadline);
        s.timer(kind, trigger, deadline, stop, now, trace(budget, applied));
    }

    // Step clocks: the current step is the first with no completion; it starts at the
    // latest of acceptance and the completions of the steps before it. Pauses apply,
    // extensions do not.
    s.step_changes.clear();
    s.step_changes.extend(changes.iter().filter(|ch| matches!(ch, ClockChange::Pause(_))));
    let mut start = acc.clock_start;
    let mut origin = Origin::Step(match acc.origin {
        Origin::Accepted(i) | Origin::Deemed(i) => Some(i),
        _ => None,
    });
    for (k, step) in sv.steps.iter().enumerate() {
        let done = s.step_done[k];
        if done.is_none_or(|(at, _)| at > start) {
            let budget = i64::from(step.days) * unit;
            let (deadline, applied) = c.judged_deadline(start, budget, &s.step_changes, &mut s.pauses);
            s.needs_days(&r.calendar, start, deadline);
            let t = Trace { start, origin, budget, applied: applied as u16, pauses_only: true, kind: sv.day_kind };
            s.timer(AlertKind::StepOverdue, Trigger::Step(k as u16), deadline, stop.min(done.map_or(OPEN, |d| d.0)), now, t);
        }
        match done {
            Some((at, index)) => {
                if at > start {
                    start = at;
                    origin = Origin::Step(Some(index));
                }
            }
            None => break, // Later steps are not current yet.
        }
    }
    s.changes = changes;
}
