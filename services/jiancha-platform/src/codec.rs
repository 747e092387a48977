//! Reading an event record: JSON or protobuf, told apart by the `content-type` header
//! (`application/json` or `application/x-protobuf`), or, without one, by the first
//! non-blank byte (`{` is JSON). Anything that fails becomes a dead-letter reason.

use jiancha_core::Event;
use jiancha_core::event::{InvalidEvent, InvalidReason, JsonEvent, parse_json_event_into};

/// The header naming the encoding of a record value.
pub const CONTENT_TYPE: &str = "content-type";
/// JSON form of DOMAIN §2.
pub const JSON: &str = "application/json";
/// `jiancha.v1.Event`.
pub const PROTOBUF: &str = "application/x-protobuf";

/// The encoding of a record.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Encoding {
    /// JSON.
    Json,
    /// Protobuf.
    Protobuf,
}

/// Decides the encoding from the header, else from the bytes.
pub fn encoding(content_type: Option<&[u8]>, payload: &[u8]) -> Encoding {
    match content_type {
        Some(ct) if ct.starts_with(JSON.as_bytes()) => Encoding::Json,
        Some(ct) if ct.starts_with(PROTOBUF.as_bytes()) => Encoding::Protobuf,
        _ => match payload.iter().find(|b| !b.is_ascii_whitespace()) {
            Some(b'{') => Encoding::Json,
            _ => Encoding::Protobuf,
        },
    }
}

/// Reads a record value into a valid event, or says why it is invalid.
pub fn decode(content_type: Option<&[u8]>, payload: Option<&[u8]>, max_bytes: usize) -> Result<Event, InvalidEvent> {
    let mut read = JsonEvent::blank();
    decode_into(content_type, payload, max_bytes, &mut read).map(|()| read.event)
}

/// [`decode`] into an event read before, whose texts' buffers are used again where the
/// new texts fit (JSON; see [`parse_json_event_into`]): a consumer reads each record into
/// a slot of a batch it has applied, instead of allocating every event's texts and
/// freeing the last one's. `into` holds nothing of use after an error.
pub fn decode_into(
    content_type: Option<&[u8]>,
    payload: Option<&[u8]>,
    max_bytes: usize,
    into: &mut JsonEvent,
) -> Result<(), InvalidEvent> {
    let invalid = |reason, message: String| InvalidEvent { event_id: None, item_id: None, reason, field: None, message };
    let Some(payload) = payload.filter(|p| !p.is_empty()) else {
        return Err(invalid(InvalidReason::Malformed, "the record has no value".into()));
    };
    if payload.len() > max_bytes {
        return Err(invalid(InvalidReason::TooLarge, format!("the record is {} bytes, over the limit of {max_bytes}", payload.len())));
    }
    match encoding(content_type, payload) {
        Encoding::Json => parse_json_event_into(payload, into),
        Encoding::Protobuf => {
            into.event = jiancha_proto::decode_event(payload)?;
            into.received_at = None;
            Ok(())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sniffs_and_honours_the_header() {
        assert_eq!(encoding(None, b"  {\"a\":1}"), Encoding::Json);
        assert_eq!(encoding(None, b"\x0a\x02e1"), Encoding::Protobuf);
        assert_eq!(encoding(Some(b"application/json; charset=utf-8"), b"\x0a"), Encoding::Json);
        assert_eq!(decode(None, Some(b"x"), 0).unwrap_err().reason, InvalidReason::TooLarge);
        assert_eq!(decode(None, None, 10).unwrap_err().reason, InvalidReason::Malformed);
    }

    /// A slot read into again and again, with records of every kind in between, holds
    /// what a fresh decode gives: nothing of an earlier record stays.
    #[test]
    fn decoding_into_a_used_slot_gives_what_a_fresh_decode_gives() {
        use prost::Message as _;
        let base = r#""event_id":"E-1","item_id":"IT-1","department_code":"SCJG","occurred_at":"2025-03-03T09:00:00+08:00""#;
        let long = r#""event_id":"E-000000000000000000000000000000000002","item_id":"IT-00000000000000000000000000002","department_code":"WJW","occurred_at":"2025-03-04T10:00:00+08:00""#;
        let submitted = format!(r#"{{{long},"type":"SUBMITTED","service_code":"WJW-001","actor":"张三","seq":4}}"#);
        let protobuf = jiancha_proto::v1::Event::from(&decode(None, Some(submitted.as_bytes()), 1 << 20).unwrap()).encode_to_vec();
        let records: Vec<(Option<&[u8]>, Vec<u8>)> = vec![
            (None, submitted.clone().into_bytes()),
            (None, format!(r#"{{{base},"type":"CORRECTION_REQUESTED","actor":"李四","materials":["身份证","营业执照"]}}"#).into_bytes()),
            (None, format!(r#"{{{base},"type":"NOT_ACCEPTED","actor":"a","reason":"材料不全"}}"#).into_bytes()),
            (None, b"{\"event_id\":".to_vec()),
            (Some(PROTOBUF.as_bytes()), protobuf),
            (None, format!(r#"{{{base},"type":"ACCEPTED","actor":"b"}}"#).into_bytes()),
            (Some(JSON.as_bytes()), format!(r#"{{{base},"type":"SUBMITTED"}}"#).into_bytes()),
            (None, format!(r#"{{{base},"type":"WITHDRAWN"}}"#).into_bytes()),
        ];
        let mut slot = JsonEvent::blank();
        for (content_type, payload) in &records {
            let fresh = decode(*content_type, Some(payload), 1 << 20);
            let into = decode_into(*content_type, Some(payload), 1 << 20, &mut slot);
            match fresh {
                Ok(event) => {
                    assert!(into.is_ok(), "{}", String::from_utf8_lossy(payload));
                    assert_eq!(slot.event, event, "{}", String::from_utf8_lossy(payload));
                }
                Err(e) => assert_eq!(into.unwrap_err().reason, e.reason),
            }
        }
    }
}
