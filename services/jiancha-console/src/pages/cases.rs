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
    AssignRequest, AttachmentMeta, Case, CaseStatus, CommentRequest, Disposition, GetCaseRequest, Level, ListCasesRequest, ReplyRequest,
    ResolveRequest,
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
        ..ListCasesRequest::default()
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
    ];
    let all = ctx.t("全部", "All");
    let body = html! {
        form class="filters" method="get" action="/cases" {
            label { (ctx.t("状态", "Status")) " " select name="status" { (options(&q.status, &[("", all), ("CASE_OPEN", case_status_label(1, ctx.lang)), ("CASE_REPLIED", case_status_label(2, ctx.lang)), ("CASE_RESOLVED", case_status_label(3, ctx.lang))])) } }
            @if user.scope().is_none() {
                label { (ctx.t("部门", "Department")) " " input name="department" value=(q.department) size="8"; }
            }
            label { (ctx.t("等级", "Level")) " " select name="level" { (options(&q.level, &[("", all), ("YELLOW", view::level_label(2, ctx.lang)), ("RED", view::level_label(3, ctx.lang))])) } }
            label { (ctx.t("督办（逾期未说明）", "Escalated (reply overdue)")) " " select name="escalated" { (options(&q.escalated, &[("", all), ("yes", ctx.t("是", "Yes")), ("no", ctx.t("否", "No"))])) } }
            label { (ctx.t("屡犯", "Repeat offender")) " " select name="repeat" { (options(&q.repeat, &[("", all), ("yes", ctx.t("是", "Yes"))])) } }
            @if user.role == Role::Inspector {
                label { input type="checkbox" name="mine" value="yes" checked[q.mine == "yes"]; " " (ctx.t("分派给我", "Assigned to me")) }
            }
            button type="submit" { (ctx.t("筛选", "Filter")) }
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
                        td { (kind_label(c.kind, ctx.lang)) }
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
        p class="badges" { (level_badge(c.level, ctx.lang)) " " strong { (kind_label(c.kind, ctx.lang)) } (badges(&ctx, &c))
            " " span class="tag" { (case_status_label(c.status, ctx.lang)) } }
        dl class="facts" {
            dt { (ctx.t("部门", "Department")) } dd { (c.department_code) }
            dt { (ctx.t("办件", "Item")) } dd {
                @if let Some(item) = &c.item_id { a href={"/items/" (view::urlencode(&c.department_code)) "/" (view::urlencode(item))} { (item) } } @else { "—" }
                " " (c.service_code.as_deref().unwrap_or(""))
            }
            dt { (ctx.t("触发时间", "Triggered")) } dd { (ctx.time(&c.triggered_at)) }
            dt { (ctx.t("立案时间", "Opened")) } dd { (ctx.time(&c.opened_at)) }
            @if let Some(e) = &c.escalate_at { dt { (ctx.t("督办时点", "Escalates at")) } dd { (ctx.time(e)) } }
            dt { (ctx.t("承办人", "Assignee")) } dd { (c.assigned_to.as_deref().unwrap_or("—")) }
            @if c.level != c.alert_level { dt { (ctx.t("原告警等级", "Alert's level")) } dd { (level_badge(c.alert_level, ctx.lang)) } }
        }
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
        @if !resolved { (actions(&ctx, &c, &dispositions)) }
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

fn actions(ctx: &Ctx, c: &Case, dispositions: &[(&str, &str)]) -> Markup {
    let user = ctx.user();
    let base = format!("/cases/{}", c.case_id);
    html! {
        section class="actions" {
            h2 { (ctx.t("办理", "Actions")) }
            @if user.role == Role::Department && c.status == CaseStatus::CaseOpen as i32 {
                form method="post" action={(base) "/reply"} class="stack" {
                    (ctx.csrf_field())
                    label { (ctx.t("情况说明", "Explanation")) textarea name="text" rows="4" required {} }
                    button type="submit" { (ctx.t("提交说明", "Send the reply")) }
                }
            }
            @if user.role == Role::Inspector {
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
                    button type="submit" { (ctx.t("作出处理", "Decide")) }
                }
            }
            @if matches!(user.role, Role::Inspector | Role::Department) {
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
                rectify_deadline: None,
            })
            .await
            .map(|_| ()),
        _ => return (StatusCode::NOT_FOUND, "no such action").into_response(),
    };
    match result {
        Ok(()) => Redirect::to(&format!("/cases/{case_id}")).into_response(),
        Err(status) => grpc_error(&ctx, &status),
    }
}
