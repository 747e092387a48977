//! AccountabilityService and StatsService over gRPC, with the roles of DOMAIN §6: an
//! inspector sees every case and resolves; a department sees and answers only its own
//! cases and never resolves; an auditor reads everything including the audit log; an
//! operator sees no case contents.

use crate::stats::{self, GroupBy};
use crate::store::{AttachmentRow, CaseFilter, CaseRow, CommentRow, NewCase, Origin, Store, StoreError};
use crate::workflow::{self, Disposition, Status, WorkflowError};
use jiancha_core::Timestamp;
use jiancha_platform::auth::{self, Caller, Role};
use jiancha_platform::config::{EscalationChain, ScoreWeights};
use jiancha_platform::errors::bad_request;
use jiancha_platform::limits::StreamCounter;
use jiancha_platform::wall_clock;
use jiancha_proto::v1;
use jiancha_proto::v1::accountability_service_server::AccountabilityService;
use jiancha_proto::v1::stats_service_server::StatsService;
use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status as GrpcStatus};

/// Both services over one store.
#[derive(Clone, Debug)]
pub struct Api {
    store: Arc<Store>,
    rules: Arc<crate::Rules>,
    chain: EscalationChain,
    zone: chrono_tz::Tz,
    weights: ScoreWeights,
    streams: Arc<StreamCounter>,
    max_streams: usize,
}

impl Api {
    /// Over `store`; `catalog` names services in reports; instants are written in `zone`.
    /// A caller holds at most `max_streams` WatchCases streams.
    pub fn new(store: Arc<Store>, rules: Arc<crate::Rules>, chain: EscalationChain, weights: ScoreWeights, max_streams: usize) -> Api {
        let zone = rules.get().1.default_calendar().tz();
        Api { store, rules, chain, zone, weights, streams: Arc::new(StreamCounter::default()), max_streams }
    }

    fn t(&self, ms: i64) -> String {
        Timestamp(ms).to_rfc3339_in(self.zone)
    }

    fn case_message(
        &self,
        caller: &Caller,
        c: &CaseRow,
        rules: &(Arc<jiancha_core::Catalog>, jiancha_core::Calendars),
        offences: (u32, u32, Option<String>),
    ) -> v1::Case {
        let s = &c.state;
        let level = |l: &str| v1::Level::from_str_name(l).map_or(0, |l| l as i32);
        let steps = s.awaiting_answer().then(|| crate::schedule(&rules.0, &rules.1, &self.chain, c));
        let step_at = |i: usize| steps.map(|x| self.t(x[i].1));
        let (offences_department, offences_official, official) = offences;
        v1::Case {
            case_id: c.case_id,
            alert_id: c.alert_id.clone(),
            item_id: c.item_id.clone(),
            service_code: c.service_code.clone(),
            department_code: c.department_code.clone(),
            kind: v1::AlertKind::from_str_name(&c.kind).map_or(0, |k| k as i32),
            level: level(&s.level),
            alert_level: level(&c.alert_level),
            triggered_at: c.triggered_at.clone(),
            message: Some(v1::Bilingual { zh: c.message_zh.clone(), en: c.message_en.clone() }),
            derivation: Some(v1::Bilingual { zh: c.derivation_zh.clone(), en: c.derivation_en.clone() }),
            status: status_value(s.status) as i32,
            opened_at: self.t(c.opened_at),
            escalate_at: step_at(1),
            escalated: s.escalated,
            assigned_to: s.assigned_to.clone(),
            reply: s.reply.clone(),
            replied_by: s.replied_by.clone(),
            replied_at: c.replied_at.map(|t| self.t(t)),
            disposition: s.disposition.map_or(0, |d| disposition_value(d) as i32),
            resolution_reason: s.resolution_reason.clone(),
            resolved_by: s.resolved_by.clone(),
            resolved_at: c.resolved_at.map(|t| self.t(t)),
            responsible_actor: s.responsible_actor.clone(),
            repeat_offender_department: s.repeat_department,
            repeat_offender_actor: s.repeat_actor,
            updated_at: self.t(c.updated_at),
            origin: c.origin.clone(),
            reminded: s.reminded,
            publicized: s.publicized,
            sent_back: s.sent_back.clone(),
            review: s.review.clone(),
            rectify_deadline: s.rectify_deadline.map(|t| self.t(t)),
            rectification: s.rectification.map(|r| r.as_str().to_owned()),
            rectification_report: s.rectification_report.clone(),
            rectification_overdue: s.rectification_overdue,
            rejected: s.rejected,
            complaint_channel: c.complaint_channel.clone(),
            // DOMAIN §6: the complainant's contact is for inspectors only.
            complainant: if caller.role == Role::Inspector { c.complainant.clone() } else { None },
            remind_at: step_at(0),
            supervise_at: step_at(1),
            publicize_at: step_at(2),
            offences_department,
            offences_official,
            official,
            clock_from: self.t(c.clock_from),
        }
    }

