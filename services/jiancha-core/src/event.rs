//! Approval events (DOMAIN §2): the domain type, and validation of raw input into it.
//!
//! Both wire forms — JSON lines and protobuf — are first read into a [`RawEvent`], whose
//! fields are all optional, and [`RawEvent::validate`] applies every rule of §2 once. An
//! event that breaks a rule becomes an [`InvalidEvent`] naming the field and the rule.

use crate::time::Timestamp;
use serde_json::Value;
use std::borrow::Cow;
use std::fmt;

mod line;

/// Longest `event_id` and `item_id`, in characters.
pub const MAX_ID_CHARS: usize = 128;
/// Longest free-text field (actor, reason, step, …), in characters.
pub const MAX_TEXT_CHARS: usize = 4096;

/// The type of an event. The declaration order is the order of §2's table, which breaks
/// ties between events at the same instant (§3.4).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
#[repr(u8)]
pub enum EventType {
    /// 收件: the application was received.
    Submitted,
    /// 补正告知: one-time notice of missing materials.
    CorrectionRequested,
    /// 补正材料收到: the applicant supplied the materials.
    CorrectionSubmitted,
    /// 受理.
    Accepted,
    /// 不予受理.
    NotAccepted,
    /// A workflow step finished.
    StepCompleted,
    /// A special procedure starts (clock paused if lawful).
    Suspended,
    /// The special procedure ends.
    Resumed,
    /// The decision period is extended.
    Extended,
    /// A fee was charged.
    FeeCharged,
    /// 准予/不予许可.
    Decided,
    /// 送达/发证.
    Delivered,
    /// The applicant withdrew.
    Withdrawn,
}

impl EventType {
    /// Every type, in §2 order.
    pub const ALL: [EventType; 13] = [
        EventType::Submitted,
        EventType::CorrectionRequested,
        EventType::CorrectionSubmitted,
        EventType::Accepted,
        EventType::NotAccepted,
        EventType::StepCompleted,
        EventType::Suspended,
        EventType::Resumed,
        EventType::Extended,
        EventType::FeeCharged,
        EventType::Decided,
        EventType::Delivered,
        EventType::Withdrawn,
    ];

    /// The upper-case name used on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            EventType::Submitted => "SUBMITTED",
            EventType::CorrectionRequested => "CORRECTION_REQUESTED",
            EventType::CorrectionSubmitted => "CORRECTION_SUBMITTED",
            EventType::Accepted => "ACCEPTED",
            EventType::NotAccepted => "NOT_ACCEPTED",
            EventType::StepCompleted => "STEP_COMPLETED",
            EventType::Suspended => "SUSPENDED",
            EventType::Resumed => "RESUMED",
            EventType::Extended => "EXTENDED",
            EventType::FeeCharged => "FEE_CHARGED",
            EventType::Decided => "DECIDED",
            EventType::Delivered => "DELIVERED",
            EventType::Withdrawn => "WITHDRAWN",
        }
    }

    /// The Chinese name used in messages.
    pub fn zh(self) -> &'static str {
        match self {
            EventType::Submitted => "收件",
            EventType::CorrectionRequested => "补正告知",
            EventType::CorrectionSubmitted => "补正材料收到",
            EventType::Accepted => "受理",
            EventType::NotAccepted => "不予受理",
            EventType::StepCompleted => "环节办结",
            EventType::Suspended => "特别程序挂起",
            EventType::Resumed => "特别程序恢复",
            EventType::Extended => "延期",
            EventType::FeeCharged => "收费",
            EventType::Decided => "作出决定",
            EventType::Delivered => "送达",
            EventType::Withdrawn => "撤回申请",
        }
    }

    /// Reads the wire name.
    pub fn parse(text: &str) -> Option<EventType> {
        EventType::ALL.into_iter().find(|t| t.as_str() == text)
    }

    /// Whether the field `actor` may be absent on this type.
    pub fn actor_optional(self) -> bool {
        matches!(self, EventType::Submitted | EventType::CorrectionSubmitted | EventType::Withdrawn)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The outcome of a decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// 准予许可.
    Approved,
    /// 不予许可.
    Denied,
}

impl Outcome {
    /// The upper-case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Approved => "APPROVED",
            Outcome::Denied => "DENIED",
        }
    }
}

/// The lawful kinds of suspension (ALL art. 45, DOMAIN §4.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum LawfulSuspension {
    /// 听证.
    Hearing,
    /// 招标.
    Tender,
    /// 拍卖.
    Auction,
    /// 检验.
    Inspection,
    /// 检测.
    Testing,
    /// 检疫.
    Quarantine,
    /// 鉴定.
    Appraisal,
    /// 专家评审.
    ExpertReview,
}

impl LawfulSuspension {
    /// Every lawful kind.
    pub const ALL: [LawfulSuspension; 8] = [
        LawfulSuspension::Hearing,
        LawfulSuspension::Tender,
        LawfulSuspension::Auction,
        LawfulSuspension::Inspection,
        LawfulSuspension::Testing,
        LawfulSuspension::Quarantine,
        LawfulSuspension::Appraisal,
        LawfulSuspension::ExpertReview,
    ];

