//! The gRPC server every jiancha service runs: TLS (optionally mutual), per-connection
//! limits, HTTP/2 keep-alive, server reflection, and the interceptor that authenticates
//! every request.

use crate::auth::{self, Authenticator, Role};
use crate::config::Config;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_stream::{Stream, StreamExt};
use tonic::transport::server::{Connected, TcpConnectInfo};
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};
use tracing::warn;

/// Metric: connections closed at once because `grpc.max_connections` were open.
pub const CONNECTIONS_REFUSED: &str = "jiancha_grpc_connections_refused_total";

/// A server that cannot be configured or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    /// A configuration problem, named.
    #[error("grpc configuration: {0}")]
    Config(String),
    /// The server.
    #[error("grpc server: {0}")]
    Transport(#[from] tonic::transport::Error),
}

fn read(path: &std::path::Path, key: &str) -> Result<Vec<u8>, ServerError> {
    std::fs::read(path).map_err(|e| ServerError::Config(format!("{key} {}: {e}", path.display())))
}

/// The TLS settings, or None for explicitly configured plaintext.
pub fn tls_config(config: &Config) -> Result<Option<ServerTlsConfig>, ServerError> {
    let g = &config.grpc;
    if g.require_client_cert && g.client_ca.is_none() {
        return Err(ServerError::Config(
            "grpc.require_client_cert needs grpc.client_ca: without it no client certificate can be checked".into(),
        ));
    }
    match (&g.tls_cert, &g.tls_key) {
        (Some(cert), Some(key)) => {
            let mut tls = ServerTlsConfig::new()
                .identity(Identity::from_pem(read(cert, "grpc.tls_cert")?, read(key, "grpc.tls_key")?))
                .timeout(g.handshake_timeout());
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
            Err(ServerError::Config("TLS needs grpc.tls_cert and grpc.tls_key; for local use only, set grpc.plaintext = true".into()))
        }
        _ => Err(ServerError::Config("grpc.tls_cert and grpc.tls_key go together".into())),
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
    ServerError,
> {
    let builder = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(jiancha_proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let v1 = builder().build_v1().map_err(|e| ServerError::Config(format!("reflection: {e}")))?;
    let v1alpha = builder().build_v1alpha().map_err(|e| ServerError::Config(format!("reflection: {e}")))?;
    Ok((v1, v1alpha))
}

/// A server with the limits every jiancha gRPC server shares: 1024 concurrent requests
/// per connection (streams included), HTTP/2 keep-alive, per-method metrics
/// ([`crate::grpc_metrics`]), TLS when given.
pub fn server_builder(
    tls: Option<ServerTlsConfig>,
) -> Result<Server<tower_layer::Stack<crate::grpc_metrics::GrpcMetricsLayer, tower_layer::Identity>>, tonic::transport::Error> {
    let builder = Server::builder()
        .concurrency_limit_per_connection(1024)
        .http2_keepalive_interval(Some(Duration::from_secs(30)))
        .http2_keepalive_timeout(Some(Duration::from_secs(10)))
        .tcp_nodelay(true)
        .layer(crate::grpc_metrics::GrpcMetricsLayer);
    match tls {
        Some(tls) => builder.tls_config(tls),
        None => Ok(builder),
    }
}

/// An interceptor that authenticates every request and puts the [`auth::Caller`] in
/// its extensions. With `bind_client_certificate`, a DEPARTMENT token counts only over a
/// connection whose client certificate names the same department.
pub fn auth_interceptor(
    authenticator: Arc<Authenticator>,
    bind_client_certificate: bool,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
    move |mut req: Request<()>| -> Result<Request<()>, Status> {
        let caller: auth::Caller = authenticator.authenticate(&req)?;
        if bind_client_certificate && caller.role == Role::Department {
            let department = caller.department.as_deref().unwrap_or_default();
            let certs = req.peer_certs();
            let leaf = certs.as_deref().and_then(|c| c.first()).ok_or_else(|| {
                auth::unauthenticated(
                    "CLIENT_CERT_REQUIRED",
                    "a DEPARTMENT token needs the department's client certificate on the connection",
                )
            })?;
            let names = certificate_names(leaf.as_ref());
            if !names.iter().any(|n| n == department) {
                return Err(auth::denied(
                    "CLIENT_CERT_MISMATCH",
                    format!("the token is for department {department} but the client certificate names {}", names.join(", ")),
                    [("department_code", department.to_owned())],
                ));
            }
        }
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}

/// `interceptor`, then a per-caller request rate: a caller over it gets
/// RESOURCE_EXHAUSTED with RetryInfo, and the others keep their share.
pub fn rate_limited(
    interceptor: impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static,
    limiter: Arc<crate::limits::RateLimiter>,
) -> impl Fn(Request<()>) -> Result<Request<()>, Status> + Clone + Send + Sync + 'static {
    move |req: Request<()>| -> Result<Request<()>, Status> {
        let req = interceptor(req)?;
        let caller = auth::caller(&req)?;
        limiter.try_take(&caller.subject, 1.0).map_err(|wait| crate::limits::over_rate(&caller.subject, "request", wait))?;
        Ok(req)
    }
}

/// The Common Names and DNS names of a DER certificate (empty when it cannot be read).
pub fn certificate_names(der: &[u8]) -> Vec<String> {
    let Ok((_, cert)) = x509_parser::parse_x509_certificate(der) else { return Vec::new() };
    let mut names: Vec<String> = cert.subject().iter_common_name().filter_map(|cn| cn.as_str().ok().map(str::to_owned)).collect();
    if let Ok(Some(san)) = cert.subject_alternative_name() {
        for name in &san.value.general_names {
            if let x509_parser::extensions::GeneralName::DNSName(dns) = name {
                names.push((*dns).to_owned());
            }
        }
    }
    names
}

/// A TCP connection counted against `grpc.max_connections` until it closes.
#[derive(Debug)]
pub struct CountedStream {
    stream: TcpStream,
    _permit: OwnedSemaphorePermit,
}

impl Connected for CountedStream {
    type ConnectInfo = TcpConnectInfo;

    fn connect_info(&self) -> TcpConnectInfo {
        self.stream.connect_info()
    }
}

impl AsyncRead for CountedStream {
    fn poll_read(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl AsyncWrite for CountedStream {
    fn poll_write(mut self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(mut self: Pin<&mut Self>, cx: &mut Context<'_>, bufs: &[std::io::IoSlice<'_>]) -> Poll<std::io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// The connections of `listener`, at most `max_connections` open at once: one more is
/// closed as soon as it is accepted (and counted), so a flood of connections cannot
/// exhaust the process's file descriptors or memory.
pub fn limited_incoming(listener: TcpListener, max_connections: usize) -> impl Stream<Item = std::io::Result<CountedStream>> {
    let permits = Arc::new(Semaphore::new(max_connections));
    tokio_stream::wrappers::TcpListenerStream::new(listener).filter_map(move |accepted| match accepted {
        Err(e) => Some(Err(e)),
        Ok(stream) => match permits.clone().try_acquire_owned() {
            Ok(permit) => {
                let _ = stream.set_nodelay(true);
                Some(Ok(CountedStream { stream, _permit: permit }))
            }
            Err(_) => {
                metrics::counter!(CONNECTIONS_REFUSED).increment(1);
                warn!(peer = ?stream.peer_addr().ok(), max_connections, "Connection closed: grpc.max_connections are open");
                None
            }
        },
    })
}
