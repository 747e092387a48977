//! Notifications (DOMAIN §6) through a transactional outbox.
//!
//! A notifiable change of a case writes an `outbox` row in the transaction of its audit
//! entry, so no fact is lost when the process stops. The dispatcher expands each fact
//! into one delivery per channel and recipient (the department's contacts and the
//! inspectors'), keyed `jiancha-SEQ-CHANNEL-HASH`: the key is sent as the idempotency key
//! (a webhook's and the SMS gateway's `Idempotency-Key` header, an e-mail's Message-ID),
//! so a fact is delivered to a recipient once, and a retry after a crash between sending
//! and recording carries the same key for the receiver to drop. Failed deliveries are
//! retried with a doubling delay; after `max_attempts` they are FAILED, and a channel
//! whose deliveries keep failing reads 1 in `jiancha_notification_channel_failing`.

use crate::store::{Store, StoreError};
use crate::workflow::Disposition;
use hmac::{Hmac, Mac};
use jiancha_core::Timestamp;
use jiancha_platform::config::{DepartmentContacts, NotificationsConfig};
use lettre::message::header::ContentType;
use lettre::transport::smtp::authentication::Credentials;
use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
use serde::Serialize;
use sha2::Sha256;
use sqlx::Row as _;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tracing::{info, warn};

/// Metric: deliveries sent, by channel.
pub const SENT: &str = "jiancha_notifications_sent_total";
/// Metric: delivery attempts that failed, by channel.
pub const FAILURES: &str = "jiancha_notification_failures_total";
/// Metric: deliveries not sent yet, by channel.
pub const PENDING: &str = "jiancha_notifications_pending";
/// Metric: 1 while a channel has a delivery that failed 3 times or more and is not sent.
pub const FAILING: &str = "jiancha_notification_channel_failing";
/// The channels.
pub const CHANNELS: [&str; 3] = ["webhook", "email", "sms"];
/// Consecutive failures after which a channel reads failing.
pub const FAILING_AFTER: i64 = 3;

/// Describes the metrics, every series at 0.
pub fn describe() {
    metrics::describe_counter!(SENT, "Notifications delivered, by channel");
    metrics::describe_counter!(FAILURES, "Notification delivery attempts that failed, by channel");
    metrics::describe_gauge!(PENDING, "Notifications waiting to be delivered (or retried), by channel");
    metrics::describe_gauge!(FAILING, "1 while a channel has a notification that failed 3 times or more and is not delivered");
    for channel in CHANNELS {
        metrics::counter!(SENT, "channel" => channel).increment(0);
        metrics::counter!(FAILURES, "channel" => channel).increment(0);
        metrics::gauge!(PENDING, "channel" => channel).set(0.0);
        metrics::gauge!(FAILING, "channel" => channel).set(0.0);
    }
}

/// What a notification says; the JSON body of a webhook, and the source of an e-mail's
/// and an SMS's text. It names the case and the step; the complainant's contact and the
/// audit log's notes are never in it (the department's contacts receive it too).
#[derive(Clone, Debug, Serialize, PartialEq)]
pub struct Notice {
    /// The delivery's idempotency key.
    pub idempotency_key: String,
    /// The audit action (OPEN, REMIND, ESCALATE, PUBLICIZE, REPLY, SEND_BACK, RESOLVE, …).
    pub event: String,
    /// The step in Chinese (立案, 催办, 督办, …).
    pub event_zh: String,
    /// Audit sequence number of the fact.
    pub seq: i64,
    /// The case.
    pub case_id: i64,
    /// ALERT, MANUAL or COMPLAINT.
    pub origin: String,
    /// The department.
    pub department_code: String,
    /// The item, if any.
    pub item_id: Option<String>,
    /// The case's level now.
    pub level: String,
    /// The case's status now.
    pub status: String,
    /// When the fact happened (RFC 3339).
    pub at: String,
    /// One line for people: 【监察】案件 12（SCJG，事项 I-1）督办：…
    pub text: String,
}

/// The Chinese name of an audit action.
pub fn action_zh(action: &str) -> &'static str {
    match action {
        "OPEN" => "立案",
        "FILE" => "投诉登记",
        "ACCEPT" => "投诉受理",
        "REJECT" => "投诉不予受理",
        "REMIND" => "催办",
        "ESCALATE" => "督办",
        "PUBLICIZE" => "通报",
        "REPLY" => "部门说明",
        "SEND_BACK" => "退回补充说明",
        "RESOLVE" => "办结",
        "RETRACT" => "告警撤回，不予追究",
        "REOPEN" => "告警再次触发，重新立案",
        "REVIEW_FLAG" => "告警撤回，待复核",
        "RECTIFY_OVERDUE" => "整改逾期",
        "RECTIFICATION_REPORT" => "整改报告",
        "RECTIFICATION_VERIFY" => "整改验收",
        _ => "变更",
    }
}

