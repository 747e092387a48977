//! 问责: the case queue and the case page, with the actions each role may take. The
//! service decides who may do what; the page only offers what the role can do.

use super::{grpc_error, options, pager};
use crate::view::{self, Ctx, case_status_label, derivation, disposition_label, frame, kind_label, level_badge};
use crate::{App, Auth, html};
use axum::Form;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Redirect, Response};
use jiancha_platform::auth::Role;
use jiancha_proto::v1::{
    AnswerComplaintRequest, AssignRequest, AttachmentMeta, Case, CaseStatus, CommentRequest, Disposition, FileComplaintRequest,
    GetCaseRequest, Level, ListCasesRequest, OpenCaseRequest, ReplyRequest, ReportRectificationRequest, ResolveRequest, ReviewRequest,
    SendBackRequest, VerifyRectificationRequest,
};
use maud::{Markup, html};
use serde::Deserialize;
use std::sync::Arc;

/// The queue's filters.
#[derive(Debug, Default, Deserialize)]
pub struct ListQuery {
    #[serde(default)]
    status: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    level: String,
    #[serde(default)]
    escalated: String,
    #[serde(default)]
    repeat: String,
    #[serde(default)]
    mine: String,
    #[serde(default)]
    origin: String,
    #[serde(default)]
    review: String,
    #[serde(default)]
    page: String,
}

fn flag(v: &str) -> Option<bool> {
    match v {
        "yes" => Some(true),
        "no" => Some(false),
        _ => None,
    }
}

fn badges(ctx: &Ctx, c: &Case) -> Markup {
    html! {
        @if c.escalated { " " span class="tag escalated" title=(ctx.t("逾期未说明，已升级督办", "Not replied in time: escalated")) { (ctx.t("督办", "Escalated")) } }
        @if c.repeat_offender_department { " " span class="tag repeat" title=(ctx.t("部门一年内三次以上过错", "Department: 3+ faults within a year")) { (ctx.t("部门屡犯", "Repeat (dept)")) } }
        @if c.repeat_offender_actor { " " span class="tag repeat" title=(ctx.t("责任人一年内三次以上过错", "Official: 3+ faults within a year")) { (ctx.t("责任人屡犯", "Repeat (official)")) } }
    }
}

