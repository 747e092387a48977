//! Alerts (DOMAIN §5): kinds, levels, deterministic ids and the record the engine emits.

use crate::time::Timestamp;
use serde::Serialize;
use sha2::{Digest, Sha256};
use std::fmt;

/// The card an alert shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Level {
    /// 预警.
    Warning,
    /// 黄牌.
    Yellow,
    /// 红牌.
    Red,
}

impl Level {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Level::Warning => "WARNING",
            Level::Yellow => "YELLOW",
            Level::Red => "RED",
        }
    }
}

/// FIRED, or RETRACTED when later data proved the alert wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum AlertStatus {
    /// The rule holds.
    Fired,
    /// The rule no longer holds.
    Retracted,
}

impl AlertStatus {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Fired => "FIRED",
            AlertStatus::Retracted => "RETRACTED",
        }
    }
}

macro_rules! alert_kinds {
    ($( $(#[$doc:meta])* $kind:ident = $name:literal, $level:ident, $timer:literal, $zh:literal; )*) => {
        /// Every alert kind of DOMAIN §5.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
        #[serde(rename_all = "SCREAMING_SNAKE_CASE")]
        #[repr(u8)]
        pub enum AlertKind {
            $( $(#[$doc])* $kind, )*
        }

        impl AlertKind {
            /// Every kind, in §5 order.
            pub const ALL: &'static [AlertKind] = &[$(AlertKind::$kind),*];

            /// The wire name.
            pub fn as_str(self) -> &'static str {
                match self { $(AlertKind::$kind => $name,)* }
            }

            /// The card this kind shows.
            pub fn level(self) -> Level {
                match self { $(AlertKind::$kind => Level::$level,)* }
            }

            /// Whether a deadline (rather than an event) triggers it.
            pub fn is_timer(self) -> bool {
                match self { $(AlertKind::$kind => $timer,)* }
            }

            /// The Chinese name shown to inspectors.
            pub fn zh(self) -> &'static str {
                match self { $(AlertKind::$kind => $zh,)* }
            }

            /// Reads the wire name.
            pub fn parse(text: &str) -> Option<AlertKind> {
                match text { $($name => Some(AlertKind::$kind),)* _ => None }
            }
        }
    };
}

alert_kinds! {
    /// The acceptance window passed in silence.
    AcceptanceOverdue = "ACCEPTANCE_OVERDUE", Yellow, true, "受理逾期";
    /// A second or later correction notice (一次性告知 broken).
    CorrectionRepeated = "CORRECTION_REPEATED", Yellow, false, "多次补正告知";
    /// A correction notice after the window or after acceptance.
    CorrectionLate = "CORRECTION_LATE", Yellow, false, "补正告知逾期";
    /// The promised deadline is near.
    PromisedDeadlineNear = "PROMISED_DEADLINE_NEAR", Warning, true, "承诺时限临近";
    /// The promised deadline passed with no decision.
    PromisedOverdue = "PROMISED_OVERDUE", Yellow, true, "超承诺时限";
    /// The statutory deadline passed with no decision.
    StatutoryOverdue = "STATUTORY_OVERDUE", Red, true, "超法定时限";
    /// A workflow step ran over its limit.
    StepOverdue = "STEP_OVERDUE", Warning, true, "环节超时";
    /// A suspension of a kind the law does not allow.
    SuspensionIrregular = "SUSPENSION_IRREGULAR", Yellow, false, "违规挂起";
    /// A suspension outlasted its expected days.
    SuspensionOverdue = "SUSPENSION_OVERDUE", Yellow, true, "挂起超期";
    /// An extension that breaks ALL art. 42.
    ExtensionIrregular = "EXTENSION_IRREGULAR", Yellow, false, "违规延期";
    /// A refusal with no stated reason.
    ReasonMissing = "REASON_MISSING", Yellow, false, "未说明理由";
    /// Fees over the lawful cap.
    FeeIrregular = "FEE_IRREGULAR", Red, false, "违规收费";
    /// An act out of procedure (before acceptance, after closing, …).
    ProcedureViolation = "PROCEDURE_VIOLATION", Red, false, "违反程序";
    /// The decider also reviewed.
    SeparationOfDuties = "SEPARATION_OF_DUTIES", Yellow, false, "审批不分离";
    /// The certificate was not delivered in time.
    DeliveryOverdue = "DELIVERY_OVERDUE", Yellow, true, "送达逾期";
    /// An application for a service not in the catalog, or abolished.
    ServiceNotInCatalog = "SERVICE_NOT_IN_CATALOG", Red, false, "目录外事项";
    /// Data reached the system late.
    LateReport = "LATE_REPORT", Warning, false, "数据迟报";
    /// The calendar has no notice for a year a computation needed.
    CalendarMissing = "CALENDAR_MISSING", Warning, true, "日历缺失";
}

impl fmt::Display for AlertKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The deterministic id of an alert: the first 16 bytes of
/// SHA-256(`jiancha/v2` NUL department NUL item NUL kind NUL trigger), in hex. The
/// department is part of the item's identity (DOMAIN §1, §2), so two departments that
/// use the same `item_id` never share an alert id.
///
/// `trigger` is the triggering event's id for an event rule, and for a timer rule the
/// clock: `promised`, `statutory`, the step's name, or the id of the event that started
/// the suspension, the acceptance window or the delivery clock. For CALENDAR_MISSING
/// the item is empty and the trigger is `calendar/year`.
pub fn alert_id(department_code: &str, item_id: &str, kind: AlertKind, trigger: &str) -> String {
    digest_id(&[b"jiancha/v2", department_code.as_bytes(), item_id.as_bytes(), kind.as_str().as_bytes(), trigger.as_bytes()])
}

/// The id an alert had before items were identified by department (DOMAIN §2, department
/// isolation): the item id alone. Items restored from a changelog written before that
/// change keep these ids, so that their later moves and retractions reach the cases
/// already opened under them.
pub fn legacy_alert_id(item_id: &str, kind: AlertKind, trigger: &str) -> String {
    digest_id(&[b"jiancha/v1", item_id.as_bytes(), kind.as_str().as_bytes(), trigger.as_bytes()])
}

/// The first 16 bytes of SHA-256 over the parts, each followed by a NUL but the last, in hex.
fn digest_id(parts: &[&[u8]]) -> String {
    let mut h = Sha256::new();
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h.update([0]);
        }
        h.update(part);
    }
    let digest = h.finalize();
    // By hand: sixteen `write!("{b:02x}")` were most of an id's cost.
    const HEX: &[u8; 16] = b"0123456789abcdef";
    digest[..16].iter().flat_map(|&b| [HEX[usize::from(b >> 4)], HEX[usize::from(b & 0xf)]]).map(char::from).collect()
}

