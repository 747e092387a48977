-- DOMAIN §6: every field of a case, its comments and attachments are in the audit
-- chain. Each new entry carries the whole case as it stands after the change (every
-- column, every comment and attachment), covered by the entry's hash; entries written
-- before keep their hash over the workflow state alone.
ALTER TABLE audit_log ADD COLUMN snapshot TEXT;
