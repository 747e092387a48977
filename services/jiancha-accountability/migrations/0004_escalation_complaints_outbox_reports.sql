-- DOMAIN §6 revised: the escalation chain (催办, 督办, 通报), send-back, rectification
-- (整改销号), review (复核), complaints (投诉); notifications through a transactional
-- outbox; §7 published reports (通报) as immutable snapshots.

-- Where a case came from: ALERT, MANUAL (opened by an inspector) or COMPLAINT.
ALTER TABLE cases ADD COLUMN origin TEXT NOT NULL DEFAULT 'ALERT';
-- The instant the answer owed is counted from: the alert's publication, a send-back, a
-- complaint's filing or acceptance. The chain's instants are computed from it with the
-- calendars in force, so loading a calendar year moves them.
ALTER TABLE cases ADD COLUMN clock_from BIGINT;
ALTER TABLE cases ADD COLUMN reminded BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN publicized BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN sent_back TEXT;
ALTER TABLE cases ADD COLUMN retracted BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN review TEXT;
ALTER TABLE cases ADD COLUMN rectify_deadline BIGINT;
ALTER TABLE cases ADD COLUMN rectification TEXT;
ALTER TABLE cases ADD COLUMN rectification_report TEXT;
ALTER TABLE cases ADD COLUMN rectification_overdue BIGINT NOT NULL DEFAULT 0;
ALTER TABLE cases ADD COLUMN rejected BIGINT NOT NULL DEFAULT 0;
-- The published report a case marked 通报 was listed in.
ALTER TABLE cases ADD COLUMN reported_in TEXT;
-- A complaint's channel (HOTLINE, LETTER, VISIT, ONLINE) and the complainant's contact
-- (inspectors only; the audit snapshot holds its SHA-256, not the text).
ALTER TABLE cases ADD COLUMN complaint_channel TEXT;
ALTER TABLE cases ADD COLUMN complainant TEXT;
UPDATE cases SET clock_from = opened_at;
CREATE INDEX cases_awaiting ON cases (status, clock_from);

-- The last official (经办人) named in an item's events: repeat offences by official.
ALTER TABLE items ADD COLUMN actor TEXT;
-- Natural-day services (自然日): their days used are kept out of the working-day means.
ALTER TABLE items ADD COLUMN natural_days BIGINT NOT NULL DEFAULT 0;

-- One row per notifiable fact, written in the transaction of its audit entry.
CREATE TABLE outbox (
    seq BIGINT PRIMARY KEY,
    case_id BIGINT NOT NULL,
    action TEXT NOT NULL,
    department_code TEXT NOT NULL,
    at BIGINT NOT NULL,
    expanded BIGINT NOT NULL
);
CREATE INDEX outbox_pending ON outbox (expanded, seq);

-- One row per fact, channel and recipient; the key is the idempotency key.
CREATE TABLE deliveries (
    delivery_key TEXT PRIMARY KEY,
    seq BIGINT NOT NULL,
    channel TEXT NOT NULL,
    recipient TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts BIGINT NOT NULL,
    next_attempt_at BIGINT NOT NULL,
    last_error TEXT,
    sent_at BIGINT
);
CREATE INDEX deliveries_due ON deliveries (status, next_attempt_at);
CREATE INDEX deliveries_seq ON deliveries (seq);

-- Published reports (通报): immutable once written.
CREATE TABLE reports (
    number TEXT PRIMARY KEY,
    year BIGINT NOT NULL,
    serial BIGINT NOT NULL,
    period TEXT NOT NULL,
    issued_at BIGINT NOT NULL,
    issued_by TEXT NOT NULL,
    audit_head TEXT NOT NULL,
    body TEXT NOT NULL,
    html TEXT NOT NULL,
    csv TEXT NOT NULL,
    xlsx TEXT NOT NULL,
    sha256 TEXT NOT NULL
);
CREATE UNIQUE INDEX reports_serial ON reports (year, serial);
