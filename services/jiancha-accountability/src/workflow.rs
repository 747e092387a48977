//! The case workflow of DOMAIN §6 as pure functions: what each action does to a case,
//! and what it may not do. The store applies them inside its transactions.

use serde::{Deserialize, Serialize};

/// Where a case stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Status {
    /// A complaint (投诉) waiting to be accepted (受理) or rejected (不予受理).
    Filed,
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
            Status::Filed => "FILED",
            Status::Open => "OPEN",
            Status::Replied => "REPLIED",
            Status::Resolved => "RESOLVED",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<Status> {
        [Status::Filed, Status::Open, Status::Replied, Status::Resolved].into_iter().find(|x| x.as_str() == s)
    }
}

/// Where a rectification (责令整改) stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Rectification {
    /// Ordered; the department has not reported yet.
    Pending,
    /// The department reported it; waiting for the inspector's verification.
    Reported,
    /// Verified by the inspector: 整改销号.
    Verified,
}

impl Rectification {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Rectification::Pending => "PENDING",
            Rectification::Reported => "REPORTED",
            Rectification::Verified => "VERIFIED",
        }
    }

    /// From the stored name.
    pub fn parse(s: &str) -> Option<Rectification> {
        [Rectification::Pending, Rectification::Reported, Rectification::Verified].into_iter().find(|x| x.as_str() == s)
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

fn is_false(b: &bool) -> bool {
    !*b
}

/// The fields of a case that actions change (what the audit log records before and after).
/// Fields added after the first release are left out of the JSON while they hold their
/// default, so entries written before them read and verify as they were written.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CaseState {
    /// Status.
    pub status: Status,
    /// Level now: YELLOW or RED.
    pub level: String,
    /// 督办: the reply (or, for a complaint, the acceptance) is overdue; a YELLOW case
    /// became RED.
    pub escalated: bool,
    /// Assigned inspector.
    pub assigned_to: Option<String>,
    /// The department's explanation.
    pub reply: Option<String>,
    /// Who replied.
    pub replied_by: Option<String>,
    /// Disposition.
    pub disposition: Option<Disposition>,
    /// Reason of the disposition (or of a complaint's rejection).
    pub resolution_reason: Option<String>,
    /// Who resolved.
    pub resolved_by: Option<String>,
    /// 责任人.
    pub responsible_actor: Option<String>,
    /// Repeat-offender mark of the department.
    pub repeat_department: bool,
    /// Repeat-offender mark of the official.
    pub repeat_actor: bool,
    /// 催办: the reminder was sent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub reminded: bool,
    /// 通报: marked for the next published report.
    #[serde(default, skip_serializing_if = "is_false")]
    pub publicized: bool,
    /// 退回补充说明: why the last reply was sent back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sent_back: Option<String>,
    /// Closed by the retraction of its alert (the system reopens it if the alert fires again).
    #[serde(default, skip_serializing_if = "is_false")]
    pub retracted: bool,
    /// 复核: the alert of a case resolved with a fault was retracted; what to review.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub review: Option<String>,
    /// RECTIFY: the deadline of the rectification, milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectify_deadline: Option<i64>,
    /// RECTIFY: where the rectification stands.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectification: Option<Rectification>,
    /// The department's rectification report.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rectification_report: Option<String>,
    /// The rectification deadline passed without a report.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rectification_overdue: bool,
    /// A complaint rejected (不予受理): resolved without a disposition.
    #[serde(default, skip_serializing_if = "is_false")]
    pub rejected: bool,
    /// The published report (通报) this case marked 通报 was listed in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reported_in: Option<String>,
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
            reminded: false,
            publicized: false,
            sent_back: None,
            retracted: false,
            review: None,
            rectify_deadline: None,
            rectification: None,
            rectification_report: None,
            rectification_overdue: false,
            rejected: false,
            reported_in: None,
        }
    }

    /// A complaint waiting to be accepted.
    pub fn filed() -> CaseState {
        CaseState { status: Status::Filed, ..CaseState::opened("YELLOW") }
    }

    /// JSON for the audit log.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    /// Whether someone owes an answer whose lateness the escalation chain counts: the
    /// department (OPEN) or, for a complaint, the inspection office (FILED).
    pub fn awaiting_answer(&self) -> bool {
        matches!(self.status, Status::Open | Status::Filed)
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

fn required(field: &'static str, value: &str, what: &str) -> Result<String, WorkflowError> {
    if blank(value) {
        return Err(WorkflowError::Field { field, message: format!("{what} is required") });
    }
    Ok(value.trim().to_owned())
}

fn state_error(case_id: i64, s: &CaseState, action: &str, allowed: &str) -> WorkflowError {
    WorkflowError::State(format!("case {case_id} is {}; {action} only when it is {allowed}", s.status.as_str()))
}

/// The department's explanation: OPEN → REPLIED (a second explanation replaces the
/// first while the case is not resolved).
pub fn reply(case_id: i64, s: &CaseState, who: &str, explanation: &str) -> Result<CaseState, WorkflowError> {
    if !matches!(s.status, Status::Open | Status::Replied) {
        return Err(state_error(case_id, s, "a reply is possible", "OPEN or REPLIED"));
    }
    let explanation = required("explanation", explanation, "the explanation (说明)")?;
    Ok(CaseState { status: Status::Replied, reply: Some(explanation), replied_by: Some(who.to_owned()), ..s.clone() })
}

/// 退回补充说明: the inspector sends a reply back for more explanation, REPLIED → OPEN.
/// The reply stays on the case (and in the audit log); the department's clock starts
/// again from the send-back.
pub fn send_back(case_id: i64, s: &CaseState, reason: &str) -> Result<CaseState, WorkflowError> {
    if s.status != Status::Replied {
        return Err(state_error(case_id, s, "a reply can be sent back", "REPLIED"));
    }
    let reason = required("reason", reason, "the reason of a send-back (退回理由)")?;
    Ok(CaseState { status: Status::Open, sent_back: Some(reason), reminded: false, ..s.clone() })
}

/// Assignment to an inspector (any time before resolution).
pub fn assign(case_id: i64, s: &CaseState, inspector: &str) -> Result<CaseState, WorkflowError> {
    if s.status == Status::Resolved {
        return Err(WorkflowError::State(format!("case {case_id} is RESOLVED; it cannot be reassigned")));
    }
    let inspector = required("inspector", inspector, "the inspector to assign")?;
    Ok(CaseState { assigned_to: Some(inspector), ..s.clone() })
}

/// The inspector's decision. From REPLIED, or from OPEN when the department never
/// explained (docs/accountability.md); NO_FAULT needs a reason, RECTIFY a deadline after
/// `now`.
#[allow(clippy::too_many_arguments)]
pub fn resolve(
    case_id: i64,
    s: &CaseState,
    who: &str,
    disposition: Disposition,
    reason: &str,
    responsible: &str,
    rectify_deadline: Option<i64>,
    now: i64,
) -> Result<CaseState, WorkflowError> {
    match s.status {
        Status::Resolved => {
            return Err(WorkflowError::State(format!(
                "case {case_id} is already RESOLVED ({})",
                s.disposition.map_or("rejected", |d| d.as_str())
            )));
        }
        Status::Filed => return Err(state_error(case_id, s, "a complaint is resolved", "accepted (OPEN or REPLIED)")),
        Status::Open | Status::Replied => {}
    }
    if disposition == Disposition::NoFault && blank(reason) {
        return Err(WorkflowError::Field { field: "reason", message: "NO_FAULT (不予追究) needs a reason".into() });
    }
    let rectification = match (disposition, rectify_deadline) {
        (Disposition::Rectify, None) => {
            return Err(WorkflowError::Field { field: "rectify_deadline", message: "RECTIFY (责令整改) needs a deadline".into() });
        }
        (Disposition::Rectify, Some(t)) if t <= now => {
            return Err(WorkflowError::Field {
                field: "rectify_deadline",
                message: "the rectification deadline must be in the future".into(),
            });
        }
        (Disposition::Rectify, Some(_)) => Some(Rectification::Pending),
        (_, Some(_)) => {
            return Err(WorkflowError::Field {
                field: "rectify_deadline", message: "a deadline goes with RECTIFY (责令整改) only".into()
            });
        }
        (_, None) => None,
    };
    Ok(CaseState {
        status: Status::Resolved,
        disposition: Some(disposition),
        resolution_reason: Some(reason.trim().to_owned()).filter(|r| !r.is_empty()),
        resolved_by: Some(who.to_owned()),
        responsible_actor: Some(responsible.trim().to_owned()).filter(|r| !r.is_empty()),
        rectify_deadline: rectify_deadline.filter(|_| rectification.is_some()),
        rectification,
        ..s.clone()
    })
}

/// The department reports its rectification: PENDING → REPORTED.
pub fn report_rectification(case_id: i64, s: &CaseState, report: &str) -> Result<CaseState, WorkflowError> {
    if s.rectification != Some(Rectification::Pending) {
        return Err(WorkflowError::State(format!(
            "case {case_id} has no rectification waiting for a report ({})",
            s.rectification.map_or("none ordered", |r| r.as_str())
        )));
    }
    let report = required("report", report, "the rectification report (整改报告)")?;
    Ok(CaseState { rectification: Some(Rectification::Reported), rectification_report: Some(report), ..s.clone() })
}

/// The inspector verifies a reported rectification (整改销号: REPORTED → VERIFIED) or
/// reopens it (→ PENDING with a reason and a new deadline).
pub fn verify_rectification(
    case_id: i64,
    s: &CaseState,
    accepted: bool,
    reason: &str,
    new_deadline: Option<i64>,
    now: i64,
) -> Result<CaseState, WorkflowError> {
    if s.rectification != Some(Rectification::Reported) {
        return Err(WorkflowError::State(format!(
            "case {case_id} has no reported rectification to verify ({})",
            s.rectification.map_or("none ordered", |r| r.as_str())
        )));
    }
    if accepted {
        return Ok(CaseState { rectification: Some(Rectification::Verified), rectification_overdue: false, ..s.clone() });
    }
    let reason = required("reason", reason, "the reason for reopening a rectification")?;
    let deadline = new_deadline.filter(|t| *t > now).ok_or_else(|| WorkflowError::Field {
        field: "rectify_deadline",
        message: "a reopened rectification needs a new deadline in the future".into(),
    })?;
    Ok(CaseState {
        rectification: Some(Rectification::Pending),
        rectify_deadline: Some(deadline),
        rectification_overdue: false,
        resolution_reason: Some(match &s.resolution_reason {
            Some(r) => format!("{r}\n整改未通过: {reason}"),
            None => format!("整改未通过: {reason}"),
        }),
        ..s.clone()
    })
}

/// The rectification deadline passed without a report. None when it does not apply.
pub fn rectification_overdue(s: &CaseState) -> Option<CaseState> {
    (s.rectification == Some(Rectification::Pending) && !s.rectification_overdue)
        .then(|| CaseState { rectification_overdue: true, ..s.clone() })
}

/// 受理: a complaint is accepted and handled as a case (FILED → OPEN).
pub fn accept_complaint(case_id: i64, s: &CaseState) -> Result<CaseState, WorkflowError> {
    if s.status != Status::Filed {
        return Err(state_error(case_id, s, "a complaint is accepted", "FILED"));
    }
    Ok(CaseState { status: Status::Open, escalated: false, reminded: false, publicized: false, level: "YELLOW".into(), ..s.clone() })
}

/// 不予受理: a complaint is rejected with a reason (FILED → RESOLVED, no disposition).
pub fn reject_complaint(case_id: i64, s: &CaseState, who: &str, reason: &str) -> Result<CaseState, WorkflowError> {
    if s.status != Status::Filed {
        return Err(state_error(case_id, s, "a complaint is rejected", "FILED"));
    }
    let reason = required("reason", reason, "the reason of a rejection (不予受理理由)")?;
    Ok(CaseState {
        status: Status::Resolved,
        rejected: true,
        resolution_reason: Some(reason),
        resolved_by: Some(who.to_owned()),
        ..s.clone()
    })
}

/// A case marked 通报 is listed in the published report `number`. None when it is not
/// marked or already listed.
pub fn mark_reported(s: &CaseState, number: &str) -> Option<CaseState> {
    (s.publicized && s.reported_in.is_none()).then(|| CaseState { reported_in: Some(number.to_owned()), ..s.clone() })
}

/// A step of the escalation chain (督查督办), each after configured working days without
/// an answer.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Step {
    /// 催办: a reminder.
    Remind,
    /// 督办: a YELLOW case becomes RED; the case is flagged ESCALATED.
    Supervise,
    /// 通报: the case is marked for the next published report.
    Publicize,
}