    /// The upper-case wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            LawfulSuspension::Hearing => "HEARING",
            LawfulSuspension::Tender => "TENDER",
            LawfulSuspension::Auction => "AUCTION",
            LawfulSuspension::Inspection => "INSPECTION",
            LawfulSuspension::Testing => "TESTING",
            LawfulSuspension::Quarantine => "QUARANTINE",
            LawfulSuspension::Appraisal => "APPRAISAL",
            LawfulSuspension::ExpertReview => "EXPERT_REVIEW",
        }
    }

    /// The Chinese name.
    pub fn zh(self) -> &'static str {
        match self {
            LawfulSuspension::Hearing => "听证",
            LawfulSuspension::Tender => "招标",
            LawfulSuspension::Auction => "拍卖",
            LawfulSuspension::Inspection => "检验",
            LawfulSuspension::Testing => "检测",
            LawfulSuspension::Quarantine => "检疫",
            LawfulSuspension::Appraisal => "鉴定",
            LawfulSuspension::ExpertReview => "专家评审",
        }
    }

    /// Reads the wire name.
    pub fn parse(text: &str) -> Option<LawfulSuspension> {
        LawfulSuspension::ALL.into_iter().find(|k| k.as_str() == text)
    }

    /// The bit of this kind in a set of kinds.
    pub fn bit(self) -> u16 {
        1 << (self as u8)
    }
}

/// A valid approval event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Event {
    /// Unique per item; a repeat is a duplicate.
    pub event_id: String,
    /// The item (办件编号) the event belongs to; the Kafka key.
    pub item_id: String,
    /// The service (事项编码); required on SUBMITTED.
    pub service_code: Option<String>,
    /// The implementing department.
    pub department_code: String,
    /// When it happened at the department.
    pub occurred_at: Timestamp,
    /// The official who did it (经办人); absent only where §2 allows.
    pub actor: Option<String>,
    /// Per-item sequence number from the source.
    pub seq: Option<u64>,
    /// The type and its own fields.
    pub body: EventBody,
}

/// The type of an event with the fields that belong to it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventBody {
    /// See [`EventType::Submitted`].
    Submitted,
    /// See [`EventType::CorrectionRequested`].
    CorrectionRequested {
        /// The missing materials, non-empty.
        materials: Vec<String>,
    },
    /// See [`EventType::CorrectionSubmitted`].
    CorrectionSubmitted,
    /// See [`EventType::Accepted`].
    Accepted,
    /// See [`EventType::NotAccepted`].
    NotAccepted {
        /// The stated reason; blank raises REASON_MISSING.
        reason: Option<String>,
    },
    /// See [`EventType::StepCompleted`].
    StepCompleted {
        /// The step's name as in the catalog.
        step: String,
    },
    /// See [`EventType::Suspended`].
    Suspended {
        /// A §4.3 kind, or any other text (then irregular).
        suspension_kind: String,
        /// Expected length in working days, > 0.
        expected_days: u32,
    },
    /// See [`EventType::Resumed`].
    Resumed,
    /// See [`EventType::Extended`].
    Extended {
        /// Days added, > 0.
        days: u32,
        /// Who approved it; empty is irregular.
        approver: String,
    },
    /// See [`EventType::FeeCharged`].
    FeeCharged {
        /// The amount in fen.
        amount_fen: u64,
    },
    /// See [`EventType::Decided`].
    Decided {
        /// Approved or denied.
        outcome: Outcome,
        /// The stated reason; blank on a denial raises REASON_MISSING.
        reason: Option<String>,
    },
    /// See [`EventType::Delivered`].
    Delivered,
    /// See [`EventType::Withdrawn`].
    Withdrawn,
}

impl EventBody {
    /// The type of this body.
    pub fn event_type(&self) -> EventType {
        match self {
            EventBody::Submitted => EventType::Submitted,
            EventBody::CorrectionRequested { .. } => EventType::CorrectionRequested,
            EventBody::CorrectionSubmitted => EventType::CorrectionSubmitted,
            EventBody::Accepted => EventType::Accepted,
            EventBody::NotAccepted { .. } => EventType::NotAccepted,
            EventBody::StepCompleted { .. } => EventType::StepCompleted,
            EventBody::Suspended { .. } => EventType::Suspended,
            EventBody::Resumed => EventType::Resumed,
            EventBody::Extended { .. } => EventType::Extended,
            EventBody::FeeCharged { .. } => EventType::FeeCharged,
            EventBody::Decided { .. } => EventType::Decided,
            EventBody::Delivered => EventType::Delivered,
            EventBody::Withdrawn => EventType::Withdrawn,
        }
    }
}

impl Event {
    /// An event with empty texts, to be read into ([`parse_json_event_into`]).
    fn blank() -> Event {
        Event {
            event_id: String::new(),
            item_id: String::new(),
            service_code: None,
            department_code: String::new(),
            occurred_at: Timestamp(0),
            actor: None,
            seq: None,
            body: EventBody::Submitted,
        }
    }

    /// The type of this event.
    pub fn event_type(&self) -> EventType {
        self.body.event_type()
    }
}

/// Machine-readable reason an event is invalid; the dead-letter header and the replay's
/// stderr carry it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum InvalidReason {
    /// The bytes are not a JSON object (or not a protobuf message).
    Malformed,
    /// A required field is absent, null or blank.
    MissingField,
    /// A field has the wrong JSON type.
    WrongType,
    /// An enum field has a value the contract does not define.
    UnknownEnum,
    /// A timestamp is not RFC 3339 with an offset.
    BadTimestamp,
    /// A value breaks its rule (length, range, sign, emptiness).
    OutOfRange,
    /// The record is larger than the configured limit.
    TooLarge,
    /// The event names another department than the one its input topic belongs to
    /// (DOMAIN §2, department isolation).
    DepartmentMismatch,
    /// The event is not a SUBMITTED, occurred before the retention window, and its item is
    /// not held: it was closed and removed after the window (docs/operations.md#retention),
    /// so its history is no longer there to apply the event to.
    ItemRetired,
}