/// Where notices go, and how.
#[derive(Debug)]
pub struct Notifier {
    config: NotificationsConfig,
    http: reqwest::Client,
    webhook_secret: Option<Vec<u8>>,
    sms_token: Option<String>,
    smtp: Option<AsyncSmtpTransport<Tokio1Executor>>,
    zone: chrono_tz::Tz,
}

/// A notifier that cannot be built from its configuration.
#[derive(Debug, thiserror::Error)]
#[error("accountability.notifications: {0}")]
pub struct NotifyConfigError(String);

fn read_secret(key: &str, path: &std::path::Path) -> Result<String, NotifyConfigError> {
    std::fs::read_to_string(path).map(|s| s.trim().to_owned()).map_err(|e| NotifyConfigError(format!("{key} {}: {e}", path.display())))
}

impl Notifier {
    /// From the configuration (files read now).
    pub fn new(config: &NotificationsConfig, zone: chrono_tz::Tz) -> Result<Notifier, NotifyConfigError> {
        let webhook_secret = match &config.webhook_secret_file {
            Some(p) => Some(read_secret("webhook_secret_file", p)?.into_bytes()),
            None => None,
        };
        let sms_token = match config.sms.as_ref().and_then(|s| s.token_file.as_ref()) {
            Some(p) => Some(read_secret("sms.token_file", p)?),
            None => None,
        };
        let smtp = match &config.smtp {
            None => None,
            Some(s) => {
                let builder = match s.tls.as_str() {
                    "tls" => AsyncSmtpTransport::<Tokio1Executor>::relay(&s.host),
                    "starttls" => AsyncSmtpTransport::<Tokio1Executor>::starttls_relay(&s.host),
                    _ => Ok(AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(&s.host)),
                }
                .map_err(|e| NotifyConfigError(format!("smtp {}: {e}", s.host)))?;
                let mut builder = builder.port(s.port).timeout(Some(config.timeout.get()));
                if let Some(user) = &s.username {
                    let password = match &s.password_file {
                        Some(p) => read_secret("smtp.password_file", p)?,
                        None => String::new(),
                    };
                    builder = builder.credentials(Credentials::new(user.clone(), password));
                }
                s.from.parse::<lettre::message::Mailbox>().map_err(|e| NotifyConfigError(format!("smtp.from `{}`: {e}", s.from)))?;
                Some(builder.build())
            }
        };
        let http =
            reqwest::Client::builder().timeout(config.timeout.get()).build().map_err(|e| NotifyConfigError(format!("http client: {e}")))?;
        Ok(Notifier { config: config.clone(), http, webhook_secret, sms_token, smtp, zone })
    }

    /// The (channel, recipient) pairs of a department's fact: its contacts and the
    /// inspectors', on the channels that are configured.
    pub fn recipients(&self, department: &str) -> Vec<(&'static str, String)> {
        let empty = DepartmentContacts::default();
        let own = self.config.department.iter().find(|d| d.code == department).unwrap_or(&empty);
        let ins = &self.config.inspectors;
        let mut out = Vec::new();
        if self.webhook_secret.is_some() {
            out.extend(own.webhook.iter().chain(&ins.webhook).map(|r| ("webhook", r.clone())));
        }
        if self.smtp.is_some() {
            out.extend(own.email.iter().chain(&ins.email).map(|r| ("email", r.clone())));
        }
        if self.config.sms.is_some() {
            out.extend(own.sms.iter().chain(&ins.sms).map(|r| ("sms", r.clone())));
        }
        out.sort();
        out.dedup();
        out
    }

