//! What the statistics need of an item, read off its timeline (the same clocks the
//! monitor counts): when it was received, accepted, decided; its promised limit with
//! lawful extensions and the days it used; whether each limit was met; its late reports.

use crate::store::ItemFacts;
use jiancha_core::catalog::DayKind;
use jiancha_core::engine::{ClockStatus, Engine, ItemRef, ItemStatus};
use jiancha_core::{AlertKind, EventType, Timestamp};

/// The facts of one item at `now`.
pub fn item_facts(engine: &Engine, item: ItemRef, now: Timestamp) -> Option<ItemFacts> {
    let t = engine.timeline(item, now)?;
    let clock = |name: &str| t.clocks.iter().find(|c| c.name == name);
    let promised = clock("promised");
    let statutory = clock("statutory");
    let decision_clock = promised.or(statutory);
    let met = |status: ClockStatus| match status {
        ClockStatus::Met => Some(true),
        ClockStatus::Overdue => Some(false),
        ClockStatus::Running | ClockStatus::Paused => None,
    };
    let events = &t.state.events;
    let first = |ty: EventType| events.iter().find(|e| e.event_type == ty).map(|e| e.occurred_at.0);
    // Acceptance starts the decision clocks; deemed acceptance (ALL art. 32) too, and a
    // later ACCEPTED moves nothing (DOMAIN §5): the clock's start is the acceptance.
    let accepted_at = decision_clock.map(|c| c.started_at.0).or_else(|| first(EventType::Accepted));
    // The decision is the first DECIDED at or after acceptance; one before it is a
    // procedure violation (its own alert), not the item's decision.
    let decided_at = events
        .iter()
        .filter(|e| e.event_type == EventType::Decided)
        .map(|e| e.occurred_at.0)
        .find(|at| accepted_at.is_none_or(|accepted| *at >= accepted));
    Some(ItemFacts {
        item_id: t.state.item_id.clone(),
        department_code: t.state.department_code.clone(),
        service_code: t.state.service_code.clone(),
        submitted_at: first(EventType::Submitted),
        accepted_at,
        decided_at,
        closed: t.status == ItemStatus::Closed,
        // The limit as lawfully extended, in the clock's own days: used + remaining (the
        // remaining of an overdue clock is negative by the days past the deadline), so an
        // extended item decided on time uses at most all of it.
        promised_days: promised.map(|c| c.used_days + c.remaining_days),
        used_days: decision_clock.map(|c| c.used_days),
        natural_days: decision_clock.is_some_and(|c| c.day_kind == DayKind::Natural),
        promised_deadline: promised.map(|c| c.deadline.0),
        promised_met: promised.and_then(|c| met(c.status)),
        statutory_deadline: statutory.map(|c| c.deadline.0),
        statutory_met: statutory.and_then(|c| met(c.status)),
        late_reports: t.alerts.iter().filter(|a| a.kind == AlertKind::LateReport).count() as i64,
        actor: events.iter().rev().find_map(|e| e.actor.clone()),
    })
}
