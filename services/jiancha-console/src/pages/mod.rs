//! The pages, one module per tab.

pub mod audit;
pub mod board;
pub mod cases;
pub mod catalog;
pub mod items;
pub mod login;
pub mod public;
pub mod stats;

use crate::view::{Ctx, frame};
use crate::{App, html, public_ctx};
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, Uri};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use std::sync::Arc;
use tonic::{Code, Status};
use tonic_types::StatusExt;

/// A service's refusal as a page: NOT_FOUND and PERMISSION_DENIED look the same to a
/// department (it learns nothing about another department's items), INVALID_ARGUMENT
/// names the field, an ended login goes back to the login page.
pub fn grpc_error(ctx: &Ctx, status: &Status) -> Response {
    let (code, title) = match status.code() {
        Code::NotFound | Code::PermissionDenied => (StatusCode::NOT_FOUND, ctx.t("未找到或无权查看", "Not found, or not yours to see")),
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            (StatusCode::BAD_REQUEST, ctx.t("请求有误", "Invalid request"))
        }
        Code::Unauthenticated => return Redirect::to("/login").into_response(),
        Code::ResourceExhausted => {
            (StatusCode::TOO_MANY_REQUESTS, ctx.t("请求过于频繁，请稍后再试", "Too many requests; try again shortly"))
        }
        Code::Unavailable | Code::DeadlineExceeded => (StatusCode::SERVICE_UNAVAILABLE, ctx.t("服务暂不可用", "A service is unavailable")),
        _ => (StatusCode::INTERNAL_SERVER_ERROR, ctx.t("服务出错", "A service failed")),
    };
    let violations: Vec<(String, String)> = status
        .get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| (v.field, v.description)).collect())
        .unwrap_or_default();
    // A department must not learn whether another department's item exists.
    let detail = if matches!(status.code(), Code::NotFound | Code::PermissionDenied) { String::new() } else { status.message().to_owned() };
    if code.is_server_error() {
        tracing::warn!(code = ?status.code(), message = status.message(), "A service call failed");
    }
    let body = html! {
        div class="notice error" role="alert" {
            p { (title) }
            @if !detail.is_empty() { p class="detail" { (detail) } }
            @if !violations.is_empty() {
                ul { @for (field, what) in &violations { li { code { (field) } "：" (what) } } }
            }
        }
        p { a href="javascript:history.back()" { (ctx.t("返回", "Back")) } }
    };
    (code, html(frame(ctx, title, body))).into_response()
}

/// 404 for every other path.
pub async fn not_found(State(app): State<Arc<App>>, headers: HeaderMap, uri: Uri) -> Response {
    let ctx = public_ctx(&app, &headers, uri.path());
    let body = html! { p { a href="/" { (ctx.t("返回首页", "Home")) } } };
    (StatusCode::NOT_FOUND, html(frame(&ctx, ctx.t("页面不存在", "No such page"), body))).into_response()
}

/// A list's filters, kept in the links of its pages.
pub fn query_string(pairs: &[(&str, &str)]) -> String {
    let parts: Vec<String> =
        pairs.iter().filter(|(_, v)| !v.is_empty()).map(|(k, v)| format!("{k}={}", crate::view::urlencode(v))).collect();
    if parts.is_empty() { String::new() } else { format!("?{}", parts.join("&")) }
}

/// A select's options; `selected` marks the current one.
pub fn options(current: &str, choices: &[(&str, &str)]) -> maud::Markup {
    html! {
        @for (value, label) in choices {
            option value=(value) selected[*value == current] { (label) }
        }
    }
}

/// A list's pager: back to the first page when not on it, and the next page when there is
/// one (the service's page token), keeping the filters.
pub fn pager(ctx: &Ctx, base: &str, filters: &[(&str, &str)], page: &str, next: &str) -> maud::Markup {
    html! {
        nav class="pager" aria-label=(ctx.t("翻页", "Pages")) {
            @if !page.is_empty() { a href={(base) (query_string(filters))} { (ctx.t("第一页", "First page")) } }
            @if !next.is_empty() {
                a href={(base) (query_string(&[filters, &[("page", next)]].concat()))} rel="next" { (ctx.t("下一页", "Next page")) }
            }
        }
    }
}
