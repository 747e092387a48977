-- DOMAIN §2, department isolation: an item is identified by its department and its
-- item_id, so two departments' items with one id are two rows. SQLite cannot change a
-- primary key in place: the table is copied.
CREATE TABLE items_by_department (
    department_code TEXT NOT NULL,
    item_id TEXT NOT NULL,
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
    updated_at BIGINT NOT NULL,
    PRIMARY KEY (department_code, item_id)
);
INSERT INTO items_by_department (department_code, item_id, service_code, submitted_at, accepted_at, decided_at, closed,
    promised_days, used_days, promised_deadline, promised_met, statutory_deadline, statutory_met, late_reports, updated_at)
SELECT department_code, item_id, service_code, submitted_at, accepted_at, decided_at, closed,
    promised_days, used_days, promised_deadline, promised_met, statutory_deadline, statutory_met, late_reports, updated_at
FROM items;
DROP TABLE items;
ALTER TABLE items_by_department RENAME TO items;
CREATE INDEX items_submitted ON items (submitted_at);
CREATE INDEX items_decided ON items (decided_at);
