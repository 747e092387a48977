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

pub mod auth;
pub mod catalog_api;
pub mod errors;
pub mod ingest;
pub mod limits;
pub mod local;
pub mod monitor_api;
pub mod view;

use auth::Authenticator;
use jiancha_monitor::config::MonitorConfig;
use jiancha_monitor::monitor::{MonitorError, ensure_topics, load_rules};
use jiancha_proto::v1::catalog_service_server::CatalogServiceServer;
use jiancha_proto::v1::ingest_service_server::IngestServiceServer;
use jiancha_proto::v1::monitor_service_server::MonitorServiceServer;
use rdkafka::config::ClientConfig;
use rdkafka::producer::FutureProducer;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};
use tonic_health::ServingStatus;
use tracing::{info, warn};

/// Why the gateway cannot start or stopped.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// A configuration problem, named.
    #[error("grpc configuration: {0}")]
    Config(String),
    /// Kafka or the rules.
    #[error(transparent)]
    Monitor(#[from] MonitorError),
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

fn read(path: &std::path::Path, key: &str) -> Result<Vec<u8>, GatewayError> {
    std::fs::read(path).map_err(|e| GatewayError::Config(format!("{key} {}: {e}", path.display())))
}

/// The TLS settings, or None for explicitly configured plaintext.
pub fn tls_config(config: &MonitorConfig) -> Result<Option<ServerTlsConfig>, GatewayError> {
    let g = &config.grpc;
    match (&g.tls_cert, &g.tls_key) {
        (Some(cert), Some(key)) => {
            let mut tls = ServerTlsConfig::new().identity(Identity::from_pem(read(cert, "grpc.tls_cert")?, read(key, "grpc.tls_key")?));
            if let Some(ca) = &g.client_ca {
                tls = tls.client_ca_root(Certificate::from_pem(read(ca, "grpc.client_ca")?)).client_auth_optional(!g.require_client_cert);
            }
            Ok(Some(tls))
        }
        (None, None) if g.plaintext => {
            warn!(listen = %g.listen, "gRPC is served WITHOUT TLS (grpc.plaintext = true): tokens and events cross the network in clear; for local use only");
            Ok(None)
        }
        (None, None) => {
            Err(GatewayError::Config("TLS needs grpc.tls_cert and grpc.tls_key; for local use only, set grpc.plaintext = true".into()))
        }
        _ => Err(GatewayError::Config("grpc.tls_cert and grpc.tls_key go together".into())),
    }
}

/// Server reflection, v1 and v1alpha (grpcurl, Postman and older clients ask for
/// either), over every `jiancha.v1` file and the health service.
#[allow(clippy::type_complexity)]
pub fn reflection() -> Result<
    (
        tonic_reflection::server::v1::ServerReflectionServer<impl tonic_reflection::server::v1::ServerReflection>,
        tonic_reflection::server::v1alpha::ServerReflectionServer<impl tonic_reflection::server::v1alpha::ServerReflection>,
    ),
    GatewayError,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(jiancha_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = builder().build_v1().map_err(|e| GatewayError::Config(format!("reflection: {e}")))?;
    let v1alpha = builder().build_v1alpha().map_err(|e| GatewayError::Config(format!("reflection: {e}")))?;
    Ok((v1, v1alpha))
}

/// A server with the limits every jiancha gRPC server shares: 1024 concurrent requests
/// per connection (streams included), HTTP/2 keep-alive, TLS when given.
pub fn server_builder(tls: Option<ServerTlsConfig>) -> Result<Server, tonic::transport::Error> {
    let builder = Server::builder()
        .concurrency_limit_per_connection(1024)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_nodelay(true);
    match tls {
        Some(tls) => builder.tls_config(tls),
        None => Ok(builder),
    }
}

/// An interceptor that authenticates every request and puts the [`auth::Caller`] in its extensions.
pub fn auth_interceptor(
    authenticator: Arc<Authenticator>,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
    move |mut req: Request<()>| -> Result<Request<()>, Status> {
        let caller = authenticator.authenticate(&req)?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

/// Starts the gateway: creates the topics when absent, starts reading the monitor's
/// topics, binds and serves until `shutdown` turns true.
pub async fn start(config: MonitorConfig, mut shutdown: watch::Receiver<bool>) -> Result<Gateway, GatewayError> {
    let authenticator = Authenticator::from_config(&config.grpc.auth).map_err(|e| GatewayError::Config(e.to_string()))?;
    let tls = tls_config(&config)?;
    ensure_topics(&config).await?;
    let (catalog, calendars) = load_rules(config.catalog.as_ref(), &config.calendar_files())?;
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
    let producer: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", &config.kafka_bootstrap)
        .set("enable.idempotence", "true")
        .set("linger.ms", "2")
        .create()
        .map_err(|e| MonitorError::Kafka { context: "gateway producer", source: e })?;

    let config = Arc::new(config);
    let limiter = Arc::new(limits::RateLimiter::new(config.grpc.rate_per_caller, config.grpc.burst_per_caller));
    let max = config.grpc.max_message_bytes;
    let ingest = ingest::Ingest::new(producer, &config.topics.events, limiter, config.grpc.timeout());
    let monitor = monitor_api::Monitor::new(view.clone(), config.clone());
    let catalog = catalog_api::CatalogApi::new(view.clone(), config.clone());
    let interceptor = auth_interceptor(Arc::new(authenticator));

    let (reporter, health) = tonic_health::server::health_reporter();
    let names = ["", "jiancha.v1.IngestService", "jiancha.v1.MonitorService", "jiancha.v1.CatalogService"];
    for name in names {
        reporter.set_service_status(name, ServingStatus::NotServing).await;
    }
    {
        let mut ready = view.ready.subscribe();
        tokio::spawn(async move {
            if ready.wait_for(|r| *r).await.is_err() {
                return;
            }
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
    let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
    let server = tokio::spawn(router.serve_with_incoming_shutdown(incoming, async move {
        let _ = shutdown.wait_for(|stop| *stop).await;
    }));
    info!(%addr, tls = is_tls, "gRPC gateway listening");
    Ok(Gateway { addr, tls: is_tls, view, server })
}
