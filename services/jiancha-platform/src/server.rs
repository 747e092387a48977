//! The gRPC server every jiancha service runs: TLS (optionally mutual), per-connection
//! limits, HTTP/2 keep-alive, server reflection, and the interceptor that authenticates
//! every request.

use crate::auth::{self, Authenticator};
use crate::config::Config;
use std::sync::Arc;
use std::time::Duration;
use tonic::transport::{Certificate, Identity, Server, ServerTlsConfig};
use tonic::{Request, Status};
use tracing::warn;

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
        let caller: auth::Caller = authenticator.authenticate(&req)?;
        req.extensions_mut().insert(caller);
        Ok(req)
    }
}
