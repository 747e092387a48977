//! The inspector console (监察 web console): server-rendered pages for inspectors,
//! departments, auditors and operators, and the public progress page for applicants.
//!
//! Every page is drawn on the server from the gRPC services, called with the user's
//! identity (see [`backend`]): the console holds no data and makes no access decision of
//! its own that the services do not also make. Scripts, styles and charts are in the
//! binary (server-drawn SVG), so the console works on an intranet without internet; the
//! one script adds the live board's stream, sound and desktop notice.

pub mod backend;
pub mod oidc;
mod pages;
pub mod session;
pub mod svg;
pub mod view;

use axum::Router;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, header};
use axum::response::{Html, IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use backend::Backends;
use chrono_tz::Tz;
use jiancha_platform::Config;
use jiancha_platform::limits::RateLimiter;
use session::{Sessions, User};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use view::{Ctx, Lang};

/// The console's state, shared by every request.
#[derive(Debug)]
pub struct App {
    /// The configuration.
    pub config: Config,
    /// Sessions.
    pub sessions: Arc<Sessions>,
    /// The services.
    pub backends: Backends,
    /// The secret login links are signed with, when they are enabled.
    pub link_secret: Option<Vec<u8>>,
    /// OpenID Connect, when configured.
    pub oidc: Option<oidc::Oidc>,
    /// The query-code secret, for the public progress page.
    pub query_secret: Option<Vec<u8>>,
    /// Per-address limit of the public page.
    pub public_limiter: RateLimiter,
    /// Display zone.
    pub tz: Tz,
    /// Cookies are `Secure` (the console is reached over https).
    pub secure: bool,
    /// Calendars and catalog, for the item page's working-day axis.
    pub rules: pages::items::Rules,
    /// Where users reach the console.
    pub public_url: String,
    /// Performance reports computed lately.
    pub stats_cache: pages::stats::StatsCache,
}

/// Why the console could not start.
#[derive(Debug, thiserror::Error)]
pub enum ConsoleError {
    /// A setting is wrong or a file missing.
    #[error("console: {0}")]
    Config(String),
    /// The address is taken.
    #[error("console.listen {addr}: {source}")]
    Bind {
        /// The address.
        addr: String,
        /// Why.
        source: std::io::Error,
    },
}

/// A running console.
#[derive(Debug)]
pub struct Console {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Where users reach it (`http://127.0.0.1:8080`).
    pub url: String,
    /// Its state (tests and `up` make login links with it).
    pub app: Arc<App>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl Console {
    /// Waits until it stops.
    pub async fn wait(self) -> Result<(), String> {
        self.task.await.map_err(|e| e.to_string())?.map_err(|e| e.to_string())
    }

    /// A one-time login link for a local user.
    pub fn login_link(&self, role: jiancha_platform::auth::Role, department: Option<&str>) -> Result<String, String> {
        login_link(
            &self.url,
            self.app.link_secret.as_deref().ok_or("login links are off (console.login_link_secret_file)")?,
            role,
            department,
        )
    }
}

/// A one-time login link to the console at `url`, signed with `secret`.
pub fn login_link(url: &str, secret: &[u8], role: jiancha_platform::auth::Role, department: Option<&str>) -> Result<String, String> {
    let now = jiancha_platform::wall_clock().0.max(0) as u64 / 1000;
    let token = session::link_token(secret, role, department, now)?;
    Ok(format!("{}/login/link?token={token}", url.trim_end_matches('/')))
}

fn read_secret(path: &std::path::Path, what: &str) -> Result<Vec<u8>, ConsoleError> {
    std::fs::read(path).map(|b| b.trim_ascii().to_vec()).map_err(|e| ConsoleError::Config(format!("{what} {}: {e}", path.display())))
}

/// Starts the console on `config.console.listen`; it stops when `shutdown` turns true.
pub async fn start(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<Console, ConsoleError> {
    let c = &config.console;
    let tz: Tz = c.time_zone.parse().map_err(|_| ConsoleError::Config(format!("console.time_zone `{}`", c.time_zone)))?;
    let listener =
        tokio::net::TcpListener::bind(&c.listen).await.map_err(|source| ConsoleError::Bind { addr: c.listen.clone(), source })?;
    let addr = listener.local_addr().map_err(|source| ConsoleError::Bind { addr: c.listen.clone(), source })?;
    let public_url = c.public_url.clone().unwrap_or_else(|| format!("http://{addr}")).trim_end_matches('/').to_owned();
    let link_secret = c.login_link_secret_file.as_deref().map(|p| read_secret(p, "console.login_link_secret_file")).transpose()?;
    let query_secret = config
        .query_code_secret_file
        .as_deref()
        .map(|p| jiancha_platform::progress::load_secret(p).map_err(ConsoleError::Config))
        .transpose()?;
    let oidc = match &c.oidc {
        Some(o) => Some(oidc::Oidc::new(o, &public_url).map_err(ConsoleError::Config)?),
        None => None,
    };
    let app = Arc::new(App {
        backends: Backends::new(&config).map_err(ConsoleError::Config)?,
        sessions: Sessions::new(c.idle_timeout.get(), c.max_session.get()),
        link_secret,
        oidc,
        query_secret,
        public_limiter: RateLimiter::new(c.public_queries_per_minute / 60.0, c.public_queries_per_minute.max(1.0)),
        tz,
        secure: public_url.starts_with("https://"),
        rules: pages::items::Rules::new(&config),
        public_url: public_url.clone(),
        stats_cache: Default::default(),
        config,
    });
    let sweeper = {
        let app = app.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(60));
            loop {
                tick.tick().await;
                app.sessions.sweep(jiancha_platform::wall_clock().0.max(0) as u64 / 1000);
                if let Some(o) = &app.oidc {
                    o.sweep();
                }
            }
        })
    };
    let router = router(app.clone());
    jiancha_platform::health::set(READINESS, true, format!("serving on {addr}"));
    let task = tokio::spawn(async move {
        let served = axum::serve(listener, router.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(async move {
                let _ = shutdown.wait_for(|s| *s).await;
            })
            .await;
        sweeper.abort();
        jiancha_platform::health::set(READINESS, false, "stopped");
        served
    });
    Ok(Console { addr, url: public_url, app, task })
}

/// Every route.
pub fn router(app: Arc<App>) -> Router {
    Router::new()
        .route("/", get(pages::board::page))
        .route("/live/events", get(pages::board::events))
        .route("/items", get(pages::items::list))
        .route("/items/{department}/{item}", get(pages::items::item))
        .route("/cases", get(pages::cases::list))
        .route("/cases/new", post(pages::cases::create))
        .route("/cases/{id}", get(pages::cases::case))
        .route("/cases/{id}/{action}", post(pages::cases::act))
        .route("/stats", get(pages::stats::page))
        .route("/stats.csv", get(pages::stats::csv))
        .route("/reports/{number}/{format}", get(pages::stats::published))
        .route("/catalog", get(pages::catalog::page).post(pages::catalog::change))
        .route("/audit", get(pages::audit::page))
        .route("/progress", get(pages::public::page).post(pages::public::query))
        .route("/login", get(pages::login::page))
        .route("/login/link", get(pages::login::link))
        .route("/logout", post(pages::login::logout))
        .route("/auth/oidc/start", get(pages::login::oidc_start))
        .route("/auth/oidc/callback", get(pages::login::oidc_callback))
        .route("/lang", get(pages::login::lang))
        .route("/assets/console.css", get(|| async { asset("text/css; charset=utf-8", include_str!("../assets/console.css")) }))
        .route("/assets/console.js", get(|| async { asset("text/javascript; charset=utf-8", include_str!("../assets/console.js")) }))
        .route("/healthz", get(|| async { "ok" }))
        .fallback(pages::not_found)
        .layer(axum::middleware::map_response(security_headers))
        .layer(axum::middleware::from_fn(measure))
        .with_state(app)
}

/// Metric: pages and actions answered, by `route` (the pattern, not the URL), `method`
/// and `status`.
pub const REQUESTS: &str = "jiancha_console_requests_total";
/// Metric: time to the answer's headers, by `route` (a live board's stream: until it opens).
pub const REQUEST_SECONDS: &str = "jiancha_console_request_duration_seconds";
/// Metric: sessions held.
pub const SESSIONS: &str = "jiancha_console_sessions";
/// Metric: live boards open.
pub const LIVE_STREAMS: &str = "jiancha_console_live_streams";
/// Metric: logins, by `role`.
pub const LOGINS: &str = "jiancha_console_logins_total";
/// Metric: public progress queries, by `result`.
pub const PROGRESS_QUERIES: &str = "jiancha_console_progress_queries_total";
/// The console's name in `/readyz`.
pub const READINESS: &str = "console";

/// The buckets of the console's histograms.
pub const HISTOGRAMS: &[jiancha_platform::telemetry::Histogram] = &[(REQUEST_SECONDS, jiancha_platform::telemetry::REQUEST)];

/// Describes the console's metrics.
pub fn describe() {
    metrics::describe_counter!(REQUESTS, "Console pages and actions answered, by route pattern, method and status");
    metrics::describe_histogram!(REQUEST_SECONDS, metrics::Unit::Seconds, "Console time to answer, by route pattern");
    metrics::describe_gauge!(SESSIONS, "Console sessions held");
    metrics::describe_gauge!(LIVE_STREAMS, "Live boards open (server-sent event streams)");
    metrics::describe_counter!(LOGINS, "Console logins, by role");
    metrics::describe_counter!(PROGRESS_QUERIES, "Public progress queries, by result (found, not_found, rate_limited)");
}

async fn measure(request: axum::extract::Request, next: axum::middleware::Next) -> Response {
    let route = request.extensions().get::<axum::extract::MatchedPath>().map_or("unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    let status = response.status().as_u16().to_string();
    metrics::counter!(REQUESTS, "route" => route.clone(), "method" => method, "status" => status).increment(1);
    metrics::histogram!(REQUEST_SECONDS, "route" => route).record(started.elapsed().as_secs_f64());
    response
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "public, max-age=3600")], body).into_response()
}

