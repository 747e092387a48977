//! What the statistics need of an item, read off its timeline (the same clocks the
//! monitor counts): when it was received, accepted, decided; its promised limit and the
//! working days it used; whether each limit was met; its late reports.

use crate::store::ItemFacts;
use jiancha_core::engine::{ClockStatus, Engine, ItemRef, ItemStatus};
use jiancha_core::{AlertKind, EventType, Timestamp};

/// The facts of one item at `now`.
pub fn item_facts(engine: &Engine, item: ItemRef, now: Timestamp) -> Option<ItemFacts> {
    let t = engine.timeline(item, now)?;
    let first = |ty: EventType| t.state.events.iter().find(|e| e.event_type == ty).map(|e| e.occurred_at.0);
    let clock = |name: &str| t.clocks.iter().find(|c| c.name == name);
    let promised = clock("promised");
    let statutory = clock("statutory");
    let met = |status: ClockStatus| match status {
        ClockStatus::Met => Some(true),
        ClockStatus::Overdue => Some(false),
        ClockStatus::Running | ClockStatus::Paused => None,
    };
    Some(ItemFacts {
        item_id: t.state.item_id.clone(),
        department_code: t.state.department_code.clone(),
        service_code: t.state.service_code.clone(),
        submitted_at: first(EventType::Submitted),
        // Deemed acceptance (ALL art. 32) starts the decision clocks too.
        accepted_at: first(EventType::Accepted).or_else(|| promised.or(statutory).map(|c| c.started_at.0)),
        decided_at: first(EventType::Decided),
        closed: t.status == ItemStatus::Closed,
        promised_days: promised.map(|c| c.budget_days),
        used_days: promised.or(statutory).map(|c| c.used_days),
        promised_deadline: promised.map(|c| c.deadline.0),
        promised_met: promised.and_then(|c| met(c.status)),
        statutory_deadline: statutory.map(|c| c.deadline.0),
        statutory_met: statutory.and_then(|c| met(c.status)),
        late_reports: t.alerts.iter().filter(|a| a.kind == AlertKind::LateReport).count() as i64,
    })
}
