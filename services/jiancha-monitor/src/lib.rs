//! The live monitor: the jiancha engine on Kafka.
//!
//! Thin adapters around `jiancha-core`: a consumer group on the event topics (the
//! trusted one and every department's input topic) with one engine per partition, an
//! idempotent producer for alert updates, dead letters and the state changelog, timers
//! on the wall clock, and Prometheus metrics. Configuration, Kafka client settings and
//! the catalog loader come from `jiancha-platform`.

pub mod monitor;
mod offset_reset;
pub mod telemetry;
