//! The case workflow of DOMAIN §6 as pure functions: what each action does to a case,
//! and what it may not do. The store applies them inside its transactions.

use serde::{Deserialize, Serialize};

/// Where a case stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// Waiting for the department's explanation.
    Open,
    /// Explained, waiting for the inspector's review.
    Replied,
    /// Decided.
    Resolved,
}

impl Status {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Status::Open => "OPEN",
            Status::Replied => "REPLIED",
            Status::Resolved => "RESOLVED",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Open, Status::Replied, Status::Resolved].into_iter().find(|x| x.as_str() == s)
    }
}

/// An inspector's decision.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Disposition {
    /// 不予追究 (reason required).
    NoFault,
    /// 责令整改.
    Rectify,
    /// 效能告诫.
    EfficiencyWarning,
    /// 通报批评.
    Criticism,
    /// 诫勉谈话.
    Admonition,
    /// 移送纪委监委.
    Referred,
}

impl Disposition {
    /// Every disposition.
    pub const ALL: [Disposition; 6] = [
        Disposition::NoFault,
        Disposition::Rectify,
        Disposition::EfficiencyWarning,
        Disposition::Criticism,
        Disposition::Admonition,
        Disposition::Referred,
    ];

    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Disposition::NoFault => "NO_FAULT",
            Disposition::Rectify => "RECTIFY",
            Disposition::EfficiencyWarning => "EFFICIENCY_WARNING",
            Disposition::Criticism => "CRITICISM",
            Disposition::Admonition => "ADMONITION",
            Disposition::Referred => "REFERRED",
        }
    }

    /// 中文.
    pub fn zh(self) -> &'static str {
        match self {
            Disposition::NoFault => "不予追究",
            Disposition::Rectify => "责令整改",
            Disposition::EfficiencyWarning => "效能告诫",
            Disposition::Criticism => "通报批评",
            Disposition::Admonition => "诫勉谈话",
            Disposition::Referred => "移送纪委监委",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<Disposition> {
        Disposition::ALL.into_iter().find(|d| d.as_str() == s)
    }

    /// Whether it finds a fault (counts towards repeat offences).
    pub fn is_fault(self) -> bool {
        self != Disposition::NoFault
    }
}

/// The reason a retraction gives (DOMAIN §6).
pub const RETRACTED_REASON: &str = "retracted: late data";

/// How many fault dispositions within [`REPEAT_WINDOW_MS`] make a repeat offender.
pub const REPEAT_THRESHOLD: i64 = 3;
/// 365 days.
pub const REPEAT_WINDOW_MS: i64 = 365 * 86_400_000;
/// Working days a YELLOW case may stay unreplied before 督办 escalation.
pub const ESCALATION_WORKING_DAYS: i64 = 5;

/// The fields of a case that actions change (what the audit log records before and after).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseState {
    /// Status.
    pub status: Status,
    /// Level now: YELLOW or RED.
    pub level: String,
    /// Escalated by 督办.
    pub escalated: bool,
    /// Assigned inspector.
    pub assigned_to: Option<String>,
    /// The department's explanation.
    pub reply: Option<String>,
    /// Who replied.
    pub replied_by: Option<String>,
    /// Disposition.
    pub disposition: Option<Disposition>,
    /// Reason of the disposition.
    pub resolution_reason: Option<String>,
    /// Who resolved.
    pub resolved_by: Option<String>,
    /// 责任人.
    pub responsible_actor: Option<String>,
    /// Repeat-offender mark of the department.
    pub repeat_department: bool,
    /// Repeat-offender mark of the official.
    pub repeat_actor: bool,
}

impl CaseState {
    /// A new case at `level`.
    pub fn opened(level: &str) -> CaseState {
        CaseState {
            status: Status::Open,
            level: level.to_owned(),
            escalated: false,
            assigned_to: None,
            reply: None,
            replied_by: None,
            disposition: None,
            resolution_reason: None,
            resolved_by: None,
            responsible_actor: None,
            repeat_department: false,
            repeat_actor: false,
        }
    }

    /// JSON for the audit log.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }
}

/// An action refused, with what to do instead.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum WorkflowError {
    /// The case is not in a state that allows the action.
    #[error("{0}")]
    State(String),
    /// A required field is missing or wrong.
    #[error("{field}: {message}")]
    Field {
        /// The request field.
        field: &'static str,
        /// What is wrong.
        message: String,
    },
}

fn blank(s: &str) -> bool {
    s.trim().is_empty()
}

/// The department's explanation: OPEN → REPLIED (a second explanation replaces the
/// first while the case is not resolved).
pub fn reply(case_id: i64, s: &CaseState, who: &str, explanation: &str) -> Result<CaseState, WorkflowError> {
    if s.status == Status::Resolved {
        return Err(WorkflowError::State(format!("case {case_id} is RESOLVED; it can no longer be replied to")));
    }
    if blank(explanation) {
        return Err(WorkflowError::Field { field: "explanation", message: "the explanation (说明) is required".into() });
    }
    Ok(CaseState { status: Status::Replied, reply: Some(explanation.trim().to_owned()), replied_by: Some(who.to_owned()), ..s.clone() })
}

