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

/// The demo catalog, used when no catalog is configured.
pub const DEMO_CATALOG: &str = include_str!("../../../deploy/demo/catalog.toml");
