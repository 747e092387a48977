//! 办件进度查询, the public progress page: an applicant enters the item id and the query
//! code from the receipt and sees the status, the promised deadline and the working days
//! used. No login, no officials' names, a limit per address; a wrong code and an unknown
//! item give the same answer, so the page tells nothing about items one cannot prove.

use crate::session::User;
use crate::view::{Ctx, frame, item_status_label};
use crate::{App, html, public_ctx};
use axum::Form;
use axum::extract::{ConnectInfo, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use jiancha_platform::auth::Role;
use jiancha_proto::v1::{GetItemRequest, ItemTimeline};
use maud::{Markup, html};
use serde::Deserialize;
use std::net::SocketAddr;
use std::sync::Arc;

/// The query.
#[derive(Debug, Default, Deserialize)]
pub struct ProgressForm {
    #[serde(default)]
    item: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    department: String,
}

fn form(ctx: &Ctx, f: &ProgressForm, ask_department: bool) -> Markup {
    html! {
        form method="post" action="/progress" class="stack narrow" {
            label { (ctx.t("办件编号", "Item number")) input name="item" value=(f.item) required maxlength="128" autocomplete="off"; }
            label { (ctx.t("查询码（见受理回执）", "Query code (on your receipt)")) input name="code" value="" required maxlength="32" autocomplete="off"; }
            @if ask_department {
                label { (ctx.t("办理部门代码（见受理回执）", "Department code (on your receipt)")) input name="department" value=(f.department) required maxlength="32"; }
            }
            button type="submit" class="primary" { (ctx.t("查询", "Look up")) }
        }
    }
}

/// The applicant's address: the connection's, or, behind a listed reverse proxy, the
/// right-most `X-Forwarded-For` address that is not itself a listed proxy (addresses to
/// its left were written by the client and prove nothing).
pub fn client_address(peer: std::net::IpAddr, headers: &HeaderMap, proxies: &[std::net::IpAddr]) -> std::net::IpAddr {
    if !proxies.contains(&peer) {
        return peer;
    }
    let forwarded: Vec<std::net::IpAddr> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|a| a.trim().parse().ok())
        .collect();
    forwarded.into_iter().rev().find(|a| !proxies.contains(a)).unwrap_or(peer)
}

/// The form.
pub async fn page(State(app): State<Arc<App>>, headers: HeaderMap) -> Response {
    let ctx = public_ctx(&app, &headers, "/progress");
    let body = html! {
        p { (ctx.t("请输入受理回执上的办件编号和查询码。", "Enter the item number and the query code printed on your receipt.")) }
        (form(&ctx, &ProgressForm::default(), false))
    };
    html(frame(&ctx, ctx.t("办件进度查询", "Application progress"), body))
}