    /// The messages of cases, with the offences so far of each case's department and
    /// official (DOMAIN §6: shown before the inspector decides).
    async fn cases_out(&self, caller: &Caller, rows: &[CaseRow]) -> Result<Vec<v1::Case>, GrpcStatus> {
        let now = wall_clock().0;
        let rules = self.rules.get();
        let mut by_department: HashMap<String, u32> = HashMap::new();
        let mut by_official: HashMap<String, u32> = HashMap::new();
        let unnamed: Vec<(&str, &str)> = rows
            .iter()
            .filter(|c| c.state.responsible_actor.is_none())
            .filter_map(|c| c.item_id.as_deref().map(|item| (c.department_code.as_str(), item)))
            .collect();
        let item_officials = self.store.item_officials(&unnamed).await.map_err(status_of)?;
        let mut out = Vec::with_capacity(rows.len());
        for c in rows {
            if !by_department.contains_key(&c.department_code) {
                let n = self.store.offences(Some(&c.department_code), None, now).await.map_err(status_of)?;
                by_department.insert(c.department_code.clone(), n as u32);
            }
            let official =
                c.state.responsible_actor.clone().or_else(|| {
                    c.item_id.as_ref().and_then(|item| item_officials.get(&(c.department_code.clone(), item.clone())).cloned())
                });
            let official_count = match &official {
                Some(o) => match by_official.get(o) {
                    Some(n) => *n,
                    None => {
                        let n = self.store.offences(None, Some(o), now).await.map_err(status_of)? as u32;
                        by_official.insert(o.clone(), n);
                        n
                    }
                },
                None => 0,
            };
            out.push(self.case_message(caller, c, &rules, (by_department[&c.department_code], official_count, official)));
        }
        Ok(out)
    }

    async fn case_out(&self, caller: &Caller, c: &CaseRow) -> Result<v1::Case, GrpcStatus> {
        Ok(self.cases_out(caller, std::slice::from_ref(c)).await?.remove(0))
    }

    fn entry_message(&self, e: &crate::audit::Entry) -> v1::AuditEntry {
        v1::AuditEntry {
            seq: e.seq,
            case_id: e.case_id,
            at: self.t(e.at),
            who: e.who.clone(),
            role: e.role.clone(),
            action: e.action.clone(),
            before: e.before.clone(),
            after: e.after.clone(),
            prev_hash: e.prev_hash.clone(),
            hash: e.hash.clone(),
        }
    }

    /// An audit entry as a case stream shows it: whole to those who may read the audit
    /// log; to a department only what GetCase shows it (the position to resume from, the
    /// case, when and what happened), never who did it, the before/after or the hashes.
    fn stream_entry(&self, caller: &Caller, e: &crate::audit::Entry) -> v1::AuditEntry {
        let whole = self.entry_message(e);
        if matches!(caller.role, Role::Inspector | Role::Auditor) {
            return whole;
        }
        v1::AuditEntry { seq: whole.seq, case_id: whole.case_id, at: whole.at, action: whole.action, ..v1::AuditEntry::default() }
    }

    fn comment_message(&self, c: &CommentRow) -> v1::CaseComment {
        let file = |a: &AttachmentRow| v1::Attachment {
            attachment_id: a.attachment_id,
            file_name: a.file_name.clone(),
            media_type: a.media_type.clone(),
            size_bytes: a.size_bytes,
            sha256: a.sha256.clone(),
            uploaded_by: a.uploaded_by.clone(),
            at: self.t(a.at),
        };
        v1::CaseComment {
            comment_id: c.comment_id,
            author: c.author.clone(),
            role: c.role.clone(),
            text: c.text.clone(),
            at: self.t(c.at),
            attachments: c.attachments.iter().map(file).collect(),
        }
    }

