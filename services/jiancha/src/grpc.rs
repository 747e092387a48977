//! `jiancha gateway`, `jiancha token`, and the gateway's part in `jiancha up`.

use crate::up::Extra;
use anyhow::{Context, Result, bail};
use clap::Args;
use jiancha_platform::Config;
use jiancha_platform::auth::{Role, TokenRequest, mint};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha gateway --kafka-bootstrap kafka:9092 --tls-cert server.pem --tls-key server.key --auth-secret-file jwt.secret
  jiancha gateway --config /etc/jiancha/jiancha.toml
  jiancha gateway --kafka-bootstrap 127.0.0.1:9092 --plaintext --auth-secret-file jwt.secret   # local use only

Serves jiancha.v1.IngestService, MonitorService and CatalogService, grpc.health.v1 and
server reflection. Every call of the jiancha services needs `authorization: Bearer <JWT>`
(see `jiancha token`). Settings are the [grpc] section of the configuration (docs/grpc.md).")]
pub struct GatewayArgs {
    /// Configuration (TOML; see docs/monitor.md and docs/grpc.md).
    #[arg(long)]
    config: Option<PathBuf>,
    /// Kafka bootstrap servers.
    #[arg(long)]
    kafka_bootstrap: Option<String>,
    /// Listen address (`0.0.0.0:50051`).
    #[arg(long)]
    listen: Option<String>,
    /// The service catalog file the CatalogService serves and replaces.
    #[arg(long)]
    catalog: Option<PathBuf>,
    /// A calendar file (repeatable).
    #[arg(long = "calendar")]
    calendars: Vec<PathBuf>,
    #[command(flatten)]
    security: SecurityFlags,
}

/// TLS, tokens and metrics of a gRPC server (`gateway`, `accountability`); each overrides
/// the `[grpc]` section of the configuration.
#[derive(Args, Debug)]
pub struct SecurityFlags {
    /// Server certificate chain (PEM).
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// CA of client certificates: enables mutual TLS (optional for clients unless --require-client-cert).
    #[arg(long)]
    client_ca: Option<PathBuf>,
    /// With --client-ca: refuse clients without a certificate.
    #[arg(long)]
    require_client_cert: bool,
    /// Serve without TLS (local use only; logged as a warning).
    #[arg(long)]
    plaintext: bool,
    /// HS256 secret file for tokens.
    #[arg(long)]
    auth_secret_file: Option<PathBuf>,
    /// Prometheus endpoint address.
    #[arg(long)]
    metrics_listen: Option<String>,
}

impl SecurityFlags {
    /// Puts the flags given over the configuration.
    pub fn apply(self, c: &mut Config) {
        if self.tls_cert.is_some() {
            c.grpc.tls_cert = self.tls_cert;
        }
        if self.tls_key.is_some() {
            c.grpc.tls_key = self.tls_key;
        }
        if self.client_ca.is_some() {
            c.grpc.client_ca = self.client_ca;
        }
        c.grpc.require_client_cert |= self.require_client_cert;
        c.grpc.plaintext |= self.plaintext;
        if self.auth_secret_file.is_some() {
            c.grpc.auth.secret_file = self.auth_secret_file;
            c.grpc.auth.algorithm = "HS256".into();
        }
        if let Some(v) = self.metrics_listen {
            c.metrics_listen = v;
        }
    }
}

/// Serves metrics (when configured), runs `start`'s service until SIGINT/SIGTERM, then
/// waits for it to stop.
pub fn run_until_signal<S, W>(c: Config, start: impl FnOnce(Config, tokio::sync::watch::Receiver<bool>) -> S) -> Result<()>
where
    S: std::future::Future<Output = Result<W>>,
    W: std::future::Future<Output = Result<()>>,
{
    crate::live::runtime()?.block_on(async move {
        crate::telemetry::serve(&c).await?;
        let (stop, shutdown) = tokio::sync::watch::channel(false);
        let deadline = c.shutdown();
        let running = start(c, shutdown).await?;
        jiancha_platform::lifecycle::wait_for_signal().await;
        jiancha_platform::lifecycle::force_exit_after(deadline);
        let _ = stop.send(true);
        running.await
    })
}

pub fn gateway(args: GatewayArgs) -> Result<()> {
    let mut c = Config::load(args.config.as_deref())?;
    if let Some(v) = args.kafka_bootstrap {
        c.kafka_bootstrap = v;
    }
    if let Some(v) = args.listen {
        c.grpc.listen = v;
    }
    if let Some(v) = args.catalog {
        c.catalog = Some(v);
    }
    if !args.calendars.is_empty() {
        c.calendars = args.calendars;
    }
    args.security.apply(&mut c);
    c.validate()?;
    run_until_signal(c, |c, shutdown| async move {
        let gateway = jiancha_gateway::start(c, shutdown).await?;
        println!("grpc: {}", gateway.addr);
        Ok(async move { gateway.wait().await.map_err(anyhow::Error::from) })
    })
}

#[derive(Args, Debug)]
#[command(after_help = "\
Examples:
  jiancha token --role INSPECTOR --subject wang.inspector --audience sz-jiancha --secret-file jwt.secret
  jiancha token --role DEPARTMENT --department SCJG --subject system:SCJG --audience sz-jiancha --secret-file jwt.secret --ttl 30d
  jiancha token --role AUDITOR --algorithm EdDSA --private-key issuer.key --kid 2026-12 --audience sz-jiancha --subject audit.office

