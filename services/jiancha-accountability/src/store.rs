//! The case store on PostgreSQL (production) or SQLite (the embedded default), through
//! sqlx's `Any` driver: one set of SQL for both, versioned migrations applied at start.
//!
//! Writes go through one lock per store and one transaction per batch, so case ids and
//! audit sequence numbers are gapless and the hash chain is appended in order. One
//! accountability instance writes to a database (docs/accountability.md).

use crate::audit::{self, Entry, GENESIS};
use crate::workflow::{self, CaseState, Disposition, Rectification, Status, Step, WorkflowError};
use jiancha_proto::v1;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::collections::HashMap;
use std::sync::Once;
use tokio::sync::{Mutex, watch};

/// Versioned migrations; the SQL runs on both PostgreSQL and SQLite.
const MIGRATIONS: [(i64, &str, &str); 4] = [
    (1, "initial schema", include_str!("../migrations/0001_initial.sql")),
    (2, "items by department", include_str!("../migrations/0002_items_by_department.sql")),
    (3, "audit snapshots", include_str!("../migrations/0003_audit_snapshots.sql")),
    (4, "escalation, complaints, outbox, reports", include_str!("../migrations/0004_escalation_complaints_outbox_reports.sql")),
];

/// Which database.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Backend {
    /// PostgreSQL (and databases speaking its protocol).
    Postgres,
    /// SQLite, one file.
    Sqlite,
}

/// A store failure.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database.
    #[error("database: {0}")]
    Db(#[from] sqlx::Error),
    /// A workflow rule.
    #[error(transparent)]
    Workflow(#[from] WorkflowError),
    /// No such case.
    #[error("case {0} does not exist")]
    NotFound(i64),
    /// A URL the store cannot use.
    #[error("database url `{0}`: use postgres://… or sqlite://FILE")]
    Url(String),
    /// A migration changed after it was applied.
    #[error("migration {version} ({name}) differs from the one applied to this database")]
    Migration {
        /// Version.
        version: i64,
        /// Name.
        name: &'static str,
    },
}

/// A case as stored.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub struct CaseRow {
    pub case_id: i64,
    pub alert_id: String,
    pub item_id: Option<String>,
    pub service_code: Option<String>,
    pub department_code: String,
    pub kind: String,
    pub alert_level: String,
    pub triggered_at: String,
    pub message_zh: String,
    pub message_en: String,
    pub derivation_zh: String,
    pub derivation_en: String,
    pub opened_at: i64,
    pub escalate_at: Option<i64>,
    pub replied_at: Option<i64>,
    pub resolved_at: Option<i64>,
    pub updated_at: i64,
    /// ALERT, MANUAL or COMPLAINT.
    pub origin: String,
    /// What the escalation chain counts from (publication, send-back, filing, acceptance).
    pub clock_from: i64,
    /// A complaint's channel: HOTLINE, LETTER, VISIT, ONLINE.
    pub complaint_channel: Option<String>,
    /// The complainant's contact (inspectors only).
    pub complainant: Option<String>,
    pub state: CaseState,
}

/// A comment with its attachments.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub struct CommentRow {
    pub comment_id: i64,
    pub author: String,
    pub role: String,
    pub text: String,
    pub at: i64,
    pub attachments: Vec<AttachmentRow>,
}

/// Attachment metadata.
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub struct AttachmentRow {
    pub attachment_id: i64,
    pub file_name: String,
    pub media_type: String,
    pub size_bytes: i64,
    pub sha256: String,
    pub uploaded_by: String,
    pub at: i64,
}

/// Filters of a case list.
#[derive(Clone, Debug, Default)]
#[allow(missing_docs)]
pub struct CaseFilter {
    pub status: Option<Status>,
    pub department_code: Option<String>,
    pub level: Option<String>,
    pub escalated: Option<bool>,
    pub repeat_offender: Option<bool>,
    pub assigned_to: Option<String>,
    pub origin: Option<String>,
    pub review: Option<bool>,
    pub publicized: Option<bool>,
    pub after_case_id: i64,
    pub limit: i64,
}

/// An alert update to take, with when it was published.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The update.
    pub alert: v1::Alert,
    /// When the monitor published it (the record's timestamp), milliseconds: a case's
    /// clock counts from it, not from when the store read it.
    pub published_at: i64,
}

/// Where a case came from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// A YELLOW or RED alert.
    Alert,
    /// Opened by an inspector.
    Manual,
    /// A complaint (投诉).
    Complaint,
}

impl Origin {
    /// The stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            Origin::Alert => "ALERT",
            Origin::Manual => "MANUAL",
            Origin::Complaint => "COMPLAINT",
        }
    }
}

/// A case opened by hand or a complaint filed.
#[derive(Clone, Debug)]
pub struct NewCase {
    /// MANUAL or COMPLAINT.
    pub origin: Origin,
    /// Against which department.
    pub department_code: String,
    /// The item concerned, if any.
    pub item_id: Option<String>,
    /// Its service.
    pub service_code: Option<String>,
    /// YELLOW or RED (a complaint starts YELLOW).
    pub level: String,
    /// What happened, as filed.
    pub summary: String,
    /// How it came in (shown as the case's derivation).
    pub derivation: String,
    /// The filing instant as RFC 3339 (the case's `triggered_at`).
    pub at_text: String,
    /// HOTLINE, LETTER, VISIT or ONLINE.
    pub complaint_channel: Option<String>,
    /// The complainant's contact (inspectors only).
    pub complainant: Option<String>,
}

/// What a batch of alert updates did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
    /// Cases whose alert moved (facts updated).
    pub moved: u64,
    /// Cases resolved with a fault whose alert was retracted: flagged for review (复核).
    pub flagged: u64,
    /// Cases opened.
    pub opened: u64,
    /// Cases closed by retraction.
    pub retracted: u64,
    /// Cases opened again.
    pub reopened: u64,
    /// Updates that changed no case (redelivery, WARNING level, …).
    pub unchanged: u64,
}

/// What the statistics need of one item (from the monitor's state).
#[derive(Clone, Debug, PartialEq)]
#[allow(missing_docs)]
pub struct ItemFacts {
    pub item_id: String,
    pub department_code: String,
    pub service_code: Option<String>,
    pub submitted_at: Option<i64>,
    pub accepted_at: Option<i64>,
    pub decided_at: Option<i64>,
    pub closed: bool,
    pub promised_days: Option<f64>,
    /// Days used from acceptance to decision (or to now), pauses excluded, in the
    /// decision clock's days (natural days for a natural-day service).
    pub used_days: Option<f64>,
    /// The service counts natural days (自然日): its days are not working days.
    pub natural_days: bool,
    pub promised_deadline: Option<i64>,
    pub promised_met: Option<bool>,
    pub statutory_deadline: Option<i64>,
    pub statutory_met: Option<bool>,
    pub late_reports: i64,
    /// The official (经办人) of the item's last event that names one.
    pub actor: Option<String>,
}

