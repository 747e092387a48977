//! The `jiancha.v1` protobuf contract (generated from `proto/`) and its conversions to
//! and from the domain types. Generated types carry no serde derives; the JSON form is
//! the domain's (see `jiancha_core::event`).

#[allow(missing_docs, missing_debug_implementations, clippy::all)]
pub mod cursor;
pub mod v1 {
    include!(concat!(env!("OUT_DIR"), "/jiancha.v1.rs"));
}

/// The encoded `FileDescriptorSet` of every `jiancha.v1` file, for server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/jiancha_v1_descriptor.bin"));

use jiancha_core::Timestamp;
use jiancha_core::alert::{Alert, AlertKind, AlertStatus, Level};
use jiancha_core::engine::{HeldAlert, ItemState, StoredEvent};
use jiancha_core::event::{Event, EventBody, EventType, InvalidEvent, InvalidReason, Outcome, RawEvent};
use prost::Message;
use std::borrow::Cow;

/// Reads a protobuf-encoded event and validates it against DOMAIN §2.
pub fn decode_event(bytes: &[u8]) -> Result<Event, InvalidEvent> {
    let msg = v1::Event::decode(bytes).map_err(|e| InvalidEvent {
        event_id: None,
        item_id: None,
        reason: InvalidReason::Malformed,
        field: None,
        message: format!("not a jiancha.v1.Event protobuf message: {e}"),
    })?;
    Event::try_from(msg)
}