    /// The case, after checking that the caller may see it. Another department's case
    /// answers exactly as a case that does not exist, so ids reveal nothing.
    async fn visible_case(&self, caller: &Caller, case_id: i64) -> Result<CaseRow, GrpcStatus> {
        let case = self.store.case(case_id).await.map_err(status_of)?;
        if caller.department_scope().is_some_and(|own| own != case.department_code) {
            return Err(status_of(StoreError::NotFound(case_id)));
        }
        Ok(case)
    }

    async fn detail(&self, caller: &Caller, case: &CaseRow) -> Result<v1::CaseDetail, GrpcStatus> {
        let comments = self.store.comments(case.case_id).await.map_err(status_of)?;
        let audit = if matches!(caller.role, Role::Inspector | Role::Auditor) {
            self.store
                .audit_entries(0, Some(case.case_id), 10_000)
                .await
                .map_err(status_of)?
                .iter()
                .map(|e| self.entry_message(e))
                .collect()
        } else {
            Vec::new()
        };
        let notifications = if matches!(caller.role, Role::Inspector | Role::Auditor) {
            crate::notify::deliveries_of(&self.store, case.case_id)
                .await
                .map_err(status_of)?
                .into_iter()
                .map(|d| v1::NotificationDelivery {
                    key: d.key,
                    seq: d.seq,
                    channel: d.channel,
                    recipient: d.recipient,
                    status: d.status,
                    attempts: d.attempts,
                    last_error: d.last_error,
                    sent_at: d.sent_at.map(|t| self.t(t)),
                })
                .collect()
        } else {
            Vec::new()
        };
        Ok(v1::CaseDetail {
            notifications,
            case: Some(self.case_out(caller, case).await?),
            comments: comments.iter().map(|c| self.comment_message(c)).collect(),
            audit,
        })
    }
}

/// How a complaint came in.
pub const COMPLAINT_CHANNELS: [&str; 4] = ["HOTLINE", "LETTER", "VISIT", "ONLINE"];

impl Api {
    /// Applies one workflow action with its audit entry and answers the case.
    async fn act(
        &self,
        caller: &Caller,
        case_id: i64,
        now: i64,
        action: &str,
        f: impl FnOnce(&workflow::CaseState) -> Result<workflow::CaseState, WorkflowError>,
    ) -> Result<Response<v1::Case>, GrpcStatus> {
        let case = self.store.change(case_id, now, &caller.subject, caller.role.as_str(), action, f).await.map_err(status_of)?;
        Ok(Response::new(self.case_out(caller, &case).await?))
    }

    /// Checks a case opened by hand or a complaint: the department and the item must be
    /// known (an item of another department is refused as unknown).
    #[allow(clippy::too_many_arguments)]
    async fn new_case(
        &self,
        origin: Origin,
        department: &str,
        item_id: Option<String>,
        level: String,
        summary: &str,
        channel: Option<String>,
        complainant: Option<String>,
    ) -> Result<NewCase, GrpcStatus> {
        check_text("department_code", department, 64, true)?;
        check_text("summary", summary, MAX_TEXT_CHARS, false)?;
        if summary.trim().is_empty() {
            return Err(bad_request("summary", "say what happened (summary is required)".into()));
        }
        let catalog = self.rules.get().0;
        if !catalog.services().iter().any(|s| &*s.department == department) && catalog.department_name(department).is_none() {
            return Err(bad_request("department_code", format!("department `{}` is not in the catalog", department.escape_debug())));
        }
        let item_id = item_id.filter(|i| !i.trim().is_empty());
        let mut service_code = None;
        if let Some(item) = &item_id {
            check_text("item_id", item, 128, true)?;
            match self.store.item_service(department, item).await.map_err(status_of)? {
                Some(service) => service_code = service,
                None => {
                    return Err(bad_request("item_id", format!("item `{}` of department {department} is not known", item.escape_debug())));
                }
            }
        }
        let now = wall_clock().0;
        let when = Timestamp(now).short_in(self.zone);
        let derivation = match &channel {
            Some(ch) => format!("投诉：渠道 {ch}，{when} 登记；5 个工作日内受理或不予受理。"),
            None => format!("监察员立案：{when}。"),
        };
        Ok(NewCase {
            origin,
            department_code: department.to_owned(),
            item_id,
            service_code,
            level,
            summary: summary.trim().to_owned(),
            derivation,
            at_text: self.t(now),
            complaint_channel: channel,
            complainant,
        })
    }
}

fn status_value(s: Status) -> v1::CaseStatus {
    match s {
        Status::Filed => v1::CaseStatus::CaseFiled,
        Status::Open => v1::CaseStatus::CaseOpen,
        Status::Replied => v1::CaseStatus::CaseReplied,
        Status::Resolved => v1::CaseStatus::CaseResolved,
    }
}

