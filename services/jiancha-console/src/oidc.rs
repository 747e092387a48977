//! OpenID Connect login (政务统一身份认证): the authorization code flow with PKCE (S256),
//! a `state` bound to the browser and a `nonce` bound to the ID token. The ID token is
//! checked against the provider's published keys (signature, issuer, audience, expiry,
//! nonce); its claims give the user's role and department.

use crate::session::{User, random_hex};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use dashmap::DashMap;
use jiancha_platform::auth::Role;
use jiancha_platform::config::OidcConfig;
use jsonwebtoken::jwk::JwkSet;
use jsonwebtoken::{Algorithm, DecodingKey, Validation};
use serde::Deserialize;
use sha2::{Digest, Sha256};
use std::time::{Duration, Instant};
use tokio::sync::RwLock;

/// How long a login may take at the provider.
const PENDING_TTL: Duration = Duration::from_secs(600);

/// The provider's discovery document (the parts used).
#[derive(Clone, Debug, Deserialize)]
struct Discovery {
    issuer: String,
    authorization_endpoint: String,
    token_endpoint: String,
    jwks_uri: String,
}

#[derive(Debug)]
struct Pending {
    nonce: String,
    verifier: String,
    next: String,
    created: Instant,
}

/// The OpenID Connect client.
#[derive(Debug)]
pub struct Oidc {
    config: OidcConfig,
    http: reqwest::Client,
    redirect_uri: String,
    secret: Option<String>,
    discovery: RwLock<Option<Discovery>>,
    keys: RwLock<Option<JwkSet>>,
    pending: DashMap<String, Pending>,
}

#[derive(Deserialize)]
struct TokenResponse {
    id_token: String,
}

/// Why a login failed (shown to the user, logged for the operator).
#[derive(Debug, thiserror::Error)]
pub enum LoginError {
    /// The provider could not be reached or answered badly.
    #[error("identity provider: {0}")]
    Provider(String),
    /// The answer is not a valid login (state, nonce, signature, claims).
    #[error("login refused: {0}")]
    Refused(String),
}

impl Oidc {
    /// A client for `config`, redirected back to `public_url/auth/oidc/callback`.
    pub fn new(config: &OidcConfig, public_url: &str) -> Result<Oidc, String> {
        let mut http = reqwest::Client::builder().timeout(Duration::from_secs(10)).redirect(reqwest::redirect::Policy::none());
        if let Some(ca) = &config.ca_file {
            let pem = std::fs::read(ca).map_err(|e| format!("console.oidc.ca_file {}: {e}", ca.display()))?;
            http = http.add_root_certificate(reqwest::Certificate::from_pem(&pem).map_err(|e| format!("console.oidc.ca_file: {e}"))?);
        }
        let secret = match &config.client_secret_file {
            Some(f) => Some(
                std::fs::read_to_string(f).map_err(|e| format!("console.oidc.client_secret_file {}: {e}", f.display()))?.trim().to_owned(),
            ),
            None => None,
        };
        Ok(Oidc {
            config: config.clone(),
            http: http.build().map_err(|e| format!("console.oidc: {e}"))?,
            redirect_uri: format!("{}/auth/oidc/callback", public_url.trim_end_matches('/')),
            secret,
            discovery: RwLock::new(None),
            keys: RwLock::new(None),
            pending: DashMap::new(),
        })
    }

    async fn discovery(&self) -> Result<Discovery, LoginError> {
        if let Some(d) = self.discovery.read().await.clone() {
            return Ok(d);
        }
        let url = format!("{}/.well-known/openid-configuration", self.config.issuer.trim_end_matches('/'));
        let d: Discovery = self.get_json(&url).await?;
        if d.issuer.trim_end_matches('/') != self.config.issuer.trim_end_matches('/') {
            return Err(LoginError::Provider(format!("the discovery document names issuer {}, not {}", d.issuer, self.config.issuer)));
        }
        *self.discovery.write().await = Some(d.clone());
        Ok(d)
    }

    async fn get_json<T: serde::de::DeserializeOwned>(&self, url: &str) -> Result<T, LoginError> {
        let response = self.http.get(url).send().await.map_err(|e| LoginError::Provider(format!("{url}: {e}")))?;
        if !response.status().is_success() {
            return Err(LoginError::Provider(format!("{url}: HTTP {}", response.status())));
        }
        response.json().await.map_err(|e| LoginError::Provider(format!("{url}: {e}")))
    }

