//! An item's state in self-contained form (names, not interned ids): what the live
//! monitor writes to its changelog after every change and reads back when a partition
//! is assigned, so open items are restored without replaying history.

use super::item::{BLANK_REASON, Ev, Held, Item, NO_TIMER};
use super::rules::{self, Input};
use super::{Effect, Engine, ItemRef, trigger_key_of_text};
use crate::alert::AlertKind;
use crate::event::{EventType, LawfulSuspension};
use crate::time::Timestamp;

/// One stored event: every fact the rules use, nothing else.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// The event's id.
    pub event_id: String,
    /// Its type.
    pub event_type: EventType,
    /// When it happened.
    pub occurred_at: Timestamp,
    /// Arrival minus occurrence, milliseconds (saturated).
    pub delay_ms: u32,
    /// The official, if any.
    pub actor: Option<String>,
    /// SUBMITTED: service code; STEP_COMPLETED: step; SUSPENDED: kind; EXTENDED: approver.
    pub text: Option<String>,
    /// SUSPENDED: expected days; EXTENDED: days; FEE_CHARGED: amount; DECIDED: 1 if denied.
    pub number: u64,
    /// NOT_ACCEPTED / DECIDED: the reason was blank.
    pub blank_reason: bool,
}

/// An alert in force against the item.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HeldAlert {
    /// Its kind.
    pub kind: AlertKind,
    /// The trigger text of its id (see `alert_id`).
    pub trigger: String,
    /// Its `triggered_at`.
    pub triggered_at: Timestamp,
}

/// One item's whole state.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ItemState {
    /// The item.
    pub item_id: String,
    /// Its service, if known.
    pub service_code: Option<String>,
    /// Whether the service came from a SUBMITTED.
    pub service_from_submitted: bool,
    /// Its department.
    pub department_code: String,
    /// Events in §3.4 order.
    pub events: Vec<StoredEvent>,
    /// Alerts in force (already published).
    pub held: Vec<HeldAlert>,
    /// The item was first recorded before items were identified by department: its
    /// alerts keep their department-less ids ([`crate::alert::legacy_alert_id`]).
    pub legacy_ids: bool,
}

/// An item's state borrowed from the engine: what [`ItemState`] holds, without a copy of
/// any text. The live monitor encodes its changelog records from it.
#[derive(Clone, Copy)]
pub struct StateRef<'a> {
    engine: &'a Engine,
    item: &'a Item,
}

/// One stored event, borrowed (see [`StoredEvent`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct StoredEventRef<'a> {
    pub event_id: &'a str,
    pub event_type: EventType,
    pub occurred_at: Timestamp,
    pub delay_ms: u32,
    pub actor: Option<&'a str>,
    pub text: Option<&'a str>,
    pub number: u64,
    pub blank_reason: bool,
}

/// An alert in force, borrowed (see [`HeldAlert`]).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeldAlertRef<'a> {
    pub kind: AlertKind,
    pub trigger: &'a str,
    pub triggered_at: Timestamp,
}

impl std::fmt::Debug for StateRef<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateRef")
            .field("department_code", &self.department_code())
            .field("item_id", &self.item_id())
            .finish_non_exhaustive()
    }
}

impl<'a> StateRef<'a> {
    fn name(&self, id: u32) -> Option<&'a str> {
        (id != 0).then(|| &**self.engine.names.name(id))
    }

    pub fn item_id(&self) -> &'a str {
        self.item.item_id()
    }

    pub fn service_code(&self) -> Option<&'a str> {
        self.name(self.item.service)
    }

    pub fn service_from_submitted(&self) -> bool {
        self.item.service_from_submitted
    }

    pub fn department_code(&self) -> &'a str {
        self.engine.names.name(self.item.department)
    }

    pub fn legacy_ids(&self) -> bool {
        self.item.legacy_ids
    }

    /// Events in §3.4 order.
    pub fn events(self) -> impl ExactSizeIterator<Item = StoredEventRef<'a>> + 'a {
        self.item.events.iter().map(move |e| {
            let (text, number) = match e.ty {
                EventType::Submitted | EventType::StepCompleted => (self.name(e.arg as u32), 0),
                EventType::Suspended => (self.name(e.suspension_name()), u64::from(e.expected_days())),
                EventType::Extended => (self.name(e.approver()), u64::from(e.days())),
                EventType::FeeCharged | EventType::Decided => (None, e.arg),
                _ => (None, 0),
            };
            StoredEventRef {
                event_id: self.item.event_id(e),
                event_type: e.ty,
                occurred_at: Timestamp(e.at),
                delay_ms: e.delay_ms,
                actor: self.name(e.actor),
                text,
                number,
                blank_reason: e.blank_reason(),
            }
        })
    }

    /// Alerts in force (already published).
    pub fn held(self) -> impl Iterator<Item = HeldAlertRef<'a>> + 'a {
        let r = self.engine.resolved_for(self.item.service);
        self.item.held.as_deref().into_iter().flatten().map(move |h| HeldAlertRef {
            kind: h.kind,
            trigger: super::trigger_of_key(self.item, r, h),
            triggered_at: Timestamp(h.at),
        })
    }

    /// The state with its texts copied.
    pub fn to_owned(self) -> ItemState {
        let name = |t: Option<&str>| t.map(str::to_owned);
        ItemState {
            item_id: self.item_id().to_owned(),
            service_code: name(self.service_code()),
            service_from_submitted: self.service_from_submitted(),
            department_code: self.department_code().to_owned(),
            events: self
                .events()
                .map(|e| StoredEvent {
                    event_id: e.event_id.to_owned(),
                    event_type: e.event_type,
                    occurred_at: e.occurred_at,
                    delay_ms: e.delay_ms,
                    actor: name(e.actor),
                    text: name(e.text),
                    number: e.number,
                    blank_reason: e.blank_reason,
                })
                .collect(),
            held: self.held().map(|h| HeldAlert { kind: h.kind, trigger: h.trigger.to_owned(), triggered_at: h.triggered_at }).collect(),
            legacy_ids: self.legacy_ids(),
        }
    }
}