/// The queue.
pub async fn list(State(app): State<Arc<App>>, Auth(ctx): Auth, Query(q): Query<ListQuery>) -> Response {
    let user = ctx.user().clone();
    let request = ListCasesRequest {
        status: CaseStatus::from_str_name(&q.status).map(|s| s as i32),
        department_code: user.scope().map(str::to_owned).or_else(|| Some(q.department.clone()).filter(|d| !d.is_empty())),
        level: Level::from_str_name(&q.level).map(|l| l as i32),
        escalated: flag(&q.escalated),
        repeat_offender: flag(&q.repeat),
        assigned_to: (q.mine == "yes").then(|| user.subject.clone()),
        page_size: 50,
        page_token: q.page.clone(),
        origin: Some(q.origin.clone()).filter(|o| !o.is_empty()),
        review: flag(&q.review),
        publicized: None,
    };
    let response = match app.backends.cases(&user).list_cases(request).await {
        Ok(r) => r.into_inner(),
        Err(status) => return grpc_error(&ctx, &status),
    };
    let filters = [
        ("status", q.status.as_str()),
        ("department", q.department.as_str()),
        ("level", q.level.as_str()),
        ("escalated", q.escalated.as_str()),
        ("repeat", q.repeat.as_str()),
        ("mine", q.mine.as_str()),
        ("origin", q.origin.as_str()),
        ("review", q.review.as_str()),
    ];
    let all = ctx.t("全部", "All");
    let body = html! {
        form class="filters" method="get" action="/cases" {
            label { (ctx.t("状态", "Status")) " " select name="status" { (options(&q.status, &[("", all), ("CASE_FILED", case_status_label(4, ctx.lang)), ("CASE_OPEN", case_status_label(1, ctx.lang)), ("CASE_REPLIED", case_status_label(2, ctx.lang)), ("CASE_RESOLVED", case_status_label(3, ctx.lang))])) } }
            @if user.scope().is_none() {
                label { (ctx.t("部门", "Department")) " " input name="department" value=(q.department) size="8"; }
            }
            label { (ctx.t("等级", "Level")) " " select name="level" { (options(&q.level, &[("", all), ("YELLOW", view::level_label(2, ctx.lang)), ("RED", view::level_label(3, ctx.lang))])) } }
            label { (ctx.t("督办（逾期未说明）", "Escalated (reply overdue)")) " " select name="escalated" { (options(&q.escalated, &[("", all), ("yes", ctx.t("是", "Yes")), ("no", ctx.t("否", "No"))])) } }
            label { (ctx.t("屡犯", "Repeat offender")) " " select name="repeat" { (options(&q.repeat, &[("", all), ("yes", ctx.t("是", "Yes"))])) } }
            label { (ctx.t("来源", "Origin")) " " select name="origin" { (options(&q.origin, &[("", all), ("ALERT", ctx.t("告警", "Alert")), ("MANUAL", ctx.t("监察员立案", "Opened by hand")), ("COMPLAINT", ctx.t("投诉", "Complaint"))])) } }
            label { (ctx.t("待复核", "Review")) " " select name="review" { (options(&q.review, &[("", all), ("yes", ctx.t("是", "Yes"))])) } }
            @if user.role == Role::Inspector {
                label { input type="checkbox" name="mine" value="yes" checked[q.mine == "yes"]; " " (ctx.t("分派给我", "Assigned to me")) }
            }
            button type="submit" { (ctx.t("筛选", "Filter")) }
        }
        @if user.role == Role::Inspector {
            details class="new-case" {
                summary { (ctx.t("立案或登记投诉", "Open a case or file a complaint")) }
                form method="post" action="/cases/new" class="stack" {
                    (ctx.csrf_field())
                    label { (ctx.t("类别", "Kind")) select name="kind" { (options("COMPLAINT", &[("COMPLAINT", ctx.t("投诉（来电、来信、来访）", "Complaint (hotline, letter, visit)")), ("MANUAL", ctx.t("监察员立案", "Case opened by hand"))])) } }
                    label { (ctx.t("被投诉/涉及部门（代码）", "Department (code)")) input name="department" required size="8"; }
                    label { (ctx.t("办件编号（可选）", "Item (optional)")) input name="item"; }
                    label { (ctx.t("事由", "What happened")) textarea name="text" rows="3" required {} }
                    label { (ctx.t("投诉渠道", "Channel")) select name="channel" { (options("HOTLINE", &[("HOTLINE", ctx.t("电话", "Hotline")), ("LETTER", ctx.t("来信", "Letter")), ("VISIT", ctx.t("来访", "Visit")), ("ONLINE", ctx.t("网络", "Online"))])) } }
                    label { (ctx.t("投诉人及联系方式（仅监察员可见）", "Complainant and contact (inspectors only)")) input name="complainant"; }
                    label { (ctx.t("等级（立案）", "Level (cases opened by hand)")) select name="level" { (options("YELLOW", &[("YELLOW", view::level_label(2, ctx.lang)), ("RED", view::level_label(3, ctx.lang))])) } }
                    button type="submit" { (ctx.t("提交", "Submit")) }
                }
            }
        }
        table class="list" {
            thead { tr {
                th scope="col" { (ctx.t("案件", "Case")) } th scope="col" { (ctx.t("等级", "Card")) } th scope="col" { (ctx.t("类型", "Kind")) }
                th scope="col" { (ctx.t("部门", "Department")) } th scope="col" { (ctx.t("办件", "Item")) } th scope="col" { (ctx.t("状态", "Status")) }
                th scope="col" { (ctx.t("立案时间", "Opened")) } th scope="col" { (ctx.t("承办人", "Assignee")) }
            } }
            tbody {
                @for c in &response.cases {
                    tr {
                        td { a href={"/cases/" (c.case_id)} { "#" (c.case_id) } }
                        td { (level_badge(c.level, ctx.lang)) (badges(&ctx, c)) }
                        td { (case_kind(ctx.lang, c)) }
                        td { (c.department_code) }
                        td { @if let Some(item) = &c.item_id {
                            a href={"/items/" (view::urlencode(&c.department_code)) "/" (view::urlencode(item))} { (item) }
                        } @else { "—" } }
                        td { (case_status_label(c.status, ctx.lang)) }
                        td { (ctx.time(&c.opened_at)) }
                        td { (c.assigned_to.as_deref().unwrap_or("—")) }
                    }
                }
                @if response.cases.is_empty() { tr { td colspan="8" { (ctx.t("没有符合条件的案件", "No case matches")) } } }
            }
        }
        (pager(&ctx, "/cases", &filters, &q.page, &response.next_page_token))
    };
    html(frame(&ctx, ctx.t("问责", "Cases"), body))
}