    /// Starts a login: the provider's URL to send the browser to, and the `state` to bind
    /// to it (in a cookie).
    pub async fn begin(&self, next: &str) -> Result<(String, String), LoginError> {
        let d = self.discovery().await?;
        let state = random_hex(16);
        let nonce = random_hex(16);
        let verifier = URL_SAFE_NO_PAD.encode(random_hex(32).as_bytes());
        let challenge = URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()));
        if self.pending.len() > 100_000 {
            self.sweep();
        }
        self.pending.insert(state.clone(), Pending { nonce: nonce.clone(), verifier, next: next.to_owned(), created: Instant::now() });
        let mut url =
            reqwest::Url::parse(&d.authorization_endpoint).map_err(|e| LoginError::Provider(format!("authorization_endpoint: {e}")))?;
        url.query_pairs_mut()
            .append_pair("response_type", "code")
            .append_pair("client_id", &self.config.client_id)
            .append_pair("redirect_uri", &self.redirect_uri)
            .append_pair("scope", &self.config.scopes)
            .append_pair("state", &state)
            .append_pair("nonce", &nonce)
            .append_pair("code_challenge", &challenge)
            .append_pair("code_challenge_method", "S256");
        Ok((url.to_string(), state))
    }

    /// Finishes a login from the callback's `state` and `code`; `bound` is the state the
    /// browser's cookie holds. The user and where they were going.
    pub async fn finish(&self, state: &str, bound: Option<&str>, code: &str) -> Result<(User, String), LoginError> {
        if bound != Some(state) {
            return Err(LoginError::Refused("the login was not started in this browser".into()));
        }
        let (_, pending) = self.pending.remove(state).ok_or_else(|| LoginError::Refused("unknown or used login state".into()))?;
        if pending.created.elapsed() > PENDING_TTL {
            return Err(LoginError::Refused("the login took too long; start again".into()));
        }
        let d = self.discovery().await?;
        let mut form = vec![
            ("grant_type", "authorization_code"),
            ("code", code),
            ("redirect_uri", self.redirect_uri.as_str()),
            ("code_verifier", pending.verifier.as_str()),
        ];
        let mut request = self.http.post(&d.token_endpoint);
        match &self.secret {
            Some(secret) => request = request.basic_auth(&self.config.client_id, Some(secret)),
            None => form.push(("client_id", self.config.client_id.as_str())),
        }
        let response = request.form(&form).send().await.map_err(|e| LoginError::Provider(format!("token endpoint: {e}")))?;
        if !response.status().is_success() {
            let status = response.status();
            let text = response.text().await.unwrap_or_default();
            return Err(LoginError::Provider(format!("token endpoint: HTTP {status}: {}", text.chars().take(300).collect::<String>())));
        }
        let tokens: TokenResponse = response.json().await.map_err(|e| LoginError::Provider(format!("token endpoint: {e}")))?;
        let claims = self.verify(&tokens.id_token, &d).await?;
        if claims.get("nonce").and_then(|n| n.as_str()) != Some(pending.nonce.as_str()) {
            return Err(LoginError::Refused("the ID token's nonce is not this login's".into()));
        }
        Ok((self.user(&claims)?, pending.next))
    }

    async fn verify(&self, id_token: &str, d: &Discovery) -> Result<serde_json::Value, LoginError> {
        let header = jsonwebtoken::decode_header(id_token).map_err(|e| LoginError::Refused(format!("ID token: {e}")))?;
        if !matches!(header.alg, Algorithm::RS256 | Algorithm::PS256 | Algorithm::ES256 | Algorithm::ES384 | Algorithm::EdDSA) {
            return Err(LoginError::Refused(format!("ID token signed with {:?}, which is not accepted", header.alg)));
        }
        let mut key = self.key(header.kid.as_deref(), d, false).await?;
        if key.is_none() {
            // The provider may have rotated its keys.
            key = self.key(header.kid.as_deref(), d, true).await?;
        }
        let key = key.ok_or_else(|| LoginError::Refused("the ID token's key is not among the provider's".into()))?;
        let mut v = Validation::new(header.alg);
        v.set_audience(&[&self.config.client_id]);
        v.set_issuer(&[&d.issuer]);
        v.set_required_spec_claims(&["exp", "iss", "aud", "sub"]);
        v.leeway = 60;
        jsonwebtoken::decode::<serde_json::Value>(id_token, &key, &v)
            .map(|t| t.claims)
            .map_err(|e| LoginError::Refused(format!("ID token: {e}")))
    }

    async fn key(&self, kid: Option<&str>, d: &Discovery, refresh: bool) -> Result<Option<DecodingKey>, LoginError> {
        if refresh || self.keys.read().await.is_none() {
            let set: JwkSet = self.get_json(&d.jwks_uri).await?;
            *self.keys.write().await = Some(set);
        }
        let keys = self.keys.read().await;
        let Some(set) = keys.as_ref() else { return Ok(None) };
        let jwk = match kid {
            Some(kid) => set.find(kid),
            None => set.keys.first(),
        };
        Ok(jwk.and_then(|k| DecodingKey::from_jwk(k).ok()))
    }

    /// Role and department from the claims.
    fn user(&self, claims: &serde_json::Value) -> Result<User, LoginError> {
        let c = &self.config;
        let values: Vec<String> = match claims.get(&c.role_claim) {
            Some(serde_json::Value::String(s)) => vec![s.clone()],
            Some(serde_json::Value::Array(a)) => a.iter().filter_map(|v| v.as_str().map(str::to_owned)).collect(),
            _ => vec![],
        };
        let role = values
            .iter()
            .find_map(|v| c.roles.get(v).map_or_else(|| v.parse::<Role>().ok(), |r| r.parse::<Role>().ok()))
            .ok_or_else(|| LoginError::Refused(format!("the account has no jiancha role (claim `{}`)", c.role_claim)))?;
        let department = claims.get(&c.department_claim).and_then(|v| v.as_str()).map(str::to_owned).filter(|d| !d.is_empty());
        if role == Role::Department && department.is_none() {
            return Err(LoginError::Refused(format!("a department account needs its department (claim `{}`)", c.department_claim)));
        }
        let subject = claims.get("sub").and_then(|v| v.as_str()).unwrap_or_default().to_owned();
        let name = claims.get(&c.name_claim).and_then(|v| v.as_str()).unwrap_or(&subject).to_owned();
        Ok(User { subject, name, role, department: if role == Role::Department { department } else { None } })
    }

    /// Forgets logins never finished.
    pub fn sweep(&self) {
        self.pending.retain(|_, p| p.created.elapsed() <= PENDING_TTL);
    }
}
