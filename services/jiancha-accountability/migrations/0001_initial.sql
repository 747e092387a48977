-- The accountability queue (DOMAIN §6) and what the statistics (§7) read.
-- Plain SQL that PostgreSQL and SQLite both accept: BIGINT for ids, instants
-- (milliseconds since the epoch) and flags (0/1); TEXT; DOUBLE PRECISION.

CREATE TABLE cases (
    case_id BIGINT PRIMARY KEY,
    alert_id TEXT NOT NULL UNIQUE,
    item_id TEXT,
    service_code TEXT,
    department_code TEXT NOT NULL,
    kind TEXT NOT NULL,
    alert_level TEXT NOT NULL,
    level TEXT NOT NULL,
    triggered_at TEXT NOT NULL,
    message_zh TEXT NOT NULL,
    message_en TEXT NOT NULL,
    derivation_zh TEXT NOT NULL,
    derivation_en TEXT NOT NULL,
    status TEXT NOT NULL,
    opened_at BIGINT NOT NULL,
    escalate_at BIGINT,
    escalated BIGINT NOT NULL,
    assigned_to TEXT,
    reply TEXT,
    replied_by TEXT,
    replied_at BIGINT,
    disposition TEXT,
    resolution_reason TEXT,
    resolved_by TEXT,
    resolved_at BIGINT,
    responsible_actor TEXT,
    repeat_department BIGINT NOT NULL,
    repeat_actor BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX cases_department ON cases (department_code, status);
CREATE INDEX cases_escalation ON cases (status, level, escalate_at);
CREATE INDEX cases_resolved ON cases (resolved_at);

CREATE TABLE case_comments (
    comment_id BIGINT PRIMARY KEY,
    case_id BIGINT NOT NULL REFERENCES cases (case_id),
    author TEXT NOT NULL,
    role TEXT NOT NULL,
    text TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX case_comments_case ON case_comments (case_id);

CREATE TABLE case_attachments (
    attachment_id BIGINT PRIMARY KEY,
    case_id BIGINT NOT NULL REFERENCES cases (case_id),
    comment_id BIGINT REFERENCES case_comments (comment_id),
    file_name TEXT NOT NULL,
    media_type TEXT NOT NULL,
    size_bytes BIGINT NOT NULL,
    sha256 TEXT NOT NULL,
    uploaded_by TEXT NOT NULL,
    at BIGINT NOT NULL
);
CREATE INDEX case_attachments_case ON case_attachments (case_id);

-- Append-only; every entry chains the hash of the one before (see src/audit.rs).
CREATE TABLE audit_log (
    seq BIGINT PRIMARY KEY,
    case_id BIGINT NOT NULL,
    at BIGINT NOT NULL,
    who TEXT NOT NULL,
    role TEXT NOT NULL,
    action TEXT NOT NULL,
    before_state TEXT NOT NULL,
    after_state TEXT NOT NULL,
    prev_hash TEXT NOT NULL,
    hash TEXT NOT NULL
);
CREATE INDEX audit_log_case ON audit_log (case_id, seq);

-- The last update of every alert (all levels), for the statistics.
CREATE TABLE alerts (
    alert_id TEXT PRIMARY KEY,
    item_id TEXT,
    department_code TEXT,
    service_code TEXT,
    kind TEXT NOT NULL,
    level TEXT NOT NULL,
    status TEXT NOT NULL,
    triggered_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX alerts_period ON alerts (triggered_at);
CREATE INDEX alerts_item ON alerts (item_id);

-- What the statistics need of every item, from the monitor's state changelog.
CREATE TABLE items (
    item_id TEXT PRIMARY KEY,
    department_code TEXT NOT NULL,
    service_code TEXT,
    submitted_at BIGINT,
    accepted_at BIGINT,
    decided_at BIGINT,
    closed BIGINT NOT NULL,
    promised_days DOUBLE PRECISION,
    used_days DOUBLE PRECISION,
    promised_deadline BIGINT,
    promised_met BIGINT,
    statutory_deadline BIGINT,
    statutory_met BIGINT,
    late_reports BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);
CREATE INDEX items_submitted ON items (submitted_at);
CREATE INDEX items_decided ON items (decided_at);
