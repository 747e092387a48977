//! The engine: every open item's events, and the step that turns an event or a due
//! timer into effects (alerts to fire or retract, timers to set or cancel).
//!
//! The engine does no I/O and never reads the clock; `now` is an argument. The live
//! monitor, `jiancha replay` and the tests drive this same code.

mod derive;
mod index;
mod item;
mod replay;
mod rules;
mod state;
#[cfg(test)]
mod tests;
mod timeline;

pub use replay::{Merge, Place, Replay, Shard, TimerQueue};
pub use state::{HeldAlert, HeldAlertRef, ItemState, StateRef, StoredEvent, StoredEventRef};
pub use timeline::{ClockStatus, ClockView, ItemStatus, ItemSummary, Timeline};

use crate::alert::{Alert, AlertKind, AlertStatus, Bilingual, alert_id, legacy_alert_id};
use crate::calendar::Calendars;
use crate::catalog::Catalog;
use crate::event::{Event, EventBody, LawfulSuspension, Outcome};
use crate::intern::{Interner, NameId};
use crate::time::Timestamp;
use index::{Index, prefetch};
use item::{BLANK_REASON, Ev, Held, Item, NO_TIMER};
use rules::{Fact, Input, Resolved, Scratch, Trigger};
use rustc_hash::{FxHashSet, FxHasher};
use std::hash::{BuildHasher, BuildHasherDefault, Hasher};
use std::sync::Arc;

/// A handle on an item inside one engine, carried by timer effects.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ItemRef(pub u32);

/// What the caller must carry out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Publish an alert update (FIRED or RETRACTED).
    Alert(Box<Alert>),
    /// Call [`Engine::fire`] for the item at this instant (replaces any earlier timer of the item).
    SetTimer {
        /// The item.
        item: ItemRef,
        /// When.
        at: Timestamp,
    },
    /// The item needs no timer any more.
    CancelTimer {
        /// The item.
        item: ItemRef,
    },
    /// A department's first event for an `item_id` that another department's item
    /// already uses (DOMAIN §2): the two items stay apart; an operator should see it.
    ItemIdShared {
        /// The new item.
        item: ItemRef,
        /// The department of an item that already had this id.
        other_department: String,
    },
    /// The item's events or alerts in force changed: a changelog should record
    /// [`Engine::export`] of it.
    ItemChanged {
        /// The item.
        item: ItemRef,
    },
    /// A closed item left the engine after the retention window
    /// ([`Engine::retire_closed`]): a changelog should forget it (a tombstone).
    ItemRetired {
        /// Its department.
        department_code: String,
        /// Its id.
        item_id: String,
    },
}

/// Whether an event changed anything.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Applied {
    /// The event was new and has been taken into account.
    New,
    /// The item already had an event with this id (idempotence): nothing changed.
    Duplicate,
    /// With a retention window: the event is not a SUBMITTED, occurred before the window
    /// and names an item the engine does not hold (closed and retired): nothing changed.
    Retired,
}

type Hasher64 = BuildHasherDefault<FxHasher>;

/// What [`Engine::prefetch`] brings into cache for an item id.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Prefetch {
    /// The index entry where the item's lookup starts.
    Index,
    /// The item's slot; reads the index entry.
    Slot,
    /// The item's ids and the ends of its event list; reads the slot.
    History,
}

/// How far ahead of the event being applied each stage is asked for, two events apart.
/// An event costs the engine a microsecond or two, ten times a miss, yet stages one event
/// apart (3, 2, 1) left the engine's thread 9 % more samples than these over three
/// alternated replays (docs/performance.md); 12, 8, 4 could not be told from these.
pub const PREFETCH_AHEAD: [(usize, Prefetch); 3] = [(6, Prefetch::Index), (4, Prefetch::Slot), (2, Prefetch::History)];

/// The engine of one partition (or of a whole replay).
#[derive(Debug)]
pub struct Engine {
    catalog: Arc<Catalog>,
    calendars: Calendars,
    names: Interner,
    /// Interned service code → index into `resolved`, or u32::MAX.
    service_index: Vec<u32>,
    resolved: Vec<Resolved>,
    items: Vec<Item>,
    index: Index,
    hasher: Hasher64,
    /// (calendar, year) pairs whose CALENDAR_MISSING has fired.
    missing_fired: FxHashSet<(Arc<str>, i32)>,
    scratch: Scratch,
    held: Vec<Held>,
    /// How many items are closed.
    closed: usize,
    /// Slots of retired items, reused by new ones (a timer's [`ItemRef`] stays valid for
    /// the items that remain).
    free: Vec<u32>,
    /// How long a closed item is kept after its last event arrived, when set.
    retention_ms: Option<i64>,
}

