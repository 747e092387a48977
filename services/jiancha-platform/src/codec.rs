//! Reading an event record: JSON or protobuf, told apart by the `content-type` header
//! (`application/json` or `application/x-protobuf`), or, without one, by the first
//! non-blank byte (`{` is JSON). Anything that fails becomes a dead-letter reason.

use jiancha_core::Event;
use jiancha_core::event::{InvalidEvent, InvalidReason, parse_json_event};

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
    let invalid = |reason, message: String| InvalidEvent { event_id: None, item_id: None, reason, field: None, message };
    let Some(payload) = payload.filter(|p| !p.is_empty()) else {
        return Err(invalid(InvalidReason::Malformed, "the record has no value".into()));
    };
    if payload.len() > max_bytes {
        return Err(invalid(InvalidReason::TooLarge, format!("the record is {} bytes, over the limit of {max_bytes}", payload.len())));
    }
    match encoding(content_type, payload) {
        Encoding::Json => parse_json_event(payload).map(|e| e.event),
        Encoding::Protobuf => jiancha_proto::decode_event(payload),
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
}