    /// Contacts named on channels that are not configured (said once at start).
    pub fn unconfigured(&self) -> Vec<&'static str> {
        let all = self.config.department.iter().map(|d| (&d.email, &d.sms, &d.webhook)).chain([(
            &self.config.inspectors.email,
            &self.config.inspectors.sms,
            &self.config.inspectors.webhook,
        )]);
        let mut missing = Vec::new();
        for (email, sms, webhook) in all {
            if !webhook.is_empty() && self.webhook_secret.is_none() {
                missing.push("webhook (no webhook_secret_file)");
            }
            if !email.is_empty() && self.smtp.is_none() {
                missing.push("email (no [accountability.notifications.smtp])");
            }
            if !sms.is_empty() && self.config.sms.is_none() {
                missing.push("sms (no [accountability.notifications.sms])");
            }
        }
        missing.sort_unstable();
        missing.dedup();
        missing
    }

    /// Sends one notice; Err with what went wrong.
    pub async fn send(&self, channel: &str, recipient: &str, notice: &Notice) -> Result<(), String> {
        let body = serde_json::to_vec(notice).map_err(|e| e.to_string())?;
        match channel {
            "webhook" => {
                let secret = self.webhook_secret.as_ref().ok_or("no webhook secret")?;
                let response = self
                    .http
                    .post(recipient)
                    .header("content-type", "application/json")
                    .header("idempotency-key", &notice.idempotency_key)
                    .header("x-jiancha-event", &notice.event)
                    .header(SIGNATURE_HEADER, signature(secret, &body))
                    .body(body)
                    .send()
                    .await
                    .map_err(|e| format!("webhook {recipient}: {e}"))?;
                check_status("webhook", recipient, response.status())
            }
            "sms" => {
                let sms = self.config.sms.as_ref().ok_or("no sms gateway")?;
                let payload = serde_json::json!({"to": recipient, "text": notice.text, "idempotency_key": notice.idempotency_key});
                let mut request = self
                    .http
                    .post(&sms.url)
                    .header("content-type", "application/json")
                    .header("idempotency-key", &notice.idempotency_key)
                    .body(payload.to_string());
                if let Some(token) = &self.sms_token {
                    request = request.bearer_auth(token);
                }
                let response = request.send().await.map_err(|e| format!("sms gateway {}: {e}", sms.url))?;
                check_status("sms gateway", &sms.url, response.status())
            }
            "email" => {
                let (smtp, config) = self.smtp.as_ref().zip(self.config.smtp.as_ref()).ok_or("no smtp server")?;
                let from = config.from.parse().map_err(|e| format!("smtp.from: {e}"))?;
                let to = recipient.parse().map_err(|e| format!("address `{recipient}`: {e}"))?;
                let message = Message::builder()
                    .from(from)
                    .to(to)
                    .subject(format!("【监察】案件 {} {}", notice.case_id, notice.event_zh))
                    .message_id(Some(format!("<{}@jiancha>", notice.idempotency_key)))
                    .header(ContentType::TEXT_PLAIN)
                    .body(format!(
                        "{}\n\n案件 {}，部门 {}，级别 {}，状态 {}，时间 {}。\n幂等键 (idempotency key): {}\n",
                        notice.text, notice.case_id, notice.department_code, notice.level, notice.status, notice.at, notice.idempotency_key
                    ))
                    .map_err(|e| format!("message: {e}"))?;
                smtp.send(message).await.map(|_| ()).map_err(|e| format!("smtp: {e}"))
            }
            other => Err(format!("unknown channel {other}")),
        }
    }
}

/// The header a webhook's signature travels in: `sha256=HEX` of HMAC-SHA256(secret, body).
pub const SIGNATURE_HEADER: &str = "x-jiancha-signature";

/// `sha256=HEX` of HMAC-SHA256 over `body` with `secret`.
pub fn signature(secret: &[u8], body: &[u8]) -> String {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
    mac.update(body);
    format!("sha256={}", crate::audit::hex(&mac.finalize().into_bytes()))
}

fn check_status(what: &str, url: &str, status: reqwest::StatusCode) -> Result<(), String> {
    if status.is_success() { Ok(()) } else { Err(format!("{what} {url} answered {status}")) }
}

/// The idempotency key of one delivery.
pub fn delivery_key(seq: i64, channel: &str, recipient: &str) -> String {
    let h = crate::audit::sha256_hex(recipient.as_bytes());
    format!("jiancha-{seq}-{channel}-{}", &h[..16])
}

