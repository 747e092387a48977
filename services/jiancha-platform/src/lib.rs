//! What every jiancha service shares, so that the monitor, the gateway, the
//! accountability service and the tools sit side by side on one platform instead of
//! reaching into each other's crates:
//!
//! - [`config`]: the one typed configuration of every role;
//! - [`codec`]: event records in JSON or protobuf;
//! - [`kafka`]: Kafka clients built from the `[kafka]` settings (TLS, SASL), the topic
//!   layout, and librdkafka's logs as tracing events;
//! - [`auth`], [`local`]: JWT roles (DOMAIN §6), TLS material and the local set-up;
//! - [`server`]: the gRPC server every service runs (TLS, limits, reflection, the
//!   authentication interceptor);
//! - [`limits`], [`errors`]: per-caller limits, and INVALID_ARGUMENT with field details;
//! - [`rules`]: loading the catalog and calendars;
//! - [`telemetry`], [`lifecycle`]: the metrics endpoint, the wall clock, signals;
//! - [`files`]: secrets and keys written private.

pub mod auth;
pub mod codec;
pub mod config;
pub mod errors;
pub mod files;
pub mod grpc_metrics;
pub mod health;
pub mod kafka;
pub mod lifecycle;
pub mod limits;
pub mod local;
pub mod progress;
pub mod rules;
pub mod server;
pub mod telemetry;

pub use config::Config;

/// The wall clock, for the live services (the core never reads it: `now` is an input).
pub fn wall_clock() -> jiancha_core::Timestamp {
    let ms = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_millis() as i64);
    jiancha_core::Timestamp(ms)
}