impl Engine {
    /// An engine over a catalog and the calendars it names.
    pub fn new(catalog: Arc<Catalog>, calendars: Calendars) -> Engine {
        let mut engine = Engine {
            catalog,
            calendars,
            names: Interner::default(),
            service_index: Vec::new(),
            resolved: Vec::new(),
            items: Vec::new(),
            index: Index::default(),
            hasher: Hasher64::default(),
            missing_fired: FxHashSet::default(),
            scratch: Scratch::default(),
            held: Vec::new(),
            closed: 0,
            free: Vec::new(),
            retention_ms: None,
        };
        engine.resolve_services();
        engine
    }

    /// The catalog in force.
    pub fn catalog(&self) -> &Arc<Catalog> {
        &self.catalog
    }

    /// The calendars in force.
    pub fn calendars(&self) -> &Calendars {
        &self.calendars
    }

    /// How many items the engine holds (open and closed).
    pub fn len(&self) -> usize {
        self.items.len() - self.free.len()
    }

    /// Whether the engine holds no item.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many items are open (not closed).
    pub fn open_items(&self) -> usize {
        self.len() - self.closed
    }

    /// Keeps closed items for `window` after their last event arrived, then lets
    /// [`Engine::retire_closed`] remove them; `None` keeps every item for ever (replay).
    /// With a window, an event for an item the engine does not hold that is not a
    /// SUBMITTED and occurred before the window is refused ([`Applied::Retired`]).
    pub fn set_retention(&mut self, window: Option<std::time::Duration>) {
        self.retention_ms = window.map(|w| i64::try_from(w.as_millis()).unwrap_or(i64::MAX));
    }

    /// Removes every closed item without a pending timer whose last event arrived before
    /// `now` less the retention window, each with an [`Effect::ItemRetired`]; returns how
    /// many. Its alerts stay as published; nothing else changes. No-op without a window.
    pub fn retire_closed(&mut self, now: Timestamp, out: &mut Vec<Effect>) -> usize {
        let Some(window) = self.retention_ms else { return 0 };
        let horizon = now.0.saturating_sub(window);
        let due: Vec<usize> = (0..self.items.len())
            .filter(|&slot| {
                let it = &self.items[slot];
                it.closed && it.next_due == NO_TIMER && !it.events.is_empty() && it.last_arrival() < horizon
            })
            .collect();
        for &slot in &due {
            let it = &self.items[slot];
            out.push(Effect::ItemRetired { department_code: self.names.name(it.department).to_string(), item_id: it.item_id().to_owned() });
            self.free_slot(slot);
        }
        due.len()
    }

    /// Removes a department's item (a changelog's tombstone for it); false when not held.
    pub fn remove(&mut self, department_code: &str, item_id: &str) -> bool {
        match self.find(department_code, item_id) {
            Some(item) => {
                self.free_slot(item.0 as usize);
                true
            }
            None => false,
        }
    }

    fn free_slot(&mut self, slot: usize) {
        let hash = self.hasher.hash_one(self.items[slot].item_id());
        self.index.remove(hash, slot as u32);
        if self.items[slot].closed {
            self.closed -= 1;
        }
        self.items[slot] = Item::vacant();
        self.free.push(slot as u32);
    }

    /// Reserves room for `additional` more items.
    pub fn reserve(&mut self, additional: usize) {
        self.items.reserve(additional);
        self.index.reserve(additional);
    }

    /// Bytes of memory held for items: the slots, the index and each item's own heap.
    pub fn item_bytes(&self) -> usize {
        self.items.capacity() * std::mem::size_of::<Item>() + self.index.bytes() + self.items.iter().map(Item::heap_bytes).sum::<usize>()
    }

