//! The console calls the gRPC services as the user: for each user it signs a short token
//! carrying their role, department and id, so that the services apply exactly the rules
//! they apply to any caller (DOMAIN §6), and the audit log names the person.

use crate::session::User;
use dashmap::DashMap;
use jiancha_platform::Config;
use jiancha_platform::auth::{Bearer, Role, TokenRequest, mint};
use jiancha_proto::v1::accountability_service_client::AccountabilityServiceClient;
use jiancha_proto::v1::catalog_service_client::CatalogServiceClient;
use jiancha_proto::v1::monitor_service_client::MonitorServiceClient;
use jiancha_proto::v1::stats_service_client::StatsServiceClient;
use std::time::Duration;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

/// How long a token the console signs is valid.
const TOKEN_TTL_SECS: u64 = 300;

type Authed = InterceptedService<Channel, Bearer>;

/// Channels to the services and the key the console signs with.
#[derive(Debug)]
pub struct Backends {
    gateway: Channel,
    accountability: Channel,
    algorithm: String,
    key: Vec<u8>,
    kid: Option<String>,
    issuer: String,
    audience: Option<String>,
    tokens: DashMap<(String, Role, Option<String>), (String, u64)>,
}

fn endpoint(url: &str, config: &Config, what: &str) -> Result<Endpoint, String> {
    let mut e = Endpoint::from_shared(url.to_owned())
        .map_err(|e| format!("console.{what} `{url}`: {e}"))?
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(30))
        .tcp_nodelay(true);
    if url.starts_with("https://") {
        let mut tls = ClientTlsConfig::new();
        if let Some(ca) = &config.console.services_ca {
            let pem = std::fs::read(ca).map_err(|e| format!("console.services_ca {}: {e}", ca.display()))?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let Some(domain) = &config.console.services_domain {
            tls = tls.domain_name(domain.clone());
        }
        e = e.tls_config(tls).map_err(|e| format!("console.{what}: {e}"))?;
    }
    Ok(e)
}

impl Backends {
    /// Lazily connected channels from `config.console`.
    pub fn new(config: &Config) -> Result<Backends, String> {
        let c = &config.console;
        let key_file = c
            .signing_key_file
            .as_ref()
            .ok_or("console.signing_key_file is required: the console signs the tokens it calls the services with")?;
        let key = std::fs::read(key_file).map_err(|e| format!("console.signing_key_file {}: {e}", key_file.display()))?;
        // Sign once now, so that a wrong key is a start-up error and not a broken page.
        let probe = TokenRequest {
            subject: "console".into(),
            role: Role::Auditor,
            department: None,
            issuer: config.grpc.auth.issuer.clone(),
            audience: config.grpc.auth.audience.clone(),
            ttl_secs: 1,
            kid: c.signing_kid.clone(),
        };
        mint(&probe, &c.signing_algorithm, &key, 0).map_err(|e| format!("console.signing_key_file: {e}"))?;
        Ok(Backends {
            gateway: endpoint(&c.gateway, config, "gateway")?.connect_lazy(),
            accountability: endpoint(&c.accountability, config, "accountability")?.connect_lazy(),
            algorithm: c.signing_algorithm.clone(),
            key,
            kid: c.signing_kid.clone(),
            issuer: config.grpc.auth.issuer.clone(),
            audience: config.grpc.auth.audience.clone(),
            tokens: DashMap::new(),
        })
    }

    /// A token for `user`, reused while it has a minute left.
    fn token(&self, user: &User) -> Bearer {
        let now = jiancha_platform::wall_clock().0.max(0) as u64 / 1000;
        let key = (user.subject.clone(), user.role, user.department.clone());
        if let Some(t) = self.tokens.get(&key)
            && t.1 > now + 60
        {
            return Bearer(Some(t.0.clone()));
        }
        if self.tokens.len() > 100_000 {
            self.tokens.retain(|_, t| t.1 > now);
        }
        let req = TokenRequest {
            subject: user.subject.clone(),
            role: user.role,
            department: user.department.clone(),
            issuer: self.issuer.clone(),
            audience: self.audience.clone(),
            ttl_secs: TOKEN_TTL_SECS,
            kid: self.kid.clone(),
        };
        // The key was checked at start-up; a failure now leaves the call unauthenticated,
        // which the service refuses.
        let token = mint(&req, &self.algorithm, &self.key, now).ok();
        if let Some(t) = &token {
            self.tokens.insert(key, (t.clone(), now + TOKEN_TTL_SECS));
        }
        Bearer(token)
    }

    /// MonitorService as `user`.
    pub fn monitor(&self, user: &User) -> MonitorServiceClient<Authed> {
        MonitorServiceClient::with_interceptor(self.gateway.clone(), self.token(user)).max_decoding_message_size(64 << 20)
    }

    /// CatalogService as `user`.
    pub fn catalog(&self, user: &User) -> CatalogServiceClient<Authed> {
        CatalogServiceClient::with_interceptor(self.gateway.clone(), self.token(user)).max_decoding_message_size(64 << 20)
    }

    /// AccountabilityService as `user`.
    pub fn cases(&self, user: &User) -> AccountabilityServiceClient<Authed> {
        AccountabilityServiceClient::with_interceptor(self.accountability.clone(), self.token(user)).max_decoding_message_size(64 << 20)
    }

    /// StatsService as `user`.
    pub fn stats(&self, user: &User) -> StatsServiceClient<Authed> {
        StatsServiceClient::with_interceptor(self.accountability.clone(), self.token(user)).max_decoding_message_size(64 << 20)
    }
}
