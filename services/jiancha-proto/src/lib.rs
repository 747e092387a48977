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
use jiancha_core::engine::{HeldAlert, ItemState, StateRef, StoredEvent};
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

/// The changelog value of an item's state, written straight from the engine's borrowed
/// state into `buf`: the bytes of `v1::ItemState::from(state.to_owned()).encode_to_vec()`
/// (a test holds them equal) without building the protobuf structs and their strings —
/// an export that allocated a string per event id and name was a fifth of the live
/// monitor's work. Fields 1–7; the outbox (field 8, the last) is appended by
/// [`encode_outbox`].
pub fn encode_state(state: StateRef<'_>, buf: &mut Vec<u8>) {
    use pb::*;
    put_str(1, state.item_id(), buf);
    if let Some(code) = state.service_code() {
        put_str_always(2, code, buf);
    }
    put_varint(3, u64::from(state.service_from_submitted()), buf);
    put_str(4, state.department_code(), buf);
    for e in state.events() {
        put_message(5, buf, |buf| {
            put_str(1, e.event_id, buf);
            put_varint(2, event_type_value(e.event_type) as u64, buf);
            put_varint(3, e.occurred_at.0 as u64, buf);
            put_varint(4, u64::from(e.delay_ms), buf);
            if let Some(actor) = e.actor {
                put_str_always(5, actor, buf);
            }
            if let Some(text) = e.text {
                put_str_always(6, text, buf);
            }
            put_varint(7, e.number, buf);
            put_varint(8, u64::from(e.blank_reason), buf);
        });
    }
    for h in state.held() {
        put_message(6, buf, |buf| {
            put_varint(1, alert_kind_value(h.kind) as u64, buf);
            put_str(2, h.trigger, buf);
            put_varint(3, h.triggered_at.0 as u64, buf);
        });
    }
    put_varint(7, u64::from(if state.legacy_ids() { LEGACY_IDENTITY } else { DEPARTMENT_IDENTITY }), buf);
}

/// Appends alert updates to an encoded state as its outbox (`ItemState.outbox`, field 8).
pub fn encode_outbox(outbox: &[v1::Alert], buf: &mut Vec<u8>) {
    for alert in outbox {
        prost::encoding::message::encode(8, alert, buf);
    }
}

/// Protobuf fields as prost writes them: proto3 scalars and strings only when not the
/// default, `optional` ones whenever present.
mod pb {
    use prost::encoding::{WireType, encode_key, encode_varint, encoded_len_varint};

    pub fn put_str_always(tag: u32, s: &str, buf: &mut Vec<u8>) {
        encode_key(tag, WireType::LengthDelimited, buf);
        encode_varint(s.len() as u64, buf);
        buf.extend_from_slice(s.as_bytes());
    }

    pub fn put_str(tag: u32, s: &str, buf: &mut Vec<u8>) {
        if !s.is_empty() {
            put_str_always(tag, s, buf);
        }
    }

    pub fn put_varint(tag: u32, v: u64, buf: &mut Vec<u8>) {
        if v != 0 {
            encode_key(tag, WireType::Varint, buf);
            encode_varint(v, buf);
        }
    }

