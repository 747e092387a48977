//! The monitor's metric names, described once (the endpoint is the platform's).

use metrics::{Unit, describe_counter, describe_gauge, describe_histogram};

/// Events consumed, by `type`.
pub const EVENTS_CONSUMED: &str = "jiancha_events_consumed_total";
/// Invalid records sent to the dead-letter topic, by `reason`.
pub const EVENTS_INVALID: &str = "jiancha_events_invalid_total";
/// Duplicate events ignored.
pub const EVENTS_DUPLICATE: &str = "jiancha_events_duplicate_total";
/// Alert updates published, by `kind`, `level`, `status`.
pub const ALERTS: &str = "jiancha_alerts_total";
/// Open items held by this instance.
pub const OPEN_ITEMS: &str = "jiancha_open_items";
/// Items held (open and closed).
pub const ITEMS: &str = "jiancha_items";
/// Consumer lag in records, by `partition`.
pub const CONSUMER_LAG: &str = "jiancha_consumer_lag";
/// Resets of a partition's position past records the broker deleted unread.
pub const OFFSET_RESETS: &str = "jiancha_consumer_offset_resets_total";
/// Records the broker deleted before the monitor read them.
pub const EVENTS_LOST: &str = "jiancha_events_lost_total";
/// Wall clock minus deadline when a timer fires.
pub const TIMER_LATENESS: &str = "jiancha_timer_lateness_seconds";
/// Time to process one record: the mean over its batch (timed once per batch).
pub const PROCESSING: &str = "jiancha_event_processing_seconds";
/// Record timestamp to effects acknowledged by the broker.
pub const END_TO_END: &str = "jiancha_end_to_end_latency_seconds";
/// Time to restore one partition from the changelog.
pub const RESTORE: &str = "jiancha_restore_seconds";
/// Items restored from the changelog.
pub const RESTORED_ITEMS: &str = "jiancha_restored_items_total";
/// Catalog or calendar reloads, by `outcome`.
pub const RELOADS: &str = "jiancha_reloads_total";
/// Closed items retired after the retention window.
pub const ITEMS_RETIRED: &str = "jiancha_items_retired_total";
/// A department's first event for an item id that another department already uses.
pub const ITEM_ID_SHARED: &str = "jiancha_item_id_shared_total";

/// The buckets of the monitor's histograms.
pub const HISTOGRAMS: &[jiancha_platform::telemetry::Histogram] = &[
    (PROCESSING, jiancha_platform::telemetry::MICROSECONDS),
    (TIMER_LATENESS, jiancha_platform::telemetry::LONG),
    (END_TO_END, jiancha_platform::telemetry::REQUEST),
    (RESTORE, jiancha_platform::telemetry::LONG),
];

/// Describes every metric once.
pub fn describe() {
    describe_counter!(EVENTS_CONSUMED, "Events consumed, by type");
    describe_counter!(EVENTS_INVALID, "Invalid records sent to the dead-letter topic, by reason");
    describe_counter!(EVENTS_DUPLICATE, "Duplicate events ignored (same event_id on the same item)");
    describe_counter!(ALERTS, "Alert updates published, by kind, level and status");
    describe_gauge!(OPEN_ITEMS, "Open items held by this instance");
    describe_gauge!(ITEMS, "Items held by this instance, open and closed");
    describe_gauge!(CONSUMER_LAG, "Consumer lag in records, by partition (0 once the partition moved to another instance)");
    describe_counter!(
        OFFSET_RESETS,
        "Resets of a partition's position past records the broker deleted before they were read (retention); the log names each"
    );
    metrics::counter!(OFFSET_RESETS).increment(0);
    describe_counter!(EVENTS_LOST, "Records the broker deleted before this monitor read them (never applied)");
    metrics::counter!(EVENTS_LOST).increment(0);
    describe_histogram!(TIMER_LATENESS, Unit::Seconds, "Wall clock minus deadline when a timer fires");
    describe_histogram!(PROCESSING, Unit::Seconds, "Time to process one record, the mean over its batch (up to 512 records, timed once)");
    describe_histogram!(END_TO_END, Unit::Seconds, "Record timestamp to effects acknowledged by the broker");
    describe_histogram!(RESTORE, Unit::Seconds, "Time to restore one partition's items from the changelog");
    describe_counter!(RESTORED_ITEMS, "Items restored from the changelog");
    describe_counter!(RELOADS, "Catalog and calendar reloads, by outcome");
    describe_counter!(ITEMS_RETIRED, "Closed items that left memory and the state topic after the retention window");
    metrics::counter!(ITEMS_RETIRED).increment(0);
    describe_counter!(ITEM_ID_SHARED, "Items whose item_id another department already uses (kept apart; no alert)");
}