impl InvalidReason {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            InvalidReason::Malformed => "MALFORMED",
            InvalidReason::MissingField => "MISSING_FIELD",
            InvalidReason::WrongType => "WRONG_TYPE",
            InvalidReason::UnknownEnum => "UNKNOWN_ENUM",
            InvalidReason::BadTimestamp => "BAD_TIMESTAMP",
            InvalidReason::OutOfRange => "OUT_OF_RANGE",
            InvalidReason::TooLarge => "TOO_LARGE",
            InvalidReason::DepartmentMismatch => "DEPARTMENT_MISMATCH",
            InvalidReason::ItemRetired => "ITEM_RETIRED",
        }
    }
}

/// An event refused by validation, with the field and rule it broke.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", reason.as_str())]
pub struct InvalidEvent {
    /// The event's id, when it could be read.
    pub event_id: Option<String>,
    /// The item's id, when it could be read.
    pub item_id: Option<String>,
    /// Machine-readable reason.
    pub reason: InvalidReason,
    /// The offending field, where there is one.
    pub field: Option<&'static str>,
    /// What is wrong and which rule it breaks, for a department's IT team.
    pub message: String,
}

/// An event as read from the wire, before the rules of §2 are applied.
///
/// `type_name` and `outcome` keep the text so that an unknown value can be named in
/// the error. Integers are `i128` so that negative and oversized values reach the
/// rule that refuses them instead of failing as a type error.
///
/// Texts borrow from the bytes read where they can (a JSON string without escapes), so
/// that a valid event allocates only the texts it keeps. serde reads it straight from a
/// well-formed object with fields of the right types ([`RawEvent::from_json`]).
#[derive(Clone, Debug, Default, PartialEq, serde::Deserialize)]
#[allow(missing_docs)]
pub struct RawEvent<'a> {
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub event_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub item_id: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub service_code: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub department_code: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed", rename = "type")]
    pub type_name: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub occurred_at: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub actor: Option<Cow<'a, str>>,
    pub seq: Option<i128>,
    #[serde(borrow, default, deserialize_with = "borrowed_texts")]
    pub materials: Option<Vec<Cow<'a, str>>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub reason: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub step: Option<Cow<'a, str>>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub suspension_kind: Option<Cow<'a, str>>,
    pub expected_days: Option<i128>,
    pub days: Option<i128>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub approver: Option<Cow<'a, str>>,
    pub amount_fen: Option<i128>,
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub outcome: Option<Cow<'a, str>>,
    /// Arrival instant, an extra field of the JSON form used by replay.
    #[serde(borrow, default, deserialize_with = "borrowed")]
    pub received_at: Option<Cow<'a, str>>,
}

/// A JSON string, borrowed from the input unless it holds an escape (serde borrows a
/// `Cow<str>` only when it is a field's whole type, not inside an `Option`).
#[derive(serde::Deserialize)]
struct Text<'a>(#[serde(borrow)] Cow<'a, str>);

fn borrowed<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Cow<'a, str>>, D::Error> {
    Ok(<Option<Text<'a>> as serde::Deserialize>::deserialize(d)?.map(|t| t.0))
}

fn borrowed_texts<'de: 'a, 'a, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Vec<Cow<'a, str>>>, D::Error> {
    Ok(<Option<Vec<Text<'a>>> as serde::Deserialize>::deserialize(d)?.map(|v| v.into_iter().map(|t| t.0).collect()))
}

/// An event read from a JSON line, with its optional `received_at`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JsonEvent {
    /// The valid event.
    pub event: Event,
    /// When it reached the system, if the line says.
    pub received_at: Option<Timestamp>,
}

impl JsonEvent {
    /// An event with empty texts (not a valid one), to be read into with
    /// [`parse_json_event_into`].
    pub fn blank() -> JsonEvent {
        JsonEvent { event: Event::blank(), received_at: None }
    }
}