    /// A nested message: its fields are written by `fields`, then their length, known
    /// only then, goes in the byte kept for it in front of them. A message of 128 bytes
    /// or more needs a longer length, and its fields move up to make room.
    pub fn put_message(tag: u32, buf: &mut Vec<u8>, fields: impl FnOnce(&mut Vec<u8>)) {
        encode_key(tag, WireType::LengthDelimited, buf);
        let at = buf.len();
        buf.push(0);
        fields(buf);
        let len = (buf.len() - at - 1) as u64;
        if len < 0x80 {
            buf[at] = len as u8;
            return;
        }
        let mut prefix = [0u8; 10];
        let n = encoded_len_varint(len);
        encode_varint(len, &mut &mut prefix[..]);
        buf[at] = prefix[0];
        buf.splice(at + 1..at + 1, prefix[1..n].iter().copied());
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
    put_state_key(department_code, item_id, &mut key);
    key
}

/// Appends the changelog key of a department's item ([`state_key`]) to `buf`.
pub fn put_state_key(department_code: &str, item_id: &str, buf: &mut Vec<u8>) {
    buf.extend_from_slice(department_code.as_bytes());
    buf.push(0);
    buf.extend_from_slice(item_id.as_bytes());
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
    fn a_nested_message_carries_its_length_however_long_it_is() {
        for len in [0usize, 1, 127, 128, 300, 16_383, 16_384, 70_000] {
            let mut buf = vec![0xAA];
            pb::put_message(5, &mut buf, |buf| buf.extend(std::iter::repeat_n(7u8, len)));
            let mut rest = &buf[1..];
            let key = prost::encoding::decode_varint(&mut rest).unwrap();
            assert_eq!(key, 5 << 3 | 2, "tag 5, length-delimited");
            let decoded = prost::encoding::decode_varint(&mut rest).unwrap();
            assert_eq!(decoded as usize, len);
            assert_eq!(rest, vec![7u8; len].as_slice(), "the fields follow the length, unchanged");
        }
    }

    /// Every kind of field the changelog holds, written directly and through prost: the
    /// same bytes, and they read back to the state exported.
    #[test]
    fn states_encoded_directly_are_prost_s_bytes() {
        use jiancha_core::{Calendars, Catalog, Engine, Replay};
        let calendars = Calendars::builtin();
        let catalog = Catalog::from_toml(include_str!("../../../deploy/demo/catalog.toml"), &calendars).expect("demo catalog");
        let mut replay = Replay::new(Engine::new(std::sync::Arc::new(catalog), calendars));
        let at = |day: u32, hour: u32| format!("2025-03-{day:02}T{hour:02}:00:00.250+08:00");
        let mut alerts = Vec::new();
        let mut line = |item: &str, n: u32, ty: &str, when: String, extra: &str| {
            let text = format!(
                r#"{{"event_id":"{item}-{n:02}","item_id":"{item}","department_code":"SCJG","type":"{ty}","occurred_at":"{when}","actor":"王伟"{extra}}}"#
            );
            let parsed = parse_json_event(text.as_bytes()).expect("valid");
            let arrival = Timestamp(parsed.event.occurred_at.0 + i64::from(n % 3) * 45_000);
            replay.arrive(&parsed.event, arrival, &mut |a| alerts.push(a));
        };
        // Every event type, with texts, numbers, blank reasons, late arrivals of fees,
        // suspensions and extensions; items left to run past their deadlines hold alerts.
        for (i, item) in ["SCJG-20250303-000001", "SCJG-20250303-000002", "SCJG-20250303-000003"].into_iter().enumerate() {
            let d = 3 + i as u32;
            line(item, 1, "SUBMITTED", at(d, 9), r#","service_code":"SCJG-001""#);
            line(item, 2, "CORRECTION_REQUESTED", at(d, 10), r#","materials":["营业执照副本"]"#);
            line(item, 3, "CORRECTION_SUBMITTED", at(d, 11), "");
            line(item, 4, "CORRECTION_REQUESTED", at(d, 12), r#","materials":["场所证明"]"#);
            line(item, 5, "CORRECTION_SUBMITTED", at(d, 13), "");
            line(item, 6, "ACCEPTED", at(d, 14), "");
            line(item, 7, "STEP_COMPLETED", at(d, 15), r#","step":"受理审查""#);
            line(item, 8, "SUSPENDED", at(d + 1, 9), r#","suspension_kind":"INTERNAL_MEETING","expected_days":3"#);
            line(item, 9, "RESUMED", at(d + 7, 9), "");
            line(item, 10, "EXTENDED", at(d + 8, 9), r#","days":40,"approver":"王伟""#);
            line(item, 11, "FEE_CHARGED", at(d + 8, 10), r#","amount_fen":9999999"#);
        }
        line("SCJG-20250303-000004", 1, "SUBMITTED", at(3, 9), r#","service_code":"NO-SUCH""#);
        line("SCJG-20250303-000004", 2, "NOT_ACCEPTED", at(3, 10), r#","reason":" ""#);
        line("SCJG-20250303-000005", 1, "ACCEPTED", at(3, 9), "");
        line("SCJG-20250303-000005", 2, "DECIDED", at(4, 9), r#","outcome":"DENIED","reason":"""#);
        replay.finish(Some(Timestamp::parse_rfc3339("2025-06-30T00:00:00+08:00").unwrap()), &mut |a| alerts.push(a));
        // An item restored from a changelog written before department isolation.
        let first = replay.engine().item_refs().next().expect("an item");
        let mut legacy = replay.engine().export(first).expect("an item");
        legacy.item_id = "SCJG-20250303-LEGACY".into();
        legacy.legacy_ids = true;
        replay.engine_mut().import(&legacy, &mut Vec::new());
        let engine = replay.engine();
        let outbox: Vec<v1::Alert> = alerts.iter().take(3).map(v1::Alert::from).collect();
        let mut held = 0;
        for item in engine.item_refs() {
            let state = engine.export(item).expect("an item");
            held += state.held.len();
            for outbox in [&[][..], &outbox[..]] {
                let mut direct = Vec::new();
                encode_state(engine.state(item).expect("an item"), &mut direct);
                encode_outbox(outbox, &mut direct);
                let mut via_prost = v1::ItemState::from(&state);
                via_prost.outbox = outbox.to_vec();
                assert_eq!(direct, via_prost.encode_to_vec(), "{}", state.item_id);
                assert_eq!(decode_state(&direct).expect("decodes"), state);
            }
        }
        assert_eq!(engine.len(), 6);
        assert!(held > 0 && !alerts.is_empty(), "some items hold alerts");
    }

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