/// Assignment to an inspector (any time before resolution).
pub fn assign(case_id: i64, s: &CaseState, inspector: &str) -> Result<CaseState, WorkflowError> {
    if s.status == Status::Resolved {
        return Err(WorkflowError::State(format!("case {case_id} is RESOLVED; it cannot be reassigned")));
    }
    if blank(inspector) {
        return Err(WorkflowError::Field { field: "inspector", message: "name the inspector to assign".into() });
    }
    Ok(CaseState { assigned_to: Some(inspector.trim().to_owned()), ..s.clone() })
}

/// The inspector's decision. From REPLIED, or from OPEN when the department never
/// explained (docs/accountability.md); NO_FAULT needs a reason.
pub fn resolve(
    case_id: i64,
    s: &CaseState,
    who: &str,
    disposition: Disposition,
    reason: &str,
    responsible: &str,
) -> Result<CaseState, WorkflowError> {
    if s.status == Status::Resolved {
        return Err(WorkflowError::State(format!("case {case_id} is already RESOLVED ({})", s.disposition.map_or("?", |d| d.as_str()))));
    }
    if disposition == Disposition::NoFault && blank(reason) {
        return Err(WorkflowError::Field { field: "reason", message: "NO_FAULT (不予追究) needs a reason".into() });
    }
    Ok(CaseState {
        status: Status::Resolved,
        disposition: Some(disposition),
        resolution_reason: Some(reason.trim().to_owned()).filter(|r| !r.is_empty()),
        resolved_by: Some(who.to_owned()),
        responsible_actor: Some(responsible.trim().to_owned()).filter(|r| !r.is_empty()),
        ..s.clone()
    })
}

/// 督办: a YELLOW case not replied by its deadline becomes RED. None when it does not apply.
pub fn escalate(s: &CaseState) -> Option<CaseState> {
    (s.status == Status::Open && s.level == "YELLOW" && !s.escalated).then(|| CaseState {
        level: "RED".into(),
        escalated: true,
        ..s.clone()
    })
}

/// A retracted alert closes its case as NO_FAULT. None when already resolved.
pub fn retract(s: &CaseState) -> Option<CaseState> {
    (s.status != Status::Resolved).then(|| CaseState {
        status: Status::Resolved,
        disposition: Some(Disposition::NoFault),
        resolution_reason: Some(RETRACTED_REASON.into()),
        resolved_by: Some("system".into()),
        ..s.clone()
    })
}

/// The alert fired again after its retraction closed the case: the case opens again.
pub fn reopen(s: &CaseState) -> Option<CaseState> {
    (s.status == Status::Resolved && s.resolution_reason.as_deref() == Some(RETRACTED_REASON)).then(|| CaseState {
        status: Status::Open,
        disposition: None,
        resolution_reason: None,
        resolved_by: None,
        ..s.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_happy_path_and_its_refusals() {
        let open = CaseState::opened("YELLOW");
        assert!(matches!(reply(1, &open, "d", "  "), Err(WorkflowError::Field { field: "explanation", .. })));
        let replied = reply(1, &open, "dept", "材料已补齐").unwrap();
        assert_eq!(replied.status, Status::Replied);
        let err = resolve(1, &replied, "i", Disposition::NoFault, "", "").unwrap_err();
        assert!(matches!(err, WorkflowError::Field { field: "reason", .. }));
        let done = resolve(1, &replied, "i", Disposition::Criticism, "", "张三").unwrap();
        assert_eq!(done.disposition, Some(Disposition::Criticism));
        assert_eq!(done.responsible_actor.as_deref(), Some("张三"));
        assert!(matches!(reply(1, &done, "d", "x"), Err(WorkflowError::State(_))));
        assert!(matches!(resolve(1, &done, "i", Disposition::Rectify, "", ""), Err(WorkflowError::State(_))));
        assert!(escalate(&done).is_none());
    }

    #[test]
    fn escalation_retraction_and_reopening() {
        let open = CaseState::opened("YELLOW");
        let red = escalate(&open).unwrap();
        assert_eq!((red.level.as_str(), red.escalated), ("RED", true));
        assert!(escalate(&red).is_none(), "escalates once");
        assert!(escalate(&reply(1, &open, "d", "x").unwrap()).is_none(), "a replied case does not escalate");
        assert!(escalate(&CaseState::opened("RED")).is_none());
        let closed = retract(&open).unwrap();
        assert_eq!(closed.disposition, Some(Disposition::NoFault));
        assert_eq!(closed.resolution_reason.as_deref(), Some(RETRACTED_REASON));
        assert!(retract(&closed).is_none());
        assert_eq!(reopen(&closed).unwrap().status, Status::Open);
        let judged = resolve(1, &open, "i", Disposition::Rectify, "", "").unwrap();
        assert!(reopen(&judged).is_none(), "an inspector's decision is not reopened by the system");
    }
}