impl Step {
    /// The audit action.
    pub fn action(self) -> &'static str {
        match self {
            Step::Remind => "REMIND",
            Step::Supervise => "ESCALATE",
            Step::Publicize => "PUBLICIZE",
        }
    }

    /// 中文.
    pub fn zh(self) -> &'static str {
        match self {
            Step::Remind => "催办",
            Step::Supervise => "督办",
            Step::Publicize => "通报",
        }
    }
}

/// Takes one escalation step. None when the case no longer awaits an answer or has
/// taken it already.
pub fn escalate(s: &CaseState, step: Step) -> Option<CaseState> {
    if !s.awaiting_answer() {
        return None;
    }
    match step {
        Step::Remind => (!s.reminded).then(|| CaseState { reminded: true, ..s.clone() }),
        Step::Supervise => (!s.escalated).then(|| CaseState {
            level: if s.status == Status::Open { "RED".into() } else { s.level.clone() },
            escalated: true,
            reminded: true,
            ..s.clone()
        }),
        Step::Publicize => (!s.publicized).then(|| CaseState { publicized: true, reminded: true, escalated: true, ..s.clone() }),
    }
}

/// The alert of this case was retracted. An unresolved case closes as NO_FAULT; a case
/// resolved with a fault is flagged for review (复核). None when nothing changes.
pub fn retract(s: &CaseState, note: &str) -> Option<CaseState> {
    match s.status {
        Status::Resolved if s.disposition.is_some_and(Disposition::is_fault) && s.review.is_none() => {
            Some(CaseState { review: Some(note.to_owned()), ..s.clone() })
        }
        Status::Resolved => None,
        _ => Some(CaseState {
            status: Status::Resolved,
            disposition: Some(Disposition::NoFault),
            resolution_reason: Some(RETRACTED_REASON.into()),
            resolved_by: Some("system".into()),
            retracted: true,
            ..s.clone()
        }),
    }
}