#[derive(Clone)]
struct Counters {
    next_case: i64,
    next_comment: i64,
    next_attachment: i64,
    next_seq: i64,
    last_hash: String,
}

/// One write in progress: the store's lock, a working copy of its counters (kept only if
/// the transaction commits) and the transaction.
struct Write<'a> {
    guard: tokio::sync::MutexGuard<'a, Counters>,
    c: Counters,
    tx: Tx<'static>,
}

impl Write<'_> {
    /// Commits, keeps the counters and wakes the case streams.
    async fn commit(mut self, appended: &watch::Sender<i64>) -> Result<(), StoreError> {
        self.tx.commit().await?;
        *self.guard = self.c;
        appended.send_replace(self.guard.next_seq - 1);
        Ok(())
    }

    /// Appends an audit entry chained to the last one.
    #[allow(clippy::too_many_arguments)]
    async fn append(
        &mut self,
        case_id: i64,
        at: i64,
        who: &str,
        role: &str,
        action: &str,
        before: &str,
        after: &str,
    ) -> Result<(), StoreError> {
        // The whole case as the change left it: any later edit of any of its columns,
        // comments or attachments differs from the newest entry's snapshot.
        let case = load(&mut self.tx, case_id).await?;
        let comments = comments_of(&mut self.tx, case_id).await?;
        let snapshot = snapshot(&case, &comments);
        let c = &mut self.c;
        let seq = c.next_seq;
        let h = audit::hash_with_snapshot(&c.last_hash, seq, case_id, at, who, role, action, before, after, &snapshot);
        sqlx::query(
            "INSERT INTO audit_log (seq, case_id, at, who, role, action, before_state, after_state, prev_hash, hash, snapshot) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
        )
        .bind(seq)
        .bind(case_id)
        .bind(at)
        .bind(who)
        .bind(role)
        .bind(action)
        .bind(before)
        .bind(after)
        .bind(&c.last_hash)
        .bind(&h)
        .bind(&snapshot)
        .execute(&mut *self.tx)
        .await?;
        if NOTIFIED.contains(&action) {
            sqlx::query("INSERT INTO outbox (seq, case_id, action, department_code, at, expanded) VALUES ($1, $2, $3, $4, $5, 0)")
                .bind(seq)
                .bind(case_id)
                .bind(action)
                .bind(&case.department_code)
                .bind(at)
                .execute(&mut *self.tx)
                .await?;
        }
        c.next_seq += 1;
        c.last_hash = h;
        Ok(())
    }
}

/// The store.
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    write: Mutex<Counters>,
    /// The last audit sequence number written: changes wake WatchCases streams.
    pub appended: watch::Sender<i64>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("backend", &self.backend).finish_non_exhaustive()
    }
}

fn bool_i(b: bool) -> i64 {
    i64::from(b)
}

fn case_from_row(r: &AnyRow) -> Result<CaseRow, sqlx::Error> {
    let status: String = r.try_get("status")?;
    let disposition: Option<String> = r.try_get("disposition")?;
    let rectification: Option<String> = r.try_get("rectification")?;
    let opened_at: i64 = r.try_get("opened_at")?;
    let flag = |name: &str| r.try_get::<i64, _>(name).map(|v| v != 0);
    Ok(CaseRow {
        case_id: r.try_get("case_id")?,
        alert_id: r.try_get("alert_id")?,
        item_id: r.try_get("item_id")?,
        service_code: r.try_get("service_code")?,
        department_code: r.try_get("department_code")?,
        kind: r.try_get("kind")?,
        alert_level: r.try_get("alert_level")?,
        triggered_at: r.try_get("triggered_at")?,
        message_zh: r.try_get("message_zh")?,
        message_en: r.try_get("message_en")?,
        derivation_zh: r.try_get("derivation_zh")?,
        derivation_en: r.try_get("derivation_en")?,
        opened_at,
        escalate_at: r.try_get("escalate_at")?,
        replied_at: r.try_get("replied_at")?,
        resolved_at: r.try_get("resolved_at")?,
        updated_at: r.try_get("updated_at")?,
        origin: r.try_get("origin")?,
        clock_from: r.try_get::<Option<i64>, _>("clock_from")?.unwrap_or(opened_at),
        complaint_channel: r.try_get("complaint_channel")?,
        complainant: r.try_get("complainant")?,
        state: CaseState {
            status: Status::parse(&status).unwrap_or(Status::Open),
            level: r.try_get("level")?,
            escalated: r.try_get::<i64, _>("escalated")? != 0,
            assigned_to: r.try_get("assigned_to")?,
            reply: r.try_get("reply")?,
            replied_by: r.try_get("replied_by")?,
            disposition: disposition.as_deref().and_then(Disposition::parse),
            resolution_reason: r.try_get("resolution_reason")?,
            resolved_by: r.try_get("resolved_by")?,
            responsible_actor: r.try_get("responsible_actor")?,
            repeat_department: r.try_get::<i64, _>("repeat_department")? != 0,
            repeat_actor: r.try_get::<i64, _>("repeat_actor")? != 0,
            reminded: flag("reminded")?,
            publicized: flag("publicized")?,
            sent_back: r.try_get("sent_back")?,
            retracted: flag("retracted")?,
            review: r.try_get("review")?,
            rectify_deadline: r.try_get("rectify_deadline")?,
            rectification: rectification.as_deref().and_then(Rectification::parse),
            rectification_report: r.try_get("rectification_report")?,
            rectification_overdue: flag("rectification_overdue")?,
            rejected: flag("rejected")?,
            reported_in: r.try_get("reported_in")?,
        },
    })
}

fn entry_from_row(r: &AnyRow) -> Result<Entry, sqlx::Error> {
    Ok(Entry {
        seq: r.try_get("seq")?,
        case_id: r.try_get("case_id")?,
        at: r.try_get("at")?,
        who: r.try_get("who")?,
        role: r.try_get("role")?,
        action: r.try_get("action")?,
        before: r.try_get("before_state")?,
        after: r.try_get("after_state")?,
        snapshot: r.try_get("snapshot")?,
        prev_hash: r.try_get("prev_hash")?,
        hash: r.try_get("hash")?,
    })
}

const CASE_COLUMNS: &str = "case_id, alert_id, item_id, service_code, department_code, kind, alert_level, level, triggered_at, \
    message_zh, message_en, derivation_zh, derivation_en, status, opened_at, escalate_at, escalated, assigned_to, reply, replied_by, \
    replied_at, disposition, resolution_reason, resolved_by, resolved_at, responsible_actor, repeat_department, repeat_actor, updated_at, \
    origin, clock_from, reminded, publicized, sent_back, retracted, review, rectify_deadline, rectification, rectification_report, \
    rectification_overdue, rejected, complaint_channel, complainant, reported_in";

type Tx<'a> = sqlx::Transaction<'a, sqlx::Any>;