impl Engine {
    /// The state of an item, borrowed.
    pub fn state(&self, item: ItemRef) -> Option<StateRef<'_>> {
        let item = self.items.get(item.0 as usize).filter(|it| !it.events.is_empty())?;
        Some(StateRef { engine: self, item })
    }

    /// The state of an item, for a changelog.
    pub fn export(&self, item: ItemRef) -> Option<ItemState> {
        self.state(item).map(StateRef::to_owned)
    }

    /// Restores an item exactly as exported, without emitting its alerts again, and
    /// sets its timer to the earliest deadline it has (deadlines already held are
    /// re-checked when it fires and change nothing). Replaces the item of the same
    /// department and id.
    pub fn import(&mut self, state: &ItemState, out: &mut Vec<Effect>) -> ItemRef {
        let department = self.names.intern(&state.department_code);
        let (slot, _) = self.slot_for(department, &state.item_id);
        let mut item = Item {
            text: Box::from(state.item_id.as_str()),
            events: Box::default(),
            held: None,
            service: state.service_code.as_deref().map_or(0, |c| self.names.intern(c)),
            department,
            next_due: NO_TIMER,
            id_len: state.item_id.len() as u32,
            service_from_submitted: state.service_from_submitted,
            closed: false,
            legacy_ids: state.legacy_ids,
        };
        // The events go in all at once: the item's text and event list grow once.
        let mut events = Vec::with_capacity(state.events.len());
        for e in &state.events {
            let text = e.text.as_deref().map_or(0, |t| self.names.intern(t));
            let arg = match e.event_type {
                EventType::Submitted | EventType::StepCompleted => u64::from(text),
                EventType::Suspended => {
                    let lawful = e.text.as_deref().and_then(LawfulSuspension::parse).map_or(0, |k| k as u64 + 1);
                    (e.number & 0xFFFF_FFFF) | lawful << 32 | u64::from(text).min(0xFF_FFFF) << 40
                }
                EventType::Extended => (e.number & 0xFFFF_FFFF) | u64::from(text) << 32,
                EventType::FeeCharged | EventType::Decided => e.number,
                _ => 0,
            };
            let ev = Ev {
                at: e.occurred_at.0,
                arg,
                id_off: 0,
                actor: e.actor.as_deref().map_or(0, |a| self.names.intern(a)),
                delay_ms: e.delay_ms,
                id_len: 0,
                ty: e.event_type,
                flags: if e.blank_reason { BLANK_REASON } else { 0 },
            };
            events.push((ev, e.event_id.as_str()));
        }
        item.insert_all(&events);
        if !state.held.is_empty() {
            let held: Vec<Held> =
                state.held.iter().map(|h| Held { kind: h.kind, key: trigger_key_of_text(&h.trigger), at: h.triggered_at.0 }).collect();
            item.held = Some(Box::new(held));
        }
        let r = Engine::resolved_of(&self.service_index, &self.resolved, item.service).map(|i| &self.resolved[i]);
        let input = Input { events: &item.events, resolved: r, late_limit_ms: self.catalog.late_report_limit_ms, now: i64::MIN };
        rules::evaluate(&input, &mut self.scratch);
        let due = self.scratch.next_due;
        item.next_due = due;
        item.closed = self.scratch.closed;
        let was_closed = self.items[slot].closed;
        match (was_closed, item.closed) {
            (false, true) => self.closed += 1,
            (true, false) => self.closed -= 1,
            _ => {}
        }
        self.items[slot] = item;
        if due != NO_TIMER {
            out.push(Effect::SetTimer { item: ItemRef(slot as u32), at: Timestamp(due) });
        }
        ItemRef(slot as u32)
    }
}
