//! Notifications (DOMAIN §6) to real servers started by the test: e-mail to aiosmtpd (an
//! RFC 5321 SMTP server, Debian's python3-aiosmtpd, writing a maildir), webhooks and an
//! SMS gateway to an HTTP server. Each fact reaches each recipient once, with a signature
//! that verifies and an idempotency key; a failing receiver is retried, a dead one is
//! given up and shown; a restarted dispatcher sends nothing twice. On SQLite and
//! PostgreSQL.

#![allow(clippy::unwrap_used)] // Test code: a panic is the failure report.

use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use jiancha_accountability::notify::{self, Notifier};
use jiancha_accountability::store::{Incoming, Store};
use jiancha_accountability::workflow;
use jiancha_core::Timestamp;
use jiancha_platform::config::{Contacts, DepartmentContacts, NotificationsConfig, SmsConfig, SmtpConfig, TimeSpan};
use jiancha_proto::v1;
use jiancha_scenarios::kafka::Scratch;
use jiancha_scenarios::pg::Postgres;
use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// What the HTTP receiver got: (path, headers, body).
type Received = Arc<Mutex<Vec<(String, HeaderMap, Vec<u8>)>>>;

#[derive(Clone)]
struct Receiver {
    got: Received,
    /// Webhook calls answered 500 before the receiver recovers.
    webhook_failures_left: Arc<Mutex<u32>>,
}

async fn webhook(State(r): State<Receiver>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    r.got.lock().unwrap().push(("/hook".into(), headers, body.to_vec()));
    let mut left = r.webhook_failures_left.lock().unwrap();
    if *left > 0 {
        *left -= 1;
        return StatusCode::INTERNAL_SERVER_ERROR;
    }
    StatusCode::OK
}

async fn sms(State(r): State<Receiver>, headers: HeaderMap, body: axum::body::Bytes) -> StatusCode {
    let text: serde_json::Value = serde_json::from_slice(&body).unwrap();
    r.got.lock().unwrap().push(("/sms".into(), headers, body.to_vec()));
    // The gateway refuses one number for ever.
    if text["to"] == "10000000000" { StatusCode::SERVICE_UNAVAILABLE } else { StatusCode::ACCEPTED }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// aiosmtpd with its Mailbox handler, writing every message to a maildir.
struct Smtp {
    child: Child,
    port: u16,
}

impl Drop for Smtp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn smtp_server(maildir: &Path) -> Smtp {
    let port = free_port();
    let child = Command::new("/usr/bin/python3")
        .args(["-m", "aiosmtpd", "-n", "-u", "-l", &format!("127.0.0.1:{port}"), "-c", "aiosmtpd.handlers.Mailbox"])
        .arg(maildir)
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python3-aiosmtpd (apt-get install python3-aiosmtpd; ./scripts/test installs it)");
    let started = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(started.elapsed() < Duration::from_secs(20), "aiosmtpd did not listen on {port}");
        std::thread::sleep(Duration::from_millis(100));
    }
    Smtp { child, port }
}

fn mails(maildir: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(maildir.join("new")) else { return Vec::new() };
    entries.map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap()).collect()
}

fn header<'a>(mail: &'a str, name: &str) -> Option<&'a str> {
    mail.lines().find_map(|l| l.strip_prefix(name).and_then(|r| r.strip_prefix(": ")))
}

fn alert(id: &str) -> v1::Alert {
    v1::Alert {
        alert_id: id.into(),
        status: v1::AlertStatus::Fired as i32,
        item_id: Some("ITEM-1".into()),
        service_code: Some("SCJG-001".into()),
        department_code: Some("SCJG".into()),
        kind: v1::AlertKind::PromisedOverdue as i32,
        level: v1::Level::Yellow as i32,
        triggered_at: "2025-03-01T00:00:00+08:00".into(),
        event_id: None,
        message: Some(v1::Bilingual { zh: "办件超过承诺时限".into(), en: "over the promised limit".into() }),
        derivation: None,
    }
}

