//! The gRPC gateway (`jiancha gateway`, and part of `jiancha up`).
//!
//! - IngestService: department systems submit events; validated against DOMAIN §2 and
//!   published to the event topic once the broker acknowledges.
//! - MonitorService: item timelines (every clock, its deadline, remaining time and
//!   derivation), lists, and the live alert stream with a resume cursor.
//! - CatalogService: the catalog and calendars, replaced validated, changes previewed.
//! - Standard health checking and server reflection.
//!
//! TLS with rustls (optionally mutual), JWT bearer tokens with DOMAIN §6 roles on every
//! method, per-caller rate and stream limits, message size limits and deadlines.

pub mod catalog_api;
pub mod ingest;
pub mod monitor_api;
pub mod view;

/// The gateway's name in `/readyz`: ready once its views of the monitor's topics are
/// read, as its gRPC health says.
pub const READINESS: &str = "gateway";

/// Describes the gateway's metrics (the per-method gRPC metrics are the platform's).
pub fn describe() {
    metrics::describe_counter!(
        ingest::SUBMITTED,
        "Events submitted through the gateway, by result (accepted, invalid, denied, rate_limited, unavailable)"
    );
    metrics::describe_gauge!(monitor_api::WATCHERS, "Live alert streams (WatchAlerts) open");
    for result in ingest::RESULTS {
        metrics::counter!(ingest::SUBMITTED, "result" => result).increment(0);
    }
    metrics::gauge!(monitor_api::WATCHERS).increment(0.0);
}

use jiancha_platform::Config;
use jiancha_platform::auth::Authenticator;
use jiancha_platform::kafka::{KafkaFailure, ensure_topics, failure};
use jiancha_platform::limits;
use jiancha_platform::rules::{RulesError, load_rules};
use jiancha_platform::server::{ServerError, auth_interceptor, reflection, server_builder, tls_config};
use jiancha_proto::v1::catalog_service_server::CatalogServiceServer;
use jiancha_proto::v1::ingest_service_server::IngestServiceServer;
use jiancha_proto::v1::monitor_service_server::MonitorServiceServer;
use rdkafka::producer::FutureProducer;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic_health::ServingStatus;
use tracing::info;