/// The answer.
pub async fn query(
    State(app): State<Arc<App>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Form(f): Form<ProgressForm>,
) -> Response {
    let ctx = public_ctx(&app, &headers, "/progress");
    let title = ctx.t("办件进度查询", "Application progress");
    let client = client_address(peer.ip(), &headers, &app.config.console.trusted_proxies);
    if app.public_limiter.try_take(&client.to_string(), 1.0).is_err() {
        metrics::counter!(crate::PROGRESS_QUERIES, "result" => "rate_limited").increment(1);
        let body =
            html! { (crate::view::notice("error", ctx.t("查询过于频繁，请一分钟后再试。", "Too many queries; try again in a minute."))) };
        return (StatusCode::TOO_MANY_REQUESTS, html(frame(&ctx, title, body))).into_response();
    }
    let Some(secret) = app.query_secret.as_deref() else {
        let body = html! { (crate::view::notice("error", ctx.t("本系统未开通查询码。", "Query codes are not issued here."))) };
        return (StatusCode::SERVICE_UNAVAILABLE, html(frame(&ctx, title, body))).into_response();
    };
    let item = f.item.trim().to_owned();
    // The page reads as a service account that may read every item; what it shows is
    // limited below, and only after the code is proven.
    let reader = User { subject: "console:public-progress".into(), name: "public progress".into(), role: Role::Auditor, department: None };
    let answer = if item.is_empty() || item.len() > 128 {
        Err(false)
    } else {
        match app
            .backends
            .monitor(&reader)
            .get_item(GetItemRequest { item_id: item.clone(), department_code: f.department.trim().to_owned() })
            .await
        {
            Ok(t) => Ok(t.into_inner()),
            // Two departments use this id: the department on the receipt decides.
            Err(s) if s.code() == tonic::Code::InvalidArgument && f.department.trim().is_empty() => Err(true),
            Err(_) => Err(false),
        }
    };
    let found = match answer {
        Ok(t) if jiancha_platform::progress::check(secret, &t.department_code, &t.item_id, &f.code) => Some(t),
        Err(true) => {
            let body = html! {
                (crate::view::notice("info", ctx.t("该编号对应多个部门的办件，请再填写办理部门代码。", "Several departments use this number; add the department code.")))
                (form(&ctx, &f, true))
            };
            return html(frame(&ctx, title, body));
        }
        _ => None,
    };
    metrics::counter!(crate::PROGRESS_QUERIES, "result" => if found.is_some() { "found" } else { "not_found" }).increment(1);
    let body = match &found {
        Some(t) => progress(&ctx, t),
        None => html! {
            (crate::view::notice("error", ctx.t("未找到：请核对办件编号和查询码。", "Not found: check the item number and the query code.")))
            (form(&ctx, &f, !f.department.is_empty()))
        },
    };
    let code = if found.is_some() { StatusCode::OK } else { StatusCode::NOT_FOUND };
    (code, html(frame(&ctx, title, body))).into_response()
}

fn progress(ctx: &Ctx, t: &ItemTimeline) -> Markup {
    let promised = t.clocks.iter().find(|c| c.name == "promised");
    let statutory = t.clocks.iter().find(|c| c.name == "statutory");
    html! {
        dl class="facts big" id="progress" {
            dt { (ctx.t("办件编号", "Item number")) } dd { (t.item_id) }
            dt { (ctx.t("事项", "Service")) } dd { (t.service_name.as_deref().or(t.service_code.as_deref()).unwrap_or("—")) }
            dt { (ctx.t("当前状态", "Status")) } dd { strong { (item_status_label(t.status, ctx.lang)) } }
            @if let Some(c) = promised {
                dt { (ctx.t("承诺办结期限", "Promised by")) } dd { (crate::view::fmt_deadline(&c.deadline, ctx.tz, ctx.lang)) }
                @let used = (c.budget_days - c.remaining_days).max(0.0);
                dt { (ctx.t("已用时间", "Time used")) } dd { (format!("{used:.1}")) " / " (c.budget_days) " " (if c.day_kind == "WORKING" { ctx.t("个工作日", "working days") } else { ctx.t("天", "days") }) }
            }
            @if let Some(c) = statutory { dt { (ctx.t("法定办结期限", "Statutory limit")) } dd { (crate::view::fmt_deadline(&c.deadline, ctx.tz, ctx.lang)) } }
        }
        p class="meta" { (ctx.t("以上时间按工作日计算，法定节假日和依法暂停的特别程序不计入。", "Counted in working days; public holidays and lawful pauses are not counted.")) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    #[test]
    fn the_client_is_found_behind_listed_proxies_only() {
        let proxy: std::net::IpAddr = "10.0.0.5".parse().unwrap();
        let mut h = HeaderMap::new();
        h.insert("x-forwarded-for", HeaderValue::from_static("1.2.3.4, 203.0.113.7"));
        // Not behind a listed proxy: the header is the client's own words.
        assert_eq!(client_address("198.51.100.1".parse().unwrap(), &h, &[proxy]), "198.51.100.1".parse::<std::net::IpAddr>().unwrap());
        // Behind the proxy: the address it saw, not the one the client claimed.
        assert_eq!(client_address(proxy, &h, &[proxy]), "203.0.113.7".parse::<std::net::IpAddr>().unwrap());
        assert_eq!(client_address(proxy, &HeaderMap::new(), &[proxy]), proxy);
    }
}