fn disposition_value(d: Disposition) -> v1::Disposition {
    v1::Disposition::from_str_name(d.as_str()).unwrap_or(v1::Disposition::Unspecified)
}

/// The gRPC status of a store error.
pub fn status_of(e: StoreError) -> GrpcStatus {
    match e {
        StoreError::NotFound(id) => GrpcStatus::not_found(format!("case {id} does not exist")),
        StoreError::Workflow(WorkflowError::State(m)) => GrpcStatus::failed_precondition(m),
        StoreError::Workflow(WorkflowError::Field { field, message }) => bad_request(field, format!("{field}: {message}")),
        other => GrpcStatus::unavailable(format!("the case store failed: {other}")),
    }
}

/// An RFC 3339 instant of a request, in milliseconds.
fn instant(field: &str, text: &str) -> Result<i64, GrpcStatus> {
    Timestamp::parse_rfc3339(text).map(|t| t.0).map_err(|_| {
        bad_request(field, format!("{field} `{}` is not an RFC 3339 instant such as 2026-12-31T17:00:00+08:00", text.escape_debug()))
    })
}

const READERS: [Role; 3] = [Role::Inspector, Role::Department, Role::Auditor];

/// Longest free text (an explanation, a reason, a comment), in characters.
pub const MAX_TEXT_CHARS: usize = 10_000;
/// Longest name (an inspector, an official, a file, a media type), in characters.
pub const MAX_NAME_CHARS: usize = 256;
/// Most attachments on one comment.
pub const MAX_ATTACHMENTS: usize = 20;
/// Largest attachment a comment may describe, bytes (1 GiB).
pub const MAX_ATTACHMENT_BYTES: i64 = 1 << 30;

/// INVALID_ARGUMENT unless `value` fits its field: at most `max` characters, no NUL
/// (the databases refuse it), and in a name no control character at all.
fn check_text(field: &str, value: &str, max: usize, name: bool) -> Result<(), GrpcStatus> {
    let n = value.chars().count();
    if n > max {
        return Err(bad_request(field, format!("{field} is {n} characters; at most {max}")));
    }
    if value.contains('\0') || (name && value.chars().any(char::is_control)) {
        return Err(bad_request(field, format!("{field} must not contain control characters")));
    }
    Ok(())
}

type CaseStream = Pin<Box<dyn futures::Stream<Item = Result<v1::CaseUpdate, GrpcStatus>> + Send>>;

