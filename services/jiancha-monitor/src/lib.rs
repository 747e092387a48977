//! The live monitor: the jiancha engine on Kafka.
//!
//! Thin adapters around `jiancha-core`: a consumer group on the event topic with one
//! engine per partition, an idempotent producer for alert updates, dead letters and the
//! state changelog, timers on the wall clock, Prometheus metrics, and the operator
//! tools (`produce`, `alerts`) and the one-process `up`.

pub mod codec;
pub mod config;
pub mod monitor;
pub mod telemetry;
pub mod tools;
pub mod up;

/// The wall clock, for the live services (the core never reads it: `now` is an input).
pub fn wall_clock() -> jiancha_core::Timestamp {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    jiancha_core::Timestamp(ms)
}

/// The demo catalog, used when no catalog is configured.
pub const DEMO_CATALOG: &str = include_str!("../../../deploy/demo/catalog.toml");