impl Store {
    /// Connects, applies the migrations not yet applied, and reads the counters.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        static DRIVERS: Once = Once::new();
        DRIVERS.call_once(sqlx::any::install_default_drivers);
        let backend = if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Backend::Postgres
        } else if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else {
            return Err(StoreError::Url(url.to_owned()));
        };
        let url = match backend {
            Backend::Sqlite if !url.contains('?') && !url.contains(":memory:") => format!("{url}?mode=rwc"),
            _ => url.to_owned(),
        };
        let max = if backend == Backend::Sqlite { 4 } else { 16 };
        let pool = AnyPoolOptions::new().max_connections(max).connect(&url).await?;
        if backend == Backend::Sqlite {
            sqlx::query("PRAGMA journal_mode=WAL").execute(&pool).await?;
            sqlx::query("PRAGMA busy_timeout=10000").execute(&pool).await?;
        }
        migrate(&pool).await?;
        let mut conn = pool.acquire().await?;
        let c = counters(&mut conn).await?;
        drop(conn);
        Ok(Store { pool, backend, appended: watch::channel(c.next_seq - 1).0, write: Mutex::new(c) })
    }

    /// Starts a write: this process's lock, then the database's write lock (another
    /// process, such as `jiancha report publish`, may write to the same store), then the
    /// counters as the database has them.
    async fn begin_write(&self) -> Result<Write<'_>, StoreError> {
        let guard = self.write.lock().await;
        let mut tx = self.pool.begin().await?;
        match self.backend {
            // Held to the end of the transaction.
            Backend::Postgres => sqlx::query("SELECT pg_advisory_xact_lock(7356296)").execute(&mut *tx).await.map(drop)?,
            // A write statement takes SQLite's RESERVED lock now rather than at the first insert.
            Backend::Sqlite => {
                sqlx::query("UPDATE schema_migrations SET applied_at = applied_at WHERE version = 0").execute(&mut *tx).await.map(drop)?
            }
        }
        let c = counters(&mut tx).await?;
        Ok(Write { guard, c, tx })
    }

    /// Which database this is.
    pub fn backend(&self) -> Backend {
        self.backend
    }

    /// The connection pool (statistics and tests read through it).
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Takes a batch of alert updates in one transaction: every update is recorded for
    /// the statistics; YELLOW and RED ones open (once per alert id), close or reopen cases.
    pub async fn ingest(&self, batch: &[Incoming], now: i64) -> Result<IngestReport, StoreError> {
        let mut w = self.begin_write().await?;
        let mut report = IngestReport::default();
        for inc in batch {
            let a = &inc.alert;
            let status = if a.status == v1::AlertStatus::Retracted as i32 { "RETRACTED" } else { "FIRED" };
            let kind = v1::AlertKind::try_from(a.kind).map(|k| k.as_str_name()).unwrap_or("UNKNOWN");
            let level = v1::Level::try_from(a.level).map(|l| l.as_str_name()).unwrap_or("UNKNOWN");
            let triggered_ms = jiancha_core::Timestamp::parse_rfc3339(&a.triggered_at).map_or(0, |t| t.0);
            sqlx::query(
                "INSERT INTO alerts (alert_id, item_id, department_code, service_code, kind, level, status, triggered_at, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
                 ON CONFLICT (alert_id) DO UPDATE SET status = excluded.status, level = excluded.level, \
                 triggered_at = excluded.triggered_at, updated_at = excluded.updated_at",
            )
            .bind(&a.alert_id)
            .bind(&a.item_id)
            .bind(&a.department_code)
            .bind(&a.service_code)
            .bind(kind)
            .bind(level)
            .bind(status)
            .bind(triggered_ms)
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
            if !matches!(level, "YELLOW" | "RED") || a.item_id.is_none() {
                report.unchanged += 1;
                continue;
            }
            let existing = sqlx::query(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE alert_id = $1"))
                .bind(&a.alert_id)
                .fetch_optional(&mut *w.tx)
                .await?
                .map(|r| case_from_row(&r))
                .transpose()?;
            match (status, existing) {
                ("FIRED", None) => {
                    let state = CaseState::opened(level);
                    let id = w.c.next_case;
                    w.c.next_case += 1;
                    let message = a.message.clone().unwrap_or_default();
                    let derivation = a.derivation.clone().unwrap_or_default();
                    sqlx::query(
                        "INSERT INTO cases (case_id, alert_id, item_id, service_code, department_code, kind, alert_level, level, \
                         triggered_at, message_zh, message_en, derivation_zh, derivation_en, status, opened_at, escalate_at, escalated, \
                         repeat_department, repeat_actor, updated_at, origin, clock_from) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, NULL, 0, 0, 0, $16, 'ALERT', $15)",
                    )
                    .bind(id)
                    .bind(&a.alert_id)
                    .bind(&a.item_id)
                    .bind(&a.service_code)
                    .bind(a.department_code.clone().unwrap_or_default())
                    .bind(kind)
                    .bind(level)
                    .bind(level)
                    .bind(&a.triggered_at)
                    .bind(&message.zh)
                    .bind(&message.en)
                    .bind(&derivation.zh)
                    .bind(&derivation.en)
                    .bind(Status::Open.as_str())
                    .bind(inc.published_at)
                    .bind(now)
                    .execute(&mut *w.tx)
                    .await?;
                    w.append(id, inc.published_at, "system", "SYSTEM", "OPEN", "{}", &state.to_json()).await?;
                    report.opened += 1;
                }
                ("FIRED", Some(case)) => {
                    let legacy_retraction = case.state.status == Status::Resolved
                        && case.state.resolved_by.as_deref() == Some("system")
                        && case.state.resolution_reason.as_deref() == Some(workflow::RETRACTED_REASON);
                    let retracted = CaseState { retracted: case.state.retracted || legacy_retraction, ..case.state.clone() };
                    if let Some(next) = workflow::reopen(&retracted, level) {
                        // A new publication: the case is as new, its clock from now on.
                        update_facts(&mut w.tx, case.case_id, a).await?;
                        let stamps = Stamps { replied_at: Some(None), resolved_at: Some(None), clock_from: Some(inc.published_at) };
                        save(&mut w.tx, case.case_id, &next, now, stamps).await?;
                        w.append(case.case_id, now, "system", "SYSTEM", "REOPEN", &case.state.to_json(), &next.to_json()).await?;
                        report.reopened += 1;
                    } else if facts_of(&case) != facts_of_alert(a) {
                        // A moved alert (FIRED again with a new instant): the case's facts follow.
                        update_facts(&mut w.tx, case.case_id, a).await?;
                        sqlx::query("UPDATE cases SET updated_at = $1 WHERE case_id = $2")
                            .bind(now)
                            .bind(case.case_id)
                            .execute(&mut *w.tx)
                            .await?;
                        let (before, after) = (facts_of(&case).to_string(), facts_of_alert(a).to_string());
                        w.append(case.case_id, now, "system", "SYSTEM", "MOVE", &before, &after).await?;
                        report.moved += 1;
                    } else {
                        report.unchanged += 1;
                    }
                }
                ("RETRACTED", Some(case)) => {
                    let note = format!(
                        "告警 {} 因迟报数据撤回；本案已作“{}”处理，请复核。The alert was retracted (late data) after this case was resolved: review the decision.",
                        case.alert_id,
                        case.state.disposition.map_or("", Disposition::zh)
                    );
                    match workflow::retract(&case.state, &note) {
                        Some(next) if next.status == case.state.status => {
                            save(&mut w.tx, case.case_id, &next, now, Stamps::default()).await?;
                            w.append(case.case_id, now, "system", "SYSTEM", "REVIEW_FLAG", &case.state.to_json(), &next.to_json()).await?;
                            report.flagged += 1;
                        }
                        Some(next) => {
                            let stamps = Stamps { resolved_at: Some(Some(now)), ..Stamps::default() };
                            save(&mut w.tx, case.case_id, &next, now, stamps).await?;
                            w.append(case.case_id, now, "system", "SYSTEM", "RETRACT", &case.state.to_json(), &next.to_json()).await?;
                            report.retracted += 1;
                        }
                        None => report.unchanged += 1,
                    }
                }
                _ => report.unchanged += 1,
            }
        }
        w.commit(&self.appended).await?;
        Ok(report)
    }

    /// Opens a case by hand (origin MANUAL) or files a complaint (origin COMPLAINT,
    /// FILED until accepted or rejected).
    pub async fn open_case(&self, new: &NewCase, now: i64, who: &str, role: &str) -> Result<CaseRow, StoreError> {
        let mut w = self.begin_write().await?;
        let id = w.c.next_case;
        w.c.next_case += 1;
        let complaint = new.origin == Origin::Complaint;
        let state = if complaint { CaseState::filed() } else { CaseState::opened(&new.level) };
        let prefix = if complaint { "C" } else { "M" };
        sqlx::query(
            "INSERT INTO cases (case_id, alert_id, item_id, service_code, department_code, kind, alert_level, level, \
             triggered_at, message_zh, message_en, derivation_zh, derivation_en, status, opened_at, escalate_at, escalated, \
             repeat_department, repeat_actor, updated_at, origin, clock_from, complaint_channel, complainant) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $7, $8, $9, $10, $11, '', $12, $13, NULL, 0, 0, 0, $13, $14, $13, $15, $16)",
        )
        .bind(id)
        .bind(format!("{prefix}{id}"))
        .bind(&new.item_id)
        .bind(&new.service_code)
        .bind(&new.department_code)
        .bind(new.origin.as_str())
        .bind(&state.level)
        .bind(&new.at_text)
        .bind(&new.summary)
        .bind(&new.summary)
        .bind(&new.derivation)
        .bind(state.status.as_str())
        .bind(now)
        .bind(new.origin.as_str())
        .bind(&new.complaint_channel)
        .bind(&new.complainant)
        .execute(&mut *w.tx)
        .await?;
        let action = if complaint { "FILE" } else { "OPEN" };
        w.append(id, now, who, role, action, "{}", &state.to_json()).await?;
        let case = load(&mut w.tx, id).await?;
        w.commit(&self.appended).await?;
        Ok(case)
    }

    /// The escalation chain (督查督办) and rectification deadlines: takes every step due
    /// at `now`. `schedule` gives a case's three instants (催办, 督办, 通报) from its
    /// clock with the calendars in force, so a calendar year loaded later moves them.
    /// Returns the steps taken as (case, audit action).
    pub async fn advance(&self, now: i64, schedule: impl Fn(&CaseRow) -> [(Step, i64); 3]) -> Result<Vec<(i64, &'static str)>, StoreError> {
        let candidates: Vec<CaseRow> = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE (status IN ('OPEN', 'FILED') AND publicized = 0) \
             OR (rectification = 'PENDING' AND rectification_overdue = 0 AND rectify_deadline <= $1) ORDER BY case_id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(case_from_row)
        .collect::<Result<_, _>>()?;
        let mut taken = Vec::new();
        for case in candidates {
            // A step of the chain, or (None) the rectification deadline.
            let mut steps: Vec<Option<Step>> = Vec::new();
            if case.state.awaiting_answer() {
                for (step, at) in schedule(&case) {
                    if at <= now && workflow::escalate(&case.state, step).is_some() {
                        steps.push(Some(step));
                    }
                }
            }
            if case.state.rectify_deadline.is_some_and(|t| t <= now) && workflow::rectification_overdue(&case.state).is_some() {
                steps.push(None);
            }
            for step in steps {
                let action = step.map_or("RECTIFY_OVERDUE", Step::action);
                let result = self
                    .change(case.case_id, now, "system", "SYSTEM", action, |s| {
                        match step {
                            Some(step) => workflow::escalate(s, step),
                            None => workflow::rectification_overdue(s),
                        }
                        .ok_or_else(|| WorkflowError::State("no longer due".into()))
                    })
                    .await;
                match result {
                    Ok(_) => taken.push((case.case_id, action)),
                    Err(StoreError::Workflow(_)) => break, // Answered meanwhile.
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(taken)
    }

    /// Cases not resolved, counted by (level, escalated).
    pub async fn open_cases(&self) -> Result<Vec<(String, bool, i64)>, StoreError> {
        let rows = sqlx::query("SELECT level, escalated, COUNT(*) AS n FROM cases WHERE status <> 'RESOLVED' GROUP BY level, escalated")
            .fetch_all(&self.pool)
            .await?;
        let mut counts = Vec::with_capacity(rows.len());
        for row in rows {
            let level: String = row.try_get("level")?;
            let escalated: i64 = row.try_get("escalated")?;
            counts.push((level, escalated != 0, row.try_get::<i64, _>("n")?));
        }
        Ok(counts)
    }

    /// Applies one workflow action to a case, with its audit entry, in one transaction.
    pub async fn change(
        &self,
        case_id: i64,
        now: i64,
        who: &str,
        role: &str,
        action: &str,
        f: impl FnOnce(&CaseState) -> Result<CaseState, WorkflowError>,
    ) -> Result<CaseRow, StoreError> {
        let mut w = self.begin_write().await?;
        let case = load(&mut w.tx, case_id).await?;
        let mut next = f(&case.state)?;
        if action == "RESOLVE" && next.disposition.is_some_and(Disposition::is_fault) {
            // 一年内犯一般过错达三次, this resolution included; the cases of one item count once.
            let (by_department, by_actor) = offences(&mut w.tx, &case, next.responsible_actor.as_deref(), now).await?;
            next.repeat_department = by_department >= workflow::REPEAT_THRESHOLD;
            next.repeat_actor = by_actor >= workflow::REPEAT_THRESHOLD;
        }
        save(&mut w.tx, case_id, &next, now, Stamps::of(action, now)).await?;
        w.append(case_id, now, who, role, action, &case.state.to_json(), &next.to_json()).await?;
        let updated = load(&mut w.tx, case_id).await?;
        w.commit(&self.appended).await?;
        Ok(updated)
    }

    /// A comment with attachments' metadata, audited.
    pub async fn comment(
        &self,
        case_id: i64,
        now: i64,
        who: &str,
        role: &str,
        text: &str,
        attachments: &[(String, String, i64, String)],
    ) -> Result<i64, StoreError> {
        if text.trim().is_empty() && attachments.is_empty() {
            return Err(WorkflowError::Field { field: "text", message: "a comment needs text or an attachment".into() }.into());
        }
        let mut w = self.begin_write().await?;
        let case = load(&mut w.tx, case_id).await?;
        let comment_id = w.c.next_comment;
        w.c.next_comment += 1;
        sqlx::query("INSERT INTO case_comments (comment_id, case_id, author, role, text, at) VALUES ($1, $2, $3, $4, $5, $6)")
            .bind(comment_id)
            .bind(case_id)
            .bind(who)
            .bind(role)
            .bind(text.trim())
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
        let mut files = Vec::new();
        for (name, media, size, sha) in attachments {
            let id = w.c.next_attachment;
            w.c.next_attachment += 1;
            sqlx::query(
                "INSERT INTO case_attachments (attachment_id, case_id, comment_id, file_name, media_type, size_bytes, sha256, uploaded_by, at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)",
            )
            .bind(id)
            .bind(case_id)
            .bind(comment_id)
            .bind(name)
            .bind(media)
            .bind(*size)
            .bind(sha)
            .bind(who)
            .bind(now)
            .execute(&mut *w.tx)
            .await?;
            files.push(serde_json::json!({"attachment_id": id, "file_name": name, "sha256": sha, "size_bytes": size}));
        }
        let after = serde_json::json!({"comment_id": comment_id, "text": text.trim(), "attachments": files}).to_string();
        w.append(case_id, now, who, role, "COMMENT", &case.state.to_json(), &after).await?;
        w.commit(&self.appended).await?;
        Ok(comment_id)
    }

    /// One case.
    pub async fn case(&self, case_id: i64) -> Result<CaseRow, StoreError> {
        let row = sqlx::query(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1"))
            .bind(case_id)
            .fetch_optional(&self.pool)
            .await?
            .ok_or(StoreError::NotFound(case_id))?;
        Ok(case_from_row(&row)?)
    }

    /// The case of an alert.
    pub async fn case_of_alert(&self, alert_id: &str) -> Result<Option<CaseRow>, StoreError> {
        let row =
            sqlx::query(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE alert_id = $1")).bind(alert_id).fetch_optional(&self.pool).await?;
        Ok(row.map(|r| case_from_row(&r)).transpose()?)
    }

    /// Cases matching a filter, by id, after `after_case_id`.
    pub async fn cases(&self, f: &CaseFilter) -> Result<Vec<CaseRow>, StoreError> {
        let mut sql = format!("SELECT {CASE_COLUMNS} FROM cases WHERE case_id > $1");
        let mut n = 1;
        let mut next = |clause: &str| {
            n += 1;
            format!(" AND {clause} ${n}")
        };
        if f.status.is_some() {
            sql += &next("status =");
        }
        if f.department_code.is_some() {
            sql += &next("department_code =");
        }
        if f.level.is_some() {
            sql += &next("level =");
        }
        if f.escalated.is_some() {
            sql += &next("escalated =");
        }
        if f.repeat_offender.is_some() {
            sql += &next("(CASE WHEN repeat_department = 1 OR repeat_actor = 1 THEN 1 ELSE 0 END) =");
        }
        if f.assigned_to.is_some() {
            sql += &next("assigned_to =");
        }
        if f.origin.is_some() {
            sql += &next("origin =");
        }
        if f.review.is_some() {
            sql += &next("(CASE WHEN review IS NULL THEN 0 ELSE 1 END) =");
        }
        if f.publicized.is_some() {
            sql += &next("publicized =");
        }
        sql += &format!(" ORDER BY case_id LIMIT {}", f.limit.clamp(1, 1000));
        let mut q = sqlx::query(&sql).bind(f.after_case_id);
        if let Some(s) = f.status {
            q = q.bind(s.as_str());
        }
        if let Some(d) = &f.department_code {
            q = q.bind(d.clone());
        }
        if let Some(l) = &f.level {
            q = q.bind(l.clone());
        }
        if let Some(e) = f.escalated {
            q = q.bind(bool_i(e));
        }
        if let Some(r) = f.repeat_offender {
            q = q.bind(bool_i(r));
        }
        if let Some(a) = &f.assigned_to {
            q = q.bind(a.clone());
        }
        if let Some(o) = &f.origin {
            q = q.bind(o.clone());
        }
        if let Some(r) = f.review {
            q = q.bind(bool_i(r));
        }
        if let Some(p) = f.publicized {
            q = q.bind(bool_i(p));
        }
        Ok(q.fetch_all(&self.pool).await?.iter().map(case_from_row).collect::<Result<_, _>>()?)
    }

    /// A case's comments with attachments, oldest first.
    pub async fn comments(&self, case_id: i64) -> Result<Vec<CommentRow>, StoreError> {
        let mut conn = self.pool.acquire().await?;
        comments_of(&mut conn, case_id).await
    }

    /// Audit entries after `after_seq` (of one case, when given), oldest first.
    pub async fn audit_entries(&self, after_seq: i64, case_id: Option<i64>, limit: i64) -> Result<Vec<Entry>, StoreError> {
        let rows = match case_id {
            Some(id) => {
                sqlx::query("SELECT * FROM audit_log WHERE seq > $1 AND case_id = $2 ORDER BY seq LIMIT $3")
                    .bind(after_seq)
                    .bind(id)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
            None => {
                sqlx::query("SELECT * FROM audit_log WHERE seq > $1 ORDER BY seq LIMIT $2")
                    .bind(after_seq)
                    .bind(limit)
                    .fetch_all(&self.pool)
                    .await?
            }
        };
        Ok(rows.iter().map(entry_from_row).collect::<Result<_, _>>()?)
    }

    /// Verifies the whole chain; then that every case, with its comments and
    /// attachments, is exactly what its newest audit entry's snapshot says (an edit of
    /// any column, or the removal of the newest entries, differs); then that every case
    /// of the log is still in the store. Returns the head to publish.
    pub async fn verify_audit(&self) -> Result<Result<audit::Head, audit::Break>, StoreError> {
        let mut entries = Vec::new();
        let mut after = 0;
        loop {
            let page = self.audit_entries(after, None, 10_000).await?;
            let Some(last) = page.last() else { break };
            after = last.seq;
            entries.extend(page);
        }
        // Per case: its newest entry (seq, snapshot) and, for entries written before
        // snapshots, the newest workflow state.
        let mut newest: std::collections::HashMap<i64, (i64, Option<String>)> = std::collections::HashMap::new();
        let mut last_state: std::collections::HashMap<i64, String> = std::collections::HashMap::new();
        for e in &entries {
            newest.insert(e.case_id, (e.seq, e.snapshot.clone()));
            if e.action != "COMMENT" {
                last_state.insert(e.case_id, e.after.clone());
            }
        }
        let head = match entries.last() {
            Some(e) => audit::Head { entries: entries.len() as u64, seq: e.seq, hash: e.hash.clone() },
            None => audit::Head { entries: 0, seq: 0, hash: audit::GENESIS.to_owned() },
        };
        if let Err(b) = audit::verify(entries) {
            return Ok(Err(b));
        }
        let mut after_case = 0;
        let mut conn = self.pool.acquire().await?;
        loop {
            let page = self.cases(&CaseFilter { after_case_id: after_case, limit: 1000, ..CaseFilter::default() }).await?;
            let Some(last) = page.last() else { break };
            after_case = last.case_id;
            for case in &page {
                let differs = |seq: i64| audit::Break {
                    seq: seq + 1,
                    problem: format!(
                        "case {} differs from its newest audit entry {seq} (an entry after it removed, or the case, a comment or an attachment edited)",
                        case.case_id
                    ),
                };
                match newest.remove(&case.case_id) {
                    Some((seq, Some(recorded))) => {
                        let comments = comments_of(&mut conn, case.case_id).await?;
                        if snapshot_like(case, &comments, &recorded) != recorded {
                            return Ok(Err(differs(seq)));
                        }
                    }
                    Some((seq, None)) => {
                        if last_state.get(&case.case_id) != Some(&case.state.to_json()) {
                            return Ok(Err(differs(seq)));
                        }
                    }
                    None => {
                        return Ok(Err(audit::Break { seq: 0, problem: format!("case {} has no audit entry", case.case_id) }));
                    }
                }
            }
        }
        if let Some((case_id, (seq, _))) = newest.into_iter().min() {
            return Ok(Err(audit::Break { seq, problem: format!("case {case_id} is in the audit log but missing from the store") }));
        }
        Ok(Ok(head))
    }

    /// Offences (cases resolved with a fault within 365 days before `now`, one per item)
    /// of a department, or of an official when `official` is given.
    pub async fn offences(&self, department: Option<&str>, official: Option<&str>, now: i64) -> Result<i64, StoreError> {
        let (column, value) = match (department, official) {
            (_, Some(o)) => ("responsible_actor", o),
            (Some(d), None) => ("department_code", d),
            (None, None) => return Ok(0),
        };
        let n: i64 = sqlx::query(&format!(
            "SELECT COUNT(DISTINCT {OFFENCE}) FROM cases WHERE {column} = $1 AND status = 'RESOLVED' AND disposition IS NOT NULL \
             AND disposition <> 'NO_FAULT' AND resolved_at >= $2"
        ))
        .bind(value)
        .bind(now - workflow::REPEAT_WINDOW_MS)
        .fetch_one(&self.pool)
        .await?
        .try_get(0)?;
        Ok(n)
    }

    /// Whether the store knows an item of a department: Some(its service) when it does.
    pub async fn item_service(&self, department: &str, item_id: &str) -> Result<Option<Option<String>>, StoreError> {
        let row = sqlx::query("SELECT service_code FROM items WHERE department_code = $1 AND item_id = $2")
            .bind(department)
            .bind(item_id)
            .fetch_optional(&self.pool)
            .await?;
        Ok(row.map(|r| r.try_get::<Option<String>, _>(0)).transpose()?)
    }

    /// The officials (经办人) of items' last events, as the statistics recorded them, keyed
    /// by (department, item id): one query for a page of cases.
    pub async fn item_officials(&self, items: &[(&str, &str)]) -> Result<HashMap<(String, String), String>, StoreError> {
        let mut out = HashMap::new();
        for chunk in items.chunks(200) {
            let pairs: Vec<String> =
                (0..chunk.len()).map(|i| format!("(department_code = ${} AND item_id = ${})", 2 * i + 1, 2 * i + 2)).collect();
            let sql = format!("SELECT department_code, item_id, actor FROM items WHERE actor IS NOT NULL AND ({})", pairs.join(" OR "));
            let mut q = sqlx::query(&sql);
            for (department, item) in chunk {
                q = q.bind(*department).bind(*item);
            }
            for r in q.fetch_all(&self.pool).await? {
                out.insert((r.try_get("department_code")?, r.try_get("item_id")?), r.try_get("actor")?);
            }
        }
        Ok(out)
    }

    /// Records what the statistics need of items (one transaction).
    pub async fn upsert_items(&self, items: &[ItemFacts], now: i64) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for i in items {
            sqlx::query(
                "INSERT INTO items (item_id, department_code, service_code, submitted_at, accepted_at, decided_at, closed, promised_days, \
                 used_days, promised_deadline, promised_met, statutory_deadline, statutory_met, late_reports, updated_at, actor, natural_days) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17) \
                 ON CONFLICT (department_code, item_id) DO UPDATE SET service_code = excluded.service_code, \
                 submitted_at = excluded.submitted_at, accepted_at = excluded.accepted_at, decided_at = excluded.decided_at, \
                 closed = excluded.closed, promised_days = excluded.promised_days, used_days = excluded.used_days, \
                 promised_deadline = excluded.promised_deadline, promised_met = excluded.promised_met, \
                 statutory_deadline = excluded.statutory_deadline, statutory_met = excluded.statutory_met, \
                 late_reports = excluded.late_reports, updated_at = excluded.updated_at, actor = excluded.actor, \
                 natural_days = excluded.natural_days",
            )
            .bind(&i.item_id)
            .bind(&i.department_code)
            .bind(&i.service_code)
            .bind(i.submitted_at)
            .bind(i.accepted_at)
            .bind(i.decided_at)
            .bind(bool_i(i.closed))
            .bind(i.promised_days)
            .bind(i.used_days)
            .bind(i.promised_deadline)
            .bind(i.promised_met.map(bool_i))
            .bind(i.statutory_deadline)
            .bind(i.statutory_met.map(bool_i))
            .bind(i.late_reports)
            .bind(now)
            .bind(&i.actor)
            .bind(bool_i(i.natural_days))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The next ids and the chain's last hash, as the database has them.
async fn counters(conn: &mut sqlx::AnyConnection) -> Result<Counters, StoreError> {
    let mut n = [0i64; 4];
    for (i, sql) in [
        "SELECT COALESCE(MAX(case_id), 0) + 1 FROM cases",
        "SELECT COALESCE(MAX(comment_id), 0) + 1 FROM case_comments",
        "SELECT COALESCE(MAX(attachment_id), 0) + 1 FROM case_attachments",
        "SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log",
    ]
    .into_iter()
    .enumerate()
    {
        n[i] = sqlx::query(sql).fetch_one(&mut *conn).await?.try_get(0)?;
    }
    let [next_case, next_comment, next_attachment, next_seq] = n;
    let last_hash = sqlx::query("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")
        .fetch_optional(&mut *conn)
        .await?
        .map(|r| r.try_get::<String, _>(0))
        .transpose()?
        .unwrap_or_else(|| GENESIS.to_owned());
    Ok(Counters { next_case, next_comment, next_attachment, next_seq, last_hash })
}

async fn migrate(pool: &AnyPool) -> Result<(), StoreError> {
    sqlx::query(
        "CREATE TABLE IF NOT EXISTS schema_migrations (version BIGINT PRIMARY KEY, name TEXT NOT NULL, checksum TEXT NOT NULL, applied_at BIGINT NOT NULL)",
    )
    .execute(pool)
    .await?;
    for (version, name, sql) in MIGRATIONS {
        let checksum = audit::hash("", version, 0, 0, name, "", "", "", sql);
        let applied = sqlx::query("SELECT checksum FROM schema_migrations WHERE version = $1").bind(version).fetch_optional(pool).await?;
        match applied {
            Some(row) if row.try_get::<String, _>(0)? == checksum => continue,
            Some(_) => return Err(StoreError::Migration { version, name }),
            None => {}
        }
        let mut tx = pool.begin().await?;
        // Comments out first (they may hold semicolons), then one statement at a time.
        let code: String = sql.lines().filter(|l| !l.trim_start().starts_with("--")).collect::<Vec<_>>().join("\n");
        for statement in code.split(';').map(str::trim).filter(|s| !s.is_empty()) {
            sqlx::query(statement).execute(&mut *tx).await?;
        }
        let now = jiancha_platform::wall_clock().0;
        sqlx::query("INSERT INTO schema_migrations (version, name, checksum, applied_at) VALUES ($1, $2, $3, $4)")
            .bind(version)
            .bind(name)
            .bind(&checksum)
            .bind(now)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        tracing::info!(version, name, "Migration applied");
    }
    Ok(())
}

/// A case's comments with their attachments, oldest first.
async fn comments_of(conn: &mut sqlx::AnyConnection, case_id: i64) -> Result<Vec<CommentRow>, StoreError> {
    let rows = sqlx::query("SELECT comment_id, author, role, text, at FROM case_comments WHERE case_id = $1 ORDER BY comment_id")
        .bind(case_id)
        .fetch_all(&mut *conn)
        .await?;
    let files = sqlx::query(
        "SELECT attachment_id, comment_id, file_name, media_type, size_bytes, sha256, uploaded_by, at FROM case_attachments \
         WHERE case_id = $1 ORDER BY attachment_id",
    )
    .bind(case_id)
    .fetch_all(&mut *conn)
    .await?;
    let mut out = Vec::new();
    for r in rows {
        let comment_id: i64 = r.try_get("comment_id")?;
        let mut attachments = Vec::new();
        for f in files.iter().filter(|f| f.try_get::<Option<i64>, _>("comment_id").ok().flatten() == Some(comment_id)) {
            attachments.push(AttachmentRow {
                attachment_id: f.try_get("attachment_id")?,
                file_name: f.try_get("file_name")?,
                media_type: f.try_get("media_type")?,
                size_bytes: f.try_get("size_bytes")?,
                sha256: f.try_get("sha256")?,
                uploaded_by: f.try_get("uploaded_by")?,
                at: f.try_get("at")?,
            });
        }
        out.push(CommentRow {
            comment_id,
            author: r.try_get("author")?,
            role: r.try_get("role")?,
            text: r.try_get("text")?,
            at: r.try_get("at")?,
            attachments,
        });
    }
    Ok(out)
}

/// Every column of a case and of its comments and attachments, as one JSON text
/// (fields in a fixed order, so the same case always gives the same text). Version 2
/// (every entry written since complaints and the escalation chain) adds the origin, the
/// clock, the complaint's channel and the SHA-256 of the complainant's contact (the
/// contact itself is for inspectors only, and auditors read the log); version 1 entries
/// are checked against the fields they covered.
pub fn snapshot(case: &CaseRow, comments: &[CommentRow]) -> String {
    snapshot_version(case, comments, 2)
}

fn snapshot_version(case: &CaseRow, comments: &[CommentRow], version: u8) -> String {
    let s = &case.state;
    let comments: Vec<serde_json::Value> = comments
        .iter()
        .map(|c| {
            let files: Vec<serde_json::Value> = c
                .attachments
                .iter()
                .map(|a| serde_json::json!([a.attachment_id, a.file_name, a.media_type, a.size_bytes, a.sha256, a.uploaded_by, a.at]))
                .collect();
            serde_json::json!([c.comment_id, c.author, c.role, c.text, c.at, files])
        })
        .collect();
    let columns = serde_json::json!([
        case.case_id,
        case.alert_id,
        case.item_id,
        case.service_code,
        case.department_code,
        case.kind,
        case.alert_level,
        case.triggered_at,
        case.message_zh,
        case.message_en,
        case.derivation_zh,
        case.derivation_en,
        case.opened_at,
        case.escalate_at,
        case.replied_at,
        case.resolved_at,
        case.updated_at,
    ]);
    if version == 1 {
        return serde_json::json!({"case": columns, "state": s.to_json(), "comments": comments}).to_string();
    }
    let contact = case.complainant.as_deref().map(|c| audit::sha256_hex(c.as_bytes()));
    let more = serde_json::json!([case.origin, case.clock_from, case.complaint_channel, contact]);
    let state = serde_json::Value::String(s.to_json());
    // Written in this order (the version first) whatever serde_json's key order.
    format!("{{\"v\":2,\"case\":{columns},\"more\":{more},\"state\":{state},\"comments\":{}}}", serde_json::Value::Array(comments))
}

/// The snapshot of `case` in the version `recorded` was written in.
fn snapshot_like(case: &CaseRow, comments: &[CommentRow], recorded: &str) -> String {
    snapshot_version(case, comments, if recorded.starts_with("{\"v\":2") { 2 } else { 1 })
}

async fn load(tx: &mut Tx<'_>, case_id: i64) -> Result<CaseRow, StoreError> {
    let row = sqlx::query(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1"))
        .bind(case_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound(case_id))?;
    Ok(case_from_row(&row)?)
}

/// Which instants of a case an action sets or clears.
#[derive(Clone, Copy, Debug, Default)]
struct Stamps {
    replied_at: Option<Option<i64>>,
    resolved_at: Option<Option<i64>>,
    clock_from: Option<i64>,
}

impl Stamps {
    fn of(action: &str, now: i64) -> Stamps {
        match action {
            "REPLY" => Stamps { replied_at: Some(Some(now)), ..Stamps::default() },
            "RESOLVE" | "REJECT" => Stamps { resolved_at: Some(Some(now)), ..Stamps::default() },
            // The department's (or, for a complaint, now the department's) clock starts again.
            "SEND_BACK" | "ACCEPT" => Stamps { clock_from: Some(now), ..Stamps::default() },
            _ => Stamps::default(),
        }
    }
}

async fn save(tx: &mut Tx<'_>, case_id: i64, s: &CaseState, now: i64, stamps: Stamps) -> Result<(), StoreError> {
    sqlx::query(
        "UPDATE cases SET status = $1, level = $2, escalated = $3, assigned_to = $4, reply = $5, replied_by = $6, disposition = $7, \
         resolution_reason = $8, resolved_by = $9, responsible_actor = $10, repeat_department = $11, repeat_actor = $12, updated_at = $13, \
         reminded = $14, publicized = $15, sent_back = $16, retracted = $17, review = $18, rectify_deadline = $19, rectification = $20, \
         rectification_report = $21, rectification_overdue = $22, rejected = $23, reported_in = $24 WHERE case_id = $25",
    )
    .bind(s.status.as_str())
    .bind(&s.level)
    .bind(bool_i(s.escalated))
    .bind(&s.assigned_to)
    .bind(&s.reply)
    .bind(&s.replied_by)
    .bind(s.disposition.map(|d| d.as_str()))
    .bind(&s.resolution_reason)
    .bind(&s.resolved_by)
    .bind(&s.responsible_actor)
    .bind(bool_i(s.repeat_department))
    .bind(bool_i(s.repeat_actor))
    .bind(now)
    .bind(bool_i(s.reminded))
    .bind(bool_i(s.publicized))
    .bind(&s.sent_back)
    .bind(bool_i(s.retracted))
    .bind(&s.review)
    .bind(s.rectify_deadline)
    .bind(s.rectification.map(|r| r.as_str()))
    .bind(&s.rectification_report)
    .bind(bool_i(s.rectification_overdue))
    .bind(bool_i(s.rejected))
    .bind(&s.reported_in)
    .bind(case_id)
    .execute(&mut **tx)
    .await?;
    if let Some(t) = stamps.replied_at {
        sqlx::query("UPDATE cases SET replied_at = $1 WHERE case_id = $2").bind(t).bind(case_id).execute(&mut **tx).await?;
    }
    if let Some(t) = stamps.resolved_at {
        sqlx::query("UPDATE cases SET resolved_at = $1 WHERE case_id = $2").bind(t).bind(case_id).execute(&mut **tx).await?;
    }
    if let Some(t) = stamps.clock_from {
        sqlx::query("UPDATE cases SET clock_from = $1 WHERE case_id = $2").bind(t).bind(case_id).execute(&mut **tx).await?;
    }
    Ok(())
}

/// The facts of a case that follow its alert.
fn facts_of(case: &CaseRow) -> serde_json::Value {
    serde_json::json!({
        "triggered_at": case.triggered_at, "message_zh": case.message_zh, "message_en": case.message_en,
        "derivation_zh": case.derivation_zh, "derivation_en": case.derivation_en,
    })
}

fn facts_of_alert(a: &v1::Alert) -> serde_json::Value {
    let message = a.message.clone().unwrap_or_default();
    let derivation = a.derivation.clone().unwrap_or_default();
    serde_json::json!({
        "triggered_at": a.triggered_at, "message_zh": message.zh, "message_en": message.en,
        "derivation_zh": derivation.zh, "derivation_en": derivation.en,
    })
}

async fn update_facts(tx: &mut Tx<'_>, case_id: i64, a: &v1::Alert) -> Result<(), StoreError> {
    let message = a.message.clone().unwrap_or_default();
    let derivation = a.derivation.clone().unwrap_or_default();
    sqlx::query(
        "UPDATE cases SET triggered_at = $1, message_zh = $2, message_en = $3, derivation_zh = $4, derivation_en = $5 WHERE case_id = $6",
    )
    .bind(&a.triggered_at)
    .bind(&message.zh)
    .bind(&message.en)
    .bind(&derivation.zh)
    .bind(&derivation.en)
    .bind(case_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}

/// What one offence is: its item (the YELLOW and RED cases of one item are one offence),
/// or the case itself when it names no item.
const OFFENCE: &str = "COALESCE(department_code || '/' || item_id, 'case:' || CAST(case_id AS TEXT))";

fn offence_key(case: &CaseRow) -> String {
    match &case.item_id {
        Some(item) => format!("{}/{item}", case.department_code),
        None => format!("case:{}", case.case_id),
    }
}

/// Offences (cases resolved with a fault, one per item) within 365 days before `now`
/// against the department of `case` and against `actor`, counting `case` itself once.
async fn offences(tx: &mut Tx<'_>, case: &CaseRow, actor: Option<&str>, now: i64) -> Result<(i64, i64), StoreError> {
    let since = now - workflow::REPEAT_WINDOW_MS;
    let key = offence_key(case);
    let by_department: i64 = sqlx::query(&format!(
        "SELECT COUNT(DISTINCT {OFFENCE}) FROM cases WHERE department_code = $1 AND status = 'RESOLVED' AND disposition IS NOT NULL \
         AND disposition <> 'NO_FAULT' AND resolved_at >= $2 AND case_id <> $3 AND {OFFENCE} <> $4"
    ))
    .bind(&case.department_code)
    .bind(since)
    .bind(case.case_id)
    .bind(&key)
    .fetch_one(&mut **tx)
    .await?
    .try_get(0)?;
    let by_actor: i64 = match actor {
        Some(actor) => sqlx::query(&format!(
            "SELECT COUNT(DISTINCT {OFFENCE}) FROM cases WHERE responsible_actor = $1 AND status = 'RESOLVED' AND disposition IS NOT NULL \
             AND disposition <> 'NO_FAULT' AND resolved_at >= $2 AND case_id <> $3 AND {OFFENCE} <> $4"
        ))
        .bind(actor)
        .bind(since)
        .bind(case.case_id)
        .bind(&key)
        .fetch_one(&mut **tx)
        .await?
        .try_get::<i64, _>(0)?
            + 1,
        None => 0,
    };
    Ok((by_department + 1, by_actor))
}

/// The audit actions that notify the department and the inspectors (DOMAIN §6: open,
/// escalation, reply, send-back, resolution; and a complaint's, a rectification's and a
/// review's steps).
pub const NOTIFIED: [&str; 16] = [
    "OPEN",
    "FILE",
    "ACCEPT",
    "REJECT",
    "REMIND",
    "ESCALATE",
    "PUBLICIZE",
    "REPLY",
    "SEND_BACK",
    "RESOLVE",
    "RETRACT",
    "REOPEN",
    "REVIEW_FLAG",
    "RECTIFY_OVERDUE",
    "RECTIFICATION_REPORT",
    "RECTIFICATION_VERIFY",
];