    /// Takes one valid event that arrived at `arrival`, with the clock at `now`.
    ///
    /// The event is applied to the item identified by (`department_code`, `item_id`)
    /// (DOMAIN §2, department isolation): another department's item with the same id is
    /// neither changed nor consulted for duplicates.
    pub fn apply(&mut self, event: &Event, arrival: Timestamp, now: Timestamp, out: &mut Vec<Effect>) -> Applied {
        if let Some(window) = self.retention_ms
            && !matches!(event.body, EventBody::Submitted)
            && event.occurred_at.0 < now.0.saturating_sub(window)
            && self.find(&event.department_code, &event.item_id).is_none()
        {
            return Applied::Retired;
        }
        let department = self.names.intern(&event.department_code);
        let (slot, created) = self.slot_for(department, &event.item_id);
        if created && let Some(other) = self.other_department_of(slot) {
            out.push(Effect::ItemIdShared { item: ItemRef(slot as u32), other_department: other.to_owned() });
        }
        if self.items[slot].has_event(&event.event_id) {
            return Applied::Duplicate;
        }
        // The actor first, then the service: names get their ids in the order they come.
        let actor = event.actor.as_deref().map_or(0, |a| self.names.intern(a));
        let service = event.service_code.as_deref().map(|c| self.names.intern(c));
        let ev = self.compact(event, actor, service, arrival);
        let item = &mut self.items[slot];
        let submitted = matches!(event.body, EventBody::Submitted);
        if let Some(code) = service
            && (submitted && !item.service_from_submitted || item.service == 0)
        {
            item.service = code;
            item.service_from_submitted = submitted;
        }
        item.insert(ev, &event.event_id);
        self.reconcile(slot, now.0, true, out);
        Applied::New
    }

    /// A timer set by an earlier effect is due. Stale timers (the item's timer moved) do nothing.
    pub fn fire(&mut self, item: ItemRef, at: Timestamp, out: &mut Vec<Effect>) {
        let slot = item.0 as usize;
        if self.items.get(slot).is_some_and(|i| i.next_due == at.0) {
            self.reconcile(slot, at.0, false, out);
        }
    }

    /// The instant of the item's pending timer, if any.
    pub fn timer_of(&self, item: ItemRef) -> Option<Timestamp> {
        self.items.get(item.0 as usize).map(|i| i.next_due).filter(|&d| d != NO_TIMER).map(Timestamp)
    }

    /// Replaces the catalog and recomputes every item.
    pub fn replace_catalog(&mut self, catalog: Arc<Catalog>, now: Timestamp, out: &mut Vec<Effect>) {
        self.catalog = catalog;
        self.resolve_services();
        self.recompute_all(now, out);
    }

    /// Replaces the calendars (a new year's notice, say) and recomputes every item.
    pub fn replace_calendars(&mut self, calendars: Calendars, now: Timestamp, out: &mut Vec<Effect>) {
        self.calendars = calendars;
        self.resolve_services();
        self.recompute_all(now, out);
    }

    /// Re-evaluates every item at `now`.
    pub fn recompute_all(&mut self, now: Timestamp, out: &mut Vec<Effect>) {
        for slot in 0..self.items.len() {
            if !self.items[slot].events.is_empty() {
                self.reconcile(slot, now.0, false, out);
            }
        }
    }

    /// Handles of every item the engine holds.
    pub fn item_refs(&self) -> impl Iterator<Item = ItemRef> + use<> {
        let held: Vec<ItemRef> = (0..self.items.len()).filter(|&s| !self.items[s].events.is_empty()).map(|s| ItemRef(s as u32)).collect();
        held.into_iter()
    }

    /// The handle of a department's item, if the engine holds it.
    pub fn find(&self, department_code: &str, item_id: &str) -> Option<ItemRef> {
        let department = self.names.get(department_code)?;
        let hash = self.hasher.hash_one(item_id);
        self.index
            .find(hash, |slot| {
                let it = &self.items[slot as usize];
                it.department == department && it.item_id() == item_id
            })
            .map(ItemRef)
    }

    /// Every item with this `item_id`, whatever its department (an inspector's look-up
    /// by id; more than one when departments reuse an id).
    pub fn find_all(&self, item_id: &str) -> Vec<ItemRef> {
        let hash = self.hasher.hash_one(item_id);
        let mut found: Vec<ItemRef> =
            self.index.candidates(hash).filter(|&slot| self.items[slot as usize].item_id() == item_id).map(ItemRef).collect();
        found.sort_unstable();
        found
    }

    /// The department of another item with the same `item_id` as the item in `slot`.
    fn other_department_of(&self, slot: usize) -> Option<&str> {
        let it = &self.items[slot];
        let hash = self.hasher.hash_one(it.item_id());
        self.index
            .candidates(hash)
            .map(|s| &self.items[s as usize])
            .find(|o| o.department != it.department && o.item_id() == it.item_id())
            .map(|o| -> &str { self.names.name(o.department) })
    }