impl From<v1::Event> for RawEvent<'static> {
    fn from(m: v1::Event) -> RawEvent<'static> {
        let type_name = match v1::EventType::try_from(m.r#type) {
            Ok(v1::EventType::Unspecified) => None,
            Ok(t) => Some(Cow::Borrowed(t.as_str_name())),
            Err(_) => Some(Cow::Owned(format!("enum value {}", m.r#type))),
        };
        let outcome = match v1::Outcome::try_from(m.outcome) {
            Ok(v1::Outcome::Unspecified) => None,
            Ok(o) => Some(Cow::Borrowed(o.as_str_name())),
            Err(_) => Some(Cow::Owned(format!("enum value {}", m.outcome))),
        };
        let non_empty = |s: String| Some(Cow::Owned(s)).filter(|s: &Cow<'_, str>| !s.is_empty());
        RawEvent {
            event_id: non_empty(m.event_id),
            item_id: non_empty(m.item_id),
            service_code: m.service_code.map(Cow::Owned),
            department_code: non_empty(m.department_code),
            type_name,
            occurred_at: non_empty(m.occurred_at),
            actor: m.actor.map(Cow::Owned),
            seq: m.seq.map(i128::from),
            materials: Some(m.materials.into_iter().map(Cow::Owned).collect::<Vec<_>>()).filter(|v| !v.is_empty()),
            reason: m.reason.map(Cow::Owned),
            step: m.step.map(Cow::Owned),
            suspension_kind: m.suspension_kind.map(Cow::Owned),
            expected_days: m.expected_days.map(i128::from),
            days: m.days.map(i128::from),
            approver: m.approver.map(Cow::Owned),
            amount_fen: m.amount_fen.map(i128::from),
            outcome,
            received_at: None,
        }
    }
}

impl TryFrom<v1::Event> for Event {
    type Error = InvalidEvent;

    fn try_from(m: v1::Event) -> Result<Event, InvalidEvent> {
        RawEvent::from(m).validate()
    }
}

impl From<&Event> for v1::Event {
    fn from(e: &Event) -> v1::Event {
        let mut m = v1::Event {
            event_id: e.event_id.clone(),
            item_id: e.item_id.clone(),
            service_code: e.service_code.clone(),
            department_code: e.department_code.clone(),
            r#type: v1::EventType::from_str_name(e.event_type().as_str()).map_or(0, |t| t as i32),
            occurred_at: e.occurred_at.to_rfc3339_in(jiancha_core::time::Tz::UTC),
            actor: e.actor.clone(),
            seq: e.seq,
            ..Default::default()
        };
        match &e.body {
            EventBody::CorrectionRequested { materials } => m.materials = materials.clone(),
            EventBody::NotAccepted { reason } => m.reason = reason.clone(),
            EventBody::StepCompleted { step } => m.step = Some(step.clone()),
            EventBody::Suspended { suspension_kind, expected_days } => {
                m.suspension_kind = Some(suspension_kind.clone());
                m.expected_days = Some(i64::from(*expected_days));
            }
            EventBody::Extended { days, approver } => {
                m.days = Some(i64::from(*days));
                m.approver = Some(approver.clone());
            }
            EventBody::FeeCharged { amount_fen } => m.amount_fen = Some(*amount_fen as i64),
            EventBody::Decided { outcome, reason } => {
                m.outcome = match outcome {
                    Outcome::Approved => v1::Outcome::Approved,
                    Outcome::Denied => v1::Outcome::Denied,
                } as i32;
                m.reason = reason.clone();
            }
            EventBody::Submitted
            | EventBody::CorrectionSubmitted
            | EventBody::Accepted
            | EventBody::Resumed
            | EventBody::Delivered
            | EventBody::Withdrawn => {}
        }
        m
    }
}

impl From<&Alert> for v1::Alert {
    fn from(a: &Alert) -> v1::Alert {
        v1::Alert {
            alert_id: a.alert_id.clone(),
            status: match a.status {
                AlertStatus::Fired => v1::AlertStatus::Fired,
                AlertStatus::Retracted => v1::AlertStatus::Retracted,
            } as i32,
            item_id: a.item_id.clone(),
            service_code: a.service_code.clone(),
            department_code: a.department_code.clone(),
            kind: alert_kind_value(a.kind),
            level: match a.level {
                Level::Warning => v1::Level::Warning,
                Level::Yellow => v1::Level::Yellow,
                Level::Red => v1::Level::Red,
            } as i32,
            triggered_at: a.triggered_at.to_rfc3339_in(a.zone),
            event_id: a.event_id.clone(),
            message: Some(v1::Bilingual { zh: a.message.zh.clone(), en: a.message.en.clone() }),
            derivation: Some(v1::Bilingual { zh: a.derivation.zh.clone(), en: a.derivation.en.clone() }),
        }
    }
}

impl From<ItemState> for v1::ItemState {
    /// The changelog record of an exported state, its texts moved.
    fn from(s: ItemState) -> v1::ItemState {
        v1::ItemState {
            item_id: s.item_id,
            service_code: s.service_code,
            service_from_submitted: s.service_from_submitted,
            department_code: s.department_code,
            events: s
                .events
                .into_iter()
                .map(|e| v1::StoredEvent {
                    event_id: e.event_id,
                    r#type: event_type_value(e.event_type),
                    occurred_ms: e.occurred_at.0,
                    delay_ms: e.delay_ms,
                    actor: e.actor,
                    text: e.text,
                    number: e.number,
                    blank_reason: e.blank_reason,
                })
                .collect(),
            held: s
                .held
                .into_iter()
                .map(|h| v1::HeldAlert { kind: alert_kind_value(h.kind), trigger: h.trigger, triggered_ms: h.triggered_at.0 })
                .collect(),
            identity: if s.legacy_ids { LEGACY_IDENTITY } else { DEPARTMENT_IDENTITY },
            outbox: Vec::new(),
        }
    }
}

impl From<&ItemState> for v1::ItemState {
    fn from(s: &ItemState) -> v1::ItemState {
        v1::ItemState::from(s.clone())
    }
}

/// `ItemState.identity` of an item whose alert ids name its department.
pub const DEPARTMENT_IDENTITY: u32 = 2;
/// `ItemState.identity` of a record written before department isolation.
pub const LEGACY_IDENTITY: u32 = 0;

/// The changelog key of the record a monitor writes to a partition when it hands the
/// partition over cleanly: every alert update before it was published, so the next
/// owner need not publish outboxes again. Not an item: readers skip it.
pub const HANDOVER_KEY: &[u8] = b"\0jiancha/clean-handover";

/// The changelog key of a department's item: its department code, NUL, its item id.
/// Department codes never hold a NUL (refused at the edge), so keys never collide.
pub fn state_key(department_code: &str, item_id: &str) -> Vec<u8> {
    let mut key = Vec::with_capacity(department_code.len() + 1 + item_id.len());
    key.extend_from_slice(department_code.as_bytes());
    key.push(0);
    key.extend_from_slice(item_id.as_bytes());
    key
}

/// The department and item id of a changelog key made by [`state_key`]; None for a key of
/// another form (one written before department isolation, say).
pub fn parse_state_key(key: &[u8]) -> Option<(&str, &str)> {
    let text = std::str::from_utf8(key).ok()?;
    let (department, item_id) = text.split_once('\0')?;
    (!department.is_empty() && !item_id.is_empty()).then_some((department, item_id))
}

/// Why a changelog record could not be read.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// Not a `jiancha.v1.ItemState` message.
    #[error("not a jiancha.v1.ItemState message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// An enum value this version does not know.
    #[error("item {item}: unknown {field} value {value}")]
    Enum {
        /// The item.
        item: String,
        /// The field.
        field: &'static str,
        /// The value.
        value: i32,
    },
}

/// Reads a changelog record.
pub fn decode_state(bytes: &[u8]) -> Result<ItemState, StateError> {
    let m = v1::ItemState::decode(bytes)?;
    let mut events = Vec::with_capacity(m.events.len());
    for e in m.events {
        let event_type = v1::EventType::try_from(e.r#type)
            .ok()
            .and_then(|t| EventType::parse(t.as_str_name()))
            .ok_or(StateError::Enum { item: m.item_id.clone(), field: "type", value: e.r#type })?;
        events.push(StoredEvent {
            event_id: e.event_id,
            event_type,
            occurred_at: Timestamp(e.occurred_ms),
            delay_ms: e.delay_ms,
            actor: e.actor,
            text: e.text,
            number: e.number,
            blank_reason: e.blank_reason,
        });
    }
    let mut held = Vec::with_capacity(m.held.len());
    for h in m.held {
        let kind = alert_kind(h.kind).ok_or(StateError::Enum { item: m.item_id.clone(), field: "kind", value: h.kind })?;
        held.push(HeldAlert { kind, trigger: h.trigger, triggered_at: Timestamp(h.triggered_ms) });
    }
    Ok(ItemState {
        item_id: m.item_id,
        service_code: m.service_code,
        service_from_submitted: m.service_from_submitted,
        department_code: m.department_code,
        events,
        held,
        legacy_ids: m.identity == LEGACY_IDENTITY,
    })
}

/// The protobuf value of a domain kind.
pub fn alert_kind_value(kind: AlertKind) -> i32 {
    v1::AlertKind::from_str_name(kind.as_str()).map_or(0, |k| k as i32)
}

/// The protobuf value of an event type (a match, not a lookup by name: a changelog
/// record carries one per stored event).
pub fn event_type_value(t: EventType) -> i32 {
    let v = match t {
        EventType::Submitted => v1::EventType::Submitted,
        EventType::CorrectionRequested => v1::EventType::CorrectionRequested,
        EventType::CorrectionSubmitted => v1::EventType::CorrectionSubmitted,
        EventType::Accepted => v1::EventType::Accepted,
        EventType::NotAccepted => v1::EventType::NotAccepted,
        EventType::StepCompleted => v1::EventType::StepCompleted,
        EventType::Suspended => v1::EventType::Suspended,
        EventType::Resumed => v1::EventType::Resumed,
        EventType::Extended => v1::EventType::Extended,
        EventType::FeeCharged => v1::EventType::FeeCharged,
        EventType::Decided => v1::EventType::Decided,
        EventType::Delivered => v1::EventType::Delivered,
        EventType::Withdrawn => v1::EventType::Withdrawn,
    };
    v as i32
}

/// The domain kind of a protobuf kind value.
pub fn alert_kind(value: i32) -> Option<AlertKind> {
    v1::AlertKind::try_from(value).ok().and_then(|k| AlertKind::parse(k.as_str_name()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jiancha_core::event::parse_json_event;

    #[test]
    fn every_domain_name_exists_in_the_proto_enums() {
        for t in EventType::ALL {
            let by_name = v1::EventType::from_str_name(t.as_str()).unwrap_or_else(|| panic!("{t} not in the proto enum"));
            assert_eq!(event_type_value(t), by_name as i32, "{t}");
        }
        for k in AlertKind::ALL {
            let value = v1::AlertKind::from_str_name(k.as_str()).expect("kind in proto") as i32;
            assert_eq!(alert_kind_value(*k), value);
            assert_eq!(alert_kind(value), Some(*k));
        }
    }

    #[test]
    fn json_and_protobuf_forms_map_one_to_one() {
        let lines = [
            r#"{"event_id":"e1","item_id":"i","service_code":"S","department_code":"D","type":"SUBMITTED","occurred_at":"2025-03-03T09:00:00+08:00","seq":1}"#,
            r#"{"event_id":"e2","item_id":"i","department_code":"D","type":"CORRECTION_REQUESTED","occurred_at":"2025-03-03T09:00:00+08:00","actor":"a","materials":["x","y"]}"#,
            r#"{"event_id":"e3","item_id":"i","department_code":"D","type":"SUSPENDED","occurred_at":"2025-03-03T09:00:00+08:00","actor":"a","suspension_kind":"HEARING","expected_days":5}"#,
            r#"{"event_id":"e4","item_id":"i","department_code":"D","type":"EXTENDED","occurred_at":"2025-03-03T09:00:00+08:00","actor":"a","days":5,"approver":""}"#,
            r#"{"event_id":"e5","item_id":"i","department_code":"D","type":"FEE_CHARGED","occurred_at":"2025-03-03T09:00:00+08:00","actor":"a","amount_fen":500}"#,
            r#"{"event_id":"e6","item_id":"i","department_code":"D","type":"DECIDED","occurred_at":"2025-03-03T09:00:00+08:00","actor":"a","outcome":"DENIED","reason":"不符合"}"#,
            r#"{"event_id":"e7","item_id":"i","department_code":"D","type":"NOT_ACCEPTED","occurred_at":"2025-03-03T09:00:00+08:00","actor":"a"}"#,
        ];
        for line in lines {
            let event = parse_json_event(line.as_bytes()).unwrap().event;
            let bytes = v1::Event::from(&event).encode_to_vec();
            assert_eq!(decode_event(&bytes).unwrap(), event, "{line}");
        }
    }

    #[test]
    fn item_state_round_trips() {
        let state = ItemState {
            item_id: "I".into(),
            service_code: Some("S".into()),
            service_from_submitted: true,
            department_code: "D".into(),
            events: vec![StoredEvent {
                event_id: "e1".into(),
                event_type: EventType::Suspended,
                occurred_at: Timestamp(1_700_000_000_000),
                delay_ms: 42,
                actor: Some("甲".into()),
                text: Some("HEARING".into()),
                number: 5,
                blank_reason: false,
            }],
            held: vec![HeldAlert {
                kind: AlertKind::PromisedOverdue,
                trigger: "promised".into(),
                triggered_at: Timestamp(1_700_100_000_000),
            }],
            legacy_ids: false,
        };
        let bytes = v1::ItemState::from(&state).encode_to_vec();
        assert_eq!(decode_state(&bytes).unwrap(), state);
        assert!(decode_state(b"\xff\xff").is_err());
        // A record written before department isolation has no identity: its alerts keep
        // their old ids.
        let mut old = v1::ItemState::from(&state);
        old.identity = LEGACY_IDENTITY;
        assert!(decode_state(&old.encode_to_vec()).unwrap().legacy_ids);
        assert_eq!(state_key("D", "I"), b"D\0I");
    }

    #[test]
    fn invalid_protobuf_is_refused_with_a_reason() {
        assert_eq!(decode_event(b"\xff\xff\xff").unwrap_err().reason, InvalidReason::Malformed);
        let good = v1::Event {
            event_id: "e".into(),
            item_id: "i".into(),
            department_code: "D".into(),
            service_code: Some("S".into()),
            r#type: v1::EventType::Submitted as i32,
            occurred_at: "2025-03-03T09:00:00+08:00".into(),
            ..Default::default()
        };
        let bytes = good.encode_to_vec();
        assert!(decode_event(&bytes).is_ok());
        assert_eq!(decode_event(&bytes[..bytes.len() - 3]).unwrap_err().reason, InvalidReason::Malformed, "truncated");
        let unknown = v1::Event { r#type: 99, ..good.clone() };
        let err = decode_event(&unknown.encode_to_vec()).unwrap_err();
        assert_eq!((err.reason, err.field), (InvalidReason::UnknownEnum, Some("type")));
        let no_item = v1::Event { item_id: String::new(), ..good };
        assert_eq!(decode_event(&no_item.encode_to_vec()).unwrap_err().field, Some("item_id"));
    }
}