#[tonic::async_trait]
impl AccountabilityService for Api {
    async fn list_cases(&self, request: Request<v1::ListCasesRequest>) -> Result<Response<v1::ListCasesResponse>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("ListCases", &READERS)?;
        let req = request.into_inner();
        let department = caller.department_filter("the cases asked for", req.department_code)?;
        let status = match req.status.map(v1::CaseStatus::try_from) {
            None => None,
            Some(Ok(v1::CaseStatus::CaseOpen)) => Some(Status::Open),
            Some(Ok(v1::CaseStatus::CaseReplied)) => Some(Status::Replied),
            Some(Ok(v1::CaseStatus::CaseResolved)) => Some(Status::Resolved),
            Some(Ok(v1::CaseStatus::CaseFiled)) => Some(Status::Filed),
            Some(_) => return Err(bad_request("status", "status must be CASE_FILED, CASE_OPEN, CASE_REPLIED or CASE_RESOLVED".into())),
        };
        let level = match req.level.map(v1::Level::try_from) {
            None => None,
            Some(Ok(l @ (v1::Level::Yellow | v1::Level::Red))) => Some(l.as_str_name().to_owned()),
            Some(_) => return Err(bad_request("level", "cases are YELLOW or RED".into())),
        };
        let after: i64 = if req.page_token.is_empty() {
            0
        } else {
            req.page_token.parse().map_err(|_| bad_request("page_token", format!("page_token `{}` was not issued here", req.page_token)))?
        };
        let limit = match req.page_size {
            0 => 100,
            n if n > 1000 => return Err(bad_request("page_size", format!("page_size {n} is over 1000"))),
            n => i64::from(n),
        };
        let filter = CaseFilter {
            status,
            department_code: department,
            level,
            escalated: req.escalated,
            repeat_offender: req.repeat_offender,
            assigned_to: req.assigned_to,
            origin: match req.origin.as_deref() {
                None => None,
                Some(o @ ("ALERT" | "MANUAL" | "COMPLAINT")) => Some(o.to_owned()),
                Some(other) => return Err(bad_request("origin", format!("origin `{}`: ALERT, MANUAL or COMPLAINT", other.escape_debug()))),
            },
            review: req.review,
            publicized: req.publicized,
            after_case_id: after,
            limit: limit + 1,
        };
        let mut rows = self.store.cases(&filter).await.map_err(status_of)?;
        let more = rows.len() as i64 > limit;
        rows.truncate(limit as usize);
        let next_page_token = if more { rows.last().map(|c| c.case_id.to_string()).unwrap_or_default() } else { String::new() };
        Ok(Response::new(v1::ListCasesResponse { cases: self.cases_out(&caller, &rows).await?, next_page_token }))
    }

    async fn get_case(&self, request: Request<v1::GetCaseRequest>) -> Result<Response<v1::CaseDetail>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("GetCase", &READERS)?;
        let case = self.visible_case(&caller, request.into_inner().case_id).await?;
        Ok(Response::new(self.detail(&caller, &case).await?))
    }

    async fn reply(&self, request: Request<v1::ReplyRequest>) -> Result<Response<v1::Case>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("Reply", &[Role::Department])?;
        let req = request.into_inner();
        check_text("explanation", &req.explanation, MAX_TEXT_CHARS, false)?;
        self.visible_case(&caller, req.case_id).await?;
        let who = caller.subject.clone();
        self.act(&caller, req.case_id, wall_clock().0, "REPLY", |s| workflow::reply(req.case_id, s, &who, &req.explanation)).await
    }

    async fn assign(&self, request: Request<v1::AssignRequest>) -> Result<Response<v1::Case>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("Assign", &[Role::Inspector])?;
        let req = request.into_inner();
        check_text("inspector", &req.inspector, MAX_NAME_CHARS, true)?;
        self.act(&caller, req.case_id, wall_clock().0, "ASSIGN", |s| workflow::assign(req.case_id, s, &req.inspector)).await
    }

    async fn comment(&self, request: Request<v1::CommentRequest>) -> Result<Response<v1::CaseDetail>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("Comment", &[Role::Inspector, Role::Department])?;
        let req = request.into_inner();
        check_text("text", &req.text, MAX_TEXT_CHARS, false)?;
        if req.attachments.len() > MAX_ATTACHMENTS {
            return Err(bad_request(
                "attachments",
                format!("{} attachments; at most {MAX_ATTACHMENTS} on one comment", req.attachments.len()),
            ));
        }
        self.visible_case(&caller, req.case_id).await?;
        let mut files = Vec::new();
        for (i, a) in req.attachments.iter().enumerate() {
            check_text(&format!("attachments[{i}].file_name"), &a.file_name, MAX_NAME_CHARS, true)?;
            check_text(&format!("attachments[{i}].media_type"), &a.media_type, MAX_NAME_CHARS, true)?;
            if a.size_bytes > MAX_ATTACHMENT_BYTES {
                return Err(bad_request(&format!("attachments[{i}].size_bytes"), format!("at most {MAX_ATTACHMENT_BYTES} bytes")));
            }
            if a.file_name.trim().is_empty() {
                return Err(bad_request(&format!("attachments[{i}].file_name"), "an attachment needs a file name".into()));
            }
            if a.sha256.len() != 64 || !a.sha256.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(bad_request(&format!("attachments[{i}].sha256"), "the SHA-256 of the file, 64 hex digits".into()));
            }
            if a.size_bytes < 0 {
                return Err(bad_request(&format!("attachments[{i}].size_bytes"), "a size cannot be negative".into()));
            }
            files.push((a.file_name.clone(), a.media_type.clone(), a.size_bytes, a.sha256.to_ascii_lowercase()));
        }
        self.store
            .comment(req.case_id, wall_clock().0, &caller.subject, caller.role.as_str(), &req.text, &files)
            .await
            .map_err(status_of)?;
        let case = self.store.case(req.case_id).await.map_err(status_of)?;
        Ok(Response::new(self.detail(&caller, &case).await?))
    }

    async fn resolve(&self, request: Request<v1::ResolveRequest>) -> Result<Response<v1::Case>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("Resolve", &[Role::Inspector])?;
        let req = request.into_inner();
        check_text("reason", &req.reason, MAX_TEXT_CHARS, false)?;
        check_text("responsible_actor", &req.responsible_actor, MAX_NAME_CHARS, true)?;
        let disposition =
            v1::Disposition::try_from(req.disposition).ok().and_then(|d| Disposition::parse(d.as_str_name())).ok_or_else(|| {
                bad_request("disposition", "one of NO_FAULT, RECTIFY, EFFICIENCY_WARNING, CRITICISM, ADMONITION, REFERRED".into())
            })?;
        let who = caller.subject.clone();
        let deadline = req.rectify_deadline.as_deref().map(|t| instant("rectify_deadline", t)).transpose()?;
        let now = wall_clock().0;
        self.act(&caller, req.case_id, now, "RESOLVE", |s| {
            workflow::resolve(req.case_id, s, &who, disposition, &req.reason, &req.responsible_actor, deadline, now)
        })
        .await
    }

    type WatchCasesStream = CaseStream;

    async fn watch_cases(&self, request: Request<v1::WatchCasesRequest>) -> Result<Response<CaseStream>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("WatchCases", &READERS)?;
        let slot = self.streams.acquire(&caller.subject, self.max_streams).ok_or_else(|| {
            GrpcStatus::resource_exhausted(format!(
                "caller {} already holds {} case streams, the most allowed",
                caller.subject, self.max_streams
            ))
        })?;
        let after = request.into_inner().after_seq;
        let mut seq = if after < 0 { *self.store.appended.borrow() } else { after };
        let (tx, rx) = mpsc::channel(256);
        let api = self.clone();
        tokio::spawn(async move {
            let _slot = slot;
            let mut appended = api.store.appended.subscribe();
            loop {
                let page = match api.store.audit_entries(seq, None, 500).await {
                    Ok(p) => p,
                    Err(e) => {
                        let _ = tx.send(Err(status_of(e))).await;
                        return;
                    }
                };
                if page.is_empty() {
                    tokio::select! {
                        changed = appended.changed() => if changed.is_err() { return },
                        _ = tx.closed() => return,
                    }
                    continue;
                }
                for e in page {
                    seq = e.seq;
                    let Ok(case) = api.store.case(e.case_id).await else { continue };
                    if caller.department_scope().is_some_and(|own| own != case.department_code) {
                        continue;
                    }
                    let Ok(case) = api.case_out(&caller, &case).await else { continue };
                    let update = v1::CaseUpdate { entry: Some(api.stream_entry(&caller, &e)), case: Some(case) };
                    if tx.send(Ok(update)).await.is_err() {
                        return;
                    }
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx)) as CaseStream))
    }

    async fn list_audit_entries(
        &self,
        request: Request<v1::ListAuditEntriesRequest>,
    ) -> Result<Response<v1::ListAuditEntriesResponse>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("ListAuditEntries", &[Role::Auditor, Role::Inspector])?;
        let req = request.into_inner();
        let limit = if req.limit == 0 { 1000 } else { i64::from(req.limit.min(10_000)) };
        let entries = self.store.audit_entries(req.after_seq, req.case_id, limit).await.map_err(status_of)?;
        Ok(Response::new(v1::ListAuditEntriesResponse { entries: entries.iter().map(|e| self.entry_message(e)).collect() }))
    }

    async fn verify_audit(&self, request: Request<v1::VerifyAuditRequest>) -> Result<Response<v1::VerifyAuditResponse>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("VerifyAudit", &[Role::Auditor, Role::Inspector])?;
        Ok(Response::new(match self.store.verify_audit().await.map_err(status_of)? {
            Ok(h) => v1::VerifyAuditResponse {
                ok: true,
                entries: h.entries,
                bad_seq: None,
                problem: String::new(),
                head_seq: h.seq,
                head_hash: h.hash,
            },
            Err(b) => v1::VerifyAuditResponse { ok: false, bad_seq: Some(b.seq), problem: b.to_string(), ..Default::default() },
        }))
    }

    async fn send_back(&self, request: Request<v1::SendBackRequest>) -> Result<Response<v1::Case>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("SendBack", &[Role::Inspector])?;
        let req = request.into_inner();
        check_text("reason", &req.reason, MAX_TEXT_CHARS, false)?;
        self.act(&caller, req.case_id, wall_clock().0, "SEND_BACK", |s| workflow::send_back(req.case_id, s, &req.reason)).await
    }

    async fn open_case(&self, request: Request<v1::OpenCaseRequest>) -> Result<Response<v1::Case>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("OpenCase", &[Role::Inspector])?;
        let req = request.into_inner();
        let level = match v1::Level::try_from(req.level) {
            Ok(l @ (v1::Level::Yellow | v1::Level::Red)) => l.as_str_name().to_owned(),
            _ => return Err(bad_request("level", "a case is YELLOW or RED".into())),
        };
        let new = self.new_case(Origin::Manual, &req.department_code, req.item_id, level, &req.summary, None, None).await?;
        let case = self.store.open_case(&new, wall_clock().0, &caller.subject, caller.role.as_str()).await.map_err(status_of)?;
        Ok(Response::new(self.case_out(&caller, &case).await?))
    }

    async fn file_complaint(&self, request: Request<v1::FileComplaintRequest>) -> Result<Response<v1::Case>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("FileComplaint", &[Role::Inspector, Role::Intake])?;
        let req = request.into_inner();
        if !COMPLAINT_CHANNELS.contains(&req.channel.as_str()) {
            return Err(bad_request(
                "channel",
                format!("channel `{}`: one of {}", req.channel.escape_debug(), COMPLAINT_CHANNELS.join(", ")),
            ));
        }
        check_text("complainant", &req.complainant, MAX_NAME_CHARS, false)?;
        if req.complainant.trim().is_empty() {
            return Err(bad_request("complainant", "the complainant's name and contact are required (inspectors only see them)".into()));
        }
        let new = self
            .new_case(
                Origin::Complaint,
                &req.department_code,
                req.item_id,
                "YELLOW".into(),
                &req.summary,
                Some(req.channel),
                Some(req.complainant.trim().to_owned()),
            )
            .await?;
        let case = self.store.open_case(&new, wall_clock().0, &caller.subject, caller.role.as_str()).await.map_err(status_of)?;
        if caller.role == Role::Intake {
            // An intake system learns the case number and nothing else.
            return Ok(Response::new(v1::Case {
                case_id: case.case_id,
                origin: case.origin,
                status: v1::CaseStatus::CaseFiled as i32,
                ..Default::default()
            }));
        }
        Ok(Response::new(self.case_out(&caller, &case).await?))
    }

    async fn answer_complaint(&self, request: Request<v1::AnswerComplaintRequest>) -> Result<Response<v1::Case>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("AnswerComplaint", &[Role::Inspector])?;
        let req = request.into_inner();
        check_text("reason", &req.reason, MAX_TEXT_CHARS, false)?;
        let who = caller.subject.clone();
        if req.accept {
            self.act(&caller, req.case_id, wall_clock().0, "ACCEPT", |s| workflow::accept_complaint(req.case_id, s)).await
        } else {
            self.act(&caller, req.case_id, wall_clock().0, "REJECT", |s| workflow::reject_complaint(req.case_id, s, &who, &req.reason))
                .await
        }
    }

    async fn report_rectification(&self, request: Request<v1::ReportRectificationRequest>) -> Result<Response<v1::Case>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("ReportRectification", &[Role::Department])?;
        let req = request.into_inner();
        check_text("report", &req.report, MAX_TEXT_CHARS, false)?;
        self.visible_case(&caller, req.case_id).await?;
        self.act(&caller, req.case_id, wall_clock().0, "RECTIFICATION_REPORT", |s| {
            workflow::report_rectification(req.case_id, s, &req.report)
        })
        .await
    }

    async fn verify_rectification(&self, request: Request<v1::VerifyRectificationRequest>) -> Result<Response<v1::Case>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("VerifyRectification", &[Role::Inspector])?;
        let req = request.into_inner();
        check_text("reason", &req.reason, MAX_TEXT_CHARS, false)?;
        let deadline = req.new_deadline.as_deref().map(|t| instant("new_deadline", t)).transpose()?;
        let now = wall_clock().0;
        self.act(&caller, req.case_id, now, "RECTIFICATION_VERIFY", |s| {
            workflow::verify_rectification(req.case_id, s, req.accepted, &req.reason, deadline, now)
        })
        .await
    }

    async fn review(&self, request: Request<v1::ReviewRequest>) -> Result<Response<v1::Case>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("Review", &[Role::Inspector])?;
        let req = request.into_inner();
        check_text("reason", &req.reason, MAX_TEXT_CHARS, false)?;
        let who = caller.subject.clone();
        self.act(&caller, req.case_id, wall_clock().0, "REVIEW", |s| workflow::review(req.case_id, s, &who, req.uphold, &req.reason)).await
    }
}