impl<'a> RawEvent<'a> {
    /// Reads the JSON form. Unknown fields are ignored; a field of the wrong JSON type is
    /// refused with its name.
    pub fn from_json(bytes: &'a [u8]) -> Result<RawEvent<'a>, InvalidEvent> {
        let mut raw = RawEvent::default();
        raw.read_json(bytes)?;
        Ok(raw)
    }

    /// [`RawEvent::from_json`] into `self`, which holds no field yet: the reading thread
    /// of a replay fills one where it lies instead of copying its 500 bytes on each
    /// return. `self` holds nothing of use after an error.
    fn read_json(&mut self, bytes: &'a [u8]) -> Result<(), InvalidEvent> {
        // The common case, a well-formed object with fields of the right types, straight
        // into the fields without building a map of values: the flat line department
        // systems write in one pass ([`line::scan`]), any other object through serde;
        // anything else (a wrong type, a repeated key, not an object) takes the path
        // below, whose errors name the field. The line's UTF-8 is checked once, as a
        // whole, so that neither reader checks every string again.
        if bytes.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b'{')
            && let Ok(text) = simdutf8::basic::from_utf8(bytes)
        {
            if line::scan(text, self) {
                return Ok(());
            }
            if let Ok(read) = serde_json::from_str::<RawEvent<'a>>(text) {
                *self = read;
                return Ok(());
            }
        }
        let value: Value = serde_json::from_slice(bytes).map_err(|e| InvalidEvent {
            event_id: None,
            item_id: None,
            reason: InvalidReason::Malformed,
            field: None,
            message: format!("not a JSON object: {e}"),
        })?;
        let Value::Object(map) = value else {
            return Err(InvalidEvent {
                event_id: None,
                item_id: None,
                reason: InvalidReason::Malformed,
                field: None,
                message: "not a JSON object".to_owned(),
            });
        };
        // Identity first, so that later errors can name the event.
        let ids = |field: &'static str| match map.get(field) {
            Some(Value::String(s)) => Some(s.clone()),
            _ => None,
        };
        let (event_id, item_id) = (ids("event_id"), ids("item_id"));
        let fail = |field: &'static str, expected: &str, got: &Value| InvalidEvent {
            event_id: event_id.clone(),
            item_id: item_id.clone(),
            reason: InvalidReason::WrongType,
            field: Some(field),
            message: format!("field `{field}` must be {expected}, got {}", json_kind(got)),
        };
        let string = |field: &'static str| -> Result<Option<Cow<'a, str>>, InvalidEvent> {
            match map.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::String(s)) => Ok(Some(Cow::Owned(s.clone()))),
                Some(other) => Err(fail(field, "a string", other)),
            }
        };
        let integer = |field: &'static str| -> Result<Option<i128>, InvalidEvent> {
            match map.get(field) {
                None | Some(Value::Null) => Ok(None),
                Some(Value::Number(n)) => n
                    .as_i64()
                    .map(i128::from)
                    .or_else(|| n.as_u64().map(i128::from))
                    .map(Some)
                    .ok_or_else(|| fail(field, "an integer", &Value::Number(n.clone()))),
                Some(other) => Err(fail(field, "an integer", other)),
            }
        };
        let materials = match map.get("materials") {
            None | Some(Value::Null) => None,
            Some(Value::Array(items)) => Some(
                items
                    .iter()
                    .map(|v| match v {
                        Value::String(s) => Ok(Cow::Owned(s.clone())),
                        other => Err(fail("materials", "a list of strings", other)),
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(other) => return Err(fail("materials", "a list of strings", other)),
        };
        *self = RawEvent {
            event_id: string("event_id")?,
            item_id: string("item_id")?,
            service_code: string("service_code")?,
            department_code: string("department_code")?,
            type_name: string("type")?,
            occurred_at: string("occurred_at")?,
            actor: string("actor")?,
            seq: integer("seq")?,
            materials,
            reason: string("reason")?,
            step: string("step")?,
            suspension_kind: string("suspension_kind")?,
            expected_days: integer("expected_days")?,
            days: integer("days")?,
            approver: string("approver")?,
            amount_fen: integer("amount_fen")?,
            outcome: string("outcome")?,
            received_at: string("received_at")?,
        };
        Ok(())
    }

    /// Applies every field rule of DOMAIN §2.
    pub fn validate(mut self) -> Result<Event, InvalidEvent> {
        self.take_valid()
    }

    /// [`RawEvent::validate`], taking the texts out of `self` rather than moving all of it.
    fn take_valid(&mut self) -> Result<Event, InvalidEvent> {
        let mut event = Event::blank();
        self.take_valid_into(&mut event)?;
        Ok(event)
    }

    /// [`RawEvent::take_valid`] into `event`, whose ids, service code and actor keep
    /// their buffers where the new texts fit. `event` holds nothing of use after an error.
    fn take_valid_into(&mut self, event: &mut Event) -> Result<(), InvalidEvent> {
        let ctx = Ctx { event_id: self.event_id.as_deref(), item_id: self.item_id.as_deref() };
        ctx.id("event_id", self.event_id.as_deref())?;
        ctx.id("item_id", self.item_id.as_deref())?;
        ctx.id("department_code", self.department_code.as_deref())?;
        let type_text = ctx.required_str("type", self.type_name.as_deref())?;
        let event_type = EventType::parse(type_text).ok_or_else(|| {
            ctx.err(
                InvalidReason::UnknownEnum,
                "type",
                format!("field `type` has unknown value `{type_text}`; expected one of {}", names(EventType::ALL.map(EventType::as_str))),
            )
        })?;
        let occurred_text = ctx.required_str("occurred_at", self.occurred_at.as_deref())?;
        let occurred_at = ctx.timestamp("occurred_at", occurred_text)?;
        let service_code = ctx.optional("service_code", self.service_code.take())?;
        if event_type == EventType::Submitted && service_code.is_none() {
            return Err(ctx.err(InvalidReason::MissingField, "service_code", "field `service_code` is required on SUBMITTED".into()));
        }
        let actor = ctx.optional("actor", self.actor.take())?;
        if actor.is_none() && !event_type.actor_optional() {
            return Err(ctx.err(
                InvalidReason::MissingField,
                "actor",
                format!(
                    "field `actor` (经办人) is required on {event_type}; only SUBMITTED, CORRECTION_SUBMITTED and WITHDRAWN may omit it"
                ),
            ));
        }
        let seq = match self.seq {
            None => None,
            Some(n) => Some(u64::try_from(n).map_err(|_| {
                ctx.err(InvalidReason::OutOfRange, "seq", format!("field `seq` must be an unsigned 64-bit integer, got {n}"))
            })?),
        };
        let reason = ctx.bounded("reason", self.reason.take())?;
        let body = match event_type {
            EventType::Submitted => EventBody::Submitted,
            EventType::CorrectionRequested => {
                let materials: Vec<String> = self.materials.take().unwrap_or_default().into_iter().map(Cow::into_owned).collect();
                if materials.iter().all(|m| m.trim().is_empty()) {
                    return Err(ctx.err(
                        InvalidReason::MissingField,
                        "materials",
                        "field `materials` must list at least one missing material on CORRECTION_REQUESTED (一次性告知)".into(),
                    ));
                }
                for m in &materials {
                    ctx.check_text("materials", m)?;
                }
                EventBody::CorrectionRequested { materials }
            }
            EventType::CorrectionSubmitted => EventBody::CorrectionSubmitted,
            EventType::Accepted => EventBody::Accepted,
            EventType::NotAccepted => EventBody::NotAccepted { reason },
            EventType::StepCompleted => EventBody::StepCompleted { step: ctx.required_text("step", self.step.as_deref())? },
            EventType::Suspended => EventBody::Suspended {
                suspension_kind: ctx.required_text("suspension_kind", self.suspension_kind.as_deref())?,
                expected_days: ctx.positive_days("expected_days", self.expected_days)?,
            },
            EventType::Resumed => EventBody::Resumed,
            EventType::Extended => EventBody::Extended {
                days: ctx.positive_days("days", self.days)?,
                approver: ctx.bounded("approver", self.approver.take())?.unwrap_or_default(),
            },
            EventType::FeeCharged => {
                let amount = self.amount_fen.ok_or_else(|| {
                    ctx.err(InvalidReason::MissingField, "amount_fen", "field `amount_fen` is required on FEE_CHARGED".into())
                })?;
                let amount_fen = u64::try_from(amount).ok().filter(|a| *a <= i64::MAX as u64).ok_or_else(|| {
                    ctx.err(
                        InvalidReason::OutOfRange,
                        "amount_fen",
                        format!("field `amount_fen` must be an integer >= 0 (fen), got {amount}"),
                    )
                })?;
                EventBody::FeeCharged { amount_fen }
            }
            EventType::Decided => {
                let text = ctx.required_str("outcome", self.outcome.as_deref())?;
                let outcome = match text {
                    "APPROVED" => Outcome::Approved,
                    "DENIED" => Outcome::Denied,
                    other => {
                        return Err(ctx.err(
                            InvalidReason::UnknownEnum,
                            "outcome",
                            format!("field `outcome` has unknown value `{other}`; expected APPROVED or DENIED"),
                        ));
                    }
                };
                EventBody::Decided { outcome, reason }
            }
            EventType::Delivered => EventBody::Delivered,
            EventType::Withdrawn => EventBody::Withdrawn,
        };
        // The ids were checked above: present.
        put(&mut event.event_id, self.event_id.take().unwrap_or_default());
        put(&mut event.item_id, self.item_id.take().unwrap_or_default());
        put(&mut event.department_code, self.department_code.take().unwrap_or_default());
        put_optional(&mut event.service_code, service_code);
        put_optional(&mut event.actor, actor);
        event.occurred_at = occurred_at;
        event.seq = seq;
        event.body = body;
        Ok(())
    }
}

/// Reads and validates one JSON line of an events file.
pub fn parse_json_event(bytes: &[u8]) -> Result<JsonEvent, InvalidEvent> {
    let mut read = JsonEvent::blank();
    parse_json_event_into(bytes, &mut read)?;
    Ok(read)
}

/// [`parse_json_event`] into an event read before, whose texts' buffers are used again
/// where the new texts fit: a replay's reading thread reads each line into an event of
/// a batch its engines are done with, instead of allocating the texts of every event
/// and freeing those of the one before. `into` holds nothing of use after an error.
pub fn parse_json_event_into(bytes: &[u8], into: &mut JsonEvent) -> Result<(), InvalidEvent> {
    let mut raw = RawEvent::default();
    raw.read_json(bytes)?;
    let received = raw.received_at.take();
    raw.take_valid_into(&mut into.event)?;
    let event = &into.event;
    let ctx = Ctx { event_id: Some(&event.event_id), item_id: Some(&event.item_id) };
    into.received_at = match received {
        None => None,
        Some(text) => Some(ctx.timestamp("received_at", &text)?),
    };
    Ok(())
}

/// `text` into `to`, in the buffer `to` has where it fits.
fn put(to: &mut String, text: Cow<'_, str>) {
    match text {
        Cow::Borrowed(text) => {
            to.clear();
            to.push_str(text);
        }
        Cow::Owned(text) => *to = text,
    }
}

/// [`put`] for an optional text.
fn put_optional(to: &mut Option<String>, text: Option<Cow<'_, str>>) {
    match (to.as_mut(), text) {
        (Some(to), Some(text)) => put(to, text),
        (_, text) => *to = text.map(Cow::into_owned),
    }
}

/// Names the event in errors; borrows its ids, so that a valid event copies nothing for it.
struct Ctx<'a> {
    event_id: Option<&'a str>,
    item_id: Option<&'a str>,
}