Prints a signed bearer token for the gateway (and the accountability service).")]
pub struct TokenArgs {
    /// INSPECTOR, DEPARTMENT, OPERATOR or AUDITOR.
    #[arg(long)]
    role: Role,
    /// The department code (DEPARTMENT tokens).
    #[arg(long)]
    department: Option<String>,
    /// Who the token stands for (a person's or a system's id).
    #[arg(long)]
    subject: String,
    /// Validity ("8h", "30d").
    #[arg(long, default_value = "8h")]
    ttl: String,
    /// The issuer (grpc.auth.issuer).
    #[arg(long, default_value = "jiancha")]
    issuer: String,
    /// The audience (grpc.auth.audience): the deployment's name.
    #[arg(long)]
    audience: String,
    /// The verification key's id, when keys rotate (grpc.auth.keys).
    #[arg(long)]
    kid: Option<String>,
    /// HS256, EdDSA, RS256 or ES256.
    #[arg(long, default_value = "HS256")]
    algorithm: String,
    /// HS256: the shared secret file.
    #[arg(long)]
    secret_file: Option<PathBuf>,
    /// EdDSA/RS256/ES256: the issuer's private key (PEM).
    #[arg(long)]
    private_key: Option<PathBuf>,
}

pub fn token(args: TokenArgs) -> Result<()> {
    let key_file = match (&args.secret_file, &args.private_key) {
        (Some(f), None) | (None, Some(f)) => f,
        _ => bail!("give exactly one of --secret-file (HS256) and --private-key (EdDSA, RS256, ES256)"),
    };
    let key = std::fs::read(key_file).with_context(|| format!("reading {}", key_file.display()))?;
    let ttl_ms = jiancha_core::time::parse_duration_ms(&args.ttl)
        .filter(|&ms| ms > 0)
        .with_context(|| format!("--ttl `{}` is not a duration", args.ttl))?;
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH)?.as_secs();
    let req = TokenRequest {
        subject: args.subject,
        role: args.role,
        department: args.department,
        issuer: args.issuer,
        audience: Some(args.audience),
        ttl_secs: (ttl_ms / 1000) as u64,
        kid: args.kid,
    };
    println!("{}", mint(&req, &args.algorithm, &key, now)?);
    Ok(())
}

/// Prepares `state_dir` (certificates, secret, tokens, query-code secret, a writable
/// catalog) and returns the configuration, the gateway to run inside `jiancha up` (it
/// sends its address on `addr` once it listens) and the local set-up.
pub fn up_gateway(
    mut config: Config,
    state_dir: &Path,
    addr: tokio::sync::oneshot::Sender<std::net::SocketAddr>,
) -> Result<(Config, Extra, jiancha_platform::local::LocalSetup)> {
    let (catalog, _) = jiancha_platform::rules::load_rules(config.catalog.as_ref(), &config.calendar_files())?;
    let mut departments: Vec<&str> = catalog.services().iter().map(|s| &*s.department).collect();
    departments.sort();
    departments.dedup();
    let setup =
        jiancha_platform::local::prepare(state_dir, &config.grpc.auth.issuer, &departments, 7 * 24 * 3600).map_err(anyhow::Error::msg)?;
    if config.catalog.is_none() {
        // A file, so that CatalogService can replace it and the monitor reload it.
        let file = state_dir.join("catalog.toml");
        std::fs::write(&file, jiancha_platform::rules::DEMO_CATALOG).with_context(|| format!("writing {}", file.display()))?;
        config.catalog = Some(file);
    }
    if config.query_code_secret_file.is_none() {
        let file = state_dir.join("query-code.secret");
        jiancha_platform::files::write_private(&file, crate::console::random_secret()?.as_bytes())
            .with_context(|| format!("writing {}", file.display()))?;
        config.query_code_secret_file = Some(file);
    }
    if config.calendar_dir.is_none() {
        let dir = state_dir.join("calendars");
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        config.calendar_dir = Some(dir);
    }
    // What the configuration does not set comes from the local set-up.
    let g = &mut config.grpc;
    if g.tls_cert.is_none() && !g.plaintext {
        g.tls_cert = Some(setup.server_cert.clone());
        g.tls_key = Some(setup.server_key.clone());
        g.client_ca = Some(setup.ca_cert.clone());
    }
    if g.auth.secret_file.is_none() && g.auth.public_key_file.is_none() && g.auth.keys.is_empty() {
        g.auth.secret_file = Some(setup.secret_file.clone());
        g.auth.algorithm = "HS256".into();
        g.auth.audience = Some(jiancha_platform::local::LOCAL_AUDIENCE.into());
    }
    let returned = setup.clone();
    let extra: Extra = Box::new(move |mut config: Config, shutdown| {
        Box::pin(async move {
            let gateway = match jiancha_gateway::start(config.clone(), shutdown.clone()).await {
                Ok(g) => g,
                Err(jiancha_gateway::GatewayError::Config(e)) if e.contains("grpc.listen") => {
                    // The default port is taken (a second `up`): any free port.
                    config.grpc.listen = "127.0.0.1:0".into();
                    jiancha_gateway::start(config, shutdown).await.map_err(|e| e.to_string())?
                }
                Err(e) => {
                    eprintln!("jiancha: the gRPC gateway could not start: {e}");
                    return Err(e.to_string());
                }
            };
            println!("grpc: {}", gateway.addr);
            let _ = addr.send(gateway.addr);
            println!("grpc tls: CA {} (server certificate for localhost and 127.0.0.1)", setup.ca_cert.display());
            for (role, department, file) in &setup.tokens {
                if department.is_none() || department.as_deref() == Some("SCJG") {
                    println!(
                        "grpc token {}{}: {}",
                        role.as_str(),
                        department.as_deref().map(|d| format!(" {d}")).unwrap_or_default(),
                        file.display()
                    );
                }
            }
            gateway.wait().await.map_err(|e| e.to_string())
        })
    });
    Ok((config, extra, returned))
}
