//! 审计: the accountability queue's hash-chained audit log, filtered by case, and its
//! verification with the head hash to publish.

use super::grpc_error;
use crate::view::{Ctx, frame};
use crate::{App, Auth, html};
use axum::extract::{Query, State};
use axum::response::Response;
use jiancha_proto::v1::{ListAuditEntriesRequest, VerifyAuditRequest};
use maud::html;
use serde::Deserialize;
use std::sync::Arc;

/// The log's filters.
#[derive(Debug, Default, Deserialize)]
pub struct AuditQuery {
    #[serde(default)]
    case: String,
    #[serde(default)]
    after: String,
    #[serde(default)]
    verify: String,
}

/// Audit actions in words.
pub fn action_label<'a>(ctx: &'a Ctx, action: &'a str) -> &'a str {
    match action {
        "OPEN" => ctx.t("立案", "Opened"),
        "REPLY" => ctx.t("部门说明", "Replied"),
        "ASSIGN" => ctx.t("分派", "Assigned"),
        "COMMENT" => ctx.t("意见", "Comment"),
        "RESOLVE" => ctx.t("处理", "Resolved"),
        "ESCALATE" => ctx.t("督办", "Escalated"),
        "RETRACT" => ctx.t("告警撤回", "Alert retracted"),
        "REOPEN" => ctx.t("重新立案", "Reopened"),
        "MOVE" => ctx.t("告警时点变更", "Alert moved"),
        "FILE" => ctx.t("投诉登记", "Complaint filed"),
        "ACCEPT" => ctx.t("投诉受理", "Complaint accepted"),
        "REJECT" => ctx.t("投诉不予受理", "Complaint rejected"),
        "REMIND" => ctx.t("催办", "Reminded"),
        "PUBLICIZE" => ctx.t("列入通报", "Marked for publication"),
        "REPORTED" => ctx.t("已通报", "Published"),
        "SEND_BACK" => ctx.t("退回补充说明", "Sent back"),
        "RECTIFY_OVERDUE" => ctx.t("整改逾期", "Rectification overdue"),
        "RECTIFICATION_REPORT" => ctx.t("整改报告", "Rectification reported"),
        "RECTIFICATION_VERIFY" => ctx.t("整改验收", "Rectification verified"),
        "REVIEW_FLAG" => ctx.t("待复核", "Flagged for review"),
        "REVIEW" => ctx.t("复核", "Reviewed"),
        other => other,
    }
}

/// The page.
pub async fn page(State(app): State<Arc<App>>, Auth(ctx): Auth, Query(q): Query<AuditQuery>) -> Response {
    let mut client = app.backends.cases(ctx.user());
    let case_id = q.case.trim().parse::<i64>().ok();
    let after = q.after.trim().parse::<i64>().unwrap_or(0).max(0);
    let entries = match client.list_audit_entries(ListAuditEntriesRequest { after_seq: after, case_id, limit: 100 }).await {
        Ok(r) => r.into_inner().entries,
        Err(status) => return grpc_error(&ctx, &status),
    };
    let verified = if q.verify == "1" {
        match client.verify_audit(VerifyAuditRequest {}).await {
            Ok(r) => Some(r.into_inner()),
            Err(status) => return grpc_error(&ctx, &status),
        }
    } else {
        None
    };
    let last = entries.last().map(|e| e.seq);
    let body = html! {
        @if let Some(v) = &verified {
            @if v.ok {
                div class="notice ok" role="status" {
                    p { strong { (ctx.t("审计链完整", "The audit chain is intact")) } " · " (v.entries) " " (ctx.t("条记录", "entries")) }
                    p { (ctx.t("链头（请发布以便日后核对）：", "Head (publish it to check against later): ")) code id="audit-head" { (v.head_seq) ":" (v.head_hash) } }
                }
            } @else {
                div class="notice error" role="alert" {
                    p { strong { (ctx.t("审计链被破坏", "The audit chain is broken")) } }
                    p { (ctx.t("首个异常记录：", "First bad entry: ")) (v.bad_seq.map(|s| s.to_string()).unwrap_or_default()) " — " (v.problem) }
                }
            }
        }
        form class="filters" method="get" action="/audit" {
            label { (ctx.t("案件编号", "Case")) " " input name="case" value=(q.case) size="8" inputmode="numeric"; }
            button type="submit" { (ctx.t("筛选", "Filter")) }
            button type="submit" name="verify" value="1" { (ctx.t("校验审计链", "Verify the chain")) }
        }
        table class="list audit" {
            thead { tr {
                th scope="col" { "#" } th scope="col" { (ctx.t("时间", "At")) } th scope="col" { (ctx.t("案件", "Case")) } th scope="col" { (ctx.t("操作人", "Who")) }
                th scope="col" { (ctx.t("操作", "Action")) } th scope="col" { (ctx.t("变更", "Change")) } th scope="col" { (ctx.t("哈希", "Hash")) }
            } }
            tbody { @for e in &entries { tr {
                td { (e.seq) } td { (ctx.time(&e.at)) } td { a href={"/cases/" (e.case_id)} { "#" (e.case_id) } }
                td { (e.who) " (" (e.role) ")" } td { (action_label(&ctx, &e.action)) }
                td { details { summary { (ctx.t("前后对比", "Before / after")) } pre { (e.before) } pre { (e.after) } } }
                td { code title=(e.hash) { (e.hash.get(..16).unwrap_or(&e.hash)) "…" } }
            } } }
        }
        nav class="pager" {
            @if let Some(seq) = last.filter(|_| entries.len() == 100) {
                a href={"/audit?after=" (seq) "&case=" (q.case)} rel="next" { (ctx.t("后100条", "Next 100")) }
            }
        }
    };
    html(frame(&ctx, ctx.t("审计日志", "Audit log"), body))
}