impl Ctx<'_> {
    fn err(&self, reason: InvalidReason, field: &'static str, message: String) -> InvalidEvent {
        InvalidEvent {
            event_id: self.event_id.map(str::to_owned),
            item_id: self.item_id.map(str::to_owned),
            reason,
            field: Some(field),
            message,
        }
    }

    /// A required, non-blank text within the length and character rules, borrowed.
    fn required_str<'v>(&self, field: &'static str, value: Option<&'v str>) -> Result<&'v str, InvalidEvent> {
        match value {
            Some(v) if !blank(v) => {
                self.check_text(field, v)?;
                Ok(v)
            }
            Some(_) => Err(self.err(InvalidReason::MissingField, field, format!("field `{field}` is required and must not be blank"))),
            None => Err(self.err(InvalidReason::MissingField, field, format!("field `{field}` is required"))),
        }
    }

    fn required_text(&self, field: &'static str, value: Option<&str>) -> Result<String, InvalidEvent> {
        self.required_str(field, value).map(str::to_owned)
    }

    /// An optional text within the length and character rules, absent when blank.
    fn optional<'v>(&self, field: &'static str, value: Option<Cow<'v, str>>) -> Result<Option<Cow<'v, str>>, InvalidEvent> {
        if let Some(v) = &value {
            self.check_text(field, v)?;
        }
        Ok(value.filter(|v| !blank(v)))
    }

    fn check_text(&self, field: &'static str, v: &str) -> Result<(), InvalidEvent> {
        // A text of at most MAX_TEXT_CHARS bytes has at most as many characters.
        if v.len() > MAX_TEXT_CHARS && v.chars().count() > MAX_TEXT_CHARS {
            return Err(self.err(InvalidReason::OutOfRange, field, format!("field `{field}` is longer than {MAX_TEXT_CHARS} characters")));
        }
        // Databases refuse NUL in text (PostgreSQL), and a NUL would let one text pose as two.
        if has_nul(v.as_bytes()) {
            return Err(self.err(InvalidReason::OutOfRange, field, format!("field `{field}` must not contain a NUL character")));
        }
        Ok(())
    }

    fn bounded(&self, field: &'static str, value: Option<Cow<'_, str>>) -> Result<Option<String>, InvalidEvent> {
        if let Some(v) = &value {
            self.check_text(field, v)?;
        }
        Ok(value.map(Cow::into_owned))
    }

    /// Checks a required id (kept by the caller as it came).
    fn id(&self, field: &'static str, value: Option<&str>) -> Result<(), InvalidEvent> {
        // The common id — printable ASCII, not starting with a space, not too long —
        // passes every rule below in one look at its bytes (it is not blank, has as many
        // characters as bytes and neither NUL nor another control character).
        if let Some(v) = value
            && v.len() <= MAX_ID_CHARS
            && v.as_bytes().first().is_some_and(|&b| b != b' ')
            && printable_ascii(v.as_bytes())
        {
            return Ok(());
        }
        let v = self.required_str(field, value)?;
        if v.len() > MAX_ID_CHARS {
            let n = v.chars().count();
            if n > MAX_ID_CHARS {
                return Err(self.err(
                    InvalidReason::OutOfRange,
                    field,
                    format!("field `{field}` must be 1-{MAX_ID_CHARS} characters, got {n}"),
                ));
            }
        }
        // Printable ASCII, as ids almost always are, holds no control character; only
        // other texts need their characters decoded.
        if printable_ascii(v.as_bytes()) {
            return Ok(());
        }
        if let Some(c) = v.chars().find(|c| c.is_control()) {
            return Err(self.err(
                InvalidReason::OutOfRange,
                field,
                format!("field `{field}` must not contain control characters, found U+{:04X}", u32::from(c)),
            ));
        }
        Ok(())
    }

    fn timestamp(&self, field: &'static str, text: &str) -> Result<Timestamp, InvalidEvent> {
        let t = Timestamp::parse_rfc3339(text).map_err(|e| {
            self.err(
                InvalidReason::BadTimestamp,
                field,
                format!("field `{field}` must be an RFC 3339 timestamp with an offset (2025-03-04T09:30:00+08:00), got `{text}`: {e}"),
            )
        })?;
        if !t.is_supported() {
            return Err(self.err(
                InvalidReason::OutOfRange,
                field,
                format!("field `{field}` = `{text}` is outside the supported years 1971-2119"),
            ));
        }
        Ok(t)
    }

    fn positive_days(&self, field: &'static str, value: Option<i128>) -> Result<u32, InvalidEvent> {
        let n = value.ok_or_else(|| self.err(InvalidReason::MissingField, field, format!("field `{field}` is required")))?;
        u32::try_from(n).ok().filter(|d| (1..=3650).contains(d)).ok_or_else(|| {
            self.err(InvalidReason::OutOfRange, field, format!("field `{field}` must be a number of days > 0 (at most 3650), got {n}"))
        })
    }
}