/// One case.
pub async fn case(State(app): State<Arc<App>>, Auth(ctx): Auth, Path(id): Path<String>) -> Response {
    let Ok(case_id) = id.parse::<i64>() else {
        return grpc_error(&ctx, &tonic::Status::not_found("no such case"));
    };
    let user = ctx.user().clone();
    let detail = match app.backends.cases(&user).get_case(GetCaseRequest { case_id }).await {
        Ok(r) => r.into_inner(),
        Err(status) => return grpc_error(&ctx, &status),
    };
    let Some(c) = detail.case else { return grpc_error(&ctx, &tonic::Status::not_found("no such case")) };
    let resolved = c.status == CaseStatus::CaseResolved as i32;
    let en = ctx.lang == view::Lang::En;
    let dispositions: Vec<(&str, &str)> =
        (1..=6).filter_map(|d| Disposition::try_from(d).ok().map(|x| (x.as_str_name(), disposition_label(d, ctx.lang)))).collect();
    let body = html! {
        p class="badges" { (level_badge(c.level, ctx.lang)) " " strong { (case_kind(ctx.lang, &c)) } (badges(&ctx, &c))
            " " span class="tag" { (case_status_label(c.status, ctx.lang)) } }
        dl class="facts" {
            dt { (ctx.t("部门", "Department")) } dd { (c.department_code) }
            dt { (ctx.t("办件", "Item")) } dd {
                @if let Some(item) = &c.item_id { a href={"/items/" (view::urlencode(&c.department_code)) "/" (view::urlencode(item))} { (item) } } @else { "—" }
                " " (c.service_code.as_deref().unwrap_or(""))
            }
            dt { (ctx.t("触发时间", "Triggered")) } dd { (ctx.time(&c.triggered_at)) }
            dt { (ctx.t("立案时间", "Opened")) } dd { (ctx.time(&c.opened_at)) }
            dt { (ctx.t("来源", "Origin")) } dd { (origin_label(ctx.lang, &c.origin)) @if let Some(ch) = &c.complaint_channel { "（" (ch) "）" } }
            @if let Some(who) = &c.complainant { dt { (ctx.t("投诉人（仅监察员可见）", "Complainant (inspectors only)")) } dd { (who) } }
            @if let (Some(r), Some(e), Some(p)) = (&c.remind_at, &c.supervise_at, &c.publicize_at) {
                dt { (ctx.t("督查督办", "Escalation chain")) }
                dd class="chain" {
                    (ctx.t("计时起点 ", "from ")) (ctx.time(&c.clock_from)) " · "
                    span class={"step" @if c.reminded { " taken" }} { (ctx.t("催办 ", "reminder ")) (ctx.time(r)) } " · "
                    span class={"step" @if c.escalated { " taken" }} { (ctx.t("督办 ", "escalation ")) (ctx.time(e)) } " · "
                    span class={"step" @if c.publicized { " taken" }} { (ctx.t("通报 ", "publication ")) (ctx.time(p)) }
                }
            }
            @if c.publicized { dt { (ctx.t("通报", "Publication")) } dd { (ctx.t("已列入下期通报", "Listed in the next published report")) } }
            dt { (ctx.t("承办人", "Assignee")) } dd { (c.assigned_to.as_deref().unwrap_or("—")) }
            @if c.level != c.alert_level { dt { (ctx.t("原告警等级", "Alert's level")) } dd { (level_badge(c.alert_level, ctx.lang)) } }
            dt { (ctx.t("一年内过错（每件计一次）", "Offences within a year (one per item)")) }
            dd class="offences" {
                (ctx.t("部门 ", "department ")) strong { (c.offences_department) } (ctx.t(" 次", ""))
                @if let Some(o) = &c.official { " · " (o) " " strong { (c.offences_official) } (ctx.t(" 次", "")) }
                @if c.offences_department >= 2 || c.offences_official >= 2 { " " span class="tag repeat" { (ctx.t("再有过错即为屡犯", "one more makes a repeat offender")) } }
            }
        }
        @if let Some(r) = &c.review { p class="review" role="alert" { strong { (ctx.t("待复核：", "To review: ")) } (r) } }
        @if let Some(r) = &c.sent_back { p class="sent-back" { strong { (ctx.t("已退回补充说明：", "Sent back for more: ")) } (r) } }
        @if let Some(m) = &c.message { p class="msg" { (if en { &m.en } else { &m.zh }) } }
        @if let Some(d) = &c.derivation {
            details open { summary { (ctx.t("推导过程", "Derivation")) } (derivation(if en && !d.en.is_empty() { &d.en } else { &d.zh })) }
        }
        @if let Some(reply) = &c.reply {
            section class="reply" { h2 { (ctx.t("部门说明", "Department's reply")) }
                p { (reply) } p class="meta" { (c.replied_by.as_deref().unwrap_or("")) " " (c.replied_at.as_deref().map(|t| ctx.time(t)).unwrap_or_default()) } }
        }
        @if resolved {
            section class="resolution" { h2 { (ctx.t("处理结果", "Decision")) }
                p { strong { (disposition_label(c.disposition, ctx.lang)) } }
                @if let Some(r) = &c.resolution_reason { p { (ctx.t("理由：", "Reason: ")) (r) } }
                @if let Some(r) = &c.responsible_actor { p { (ctx.t("责任人：", "Responsible official: ")) (r) } }
                @if c.rejected { p { strong { (ctx.t("不予受理", "Complaint rejected")) } } }
                @if let Some(state) = &c.rectification {
                    p class="rectification" {
                        (ctx.t("整改：", "Rectification: ")) strong { (rectification_label(&ctx, state)) }
                        @if let Some(d) = &c.rectify_deadline { (ctx.t("，期限 ", ", due ")) (ctx.time(d)) }
                        @if c.rectification_overdue { " " span class="tag escalated" { (ctx.t("已逾期", "Overdue")) } }
                    }
                    @if let Some(r) = &c.rectification_report { p { (ctx.t("整改报告：", "Report: ")) (r) } }
                }
                p class="meta" { (c.resolved_by.as_deref().unwrap_or("")) " " (c.resolved_at.as_deref().map(|t| ctx.time(t)).unwrap_or_default()) }
            }
        }
        h2 { (ctx.t("意见与附件", "Comments and attachments")) }
        @if detail.comments.is_empty() { p { (ctx.t("暂无", "None yet")) } }
        @for cm in &detail.comments {
            article class="comment" {
                p class="meta" { (cm.author) " · " (cm.role) " · " (ctx.time(&cm.at)) }
                p { (cm.text) }
                @if !cm.attachments.is_empty() { ul class="attachments" { @for a in &cm.attachments {
                    li { (a.file_name) " (" (a.media_type) ", " (a.size_bytes) " B) " code title="SHA-256" { (a.sha256.get(..16).unwrap_or(&a.sha256)) "…" } }
                } } }
            }
        }
        (actions(&ctx, &c, &dispositions))
        @if !detail.notifications.is_empty() {
            h2 { (ctx.t("通知送达", "Notifications")) }
            table class="list notifications" {
                thead { tr { th scope="col" { "#" } th scope="col" { (ctx.t("渠道", "Channel")) } th scope="col" { (ctx.t("接收方", "Recipient")) } th scope="col" { (ctx.t("状态", "Status")) } th scope="col" { (ctx.t("尝试", "Attempts")) } th scope="col" { (ctx.t("错误", "Error")) } } }
                tbody { @for n in &detail.notifications { tr {
                    td { (n.seq) } td { (n.channel) } td { (n.recipient) } td class={"delivery " (n.status.to_ascii_lowercase())} { (n.status) } td { (n.attempts) } td { (n.last_error.as_deref().unwrap_or("")) }
                } } }
            }
        }
        @if !detail.audit.is_empty() {
            h2 { (ctx.t("审计记录", "Audit trail")) }
            table class="list audit" {
                thead { tr { th scope="col" { "#" } th scope="col" { (ctx.t("时间", "At")) } th scope="col" { (ctx.t("操作人", "Who")) } th scope="col" { (ctx.t("操作", "Action")) } th scope="col" { (ctx.t("哈希", "Hash")) } } }
                tbody { @for e in &detail.audit { tr {
                    td { (e.seq) } td { (ctx.time(&e.at)) } td { (e.who) " (" (e.role) ")" } td { (super::audit::action_label(&ctx, &e.action)) } td { code { (e.hash.get(..16).unwrap_or(&e.hash)) "…" } }
                } } }
            }
        }
    };
    html(frame(&ctx, &format!("{} #{}", ctx.t("问责案件", "Case"), c.case_id), body))
}

