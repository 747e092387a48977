//! The compact in-memory form of an item: its events (32 bytes each), the text of its
//! ids in one allocation, and the alerts currently held against it.
//!
//! An item keeps its whole history because every deadline is a pure function of it
//! (DOMAIN §3.4): a late event is put in its place and the item re-evaluated.

use crate::alert::AlertKind;
use crate::event::EventType;
use crate::intern::NameId;
use std::cmp::Ordering;

/// `flags` bit: the event's `reason` is absent or blank.
pub(crate) const BLANK_REASON: u8 = 1;

/// No timer pending.
pub(crate) const NO_TIMER: i64 = i64::MAX;

/// One event of an item, as the rules need it.
///
/// `arg` holds the type's own field: SUBMITTED the service code's id; STEP_COMPLETED
/// the step name's id; SUSPENDED `expected_days | lawful kind + 1 << 32 | name id << 40`;
/// EXTENDED `days | approver id << 32`; FEE_CHARGED the amount; DECIDED 0 approved,
/// 1 denied.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ev {
    /// `occurred_at`, milliseconds.
    pub at: i64,
    pub arg: u64,
    /// Byte offset of the event id in the item's text.
    pub id_off: u32,
    /// The actor's id (0 when absent).
    pub actor: NameId,
    /// Arrival minus occurrence, milliseconds, saturated.
    pub delay_ms: u32,
    pub id_len: u16,
    pub ty: EventType,
    pub flags: u8,
}

impl Ev {
    pub fn expected_days(&self) -> u32 {
        self.arg as u32
    }

    /// The lawful suspension kind's index, if the kind is lawful in general (§4.3).
    pub fn lawful_kind(&self) -> Option<u8> {
        match (self.arg >> 32) as u8 {
            0 => None,
            k => Some(k - 1),
        }
    }

    pub fn suspension_name(&self) -> NameId {
        (self.arg >> 40) as NameId
    }

    pub fn days(&self) -> u32 {
        self.arg as u32
    }

    pub fn approver(&self) -> NameId {
        (self.arg >> 32) as NameId
    }

    pub fn denied(&self) -> bool {
        self.arg == 1
    }

    pub fn blank_reason(&self) -> bool {
        self.flags & BLANK_REASON != 0
    }
}

/// An alert currently held against an item: enough to tell a new, moved or retracted one.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Held {
    pub kind: AlertKind,
    /// Hash of the trigger text.
    pub key: u64,
    pub at: i64,
}

/// One item: 64 bytes, aligned to a cache line, so that looking an item up (a random
/// place in hundreds of thousands, for almost every event) reads one line, not two.
#[derive(Debug)]
#[repr(align(64))]
pub(crate) struct Item {
    /// `item_id` followed by every event id.
    pub text: Box<str>,
    /// Events in §3.4 order; exactly as many as held (an item grows by one at a time).
    pub events: Box<[Ev]>,
    /// Alerts in force, when any. Boxed so that an item without alerts pays 8 bytes, not 24.
    #[allow(clippy::box_collection)]
    pub held: Option<Box<Vec<Held>>>,
    /// Interned service code (0 = unknown yet).
    pub service: NameId,
    /// Interned department code.
    pub department: NameId,
    /// The next instant a timer rule may fire, or NO_TIMER.
    pub next_due: i64,
    /// Length of `item_id` in `text`.
    pub id_len: u32,
    /// Whether `service` came from a SUBMITTED.
    pub service_from_submitted: bool,
    /// Whether the item is closed, as of its last evaluation.
    pub closed: bool,
    /// Whether the item was restored from a changelog written before items were
    /// identified by department: its alerts keep the ids they were published under.
    pub legacy_ids: bool,
}

impl Item {
    /// A slot whose item was retired, waiting for reuse: no text, no events.
    pub fn vacant() -> Item {
        Item {
            text: Box::from(""),
            events: Box::default(),
            held: None,
            service: 0,
            department: 0,
            next_due: NO_TIMER,
            id_len: 0,
            service_from_submitted: false,
            closed: false,
            legacy_ids: false,
        }
    }

    /// When the latest of its events arrived, milliseconds (`occurred_at` plus the delay
    /// recorded, which saturates at about 49 days).
    pub fn last_arrival(&self) -> i64 {
        self.events.iter().map(|e| e.at.saturating_add(i64::from(e.delay_ms))).max().unwrap_or(i64::MIN)
    }

    pub fn item_id(&self) -> &str {
        &self.text[..self.id_len as usize]
    }

    pub fn event_id(&self, e: &Ev) -> &str {
        &self.text[e.id_off as usize..e.id_off as usize + e.id_len as usize]
    }

    pub fn has_event(&self, event_id: &str) -> bool {
        // An item's event ids mostly share all but their last characters (`…-01`,
        // `…-02`): the length and the last byte tell most apart without comparing the rest.
        let (len, last) = (event_id.len(), event_id.as_bytes().last());
        self.events
            .iter()
            .any(|e| usize::from(e.id_len) == len && self.event_id(e).as_bytes().last() == last && self.event_id(e) == event_id)
    }

    /// Inserts an event in §3.4 order (`occurred_at`, then type, then event id),
    /// appending its id to the text.
    pub fn insert(&mut self, ev: Ev, event_id: &str) {
        self.insert_all(&[(ev, event_id)]);
    }

    /// Inserts events as [`Item::insert`] does each, growing the text and the event
    /// list once for all of them (a restored item's events come all at once).
    #[inline]
    pub fn insert_all(&mut self, new: &[(Ev, &str)]) {
        // Grown in place where the allocator's block has room (a reallocation, not a
        // new text and a copy), and still exactly as long as they hold.
        let mut text = String::from(std::mem::take(&mut self.text));
        text.reserve_exact(new.iter().map(|(_, id)| id.len()).sum());
        let mut events = std::mem::take(&mut self.events).into_vec();
        events.reserve_exact(new.len());
        for &(mut ev, event_id) in new {
            ev.id_off = text.len() as u32;
            ev.id_len = event_id.len() as u16;
            text.push_str(event_id);
            let id_of = |e: &Ev| &text[e.id_off as usize..e.id_off as usize + e.id_len as usize];
            // The ids compared only where instant and type tie.
            let pos =
                events.partition_point(|e| e.at.cmp(&ev.at).then(e.ty.cmp(&ev.ty)).then_with(|| id_of(e).cmp(event_id)) == Ordering::Less);
            events.insert(pos, ev);
        }
        self.text = text.into_boxed_str();
        self.events = events.into_boxed_slice();
    }

    /// Bytes on the heap owned by this item (text, events, held alerts).
    pub fn heap_bytes(&self) -> usize {
        self.text.len()
            + std::mem::size_of_val::<[Ev]>(&self.events)
            + self.held.as_ref().map_or(0, |h| std::mem::size_of::<Vec<Held>>() + h.capacity() * std::mem::size_of::<Held>())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_stay_compact() {
        assert_eq!(std::mem::size_of::<Ev>(), 32);
        assert_eq!(std::mem::size_of::<Item>(), 64);
    }
}