/// Whether `v` is empty or white space only (`str::trim`'s white space, Unicode's),
/// without trimming a text that starts with a visible ASCII character.
fn blank(v: &str) -> bool {
    !v.as_bytes().first().is_some_and(|b| (0x21..0x7F).contains(b)) && v.trim().is_empty()
}

/// Whether every byte of `b` is printable ASCII (0x20 to 0x7E), eight bytes at a time:
/// the ids of every event are checked so (a byte at a time was 2 % of a replay).
fn printable_ascii(b: &[u8]) -> bool {
    use crate::json::{HIGHS, ONES};
    let mut chunks = b.chunks_exact(8);
    chunks.by_ref().all(|c| {
        let x = u64::from_le_bytes(c.try_into().expect("eight bytes"));
        // A byte of 0x80 or more; one below 0x20 (the subtraction borrows through it,
        // and no printable byte borrows); a DEL (its low seven bits plus one reach 0x80,
        // and no other's carry out of the byte).
        let outside = x | (x.wrapping_sub(ONES * 0x20) & !x) | ((x & !HIGHS) + ONES);
        outside & HIGHS == 0
    }) && chunks.remainder().iter().all(|b| (0x20..0x7F).contains(b))
}

/// Whether `b` holds a NUL byte, eight bytes at a time (`contains` sets up a search
/// that costs more than these short texts).
fn has_nul(b: &[u8]) -> bool {
    use crate::json::{HIGHS, ONES};
    let mut chunks = b.chunks_exact(8);
    chunks.by_ref().any(|c| {
        let x = u64::from_le_bytes(c.try_into().expect("eight bytes"));
        x.wrapping_sub(ONES) & !x & HIGHS != 0
    }) || chunks.remainder().contains(&0)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

fn names<const N: usize>(list: [&str; N]) -> String {
    list.join(", ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_and_nul_checks_agree_with_the_plain_ones() {
        for v in ["", " ", "\u{3000}", "\u{b}", " a", "a", "审", "\t\n", "~", "\u{7f}", "\u{85}x"] {
            assert_eq!(blank(v), v.trim().is_empty(), "{v:?}");
        }
        for len in 0..20 {
            for at in 0..len {
                let mut b = vec![0xffu8; len];
                assert!(!has_nul(&b));
                b[at] = 0;
                assert!(has_nul(&b), "{len} {at}");
                b[at] = 0x80;
                assert!(!has_nul(&b));
            }
        }
    }

    #[test]
    fn the_printable_ascii_check_agrees_with_the_plain_one() {
        // Every byte at every place of lines of printable bytes, each byte's neighbours
        // printable or at either edge of the range (a borrow or carry must not reach them).
        for len in 0..20 {
            for fill in [0x20u8, 0x41, 0x7e] {
                for at in 0..len {
                    for byte in 0..=255u8 {
                        let mut b = vec![fill; len];
                        b[at] = byte;
                        assert_eq!(printable_ascii(&b), (0x20..0x7F).contains(&byte), "{len} {at} {byte:#x} in {fill:#x}");
                    }
                }
            }
        }
    }

    fn parse(json: &str) -> Result<Event, InvalidEvent> {
        parse_json_event(json.as_bytes()).map(|e| e.event)
    }

    const BASE: &str = r#""event_id":"e1","item_id":"i1","department_code":"D1","occurred_at":"2025-03-03T09:00:00+08:00""#;

    #[test]
    fn reads_a_valid_event_and_ignores_unknown_fields() {
        let e = parse(&format!(r#"{{{BASE},"type":"SUBMITTED","service_code":"S1","extra":{{"x":1}}}}"#)).unwrap();
        assert_eq!(e.event_type(), EventType::Submitted);
        assert_eq!(e.service_code.as_deref(), Some("S1"));
        assert_eq!(e.actor, None);
    }

    #[test]
    fn a_well_formed_line_is_read_without_copying_its_texts() {
        let line = format!(r#"{{{BASE},"type":"CORRECTION_REQUESTED","actor":"张三","materials":["a","b\u0041"]}}"#);
        let raw = RawEvent::from_json(line.as_bytes()).unwrap();
        for text in [&raw.event_id, &raw.item_id, &raw.department_code, &raw.type_name, &raw.occurred_at, &raw.actor] {
            assert!(matches!(text, Some(Cow::Borrowed(_))), "{text:?} was copied");
        }
        let materials = raw.materials.clone().unwrap();
        assert!(matches!(materials[0], Cow::Borrowed("a")));
        // An escape has to be decoded into a copy.
        assert_eq!(materials[1], "bA");
        let event = raw.validate().unwrap();
        assert_eq!(event.body, EventBody::CorrectionRequested { materials: vec!["a".into(), "bA".into()] });
    }

    #[test]
    fn each_rule_names_its_field() {
        let cases = [
            (r#"{"item_id":"i1"}"#.to_owned(), InvalidReason::MissingField, "event_id"),
            (format!(r#"{{{BASE},"type":"SUBMITTED"}}"#), InvalidReason::MissingField, "service_code"),
            (format!(r#"{{{BASE},"type":"ACCEPTED"}}"#), InvalidReason::MissingField, "actor"),
            (format!(r#"{{{BASE},"type":"APPROVE","actor":"a"}}"#), InvalidReason::UnknownEnum, "type"),
            (format!(r#"{{{BASE},"type":"CORRECTION_REQUESTED","actor":"a","materials":[]}}"#), InvalidReason::MissingField, "materials"),
            (format!(r#"{{{BASE},"type":"SUSPENDED","actor":"a","suspension_kind":"HEARING","expected_days":0}}"#), InvalidReason::OutOfRange, "expected_days"),
            (format!(r#"{{{BASE},"type":"EXTENDED","actor":"a","days":-1,"approver":"b"}}"#), InvalidReason::OutOfRange, "days"),
            (format!(r#"{{{BASE},"type":"FEE_CHARGED","actor":"a","amount_fen":-5}}"#), InvalidReason::OutOfRange, "amount_fen"),
            (format!(r#"{{{BASE},"type":"FEE_CHARGED","actor":"a","amount_fen":"5"}}"#), InvalidReason::WrongType, "amount_fen"),
            (format!(r#"{{{BASE},"type":"DECIDED","actor":"a","outcome":"MAYBE"}}"#), InvalidReason::UnknownEnum, "outcome"),
            (format!(r#"{{{BASE},"type":"STEP_COMPLETED","actor":"a"}}"#), InvalidReason::MissingField, "step"),
            (r#"{"event_id":"e1","item_id":"i1","department_code":"D","type":"SUBMITTED","service_code":"S","occurred_at":"2025-03-03 09:00"}"#.to_owned(), InvalidReason::BadTimestamp, "occurred_at"),
            (format!(r#"{{"event_id":"{}","item_id":"i1"}}"#, "x".repeat(129)), InvalidReason::OutOfRange, "event_id"),
        ];
        for (json, reason, field) in cases {
            let err = parse(&json).expect_err(&json);
            assert_eq!((err.reason, err.field), (reason, Some(field)), "{json}: {}", err.message);
            assert!(err.message.contains(field), "message names the field: {}", err.message);
        }
    }

    /// Lines of every type, with and without their optional texts, escaped and not,
    /// valid and not, read one after another into the same event: each reads as it
    /// reads alone, and an error leaves nothing that changes the next line's reading.
    #[test]
    fn reading_into_an_event_read_before_gives_what_reading_alone_gives() {
        let lines = [
            r#"{"event_id":"E-1","item_id":"I-1","department_code":"D","type":"SUBMITTED","occurred_at":"2025-03-03T09:00:00+08:00","service_code":"S-1","received_at":"2025-03-03T09:00:01.5+08:00","seq":1}"#,
            r#"{"event_id":"E-2-longer-than-before","item_id":"I-1","department_code":"DEPT","type":"ACCEPTED","occurred_at":"2025-03-03T10:00:00Z","actor":"张三"}"#,
            r#"{"event_id":"E\u002d3","item_id":"I\"1","department_code":"D","type":"CORRECTION_REQUESTED","occurred_at":"2025-03-03T10:00:00Z","actor":"李\n四","materials":["身份证"]}"#,
            r#"{"event_id":"E-3b","item_id":"I"1","department_code":"D","type":"ACCEPTED","occurred_at":"2025-03-03T10:00:00Z"}"#,
            r#"{"event_id":"E-4","item_id":"I-1","department_code":"D","type":"SUBMITTED","occurred_at":"2025-03-03T10:00:00Z"}"#,
            r#"{"event_id":"E-5","item_id":"I-1","department_code":"D","type":"DECIDED","occurred_at":"2025-03-03T10:00:00Z","actor":"王五","outcome":"DENIED","reason":" "}"#,
            r#"{"event_id":"E-6","item_id":"I-2","department_code":"D","type":"SUSPENDED","occurred_at":"2025-03-04T10:00:00Z","actor":"a","suspension_kind":"EXPERT_REVIEW","expected_days":3,"service_code":"  "}"#,
            r#"{"event_id":"E-7","item_id":"I-2","department_code":"D","type":"EXTENDED","occurred_at":"2025-03-05T10:00:00Z","actor":"a","days":5,"approver":"b"}"#,
            r#"{"event_id":"E-8","item_id":"I-2","department_code":"D","type":"FEE_CHARGED","occurred_at":"2025-03-05T10:00:00Z","actor":"a","amount_fen":100}"#,
            r#"{"event_id":"E-9","item_id":"I-2","department_code":"D","type":"STEP_COMPLETED","occurred_at":"2025-03-05T10:00:00Z","actor":"a","step":"审查"}"#,
            r#"{"event_id":"E-10","item_id":"I-2","department_code":"D","type":"ACCEPTED","occurred_at":"2025-03-05T10:00:00Z"}"#,
            r#"{"event_id":"E-11","item_id":"I-2","department_code":"D","type":"WITHDRAWN","occurred_at":"2025-03-05T10:00:00Z","received_at":"not a time"}"#,
            r#"{"event_id":"E-12","item_id":"I-3","department_code":"D","type":"NOT_ACCEPTED","occurred_at":"2025-03-05T10:00:00Z","actor":"a","reason":"材料不全"}"#,
            r#"[1,2]"#,
            r#"{"event_id":"E-13","item_id":"I-3","department_code":"D","type":"WITHDRAWN","occurred_at":"2025-03-05T10:00:00Z","service_code":"S-2"}"#,
        ];
        let escaped = parse_json_event(lines[2].as_bytes()).expect("an escaped line is valid");
        assert_eq!((escaped.event.event_id.as_str(), escaped.event.actor.as_deref()), ("E-3", Some("李\n四")));
        let mut into = parse_json_event(lines[0].as_bytes()).expect("valid");
        for _ in 0..2 {
            for line in lines {
                let alone = parse_json_event(line.as_bytes());
                let read = parse_json_event_into(line.as_bytes(), &mut into);
                match alone {
                    Ok(alone) => {
                        assert!(read.is_ok(), "{line}");
                        assert_eq!(into, alone, "{line}");
                    }
                    Err(alone) => assert_eq!(read.expect_err(line), alone),
                }
            }
        }
    }

    #[test]
    fn blank_reason_and_empty_approver_are_valid() {
        let e = parse(&format!(r#"{{{BASE},"type":"NOT_ACCEPTED","actor":"a","reason":" "}}"#)).unwrap();
        assert!(matches!(e.body, EventBody::NotAccepted { .. }));
        let e = parse(&format!(r#"{{{BASE},"type":"EXTENDED","actor":"a","days":5}}"#)).unwrap();
        assert_eq!(e.body, EventBody::Extended { days: 5, approver: String::new() });
    }

    #[test]
    fn garbage_is_malformed() {
        assert_eq!(parse_json_event(b"\x00\x01garbage").unwrap_err().reason, InvalidReason::Malformed);
        assert_eq!(parse_json_event(b"[1,2]").unwrap_err().reason, InvalidReason::Malformed);
    }
}