    /// Asks for what applying an event of `item_id` will read, without waiting for it:
    /// each [`Prefetch`] stage reads only what the stage before brought in, so a batch
    /// applied in order asks for the stages of the events a few places ahead of the one
    /// it applies ([`Engine::prefetch_batch`]). Changes nothing the engine does; an id
    /// the engine does not hold costs a hash.
    pub fn prefetch(&self, item_id: &str, what: Prefetch) {
        let hash = self.hasher.hash_one(item_id);
        // The first candidate: another department's item of the same id is rare, and
        // a wrong guess costs only the time it was meant to save.
        let item = || self.index.candidates(hash).next().map(|slot| &self.items[slot as usize]);
        match what {
            Prefetch::Index => self.index.prefetch(hash),
            Prefetch::Slot => {
                if let Some(it) = item() {
                    prefetch(it);
                }
            }
            Prefetch::History => {
                let Some(it) = item() else { return };
                if let Some(first) = it.text.as_bytes().first() {
                    prefetch(first);
                }
                if let (Some(first), Some(last)) = (it.events.first(), it.events.last()) {
                    prefetch(first);
                    prefetch(last);
                }
            }
        }
    }

    /// Before applying event `at` of a batch applied in order, asks for each
    /// [`Prefetch`] stage of the events [`PREFETCH_AHEAD`] places ahead; `item_id` gives
    /// a later event's item id (`None` past the batch's end or for an invalid event).
    pub fn prefetch_batch<'a>(&self, at: usize, item_id: impl Fn(usize) -> Option<&'a str>) {
        for (ahead, what) in PREFETCH_AHEAD {
            if let Some(id) = item_id(at + ahead) {
                self.prefetch(id, what);
            }
        }
    }

    /// The slot of (department, item_id), created when absent; true when created.
    fn slot_for(&mut self, department: NameId, item_id: &str) -> (usize, bool) {
        let hash = self.hasher.hash_one(item_id);
        let items = &self.items;
        if let Some(slot) = self.index.find(hash, |slot| {
            let it = &items[slot as usize];
            it.department == department && it.item_id() == item_id
        }) {
            return (slot as usize, false);
        }
        let item = Item {
            text: Box::from(item_id),
            events: Box::default(),
            held: None,
            service: 0,
            department,
            next_due: NO_TIMER,
            id_len: item_id.len() as u32,
            service_from_submitted: false,
            closed: false,
            legacy_ids: false,
        };
        let slot = match self.free.pop() {
            Some(free) => {
                self.items[free as usize] = item;
                free as usize
            }
            None => {
                self.items.push(item);
                self.items.len() - 1
            }
        };
        self.index.insert(hash, slot as u32);
        (slot, true)
    }

    /// The id of an alert of `kind` and `trigger` against `item`.
    pub fn alert_id_of(&self, item: ItemRef, kind: AlertKind, trigger: &str) -> Option<String> {
        let it = self.items.get(item.0 as usize).filter(|it| !it.events.is_empty())?;
        Some(item_alert_id(it, &self.names, kind, trigger))
    }

    /// The event as an item holds it; `actor` and `service` are the ids of its actor and
    /// service code (0 and `None` when absent).
    fn compact(&mut self, event: &Event, actor: NameId, service: Option<NameId>, arrival: Timestamp) -> Ev {
        let blank = |r: &Option<String>| r.as_deref().is_none_or(|r| r.trim().is_empty());
        let (arg, flags) = match &event.body {
            EventBody::Submitted => (u64::from(service.unwrap_or(0)), 0),
            EventBody::StepCompleted { step } => (u64::from(self.names.intern(step)), 0),
            EventBody::Suspended { suspension_kind, expected_days } => {
                let lawful = LawfulSuspension::parse(suspension_kind).map_or(0, |k| k as u64 + 1);
                let name = u64::from(self.names.intern(suspension_kind)).min(0xFF_FFFF);
                (u64::from(*expected_days) | lawful << 32 | name << 40, 0)
            }
            EventBody::Extended { days, approver } => {
                let approver = if approver.trim().is_empty() { 0 } else { self.names.intern(approver) };
                (u64::from(*days) | u64::from(approver) << 32, 0)
            }
            EventBody::FeeCharged { amount_fen } => (*amount_fen, 0),
            EventBody::Decided { outcome, reason } => {
                (u64::from(*outcome == Outcome::Denied), if blank(reason) { BLANK_REASON } else { 0 })
            }
            EventBody::NotAccepted { reason } => (0, if blank(reason) { BLANK_REASON } else { 0 }),
            _ => (0, 0),
        };
        let delay = (arrival.0 - event.occurred_at.0).clamp(0, i64::from(u32::MAX));
        Ev { at: event.occurred_at.0, arg, id_off: 0, actor, delay_ms: delay as u32, id_len: 0, ty: event.event_type(), flags }
    }

    fn resolve_services(&mut self) {
        self.resolved.clear();
        let default = self.calendars.default_calendar().clone();
        for service in self.catalog.services() {
            let calendar = self.calendars.get(&service.calendar).cloned().unwrap_or_else(|| default.clone());
            let step_names = service.steps.iter().map(|s| self.names.intern(&s.name)).collect();
            self.names.intern(&service.code);
            self.resolved.push(Resolved { service: service.clone(), calendar, step_names });
        }
        self.service_index = vec![u32::MAX; self.names.len()];
        for (i, r) in self.resolved.iter().enumerate() {
            if let Some(id) = self.names.get(&r.service.code) {
                self.service_index[id as usize] = i as u32;
            }
        }
    }

    fn resolved_for(&self, service: NameId) -> Option<&Resolved> {
        Self::resolved_of(&self.service_index, &self.resolved, service).map(|i| &self.resolved[i])
    }

    fn resolved_of(service_index: &[u32], resolved: &'_ [Resolved], service: NameId) -> Option<usize> {
        service_index.get(service as usize).copied().filter(|&i| i != u32::MAX).map(|i| {
            debug_assert!((i as usize) < resolved.len());
            i as usize
        })
    }

    /// Evaluates one item at `now` and emits what changed since the last evaluation.
    fn reconcile(&mut self, slot: usize, now: i64, events_changed: bool, out: &mut Vec<Effect>) {
        let Engine { items, names, resolved, service_index, scratch, held, calendars, catalog, missing_fired, closed, .. } = self;
        let item = &items[slot];
        let r = Self::resolved_of(service_index, resolved, item.service).map(|i| &resolved[i]);
        let late_limit_ms = catalog.late_report_limit_ms;
        rules::evaluate(&Input { events: &item.events, resolved: r, late_limit_ms, now }, scratch);

        held.clear();
        for f in &scratch.facts {
            held.push(Held { kind: f.kind, key: trigger_key(item, r, f.trigger), at: f.at });
        }
        let before: &[Held] = item.held.as_deref().map_or(&[], |v| v.as_slice());
        let changed = before.len() != held.len() || before.iter().zip(held.iter()).any(|(a, b)| a != b);
        if changed {
            let calendar = r.map_or_else(|| calendars.default_calendar().clone(), |r| r.calendar.clone());
            let view = derive::View {
                item,
                resolved: r,
                names,
                calendar: &calendar,
                changes: &scratch.changes,
                step_changes: &scratch.step_changes,
                late_limit_ms,
            };
            for (f, h) in scratch.facts.iter().zip(held.iter()) {
                let same = before.iter().find(|b| b.kind == h.kind && b.key == h.key);
                if same.is_none_or(|b| b.at != h.at) {
                    out.push(Effect::Alert(Box::new(fired(&view, f))));
                }
            }
            for b in before {
                if !held.iter().any(|h| h.kind == b.kind && h.key == b.key) {
                    out.push(Effect::Alert(Box::new(retracted(&view, b))));
                }
            }
        }
        for (calendar, year) in scratch.missing.drain(..) {
            if missing_fired.insert((calendar.clone(), year)) {
                out.push(Effect::Alert(Box::new(calendar_missing(calendars, &calendar, year))));
            }
        }
        let next_due = scratch.next_due;
        let item = &mut items[slot];
        if item.closed != scratch.closed {
            item.closed = scratch.closed;
            if item.closed {
                *closed += 1;
            } else {
                *closed -= 1;
            }
        }
        if changed {
            item.held = if held.is_empty() { None } else { Some(Box::new(held.clone())) };
        }
        if changed || events_changed {
            out.push(Effect::ItemChanged { item: ItemRef(slot as u32) });
        }
        if next_due != item.next_due {
            item.next_due = next_due;
            out.push(if next_due == NO_TIMER {
                Effect::CancelTimer { item: ItemRef(slot as u32) }
            } else {
                Effect::SetTimer { item: ItemRef(slot as u32), at: Timestamp(next_due) }
            });
        }
    }
}

