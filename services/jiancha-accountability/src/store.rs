//! The case store on PostgreSQL (production) or SQLite (the embedded default), through
//! sqlx's `Any` driver: one set of SQL for both, versioned migrations applied at start.
//!
//! Writes go through one lock per store and one transaction per batch, so case ids and
//! audit sequence numbers are gapless and the hash chain is appended in order. One
//! accountability instance writes to a database (docs/accountability.md).

use crate::audit::{self, Entry, GENESIS};
use crate::workflow::{self, CaseState, Disposition, Status, WorkflowError};
use jiancha_proto::v1;
use sqlx::any::{AnyPoolOptions, AnyRow};
use sqlx::{AnyPool, Row};
use std::sync::Once;
use tokio::sync::{Mutex, watch};

/// Versioned migrations; the SQL runs on both PostgreSQL and SQLite.
const MIGRATIONS: [(i64, &str, &str); 3] = [
    (1, "initial schema", include_str!("../migrations/0001_initial.sql")),
    (2, "items by department", include_str!("../migrations/0002_items_by_department.sql")),
    (3, "audit snapshots", include_str!("../migrations/0003_audit_snapshots.sql")),
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
    pub after_case_id: i64,
    pub limit: i64,
}

/// An alert update to take, with when it was published and (for YELLOW) when its case
/// escalates if not replied.
#[derive(Clone, Debug)]
pub struct Incoming {
    /// The update.
    pub alert: v1::Alert,
    /// When the monitor published it (record timestamp), milliseconds.
    pub published_at: i64,
    /// 5 working days of the service's calendar after `published_at`.
    pub escalate_at: Option<i64>,
}