/// The alert kind of a case from an alert; what a case opened by hand or a complaint is.
fn case_kind(lang: view::Lang, c: &Case) -> &'static str {
    if c.kind == 0 { origin_label(lang, &c.origin) } else { kind_label(c.kind, lang) }
}

fn origin_label(lang: view::Lang, origin: &str) -> &'static str {
    let (zh, en) = match origin {
        "MANUAL" => ("监察员立案", "Opened by an inspector"),
        "COMPLAINT" => ("投诉", "Complaint"),
        _ => ("告警", "Alert"),
    };
    lang.t(zh, en)
}

fn rectification_label(ctx: &Ctx, state: &str) -> &'static str {
    match state {
        "PENDING" => ctx.t("待整改", "Pending"),
        "REPORTED" => ctx.t("已报告，待验收", "Reported, to verify"),
        "VERIFIED" => ctx.t("已销号", "Verified (closed)"),
        _ => ctx.t("未知", "Unknown"),
    }
}

fn actions(ctx: &Ctx, c: &Case, dispositions: &[(&str, &str)]) -> Markup {
    let user = ctx.user();
    let base = format!("/cases/{}", c.case_id);
    let status = CaseStatus::try_from(c.status).unwrap_or(CaseStatus::Unspecified);
    let open = matches!(status, CaseStatus::CaseOpen | CaseStatus::CaseReplied);
    let inspector = user.role == Role::Inspector;
    let rectification = c.rectification.as_deref();
    let anything = (user.role == Role::Department && (open || rectification == Some("PENDING")))
        || (inspector && (open || status == CaseStatus::CaseFiled || rectification == Some("REPORTED") || c.review.is_some()));
    html! {
        @if anything {
        section class="actions" {
            h2 { (ctx.t("办理", "Actions")) }
            @if user.role == Role::Department && open {
                form method="post" action={(base) "/reply"} class="stack" {
                    (ctx.csrf_field())
                    label { (ctx.t("情况说明", "Explanation")) textarea name="text" rows="4" required {} }
                    button type="submit" { (ctx.t("提交说明", "Send the reply")) }
                }
            }
            @if user.role == Role::Department && rectification == Some("PENDING") {
                form method="post" action={(base) "/report_rectification"} class="stack" {
                    (ctx.csrf_field())
                    label { (ctx.t("整改情况报告", "Rectification report")) textarea name="text" rows="4" required {} }
                    button type="submit" { (ctx.t("报告整改情况", "Report the rectification")) }
                }
            }
            @if inspector && status == CaseStatus::CaseFiled {
                form method="post" action={(base) "/accept"} class="row" {
                    (ctx.csrf_field())
                    button type="submit" { (ctx.t("受理投诉", "Accept the complaint")) }
                }
                form method="post" action={(base) "/reject"} class="stack" {
                    (ctx.csrf_field())
                    label { (ctx.t("不予受理理由", "Reason for rejecting")) textarea name="reason" rows="2" required {} }
                    button type="submit" { (ctx.t("不予受理", "Reject")) }
                }
            }
            @if inspector && status == CaseStatus::CaseReplied {
                form method="post" action={(base) "/send_back"} class="stack" {
                    (ctx.csrf_field())
                    label { (ctx.t("退回理由（要求补充说明的内容）", "Reason for sending back (what to explain)")) textarea name="reason" rows="2" required {} }
                    button type="submit" { (ctx.t("退回补充说明", "Send back for more")) }
                }
            }
            @if inspector && open {
                form method="post" action={(base) "/assign"} class="row" {
                    (ctx.csrf_field())
                    label { (ctx.t("分派给", "Assign to")) " " input name="inspector" value=(c.assigned_to.as_deref().unwrap_or(&user.subject)) required; }
                    button type="submit" { (ctx.t("分派", "Assign")) }
                }
                form method="post" action={(base) "/resolve"} class="stack" {
                    (ctx.csrf_field())
                    label { (ctx.t("处理方式", "Disposition")) select name="disposition" required { (options("", dispositions)) } }
                    label { (ctx.t("理由（不予追究时必填）", "Reason (required for no fault)")) textarea name="reason" rows="3" {} }
                    label { (ctx.t("责任人", "Responsible official")) input name="responsible" ; }
                    label { (ctx.t("整改期限（责令整改时必填）", "Rectification deadline (required for rectify)")) input type="date" name="deadline"; }
                    button type="submit" { (ctx.t("作出处理", "Decide")) }
                }
            }
            @if inspector && rectification == Some("REPORTED") {
                form method="post" action={(base) "/verify_rectification"} class="stack" {
                    (ctx.csrf_field())
                    label { (ctx.t("验收意见（不通过时必填）", "Finding (required when reopened)")) textarea name="reason" rows="2" {} }
                    label { (ctx.t("新的整改期限（不通过时必填）", "New deadline (required when reopened)")) input type="date" name="deadline"; }
                    button type="submit" name="verdict" value="accept" { (ctx.t("整改销号", "Verify and close")) }
                    " "
                    button type="submit" name="verdict" value="reopen" { (ctx.t("不予销号，重新整改", "Reopen")) }
                }
            }
            @if inspector && c.review.is_some() {
                form method="post" action={(base) "/review"} class="stack" {
                    (ctx.csrf_field())
                    label { (ctx.t("复核意见", "Review finding")) textarea name="reason" rows="2" required {} }
                    button type="submit" name="verdict" value="uphold" { (ctx.t("维持原处理", "Uphold")) }
                    " "
                    button type="submit" name="verdict" value="annul" { (ctx.t("撤销，改为不予追究", "Annul (no fault)")) }
                }
            }
            @if matches!(user.role, Role::Inspector | Role::Department) && open {
                form method="post" action={(base) "/comment"} class="stack" {
                    (ctx.csrf_field())
                    label { (ctx.t("意见", "Comment")) textarea name="text" rows="3" required {} }
                    // The files stay in the records system: the browser sends their name,
                    // type, size and SHA-256 (computed on this machine), not their content.
                    label { (ctx.t("附件（仅登记文件名、大小和SHA-256，文件本身存于档案系统）", "Attachments (name, size and SHA-256 are recorded; the file stays in the records system)"))
                        input type="file" class="attach" multiple; }
                    input type="hidden" name="attachments" value="[]";
                    button type="submit" { (ctx.t("添加意见", "Add the comment")) }
                }
            }
        }
        }
    }
}

