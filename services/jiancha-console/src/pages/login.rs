//! Logging in and out: one-time links for the local set-up, OpenID Connect for
//! production, the language switch.

use crate::session::{self, User};
use crate::view::{Lang, frame, role_label};
use crate::{App, Auth, CookieKind, SESSION_COOKIE, cookie, html, public_ctx, set_cookie};
use axum::Form;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Redirect, Response};
use maud::html;
use serde::Deserialize;
use std::sync::Arc;

/// The cookie binding an OpenID Connect login to the browser that started it. Lax: the
/// provider's redirect back is a cross-site navigation.
const OIDC_STATE: &str = "jiancha_oidc_state";
const OIDC_STATE_COOKIE: CookieKind = CookieKind { path: "/auth/oidc", lax: true, http_only: true };

/// The language cookie: read on every page, including after a link from elsewhere.
const LANG_COOKIE: CookieKind = CookieKind { path: "/", lax: true, http_only: false };

/// `?next=` and the like.
#[derive(Debug, Default, Deserialize)]
pub struct Next {
    #[serde(default)]
    next: String,
    #[serde(default)]
    token: String,
    #[serde(default)]
    to: String,
    #[serde(default)]
    back: String,
    #[serde(default)]
    code: String,
    #[serde(default)]
    state: String,
    #[serde(default)]
    error: String,
}

/// Only paths of this site: no open redirect.
fn local_path(p: &str) -> String {
    if p.starts_with('/') && !p.starts_with("//") && !p.starts_with("/\\") && !p.contains(['\r', '\n']) { p.to_owned() } else { "/".into() }
}

/// The login page.
pub async fn page(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let ctx = public_ctx(&app, &headers, "/login");
    let next = local_path(&q.next);
    let body = html! {
        @if app.oidc.is_some() {
            p { a class="button primary" href={"/auth/oidc/start?next=" (crate::view::urlencode(&next))} { (ctx.t("使用政务统一身份认证登录", "Log in with the government identity service")) } }
        }
        @if app.link_secret.is_some() {
            p class="meta" { (ctx.t("本机环境：使用 jiancha up 打印的一次性登录链接，或运行 jiancha console login --role INSPECTOR 获取新链接。", "Local set-up: open a one-time login link printed by `jiancha up`, or get one with `jiancha console login --role INSPECTOR`.")) }
        }
        p { a href="/progress" { (ctx.t("办件进度查询（申请人）", "Application progress (applicants)")) } }
    };
    html(crate::view::frame(&ctx, ctx.t("登录", "Log in"), body))
}

/// Opens the session and goes on with a same-site navigation, so that the SameSite=Strict
/// cookie is sent even when the login came from another site (the provider, a chat link).
fn logged_in(app: &App, ctx_headers: &HeaderMap, user: User, next: &str) -> Response {
    tracing::info!(subject = %user.subject, role = user.role.as_str(), department = ?user.department, "Console login");
    metrics::counter!(crate::LOGINS, "role" => user.role.as_str()).increment(1);
    let ctx = public_ctx(app, ctx_headers, "/login");
    let who = format!("{} · {}", user.name, role_label(user.role, ctx.lang));
    let id = app.sessions.open(user);
    let next = local_path(next);
    let body = html! {
        p { (ctx.t("已登录：", "Logged in: ")) (who) }
        p { a id="continue" class="button primary" href=(next) { (ctx.t("进入系统", "Continue")) } }
    };
    let mut response = html(frame(&ctx, ctx.t("登录成功", "Logged in"), body));
    let h = response.headers_mut();
    h.append(header::SET_COOKIE, set_cookie(app, SESSION_COOKIE, session::COOKIE, &id, None));
    h.append(header::SET_COOKIE, set_cookie(app, OIDC_STATE_COOKIE, OIDC_STATE, "", Some(0)));
    if let Ok(v) = format!("0;url={next}").parse() {
        h.insert("refresh", v);
    }
    response
}