/// Turns new outbox rows into deliveries (one transaction); returns how many facts.
pub async fn expand(store: &Store, notifier: &Notifier, now: i64) -> Result<usize, StoreError> {
    let pool = store.pool();
    let rows = sqlx::query("SELECT seq, department_code FROM outbox WHERE expanded = 0 ORDER BY seq LIMIT 500").fetch_all(pool).await?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut tx = pool.begin().await?;
    for r in &rows {
        let seq: i64 = r.try_get("seq")?;
        let department: String = r.try_get("department_code")?;
        for (channel, recipient) in notifier.recipients(&department) {
            sqlx::query(
                "INSERT INTO deliveries (delivery_key, seq, channel, recipient, status, attempts, next_attempt_at) \
                 VALUES ($1, $2, $3, $4, 'PENDING', 0, $5) ON CONFLICT (delivery_key) DO NOTHING",
            )
            .bind(delivery_key(seq, channel, &recipient))
            .bind(seq)
            .bind(channel)
            .bind(&recipient)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query("UPDATE outbox SET expanded = 1 WHERE seq = $1").bind(seq).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(rows.len())
}

/// The notice of one fact.
pub async fn notice(store: &Store, seq: i64, key: &str, zone: chrono_tz::Tz) -> Result<Option<Notice>, StoreError> {
    let Some(entry) = store.audit_entries(seq - 1, None, 1).await?.into_iter().next().filter(|e| e.seq == seq) else {
        return Ok(None);
    };
    let case = store.case(entry.case_id).await?;
    let s = &case.state;
    let action = entry.action.as_str();
    let item = case.item_id.as_deref().map(|i| format!("，事项 {i}")).unwrap_or_default();
    let detail = match action {
        "RESOLVE" => match (s.disposition, s.rejected) {
            (Some(d), _) => format!("处理结果：{}", d.zh()),
            _ => String::new(),
        },
        "SEND_BACK" => format!("退回理由：{}", s.sent_back.clone().unwrap_or_default()),
        "REJECT" => format!("理由：{}", s.resolution_reason.clone().unwrap_or_default()),
        "RECTIFY_OVERDUE" => "整改期限已过，尚未报告整改情况".to_owned(),
        _ if s.disposition == Some(Disposition::Rectify) && action.starts_with("RECTIFICATION") => {
            format!("整改状态：{}", s.rectification.map_or("", |r| r.as_str()))
        }
        _ => case.message_zh.clone(),
    };
    Ok(Some(Notice {
        idempotency_key: key.to_owned(),
        event: entry.action.clone(),
        event_zh: action_zh(action).to_owned(),
        seq,
        case_id: case.case_id,
        origin: case.origin.clone(),
        department_code: case.department_code.clone(),
        item_id: case.item_id.clone(),
        level: s.level.clone(),
        status: s.status.as_str().to_owned(),
        at: Timestamp(entry.at).to_rfc3339_in(zone),
        text: format!("【监察】案件 {}（{}{item}）{}：{detail}", case.case_id, case.department_code, action_zh(action)),
    }))
}

/// Delivers what is due at `now`; returns (sent, failed attempts).
pub async fn deliver_due(store: &Store, notifier: &Notifier, now: i64) -> Result<(u64, u64), StoreError> {
    let pool = store.pool();
    let due = sqlx::query(
        "SELECT delivery_key, seq, channel, recipient, attempts FROM deliveries WHERE status = 'PENDING' AND next_attempt_at <= $1 \
         ORDER BY next_attempt_at, delivery_key LIMIT 100",
    )
    .bind(now)
    .fetch_all(pool)
    .await?;
    let (mut sent, mut failed) = (0, 0);
    for r in &due {
        let key: String = r.try_get("delivery_key")?;
        let seq: i64 = r.try_get("seq")?;
        let channel: String = r.try_get("channel")?;
        let recipient: String = r.try_get("recipient")?;
        let attempts: i64 = r.try_get("attempts")?;
        let outcome = match notice(store, seq, &key, notifier.zone).await? {
            Some(n) => notifier.send(&channel, &recipient, &n).await,
            None => Err(format!("audit entry {seq} not found")),
        };
        let channel_label = CHANNELS.into_iter().find(|c| *c == channel).unwrap_or("other");
        match outcome {
            Ok(()) => {
                sqlx::query(
                    "UPDATE deliveries SET status = 'SENT', attempts = $1, sent_at = $2, last_error = NULL WHERE delivery_key = $3",
                )
                .bind(attempts + 1)
                .bind(jiancha_platform::wall_clock().0)
                .bind(&key)
                .execute(pool)
                .await?;
                metrics::counter!(SENT, "channel" => channel_label).increment(1);
                sent += 1;
            }
            Err(why) => {
                let attempts = attempts + 1;
                let initial = notifier.config.retry_initial.get().as_millis() as i64;
                let max = notifier.config.retry_max.get().as_millis() as i64;
                let delay = initial.saturating_mul(1_i64 << (attempts - 1).clamp(0, 30)).min(max);
                let status = if attempts >= i64::from(notifier.config.max_attempts) { "FAILED" } else { "PENDING" };
                warn!(key = %key, channel = %channel, attempts, status, error = %why, "Notification not delivered");
                sqlx::query(
                    "UPDATE deliveries SET status = $1, attempts = $2, next_attempt_at = $3, last_error = $4 WHERE delivery_key = $5",
                )
                .bind(status)
                .bind(attempts)
                .bind(now + delay)
                .bind(&why)
                .bind(&key)
                .execute(pool)
                .await?;
                metrics::counter!(FAILURES, "channel" => channel_label).increment(1);
                failed += 1;
            }
        }
    }
    Ok((sent, failed))
}

/// Sets the pending and failing gauges from the deliveries table.
pub async fn gauges(store: &Store) -> Result<(), StoreError> {
    for channel in CHANNELS {
        let row = sqlx::query(
            "SELECT COALESCE(SUM(CASE WHEN status = 'PENDING' THEN 1 ELSE 0 END), 0) AS pending, \
             COALESCE(SUM(CASE WHEN status = 'FAILED' OR (status = 'PENDING' AND attempts >= $1) THEN 1 ELSE 0 END), 0) AS failing \
             FROM deliveries WHERE channel = $2",
        )
        .bind(FAILING_AFTER)
        .bind(channel)
        .fetch_one(store.pool())
        .await?;
        let pending: i64 = row.try_get("pending")?;
        let failing: i64 = row.try_get("failing")?;
        metrics::gauge!(PENDING, "channel" => channel).set(pending as f64);
        metrics::gauge!(FAILING, "channel" => channel).set(if failing > 0 { 1.0 } else { 0.0 });
    }
    Ok(())
}

/// One delivery as stored (for the case page and tests).
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub struct Delivery {
    pub key: String,
    pub seq: i64,
    pub channel: String,
    pub recipient: String,
    pub status: String,
    pub attempts: i64,
    pub last_error: Option<String>,
    pub sent_at: Option<i64>,
}

/// The deliveries of a case's facts, oldest first.
pub async fn deliveries_of(store: &Store, case_id: i64) -> Result<Vec<Delivery>, StoreError> {
    let rows = sqlx::query(
        "SELECT d.delivery_key, d.seq, d.channel, d.recipient, d.status, d.attempts, d.last_error, d.sent_at FROM deliveries d \
         JOIN outbox o ON o.seq = d.seq WHERE o.case_id = $1 ORDER BY d.seq, d.delivery_key",
    )
    .bind(case_id)
    .fetch_all(store.pool())
    .await?;
    let mut out = Vec::with_capacity(rows.len());
    for r in rows {
        out.push(Delivery {
            key: r.try_get("delivery_key")?,
            seq: r.try_get("seq")?,
            channel: r.try_get("channel")?,
            recipient: r.try_get("recipient")?,
            status: r.try_get("status")?,
            attempts: r.try_get("attempts")?,
            last_error: r.try_get("last_error")?,
            sent_at: r.try_get("sent_at")?,
        });
    }
    Ok(out)
}

/// The dispatcher: reads the outbox every `poll_interval` (and when a change is
/// appended) and delivers what is due, until `shutdown`.
pub async fn run(store: Arc<Store>, notifier: Arc<Notifier>, mut shutdown: watch::Receiver<bool>) {
    for missing in notifier.unconfigured() {
        warn!(channel = missing, "Contacts are configured for a channel that is not; those notifications are not sent");
    }
    info!("Notification dispatcher started");
    let mut appended = store.appended.subscribe();
    let interval = notifier.config.poll_interval.get().max(Duration::from_millis(50));
    loop {
        let now = jiancha_platform::wall_clock().0;
        let result = async {
            expand(&store, &notifier, now).await?;
            deliver_due(&store, &notifier, now).await?;
            gauges(&store).await
        }
        .await;
        if let Err(e) = result {
            warn!(error = %e, "Notification dispatch failed; retrying");
        }
        tokio::select! {
            _ = shutdown.wait_for(|s| *s) => return,
            _ = appended.changed() => {}
            _ = tokio::time::sleep(interval) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_signature_is_hmac_sha256_of_the_body() {
        // RFC 4231 test case 2.
        assert_eq!(
            super::signature(b"Jefe", b"what do ya want for nothing?"),
            "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
        );
    }

    #[test]
    fn a_delivery_key_names_the_fact_and_the_channel() {
        let k = super::delivery_key(42, "email", "a@b.cn");
        assert!(k.starts_with("jiancha-42-email-") && k.len() == "jiancha-42-email-".len() + 16);
        assert_ne!(k, super::delivery_key(42, "email", "c@b.cn"));
        assert_eq!(k, super::delivery_key(42, "email", "a@b.cn"));
    }
}