fn scenario(name: &str, url: &str, dir: &Path) {
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();
    let maildir = dir.join(format!("maildir-{name}"));
    let smtp = smtp_server(&maildir);
    let receiver = Receiver { got: Arc::default(), webhook_failures_left: Arc::new(Mutex::new(2)) };
    let http = rt.block_on(tokio::net::TcpListener::bind("127.0.0.1:0")).unwrap();
    let http_port = http.local_addr().unwrap().port();
    let app = axum::Router::new()
        .route("/hook", axum::routing::post(webhook))
        .route("/sms", axum::routing::post(sms))
        .with_state(receiver.clone());
    rt.spawn(async move { axum::serve(http, app).await.unwrap() });

    let secret = dir.join(format!("webhook-{name}.secret"));
    std::fs::write(&secret, "s3cret-for-hmac\n").unwrap();
    let config = NotificationsConfig {
        inspectors: Contacts {
            email: vec!["jiwei@example.gov.cn".into()],
            sms: vec![],
            webhook: vec![format!("http://127.0.0.1:{http_port}/hook")],
        },
        department: vec![DepartmentContacts {
            code: "SCJG".into(),
            email: vec!["scjg-it@example.gov.cn".into()],
            sms: vec!["13900000000".into(), "10000000000".into()],
            webhook: vec![],
        }],
        webhook_secret_file: Some(secret),
        smtp: Some(SmtpConfig {
            host: "127.0.0.1".into(),
            port: smtp.port,
            from: "监察平台 <jiancha@example.gov.cn>".into(),
            ..SmtpConfig::default()
        }),
        sms: Some(SmsConfig { url: format!("http://127.0.0.1:{http_port}/sms"), token_file: None }),
        timeout: TimeSpan::secs(5),
        retry_initial: TimeSpan::millis(100),
        retry_max: TimeSpan::millis(400),
        max_attempts: 4,
        poll_interval: TimeSpan::millis(100),
    };
    let notifier = Arc::new(Notifier::new(&config, chrono_tz::Asia::Shanghai).unwrap());
    let store = Arc::new(rt.block_on(Store::open(url)).unwrap());
    let t = Timestamp::parse_rfc3339("2025-03-03T10:00:00+08:00").unwrap().0;
    // Two facts of one case: OPEN and REPLY. ASSIGN and COMMENT notify nobody.
    rt.block_on(store.ingest(&[Incoming { alert: alert("n1"), published_at: t }], t)).unwrap();
    rt.block_on(store.change(1, t + 1, "insp", "INSPECTOR", "ASSIGN", |s| workflow::assign(1, s, "wang"))).unwrap();
    rt.block_on(store.change(1, t + 2, "system:SCJG", "DEPARTMENT", "REPLY", |s| workflow::reply(1, s, "system:SCJG", "已补办"))).unwrap();

    // Each fact: 2 e-mails, 1 webhook, 2 SMS.
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let dispatcher = rt.spawn(notify::run(store.clone(), notifier.clone(), shutdown));
    let started = Instant::now();
    let settled = |d: &[notify::Delivery]| d.len() == 10 && d.iter().all(|d| d.status == "SENT" || d.status == "FAILED");
    let deliveries = loop {
        let d = rt.block_on(notify::deliveries_of(&store, 1)).unwrap();
        if settled(&d) {
            break d;
        }
        assert!(started.elapsed() < Duration::from_secs(60), "not delivered in 60 s: {d:#?}");
        std::thread::sleep(Duration::from_millis(100));
    };
    stop.send_replace(true);
    rt.block_on(dispatcher).unwrap();

    // E-mail: one per fact and address, the idempotency key as the Message-ID.
    let mails = mails(&maildir);
    assert_eq!(mails.len(), 4, "{mails:#?}");
    let mut ids: Vec<&str> = mails.iter().map(|m| header(m, "Message-ID").unwrap()).collect();
    ids.sort_unstable();
    ids.dedup();
    assert_eq!(ids.len(), 4, "a Message-ID per delivery");
    assert!(mails.iter().all(|m| header(m, "Message-ID").unwrap().starts_with("<jiancha-")));
    assert_eq!(mails.iter().filter(|m| header(m, "To").is_some_and(|t| t.contains("scjg-it@example.gov.cn"))).count(), 2);

    // Webhooks: the first two attempts failed (500), then each fact was delivered once,
    // signed over the exact body.
    let got = receiver.got.lock().unwrap().clone();
    let hooks: Vec<_> = got.iter().filter(|(p, _, _)| p == "/hook").collect();
    assert_eq!(hooks.len(), 4, "2 failures, then 2 facts");
    for (_, headers, body) in &hooks {
        let sig = headers[notify::SIGNATURE_HEADER].to_str().unwrap();
        assert_eq!(sig, notify::signature(b"s3cret-for-hmac", body), "the signature is HMAC-SHA256 of the body with the secret");
        let notice: serde_json::Value = serde_json::from_slice(body).unwrap();
        assert_eq!(headers["idempotency-key"].to_str().unwrap(), notice["idempotency_key"]);
        assert!(notice.get("complainant").is_none());
    }
    let delivered: std::collections::BTreeSet<String> =
        hooks[2..].iter().map(|(_, h, _)| h["idempotency-key"].to_str().unwrap().to_owned()).collect();
    assert_eq!(delivered.len(), 2);
    let events: Vec<String> = hooks[2..]
        .iter()
        .map(|(_, _, b)| serde_json::from_slice::<serde_json::Value>(b).unwrap()["event"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(events, ["OPEN", "REPLY"]);
    let webhooks: Vec<_> = deliveries.iter().filter(|d| d.channel == "webhook").collect();
    assert!(webhooks.iter().all(|d| d.status == "SENT"));
    assert_eq!(webhooks.iter().map(|d| d.attempts).sum::<i64>(), 4, "the two failed attempts were retried");

    // SMS: the good number gets each fact once; the refused one is given up after 4
    // attempts, FAILED with the gateway's answer.
    let sms: Vec<serde_json::Value> =
        got.iter().filter(|(p, _, _)| p == "/sms").map(|(_, _, b)| serde_json::from_slice(b).unwrap()).collect();
    assert_eq!(sms.iter().filter(|m| m["to"] == "13900000000").count(), 2);
    assert_eq!(sms.iter().filter(|m| m["to"] == "10000000000").count(), 8, "4 attempts for each of 2 facts");
    let dead: Vec<_> = deliveries.iter().filter(|d| d.status == "FAILED").collect();
    assert_eq!(dead.len(), 2);
    assert!(dead.iter().all(|d| d.recipient == "10000000000" && d.attempts == 4 && d.last_error.as_deref().unwrap().contains("503")));

    // A dispatcher started again sends nothing twice.
    let before = receiver.got.lock().unwrap().len();
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let dispatcher = rt.spawn(notify::run(store.clone(), notifier, shutdown));
    std::thread::sleep(Duration::from_millis(800));
    stop.send_replace(true);
    rt.block_on(dispatcher).unwrap();
    assert_eq!(receiver.got.lock().unwrap().len(), before);
    assert_eq!(self::mails(&maildir).len(), 4);
    assert!(rt.block_on(store.verify_audit()).unwrap().is_ok());
}

#[test]
fn each_fact_reaches_each_recipient_once_through_real_servers() {
    let dir = Scratch::new("notifications");
    scenario("sqlite", &format!("sqlite://{}", dir.0.join("cases.db").display()), &dir.0);
    let pg = Postgres::start("notifications");
    let url = tokio::runtime::Runtime::new().unwrap().block_on(pg.database("t_notifications"));
    scenario("postgres", &url, &dir.0);
}