/// The wire form of a report.
pub fn report_message(r: &stats::Report, generated_at: String) -> v1::StatsReport {
    v1::StatsReport {
        period: r.period.clone(),
        from: r.from.clone(),
        to: r.to.clone(),
        group_by: match r.group_by {
            GroupBy::Department => "department".into(),
            GroupBy::Service => "service".into(),
        },
        rows: r
            .rows
            .iter()
            .map(|x| v1::StatsRow {
                key: x.key.clone(),
                name: x.name.clone(),
                department_code: x.department_code.clone(),
                received: x.received,
                accepted: x.accepted,
                decided: x.decided,
                decided_on_time: x.decided_on_time,
                decided_early: x.decided_early,
                on_time_rate: x.on_time_rate.unwrap_or(0.0),
                early_rate: x.early_rate.unwrap_or(0.0),
                overdue_promised: x.overdue_promised,
                overdue_statutory: x.overdue_statutory,
                mean_working_days: x.mean_working_days.unwrap_or(0.0),
                p90_working_days: x.p90_working_days.unwrap_or(0.0),
                promised_share_used: x.promised_share_used.unwrap_or(0.0),
                warnings: x.warnings,
                yellow: x.yellow,
                red: x.red,
                step_overdue: x.step_overdue,
                late_report_share: x.late_report_share.unwrap_or(0.0),
                dispositions: x.dispositions.iter().map(|(k, v)| (k.clone(), *v)).collect(),
                repeat_offender_marks: x.repeat_offender_marks,
                score: x.score.unwrap_or(0.0),
                rank: x.rank,
                rated: x.score.is_some(),
                previous_rank: x.previous_rank,
            })
            .collect(),
        generated_at,
    }
}