/// The text that, with the item and kind, identifies an alert (see [`alert_id`]).
fn trigger_text<'a>(item: &'a Item, r: Option<&'a Resolved>, trigger: Trigger) -> &'a str {
    match trigger {
        Trigger::Event(i) | Trigger::StartedBy(i) => item.event_id(&item.events[i as usize]),
        Trigger::Promised => "promised",
        Trigger::Statutory => "statutory",
        Trigger::Step(k) => r.map_or("?", |r| &r.service.steps[k as usize].name),
    }
}

fn trigger_key(item: &Item, r: Option<&Resolved>, trigger: Trigger) -> u64 {
    trigger_key_of_text(trigger_text(item, r, trigger))
}

fn trigger_key_of_text(text: &str) -> u64 {
    let mut h = FxHasher::default();
    h.write(text.as_bytes());
    h.finish()
}

/// The trigger text of a held alert: the event id, clock name or step name whose key matches.
fn trigger_of_key<'a>(item: &'a Item, r: Option<&'a Resolved>, h: &Held) -> &'a str {
    let mut candidates: Vec<&str> = item.events.iter().map(|e| item.event_id(e)).collect();
    candidates.extend(["promised", "statutory"]);
    if let Some(r) = r {
        candidates.extend(r.service.steps.iter().map(|s| &*s.name));
    }
    candidates.into_iter().find(|t| trigger_key_of_text(t) == h.key).unwrap_or("?")
}