/// Text in Chinese and in English.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Default)]
pub struct Bilingual {
    /// 中文.
    pub zh: String,
    /// English.
    pub en: String,
}

/// One alert update: a FIRED alert (new, or moved to a new instant) or a retraction.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Alert {
    /// Deterministic id; the last update of an id is its state.
    pub alert_id: String,
    /// FIRED or RETRACTED.
    pub status: AlertStatus,
    /// The item, absent for CALENDAR_MISSING.
    pub item_id: Option<String>,
    /// The item's service, where known.
    pub service_code: Option<String>,
    /// The item's department.
    pub department_code: Option<String>,
    /// The rule.
    pub kind: AlertKind,
    /// Its card.
    pub level: Level,
    /// The deadline for timer rules, the event's `occurred_at` for event rules.
    pub triggered_at: Timestamp,
    /// The zone in which `triggered_at` is written (the service calendar's).
    pub zone: chrono_tz::Tz,
    /// The triggering event, for event rules.
    pub event_id: Option<String>,
    /// What happened, in one sentence each language.
    pub message: Bilingual,
    /// The facts that produced it, so that anyone can check it by hand.
    pub derivation: Bilingual,
}

impl Alert {
    /// Appends the replay's JSON line (without the newline): the same bytes as
    /// `serde_json::to_writer(out, &self.to_json())` — the keys in the same
    /// (alphabetical) order, the strings escaped alike ([`crate::json`]) — at a fraction
    /// of the cost.
    pub fn write_json(&self, out: &mut Vec<u8>) {
        use crate::json::{escape_into, optional_into, string_into};
        out.extend_from_slice(b"{\"alert_id\":");
        string_into(out, &self.alert_id);
        out.extend_from_slice(b",\"department_code\":");
        optional_into(out, self.department_code.as_deref());
        out.extend_from_slice(b",\"derivation\":{\"en\":");
        string_into(out, &self.derivation.en);
        out.extend_from_slice(b",\"zh\":");
        string_into(out, &self.derivation.zh);
        out.extend_from_slice(b"},\"event_id\":");
        optional_into(out, self.event_id.as_deref());
        out.extend_from_slice(b",\"item_id\":");
        optional_into(out, self.item_id.as_deref());
        out.extend_from_slice(b",\"kind\":");
        string_into(out, self.kind.as_str());
        out.extend_from_slice(b",\"level\":");
        string_into(out, self.level.as_str());
        // "中文 / English", written without joining the two first.
        out.extend_from_slice(b",\"message\":\"");
        escape_into(out, &self.message.zh);
        out.extend_from_slice(b" / ");
        escape_into(out, &self.message.en);
        out.extend_from_slice(b"\",\"service_code\":");
        optional_into(out, self.service_code.as_deref());
        out.extend_from_slice(b",\"status\":");
        string_into(out, self.status.as_str());
        out.extend_from_slice(b",\"triggered_at\":\"");
        self.triggered_at.write_rfc3339_in(self.zone, out);
        out.extend_from_slice(b"\"}");
    }