fn refused(app: &App, headers: &HeaderMap, why: &str) -> Response {
    let ctx = public_ctx(app, headers, "/login");
    let body = html! {
        (crate::view::notice("error", why))
        p { a href="/login" { (ctx.t("返回登录", "Back to login")) } }
    };
    (StatusCode::UNAUTHORIZED, html(frame(&ctx, ctx.t("登录失败", "Login failed"), body))).into_response()
}

/// A one-time login link.
pub async fn link(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let lang = Lang::from_cookie(cookie(&headers, "lang"));
    let Some(secret) = app.link_secret.as_deref() else {
        return refused(&app, &headers, lang.t("本系统未启用登录链接。", "Login links are not enabled here."));
    };
    let claims = match session::verify_link(secret, &q.token) {
        Ok(c) => c,
        Err(e) => {
            tracing::info!(error = %e, "A login link was refused");
            return refused(
                &app,
                &headers,
                lang.t("登录链接无效或已过期（有效期15分钟）。", "The login link is invalid or has expired (15 minutes)."),
            );
        }
    };
    if !app.sessions.use_link(&claims.jti, claims.exp) {
        return refused(
            &app,
            &headers,
            lang.t("该登录链接已使用过，每个链接只能使用一次。", "This login link was used already; each works once."),
        );
    }
    let name = match &claims.department {
        Some(d) => format!("{d} {}", lang.t("部门用户", "department user")),
        None => claims.sub.clone(),
    };
    let user = User { subject: claims.sub, name, role: claims.role, department: claims.department };
    logged_in(&app, &headers, user, &q.next)
}

/// The logout form's target.
#[derive(Debug, Default, Deserialize)]
pub struct LogoutForm {
    #[serde(default)]
    csrf: String,
}

/// Ends the session.
pub async fn logout(State(app): State<Arc<App>>, auth: Auth, headers: HeaderMap, Form(f): Form<LogoutForm>) -> Response {
    if let Some(refused) = auth.refuse_csrf(&f.csrf) {
        return refused;
    }
    if let Some(id) = cookie(&headers, session::COOKIE) {
        app.sessions.close(id);
    }
    let mut response = Redirect::to("/login").into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&app, SESSION_COOKIE, session::COOKIE, "", Some(0)));
    response
}

/// Sends the browser to the identity provider.
pub async fn oidc_start(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let Some(oidc) = &app.oidc else { return StatusCode::NOT_FOUND.into_response() };
    match oidc.begin(&local_path(&q.next)).await {
        Ok((url, state)) => {
            let mut response = Redirect::to(&url).into_response();
            response.headers_mut().append(header::SET_COOKIE, set_cookie(&app, OIDC_STATE_COOKIE, OIDC_STATE, &state, Some(600)));
            response
        }
        Err(e) => {
            tracing::warn!(error = %e, "OpenID Connect login could not start");
            let lang = Lang::from_cookie(cookie(&headers, "lang"));
            refused(&app, &headers, lang.t("统一身份认证服务暂不可用。", "The identity service is unavailable."))
        }
    }
}

/// The provider's redirect back.
pub async fn oidc_callback(State(app): State<Arc<App>>, headers: HeaderMap, Query(q): Query<Next>) -> Response {
    let Some(oidc) = &app.oidc else { return StatusCode::NOT_FOUND.into_response() };
    let lang = Lang::from_cookie(cookie(&headers, "lang"));
    if !q.error.is_empty() {
        return refused(&app, &headers, lang.t("统一身份认证未通过。", "The identity service did not log you in."));
    }
    match oidc.finish(&q.state, cookie(&headers, OIDC_STATE), &q.code).await {
        Ok((user, next)) => logged_in(&app, &headers, user, &next),
        Err(e) => {
            tracing::warn!(error = %e, "OpenID Connect login refused");
            refused(&app, &headers, &format!("{} {e}", lang.t("登录失败：", "Login failed:")))
        }
    }
}

/// Switches the language and goes back.
pub async fn lang(State(app): State<Arc<App>>, Query(q): Query<Next>) -> Response {
    let value = if q.to == "en" { "en" } else { "zh" };
    let mut response = Redirect::to(&local_path(&q.back)).into_response();
    response.headers_mut().append(header::SET_COOKIE, set_cookie(&app, LANG_COOKIE, "lang", value, Some(31_536_000)));
    response
}