/// What a batch of alert updates did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct IngestReport {
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
    /// Working days used from acceptance to decision (or to now), pauses excluded.
    pub used_days: Option<f64>,
    pub promised_deadline: Option<i64>,
    pub promised_met: Option<bool>,
    pub statutory_deadline: Option<i64>,
    pub statutory_met: Option<bool>,
    pub late_reports: i64,
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
        opened_at: r.try_get("opened_at")?,
        escalate_at: r.try_get("escalate_at")?,
        replied_at: r.try_get("replied_at")?,
        resolved_at: r.try_get("resolved_at")?,
        updated_at: r.try_get("updated_at")?,
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
    replied_at, disposition, resolution_reason, resolved_by, resolved_at, responsible_actor, repeat_department, repeat_actor, updated_at";

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
        let one = |sql: &'static str| {
            let pool = pool.clone();
            async move { sqlx::query(sql).fetch_one(&pool).await.and_then(|r| r.try_get::<i64, _>(0)) }
        };
        let next_case = one("SELECT COALESCE(MAX(case_id), 0) + 1 FROM cases").await?;
        let next_comment = one("SELECT COALESCE(MAX(comment_id), 0) + 1 FROM case_comments").await?;
        let next_attachment = one("SELECT COALESCE(MAX(attachment_id), 0) + 1 FROM case_attachments").await?;
        let next_seq = one("SELECT COALESCE(MAX(seq), 0) + 1 FROM audit_log").await?;
        let last_hash = sqlx::query("SELECT hash FROM audit_log ORDER BY seq DESC LIMIT 1")
            .fetch_optional(&pool)
            .await?
            .map(|r| r.try_get::<String, _>(0))
            .transpose()?
            .unwrap_or_else(|| GENESIS.to_owned());
        Ok(Store {
            pool,
            backend,
            write: Mutex::new(Counters { next_case, next_comment, next_attachment, next_seq, last_hash }),
            appended: watch::channel(next_seq - 1).0,
        })
    }

    async fn begin_write(&self) -> Result<Write<'_>, StoreError> {
        let guard = self.write.lock().await;
        let c = guard.clone();
        Ok(Write { guard, c, tx: self.pool.begin().await? })
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
                         repeat_department, repeat_actor, updated_at) \
                         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, 0, 0, 0, $17)",
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
                    .bind(if level == "YELLOW" { inc.escalate_at } else { None })
                    .bind(now)
                    .execute(&mut *w.tx)
                    .await?;
                    w.append(id, inc.published_at, "system", "SYSTEM", "OPEN", "{}", &state.to_json()).await?;
                    report.opened += 1;
                }
                ("FIRED", Some(case)) => match workflow::reopen(&case.state) {
                    Some(next) => {
                        save(&mut w.tx, case.case_id, &next, now, None).await?;
                        w.append(case.case_id, now, "system", "SYSTEM", "REOPEN", &case.state.to_json(), &next.to_json()).await?;
                        report.reopened += 1;
                    }
                    None => report.unchanged += 1,
                },
                ("RETRACTED", Some(case)) => match workflow::retract(&case.state) {
                    Some(next) => {
                        save(&mut w.tx, case.case_id, &next, now, Some(("resolved_at", now))).await?;
                        w.append(case.case_id, now, "system", "SYSTEM", "RETRACT", &case.state.to_json(), &next.to_json()).await?;
                        report.retracted += 1;
                    }
                    None => report.unchanged += 1,
                },
                _ => report.unchanged += 1,
            }
        }
        w.commit(&self.appended).await?;
        Ok(report)
    }

    /// 督办: every YELLOW case still OPEN at its escalation instant becomes RED.
    pub async fn escalate_due(&self, now: i64) -> Result<Vec<i64>, StoreError> {
        let due: Vec<CaseRow> = sqlx::query(&format!(
            "SELECT {CASE_COLUMNS} FROM cases WHERE status = 'OPEN' AND level = 'YELLOW' AND escalated = 0 \
             AND escalate_at IS NOT NULL AND escalate_at <= $1 ORDER BY case_id"
        ))
        .bind(now)
        .fetch_all(&self.pool)
        .await?
        .iter()
        .map(case_from_row)
        .collect::<Result<_, _>>()?;
        let mut done = Vec::new();
        for case in due {
            let escalated = self
                .change(case.case_id, now, "system", "SYSTEM", "ESCALATE", |s| {
                    workflow::escalate(s).ok_or_else(|| WorkflowError::State("no longer due".into()))
                })
                .await;
            match escalated {
                Ok(_) => done.push(case.case_id),
                Err(StoreError::Workflow(_)) => {} // Replied meanwhile.
                Err(e) => return Err(e),
            }
        }
        Ok(done)
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
        let stamp = match action {
            "REPLY" => Some(("replied_at", now)),
            "RESOLVE" => Some(("resolved_at", now)),
            _ => None,
        };
        if action == "RESOLVE" && next.disposition.is_some_and(Disposition::is_fault) {
            // 一年内犯一般过错达三次: this resolution included.
            let since = now - workflow::REPEAT_WINDOW_MS;
            let by_department: i64 = sqlx::query(
                "SELECT COUNT(*) FROM cases WHERE department_code = $1 AND status = 'RESOLVED' AND disposition <> 'NO_FAULT' \
                 AND resolved_at >= $2 AND case_id <> $3",
            )
            .bind(&case.department_code)
            .bind(since)
            .bind(case_id)
            .fetch_one(&mut *w.tx)
            .await?
            .try_get(0)?;
            next.repeat_department = by_department + 1 >= workflow::REPEAT_THRESHOLD;
            if let Some(actor) = &next.responsible_actor {
                let by_actor: i64 = sqlx::query(
                    "SELECT COUNT(*) FROM cases WHERE responsible_actor = $1 AND status = 'RESOLVED' AND disposition <> 'NO_FAULT' \
                     AND resolved_at >= $2 AND case_id <> $3",
                )
                .bind(actor)
                .bind(since)
                .bind(case_id)
                .fetch_one(&mut *w.tx)
                .await?
                .try_get(0)?;
                next.repeat_actor = by_actor + 1 >= workflow::REPEAT_THRESHOLD;
            }
        }
        save(&mut w.tx, case_id, &next, now, stamp).await?;
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
                        if snapshot(case, &comments) != recorded {
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

    /// Records what the statistics need of items (one transaction).
    pub async fn upsert_items(&self, items: &[ItemFacts], now: i64) -> Result<(), StoreError> {
        if items.is_empty() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        for i in items {
            sqlx::query(
                "INSERT INTO items (item_id, department_code, service_code, submitted_at, accepted_at, decided_at, closed, promised_days, \
                 used_days, promised_deadline, promised_met, statutory_deadline, statutory_met, late_reports, updated_at) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15) \
                 ON CONFLICT (department_code, item_id) DO UPDATE SET service_code = excluded.service_code, \
                 submitted_at = excluded.submitted_at, accepted_at = excluded.accepted_at, decided_at = excluded.decided_at, \
                 closed = excluded.closed, promised_days = excluded.promised_days, used_days = excluded.used_days, \
                 promised_deadline = excluded.promised_deadline, promised_met = excluded.promised_met, \
                 statutory_deadline = excluded.statutory_deadline, statutory_met = excluded.statutory_met, \
                 late_reports = excluded.late_reports, updated_at = excluded.updated_at",
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
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(())
    }
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
/// (fields in a fixed order, so the same case always gives the same text).
pub fn snapshot(case: &CaseRow, comments: &[CommentRow]) -> String {
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
    serde_json::json!({
        "case": [
            case.case_id, case.alert_id, case.item_id, case.service_code, case.department_code, case.kind,
            case.alert_level, case.triggered_at, case.message_zh, case.message_en, case.derivation_zh,
            case.derivation_en, case.opened_at, case.escalate_at, case.replied_at, case.resolved_at, case.updated_at,
        ],
        "state": s.to_json(),
        "comments": comments,
    })
    .to_string()
}

async fn load(tx: &mut Tx<'_>, case_id: i64) -> Result<CaseRow, StoreError> {
    let row = sqlx::query(&format!("SELECT {CASE_COLUMNS} FROM cases WHERE case_id = $1"))
        .bind(case_id)
        .fetch_optional(&mut **tx)
        .await?
        .ok_or(StoreError::NotFound(case_id))?;
    Ok(case_from_row(&row)?)
}

async fn save(tx: &mut Tx<'_>, case_id: i64, s: &CaseState, now: i64, stamp: Option<(&str, i64)>) -> Result<(), StoreError> {
    let replied_at = stamp.filter(|(k, _)| *k == "replied_at").map(|(_, t)| t);
    let resolved_at = stamp.filter(|(k, _)| *k == "resolved_at").map(|(_, t)| t);
    sqlx::query(
        "UPDATE cases SET status = $1, level = $2, escalated = $3, assigned_to = $4, reply = $5, replied_by = $6, disposition = $7, \
         resolution_reason = $8, resolved_by = $9, responsible_actor = $10, repeat_department = $11, repeat_actor = $12, updated_at = $13, \
         replied_at = COALESCE($14, replied_at), resolved_at = COALESCE($15, resolved_at) WHERE case_id = $16",
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
    .bind(replied_at)
    .bind(resolved_at)
    .bind(case_id)
    .execute(&mut **tx)
    .await?;
    Ok(())
}