/// Why the gateway cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A configuration problem, named.
    #[error("grpc configuration: {0}")]
    Config(String),
    /// Kafka refused an operation.
    #[error(transparent)]
    Kafka(#[from] KafkaFailure),
    /// The catalog or a calendar is invalid.
    #[error(transparent)]
    Rules(#[from] RulesError),
    /// The server.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

/// A running gateway.
#[derive(Debug)]
pub struct Gateway {
    /// Where it listens.
    pub addr: SocketAddr,
    /// Whether it serves TLS.
    pub tls: bool,
    /// Its read model.
    pub view: Arc<View>,
    server: tokio::task::JoinHandle<Result<(), tonic::transport::Error>>,
}

pub use view::View;

impl Gateway {
    /// Waits for the server to stop (after the shutdown signal).
    pub async fn wait(self) -> Result<(), GatewayError> {
        let result = self.server.await;
        self.view.stop();
        match result {
            Ok(r) => r.map_err(GatewayError::from),
            Err(e) => Err(GatewayError::Config(format!("server task: {e}"))),
        }
    }
}

impl From<ServerError> for GatewayError {
    fn from(e: ServerError) -> GatewayError {
        match e {
            ServerError::Config(message) => GatewayError::Config(message),
            ServerError::Transport(t) => GatewayError::Transport(t),
        }
    }
}

/// Starts the gateway: creates the topics when absent, starts reading the monitor's
/// topics, binds and serves until `shutdown` turns true.
pub async fn start(config: Config, mut shutdown: watch::Receiver<bool>) -> Result<Gateway, GatewayError> {
    let authenticator = Authenticator::from_config(&config.grpc.auth).map_err(|e| GatewayError::Config(e.to_string()))?;
    let tls = tls_config(&config)?;
    let (catalog, calendars) = load_rules(config.catalog.as_ref(), &config.calendar_files())?;
    ensure_topics(&config, &[]).await?;
    let view = View::new(catalog, calendars, config.partitions.max(1) as usize, config.grpc.watch_buffer);
    {
        let (view, config) = (view.clone(), config.clone());
        std::thread::Builder::new()
            .name("gateway-view".into())
            .spawn(move || {
                if let Err(e) = view::tail(view, config) {
                    tracing::error!(error = %e, "The gateway stopped reading the monitor's topics");
                }
            })
            .map_err(|e| GatewayError::Config(format!("starting the view thread: {e}")))?;
    }
    let producer: FutureProducer = jiancha_platform::kafka::client(&config)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
        .map_err(failure("gateway producer"))?;

    let config = Arc::new(config);
    let limiter = Arc::new(limits::RateLimiter::new(config.grpc.rate_per_caller, config.grpc.burst_per_caller));
    let max = config.grpc.max_message_bytes;
    let query_secret = match &config.query_code_secret_file {
        Some(file) => Some(jiancha_platform::progress::load_secret(file).map_err(GatewayError::Config)?),
        None => None,
    };
    let ingest = ingest::Ingest::new(producer, &config.topics.events, limiter, config.grpc.timeout(), config.grpc.max_stream_events)
        .with_query_codes(query_secret);
    let monitor = monitor_api::Monitor::new(view.clone(), config.clone());
    let catalog = catalog_api::CatalogApi::new(view.clone(), config.clone());
    let interceptor = auth_interceptor(Arc::new(authenticator), config.grpc.bind_client_certificate);

    let (reporter, health) = tonic_health::server::health_reporter();
    let names = ["", "jiancha.v1.IngestService", "jiancha.v1.MonitorService", "jiancha.v1.CatalogService"];
    for name in names {
        reporter.set_service_status(name, ServingStatus::NotServing).await;
    }
    jiancha_platform::health::set(READINESS, false, "reading the monitor's state and alert topics");
    {
        let mut ready = view.ready.subscribe();
        tokio::spawn(async move {
            if ready.wait_for(|r| *r).await.is_err() {
                return;
            }
            jiancha_platform::health::set(READINESS, true, "views read; serving");
            for name in names {
                reporter.set_service_status(name, ServingStatus::Serving).await;
            }
        });
    }
    let (reflection, reflection_alpha) = reflection()?;

    // No server-wide timeout: it would cut long SubmitStream and WatchAlerts streams.
    // A client's grpc-timeout is honoured by tonic; ingest bounds its wait for the broker.
    let is_tls = tls.is_some();
    let router = server_builder(tls)?
        .add_service(health)
        .add_service(reflection)
        .add_service(reflection_alpha)
        .add_service(InterceptedService::new(IngestServiceServer::new(ingest).max_decoding_message_size(max), interceptor.clone()))
        .add_service(InterceptedService::new(
            MonitorServiceServer::new(monitor).max_decoding_message_size(max).max_encoding_message_size(64 << 20),
            interceptor.clone(),
        ))
        .add_service(InterceptedService::new(
            CatalogServiceServer::new(catalog).max_decoding_message_size(max.max(16 << 20)).max_encoding_message_size(64 << 20),
            interceptor,
        ));
    let listener = tokio::net::TcpListener::bind(&config.grpc.listen)
        .await
        .map_err(|e| GatewayError::Config(format!("grpc.listen {}: {e}", config.grpc.listen)))?;
    let addr = listener.local_addr().map_err(|e| GatewayError::Config(format!("grpc.listen: {e}")))?;
    let incoming = jiancha_platform::server::limited_incoming(listener, config.grpc.max_connections);
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    }));
    info!(%addr, tls = is_tls, "gRPC gateway listening");
    Ok(Gateway { addr, tls: is_tls, view, server })
}