/// The alert fired again after its retraction closed the case: the case opens again as
/// new (the reply, decision and escalation steps of before are in the audit log only).
pub fn reopen(s: &CaseState, level: &str) -> Option<CaseState> {
    (s.status == Status::Resolved && s.retracted).then(|| CaseState { assigned_to: s.assigned_to.clone(), ..CaseState::opened(level) })
}

/// 复核: the inspector upholds the decision despite the retraction, or annuls it
/// (→ NO_FAULT with the reason, an ordered rectification dropped).
pub fn review(case_id: i64, s: &CaseState, who: &str, uphold: bool, reason: &str) -> Result<CaseState, WorkflowError> {
    if s.review.is_none() {
        return Err(WorkflowError::State(format!("case {case_id} is not flagged for review (复核)")));
    }
    let reason = required("reason", reason, "the reason of the review (复核意见)")?;
    if uphold {
        return Ok(CaseState {
            review: None,
            resolution_reason: Some(match &s.resolution_reason {
                Some(r) => format!("{r}\n复核维持: {reason}"),
                None => format!("复核维持: {reason}"),
            }),
            ..s.clone()
        });
    }
    Ok(CaseState {
        review: None,
        disposition: Some(Disposition::NoFault),
        resolution_reason: Some(format!("复核撤销: {reason}")),
        resolved_by: Some(who.to_owned()),
        rectification: None,
        rectify_deadline: None,
        rectification_overdue: false,
        ..s.clone()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_000_000;

    #[test]
    fn the_happy_path_and_its_refusals() {
        let open = CaseState::opened("YELLOW");
        assert!(matches!(reply(1, &open, "d", "  "), Err(WorkflowError::Field { field: "explanation", .. })));
        let replied = reply(1, &open, "dept", "材料已补齐").unwrap();
        assert_eq!(replied.status, Status::Replied);
        let err = resolve(1, &replied, "i", Disposition::NoFault, "", "", None, NOW).unwrap_err();
        assert!(matches!(err, WorkflowError::Field { field: "reason", .. }));
        let done = resolve(1, &replied, "i", Disposition::Criticism, "", "张三", None, NOW).unwrap();
        assert_eq!(done.disposition, Some(Disposition::Criticism));
        assert_eq!(done.responsible_actor.as_deref(), Some("张三"));
        assert!(matches!(reply(1, &done, "d", "x"), Err(WorkflowError::State(_))));
        assert!(matches!(resolve(1, &done, "i", Disposition::Rectify, "", "", Some(NOW + 1), NOW), Err(WorkflowError::State(_))));
        assert!(escalate(&done, Step::Supervise).is_none());
    }

    #[test]
    fn a_reply_sent_back_opens_the_case_again() {
        let replied = reply(1, &CaseState::opened("YELLOW"), "dept", "已办结").unwrap();
        assert!(matches!(send_back(1, &replied, " "), Err(WorkflowError::Field { field: "reason", .. })));
        let back = send_back(1, &replied, "请说明超期原因").unwrap();
        assert_eq!((back.status, back.sent_back.as_deref(), back.reply.as_deref()), (Status::Open, Some("请说明超期原因"), Some("已办结")));
        assert!(send_back(1, &back, "again").is_err(), "only a REPLIED case is sent back");
    }

    #[test]
    fn rectification_is_ordered_reported_and_verified_or_reopened() {
        let open = CaseState::opened("RED");
        let field = |r: Result<CaseState, WorkflowError>| match r {
            Err(WorkflowError::Field { field, .. }) => field,
            other => panic!("{other:?}"),
        };
        assert_eq!(field(resolve(1, &open, "i", Disposition::Rectify, "", "", None, NOW)), "rectify_deadline");
        assert_eq!(field(resolve(1, &open, "i", Disposition::Rectify, "", "", Some(NOW), NOW)), "rectify_deadline");
        assert_eq!(field(resolve(1, &open, "i", Disposition::Criticism, "", "", Some(NOW + 5), NOW)), "rectify_deadline");
        let ordered = resolve(1, &open, "i", Disposition::Rectify, "限期整改", "", Some(NOW + 10), NOW).unwrap();
        assert_eq!(ordered.rectification, Some(Rectification::Pending));
        assert!(verify_rectification(1, &ordered, true, "", None, NOW).is_err(), "nothing reported yet");
        let late = rectification_overdue(&ordered).unwrap();
        assert!(rectification_overdue(&late).is_none(), "flagged once");
        let reported = report_rectification(1, &late, "已整改").unwrap();
        let reopened = verify_rectification(1, &reported, false, "材料不全", Some(NOW + 20), NOW).unwrap();
        assert_eq!((reopened.rectification, reopened.rectify_deadline), (Some(Rectification::Pending), Some(NOW + 20)));
        let verified = verify_rectification(1, &report_rectification(1, &reopened, "补正").unwrap(), true, "", None, NOW).unwrap();
        assert_eq!(verified.rectification, Some(Rectification::Verified));
        assert!(report_rectification(1, &verified, "x").is_err());
    }

    #[test]
    fn the_escalation_chain_takes_each_step_once() {
        let open = CaseState::opened("YELLOW");
        let reminded = escalate(&open, Step::Remind).unwrap();
        assert!(escalate(&reminded, Step::Remind).is_none());
        let red = escalate(&reminded, Step::Supervise).unwrap();
        assert_eq!((red.level.as_str(), red.escalated), ("RED", true));
        assert!(escalate(&red, Step::Supervise).is_none(), "escalates once");
        let red_case = escalate(&CaseState::opened("RED"), Step::Supervise).unwrap();
        assert_eq!((red_case.level.as_str(), red_case.escalated), ("RED", true), "a RED case is flagged too");
        assert!(escalate(&red, Step::Publicize).unwrap().publicized);
        assert!(escalate(&reply(1, &open, "d", "x").unwrap(), Step::Remind).is_none(), "a replied case does not escalate");
        let complaint = CaseState::filed();
        let late = escalate(&complaint, Step::Supervise).unwrap();
        assert_eq!((late.level.as_str(), late.escalated), ("YELLOW", true), "an unaccepted complaint is flagged, not raised");
    }

    #[test]
    fn complaints_are_accepted_or_rejected_with_a_reason() {
        let filed = CaseState::filed();
        assert!(reply(1, &filed, "d", "x").is_err(), "a department answers an accepted complaint only");
        assert!(matches!(reject_complaint(1, &filed, "i", ""), Err(WorkflowError::Field { field: "reason", .. })));
        let rejected = reject_complaint(1, &filed, "i", "不属于受理范围").unwrap();
        assert!(rejected.rejected && rejected.status == Status::Resolved && rejected.disposition.is_none());
        let accepted = accept_complaint(1, &escalate(&filed, Step::Supervise).unwrap()).unwrap();
        assert_eq!((accepted.status, accepted.escalated), (Status::Open, false), "the department's clock starts clean");
        assert!(accept_complaint(1, &accepted).is_err());
    }

    #[test]
    fn retraction_closes_flags_for_review_or_reopens() {
        let open = escalate(&reply(1, &CaseState::opened("YELLOW"), "d", "x").unwrap(), Step::Remind);
        assert!(open.is_none());
        let open = CaseState::opened("YELLOW");
        let closed = retract(&open, "n").unwrap();
        assert_eq!(closed.disposition, Some(Disposition::NoFault));
        assert_eq!(closed.resolution_reason.as_deref(), Some(RETRACTED_REASON));
        assert!(retract(&closed, "n").is_none());
        let again = reopen(&closed, "YELLOW").unwrap();
        assert_eq!(again, CaseState::opened("YELLOW"), "nothing of before is kept on the case");
        let judged = resolve(1, &open, "i", Disposition::Criticism, "", "张三", None, NOW).unwrap();
        assert!(reopen(&judged, "YELLOW").is_none(), "an inspector's decision is not reopened by the system");
        let flagged = retract(&judged, "告警已撤回").unwrap();
        assert_eq!((flagged.status, flagged.review.as_deref()), (Status::Resolved, Some("告警已撤回")));
        assert!(retract(&flagged, "again").is_none());
        assert!(review(1, &judged, "i", true, "x").is_err(), "not flagged");
        let upheld = review(1, &flagged, "i", true, "另有证据").unwrap();
        assert_eq!((upheld.review.clone(), upheld.disposition), (None, Some(Disposition::Criticism)));
        let annulled = review(1, &flagged, "i", false, "数据迟报").unwrap();
        assert_eq!(annulled.disposition, Some(Disposition::NoFault));
    }

    #[test]
    fn states_written_before_the_new_fields_serialize_as_they_were() {
        let old = r#"{"status":"OPEN","level":"YELLOW","escalated":false,"assigned_to":null,"reply":null,"replied_by":null,"disposition":null,"resolution_reason":null,"resolved_by":null,"responsible_actor":null,"repeat_department":false,"repeat_actor":false}"#;
        let s: CaseState = serde_json::from_str(old).unwrap();
        assert_eq!(s.to_json(), old);
    }
}