/// No page loads anything from another host, is framed, or leaks its URL.
async fn security_headers(mut response: Response) -> Response {
    let h = response.headers_mut();
    h.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; \
             frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
        ),
    );
    h.insert(header::X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    // same-origin, not no-referrer: with no-referrer the browser sends `Origin: null` on
    // this site's own form posts, which the cross-site check must then refuse.
    h.insert(header::REFERRER_POLICY, HeaderValue::from_static("same-origin"));
    h.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !h.contains_key(header::CACHE_CONTROL) {
        h.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

/// A cookie's value.
pub fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Where a cookie is sent and who may read it.
#[derive(Clone, Copy, Debug)]
pub struct CookieKind {
    /// Its `Path`.
    pub path: &'static str,
    /// `SameSite=Lax` (sent on a navigation from another site) instead of `Strict`.
    pub lax: bool,
    /// Hidden from scripts.
    pub http_only: bool,
}

/// The session cookie: HttpOnly, SameSite=Strict, the whole site.
pub const SESSION_COOKIE: CookieKind = CookieKind { path: "/", lax: false, http_only: true };

/// A `Set-Cookie` value of `kind` (`Secure` over https); `max_age` 0 removes it.
pub fn set_cookie(app: &App, kind: CookieKind, name: &str, value: &str, max_age: Option<u64>) -> HeaderValue {
    let mut c = format!("{name}={value}; Path={}", kind.path);
    if kind.http_only {
        c.push_str("; HttpOnly");
    }
    c.push_str(if kind.lax { "; SameSite=Lax" } else { "; SameSite=Strict" });
    if let Some(age) = max_age {
        c.push_str(&format!("; Max-Age={age}"));
    }
    if app.secure {
        c.push_str("; Secure");
    }
    HeaderValue::from_str(&c).unwrap_or(HeaderValue::from_static("invalid=1"))
}

/// The page context of a logged-in user. GET pages without a session redirect to the
/// login page; changes (POST) must carry the session's CSRF token and come from this
/// origin.
#[derive(Debug)]
pub struct Auth(pub Ctx);

impl FromRequestParts<Arc<App>> for Auth {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, app: &Arc<App>) -> Result<Auth, Response> {
        let lang = Lang::from_cookie(cookie(&parts.headers, "lang"));
        let path = parts.uri.path().to_owned();
        let session = cookie(&parts.headers, session::COOKIE).and_then(|id| app.sessions.touch(id));
        let Some((user, csrf)) = session else {
            if parts.method == Method::GET && !path.starts_with("/live/") {
                let next = parts.uri.path_and_query().map_or("/".to_owned(), |p| p.as_str().to_owned());
                return Err(Redirect::to(&format!("/login?next={}", view::urlencode(&next))).into_response());
            }
            return Err((StatusCode::UNAUTHORIZED, "登录已失效，请重新登录 / The session has ended; log in again").into_response());
        };
        if parts.method != Method::GET && parts.method != Method::HEAD {
            let cross =
                parts.headers.get("sec-fetch-site").and_then(|v| v.to_str().ok()).is_some_and(|v| v == "cross-site" || v == "same-site");
            let origin_ok = match parts.headers.get(header::ORIGIN).and_then(|v| v.to_str().ok()) {
                None => true,
                Some(o) => {
                    o == app.public_url
                        || parts.headers.get(header::HOST).and_then(|h| h.to_str().ok()).is_some_and(|h| o.ends_with(&format!("//{h}")))
                }
            };
            if cross || !origin_ok {
                return Err((StatusCode::FORBIDDEN, "跨站请求被拒绝 / Cross-site request refused").into_response());
            }
        }
        Ok(Auth(Ctx { user: Some(user), csrf, lang, tz: app.tz, path }))
    }
}

impl Auth {
    /// The FORBIDDEN answer when the form's CSRF token is not the session's.
    pub fn refuse_csrf(&self, given: &str) -> Option<Response> {
        let want = self.0.csrf.as_bytes();
        let ok = given.len() == want.len() && given.bytes().zip(want).fold(0u8, |a, (x, y)| a | (x ^ y)) == 0;
        (!ok).then(|| (StatusCode::FORBIDDEN, "表单已过期，请刷新后重试 / The form has expired; reload and try again").into_response())
    }
}

/// The context of a public page (no login).
pub fn public_ctx(app: &App, headers: &HeaderMap, path: &str) -> Ctx {
    Ctx { user: None, csrf: String::new(), lang: Lang::from_cookie(cookie(headers, "lang")), tz: app.tz, path: path.to_owned() }
}

/// A page as a response.
pub fn html(markup: maud::Markup) -> Response {
    Html(markup.into_string()).into_response()
}

/// The user of a request, for handlers that only need it.
pub fn user(ctx: &Ctx) -> &User {
    ctx.user()
}

/// The state extractor, re-exported for the pages.
pub type AppState = State<Arc<App>>;

#[cfg(test)]
mod tests {
    use super::*;
    use jiancha_platform::auth::Role;

    /// A console whose services are unreachable: what it decides alone (login, sessions,
    /// CSRF, headers, redirects) is testable without them.
    async fn console() -> (Console, watch::Sender<bool>) {
        let dir = std::env::temp_dir().join(format!("jiancha-console-unit-{}-{}", std::process::id(), session::random_hex(4)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join("signing.secret"), "0123456789abcdef0123456789abcdef").unwrap();
        std::fs::write(dir.join("link.secret"), "fedcba9876543210fedcba9876543210").unwrap();
        let mut config = Config::default();
        config.console.listen = "127.0.0.1:0".into();
        config.console.gateway = "http://127.0.0.1:9".into();
        config.console.accountability = "http://127.0.0.1:9".into();
        config.console.signing_key_file = Some(dir.join("signing.secret"));
        config.console.login_link_secret_file = Some(dir.join("link.secret"));
        let (stop, shutdown) = watch::channel(false);
        (start(config, shutdown).await.unwrap(), stop)
    }

    fn client() -> reqwest::Client {
        reqwest::Client::builder().redirect(reqwest::redirect::Policy::none()).build().unwrap()
    }

    #[tokio::test]
    async fn pages_behind_login_send_to_the_login_page_and_changes_need_a_session() {
        let (c, _stop) = console().await;
        let r = client().get(format!("{}/cases?status=CASE_OPEN", c.url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert_eq!(r.headers()["location"], "/login?next=/cases%3Fstatus%3DCASE_OPEN");
        let csp = r.headers()["content-security-policy"].to_str().unwrap();
        assert!(csp.contains("default-src 'self'") && csp.contains("frame-ancestors 'none'"), "{csp}");
        let r = client().post(format!("{}/cases/1/resolve", c.url)).form(&[("csrf", "x")]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
        let r = client().get(format!("{}/progress", c.url)).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK, "the public page needs no login");
        let r = client().get(format!("{}/assets/console.js", c.url)).send().await.unwrap();
        assert!(r.headers()["content-type"].to_str().unwrap().starts_with("text/javascript"));
    }

    #[tokio::test]
    async fn a_login_link_opens_one_session_once_and_logout_needs_the_csrf_token() {
        let (c, _stop) = console().await;
        let link = c.login_link(Role::Department, Some("SCJG")).unwrap();
        let r = client().get(format!("{link}&next=//evil.example/x")).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::OK);
        let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
        assert!(cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict") && !cookie.contains("Secure"), "{cookie}");
        assert_eq!(r.headers()["refresh"], "0;url=/", "no open redirect to another site");
        let session = cookie.split(';').next().unwrap().to_owned();
        let again = client().get(&link).send().await.unwrap();
        assert_eq!(again.status(), StatusCode::UNAUTHORIZED, "a link works once");
        assert!(again.text().await.unwrap().contains("已使用过"));
        let forged = client().get(format!("{}/login/link?token=forged.token.here", c.url)).send().await.unwrap();
        assert_eq!(forged.status(), StatusCode::UNAUTHORIZED);

        let r = client().post(format!("{}/logout", c.url)).header("cookie", &session).form(&[("csrf", "wrong")]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
        let csrf = c.app.sessions.touch(session.trim_start_matches("jiancha_session=")).unwrap().1;
        let cross = client()
            .post(format!("{}/logout", c.url))
            .header("cookie", &session)
            .header("origin", "https://evil.example")
            .form(&[("csrf", csrf.as_str())])
            .send()
            .await
            .unwrap();
        assert_eq!(cross.status(), StatusCode::FORBIDDEN, "a change from another origin is refused");
        let r =
            client().post(format!("{}/logout", c.url)).header("cookie", &session).form(&[("csrf", csrf.as_str())]).send().await.unwrap();
        assert_eq!(r.status(), StatusCode::SEE_OTHER);
        assert!(c.app.sessions.is_empty(), "logout ends the session");
    }

    #[test]
    fn cookies_are_read_from_every_cookie_header() {
        let mut h = HeaderMap::new();
        h.append(header::COOKIE, HeaderValue::from_static("a=1; lang=en"));
        h.append(header::COOKIE, HeaderValue::from_static("jiancha_session=abc"));
        assert_eq!(cookie(&h, "lang"), Some("en"));
        assert_eq!(cookie(&h, session::COOKIE), Some("abc"));
        assert_eq!(cookie(&h, "missing"), None);
    }
}