/// An item's alert id: department-qualified, or the legacy form for an item restored
/// from a changelog written before department isolation.
fn item_alert_id(item: &Item, names: &Interner, kind: AlertKind, trigger: &str) -> String {
    if item.legacy_ids {
        legacy_alert_id(item.item_id(), kind, trigger)
    } else {
        alert_id(names.name(item.department), item.item_id(), kind, trigger)
    }
}

fn base_alert(view: &derive::View<'_>, kind: AlertKind, trigger: &str, at: i64) -> Alert {
    let item = view.item;
    Alert {
        alert_id: item_alert_id(item, view.names, kind, trigger),
        status: AlertStatus::Fired,
        item_id: Some(item.item_id().to_owned()),
        service_code: Some(view.names.name(item.service).to_string()).filter(|s| !s.is_empty()),
        department_code: Some(view.names.name(item.department).to_string()),
        kind,
        level: kind.level(),
        triggered_at: Timestamp(at),
        zone: view.calendar.tz(),
        event_id: None,
        message: Bilingual::default(),
        derivation: Bilingual::default(),
    }
}

fn fired(view: &derive::View<'_>, f: &Fact) -> Alert {
    let mut a = base_alert(view, f.kind, trigger_text(view.item, view.resolved, f.trigger), f.at);
    if let Trigger::Event(i) = f.trigger {
        a.event_id = Some(view.item.event_id(&view.item.events[i as usize]).to_owned());
    }
    a.message = derive::message(view, f);
    a.derivation = derive::derivation(view, f);
    a
}

fn retracted(view: &derive::View<'_>, h: &Held) -> Alert {
    let item = view.item;
    let trigger = trigger_of_key(item, view.resolved, h);
    let mut a = base_alert(view, h.kind, trigger, h.at);
    a.status = AlertStatus::Retracted;
    if !h.kind.is_timer() {
        a.event_id = Some(trigger.to_owned());
    }
    let kind_zh = h.kind.zh();
    let id = item.item_id();
    a.message = Bilingual {
        zh: format!("撤销：办件{id}的「{kind_zh}」经后到数据证明不成立"),
        en: format!("Retracted: late data shows that {} no longer holds for item {id}", h.kind.as_str()),
    };
    // The words depend on the alert alone, so that a retraction published again (after
    // a restart, say) is identical to the first.
    a.derivation = Bilingual {
        zh: "按发生时间重排本件全部事件后重新计算，该预警不再成立".to_owned(),
        en: "recomputed from all events of the item in order of occurrence; the alert no longer holds".to_owned(),
    };
    a
}

fn calendar_missing(calendars: &Calendars, calendar: &str, year: i32) -> Alert {
    let cal = calendars.get(calendar).unwrap_or_else(|| calendars.default_calendar());
    let (message, derivation) = derive::calendar_missing(calendar, year);
    Alert {
        // No item, so no department: the id is the same as before department isolation.
        alert_id: legacy_alert_id("", AlertKind::CalendarMissing, &format!("{calendar}/{year}")),
        status: AlertStatus::Fired,
        item_id: None,
        service_code: None,
        department_code: None,
        kind: AlertKind::CalendarMissing,
        level: AlertKind::CalendarMissing.level(),
        triggered_at: cal.start_of_year(year),
        zone: cal.tz(),
        event_id: None,
        message,
        derivation,
    }
}