#[tonic::async_trait]
impl StatsService for Api {
    async fn get_stats(&self, request: Request<v1::GetStatsRequest>) -> Result<Response<v1::StatsReport>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        // The 绩效评估通报 is published to every department; aggregate figures only.
        caller.require("GetStats", &STATS_READERS)?;
        let req = request.into_inner();
        let period = stats::parse_period(&req.period, self.zone).map_err(|e| bad_request("period", e))?;
        let group_by = GroupBy::parse(&req.group_by).map_err(|e| bad_request("group_by", e))?;
        let catalog = self.rules.get().0;
        let report = stats::report(&self.store, &catalog, &period, group_by, &self.weights).await.map_err(status_of)?;
        Ok(Response::new(report_message(&report, self.t(wall_clock().0))))
    }

    async fn list_reports(&self, request: Request<v1::ListReportsRequest>) -> Result<Response<v1::ListReportsResponse>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("ListReports", &STATS_READERS)?;
        let reports = crate::publish::list(&self.store).await.map_err(publish_status)?;
        Ok(Response::new(v1::ListReportsResponse {
            reports: reports
                .into_iter()
                .map(|r| v1::PublishedReport {
                    number: r.number,
                    period: r.period,
                    issued_at: self.t(r.issued_at),
                    issued_by: r.issued_by,
                    audit_head: r.audit_head,
                    sha256: r.sha256,
                })
                .collect(),
        }))
    }

    async fn get_report(&self, request: Request<v1::GetReportRequest>) -> Result<Response<v1::ReportFile>, GrpcStatus> {
        let caller = auth::caller(&request)?;
        caller.require("GetReport", &STATS_READERS)?;
        let req = request.into_inner();
        if !crate::publish::FORMATS.contains(&req.format.as_str()) {
            return Err(bad_request("format", format!("format `{}`: one of html, csv, json, xlsx", req.format.escape_debug())));
        }
        match crate::publish::file(&self.store, &req.number, &req.format).await.map_err(publish_status)? {
            Some((media_type, file_name, content)) => {
                Ok(Response::new(v1::ReportFile { number: req.number, media_type: media_type.to_owned(), file_name, content }))
            }
            None => Err(GrpcStatus::not_found(format!("no published report is numbered `{}`", req.number.escape_debug()))),
        }
    }
}

/// The 绩效评估通报 is published to every department: aggregate figures only. An intake
/// system reads nothing.
const STATS_READERS: [Role; 4] = [Role::Inspector, Role::Department, Role::Operator, Role::Auditor];

fn publish_status(e: crate::publish::PublishError) -> GrpcStatus {
    match e {
        crate::publish::PublishError::Store(e) => status_of(e),
        crate::publish::PublishError::Request(m) => bad_request("format", m),
        other => GrpcStatus::internal(other.to_string()),
    }
}