/// A date from a form (`2026-12-31`) as the end of that day in the console's zone.
fn end_of_day(ctx: &Ctx, date: &str) -> Option<String> {
    use chrono::TimeZone as _;
    let d = chrono::NaiveDate::parse_from_str(date.trim(), "%Y-%m-%d").ok()?;
    let end = d.and_hms_opt(23, 59, 59)?;
    ctx.tz.from_local_datetime(&end).earliest().map(|t| t.to_rfc3339())
}

/// The fields of every case form.
#[derive(Debug, Default, Deserialize)]
pub struct ActionForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    inspector: String,
    #[serde(default)]
    disposition: String,
    #[serde(default)]
    reason: String,
    #[serde(default)]
    responsible: String,
    /// A date (rectification deadline).
    #[serde(default)]
    deadline: String,
    /// Which button: accept/reopen, uphold/annul.
    #[serde(default)]
    verdict: String,
    /// JSON: [{"file_name", "media_type", "size_bytes", "sha256"}], filled by the script.
    #[serde(default)]
    attachments: String,
}

#[derive(Debug, Deserialize)]
struct AttachmentForm {
    file_name: String,
    #[serde(default)]
    media_type: String,
    size_bytes: i64,
    sha256: String,
}

/// A case action: reply, assign, comment or resolve.
pub async fn act(
    State(app): State<Arc<App>>,
    auth: Auth,
    Path((id, action)): Path<(String, String)>,
    Form(f): Form<ActionForm>,
) -> Response {
    if let Some(refused) = auth.refuse_csrf(&f.csrf) {
        return refused;
    }
    let ctx = auth.0;
    let Ok(case_id) = id.parse::<i64>() else { return (StatusCode::NOT_FOUND, "no such case").into_response() };
    let mut client = app.backends.cases(ctx.user());
    let result = match action.as_str() {
        "reply" => client.reply(ReplyRequest { case_id, explanation: f.text }).await.map(|_| ()),
        "assign" => client.assign(AssignRequest { case_id, inspector: f.inspector }).await.map(|_| ()),
        "comment" => {
            let attachments: Vec<AttachmentForm> = if f.attachments.trim().is_empty() {
                Vec::new()
            } else {
                match serde_json::from_str(&f.attachments) {
                    Ok(a) => a,
                    Err(e) => return grpc_error(&ctx, &tonic::Status::invalid_argument(format!("attachments: {e}"))),
                }
            };
            let attachments = attachments
                .into_iter()
                .map(|a| AttachmentMeta { file_name: a.file_name, media_type: a.media_type, size_bytes: a.size_bytes, sha256: a.sha256 })
                .collect();
            client.comment(CommentRequest { case_id, text: f.text, attachments }).await.map(|_| ())
        }
        "resolve" => client
            .resolve(ResolveRequest {
                case_id,
                disposition: Disposition::from_str_name(&f.disposition).map_or(0, |d| d as i32),
                reason: f.reason,
                responsible_actor: f.responsible,
                rectify_deadline: end_of_day(&ctx, &f.deadline),
            })
            .await
            .map(|_| ()),
        "send_back" => client.send_back(SendBackRequest { case_id, reason: f.reason }).await.map(|_| ()),
        "accept" => client.answer_complaint(AnswerComplaintRequest { case_id, accept: true, reason: String::new() }).await.map(|_| ()),
        "reject" => client.answer_complaint(AnswerComplaintRequest { case_id, accept: false, reason: f.reason }).await.map(|_| ()),
        "report_rectification" => client.report_rectification(ReportRectificationRequest { case_id, report: f.text }).await.map(|_| ()),
        "verify_rectification" => client
            .verify_rectification(VerifyRectificationRequest {
                case_id,
                accepted: f.verdict == "accept",
                reason: f.reason,
                new_deadline: end_of_day(&ctx, &f.deadline),
            })
            .await
            .map(|_| ()),
        "review" => client.review(ReviewRequest { case_id, uphold: f.verdict == "uphold", reason: f.reason }).await.map(|_| ()),
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    match result {
        Ok(()) => Redirect::to(&format!("/cases/{case_id}")).into_response(),
        Err(status) => grpc_error(&ctx, &status),
    }
}

/// The form that opens a case by hand or files a complaint.
#[derive(Debug, Default, Deserialize)]
pub struct NewCaseForm {
    #[serde(default)]
    csrf: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    item: String,
    #[serde(default)]
    text: String,
    #[serde(default)]
    channel: String,
    #[serde(default)]
    complainant: String,
    #[serde(default)]
    level: String,
}

/// Opens a case by hand or files a complaint (inspectors), then shows it.
pub async fn create(State(app): State<Arc<App>>, auth: Auth, Form(f): Form<NewCaseForm>) -> Response {
    if let Some(refused) = auth.refuse_csrf(&f.csrf) {
        return refused;
    }
    let ctx = auth.0;
    let mut client = app.backends.cases(ctx.user());
    let item_id = Some(f.item.trim().to_owned()).filter(|i| !i.is_empty());
    let result = if f.kind == "MANUAL" {
        client
            .open_case(OpenCaseRequest {
                department_code: f.department.trim().to_owned(),
                item_id,
                level: Level::from_str_name(&f.level).map_or(Level::Yellow as i32, |l| l as i32),
                summary: f.text,
            })
            .await
    } else {
        client
            .file_complaint(FileComplaintRequest {
                department_code: f.department.trim().to_owned(),
                item_id,
                summary: f.text,
                channel: f.channel,
                complainant: f.complainant,
            })
            .await
    };
    match result {
        Ok(c) => Redirect::to(&format!("/cases/{}", c.into_inner().case_id)).into_response(),
        Err(status) => grpc_error(&ctx, &status),
    }
}