    /// The replay's JSON line (DOMAIN §8) with the derivation added.
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::json!({
            "alert_id": self.alert_id,
            "status": self.status.as_str(),
            "item_id": self.item_id,
            "service_code": self.service_code,
            "department_code": self.department_code,
            "kind": self.kind.as_str(),
            "level": self.level.as_str(),
            "triggered_at": self.triggered_at.to_rfc3339_in(self.zone),
            "event_id": self.event_id,
            "message": format!("{} / {}", self.message.zh, self.message.en),
            "derivation": { "zh": self.derivation.zh, "en": self.derivation.en },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_are_deterministic_and_separate_their_parts() {
        let a = alert_id("D1", "I1", AlertKind::PromisedOverdue, "promised");
        assert_eq!(a, alert_id("D1", "I1", AlertKind::PromisedOverdue, "promised"));
        assert_eq!(a.len(), 32);
        assert_ne!(a, alert_id("D1", "I1", AlertKind::StatutoryOverdue, "promised"));
        assert_ne!(a, alert_id("D1", "I2", AlertKind::PromisedOverdue, "promised"));
        // Another department's item with the same id has alerts of its own.
        assert_ne!(a, alert_id("D2", "I1", AlertKind::PromisedOverdue, "promised"));
        // The separator keeps ("ab","c") and ("a","bc") apart.
        assert_ne!(alert_id("D", "ab", AlertKind::LateReport, "c"), alert_id("D", "a", AlertKind::LateReport, "bc"));
        assert_ne!(alert_id("Dab", "c", AlertKind::LateReport, "x"), alert_id("D", "abc", AlertKind::LateReport, "x"));
    }

    #[test]
    fn legacy_ids_are_those_published_before_department_isolation() {
        // Computed by the formula in force before: SHA-256("jiancha/v1" NUL item NUL kind NUL trigger).
        let mut h = Sha256::new();
        h.update(b"jiancha/v1\0I1\0PROMISED_OVERDUE\0promised");
        let expected: String = h.finalize()[..16].iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(legacy_alert_id("I1", AlertKind::PromisedOverdue, "promised"), expected);
    }

    #[test]
    fn the_written_line_is_the_json_value_byte_for_byte() {
        let mut a = Alert {
            alert_id: "a1".into(),
            status: AlertStatus::Fired,
            item_id: Some("I\"1".into()),
            service_code: None,
            department_code: Some("D1".into()),
            kind: AlertKind::LateReport,
            level: Level::Yellow,
            triggered_at: Timestamp(1_740_963_600_123),
            zone: chrono_tz::Asia::Shanghai,
            event_id: Some("E1".into()),
            message: Bilingual { zh: "迟报\n".into(), en: "late \u{1} / \\".into() },
            derivation: Bilingual { zh: "推导「\"」\t".into(), en: "derivation \\ \u{1f}\u{8}".into() },
        };
        for retracted in [false, true] {
            if retracted {
                a.status = AlertStatus::Retracted;
                a.item_id = None;
                a.event_id = None;
            }
            let mut written = Vec::new();
            a.write_json(&mut written);
            assert_eq!(String::from_utf8(written).expect("utf-8"), serde_json::to_string(&a.to_json()).expect("value"));
        }
    }

    #[test]
    fn levels_follow_the_spec() {
        assert_eq!(AlertKind::StatutoryOverdue.level(), Level::Red);
        assert_eq!(AlertKind::FeeIrregular.level(), Level::Red);
        assert_eq!(AlertKind::StepOverdue.level(), Level::Warning);
        assert_eq!(AlertKind::AcceptanceOverdue.level(), Level::Yellow);
        assert_eq!(AlertKind::ALL.len(), 18);
        for k in AlertKind::ALL {
            assert_eq!(AlertKind::parse(k.as_str()), Some(*k));
        }
    }
}
