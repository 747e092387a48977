//! Who is calling: signed JWT bearer tokens carrying a DOMAIN §6 role, checked on every
//! request; and what each role may do.
//!
//! A missing, malformed, expired or wrongly signed token is `UNAUTHENTICATED`; a valid
//! token whose role may not call the method, or a department reaching for another
//! department's data, is `PERMISSION_DENIED`. Both carry a `google.rpc.ErrorInfo` whose
//! reason a client can act on.

use crate::config::AuthConfig;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::str::FromStr;
use tonic::{Code, Request, Status};
use tonic_types::{ErrorDetails, StatusExt};

/// The domain of every `ErrorInfo` the gateway sends.
pub const ERROR_DOMAIN: &str = "jiancha.gov.cn";

/// DOMAIN §6 roles.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "SCREAMING_SNAKE_CASE")]
pub enum Role {
    /// 纪检监察 inspectors: every department, may resolve.
    Inspector,
    /// A department's system or staff: its own department only.
    Department,
    /// Runs the system: catalog, calendars, health; no case contents.
    Operator,
    /// Reads everything, changes nothing.
    Auditor,
    /// A complaint intake system (a public portal, a 12345 hotline system): may file
    /// complaints through the intake API and nothing else; reads nothing.
    Intake,
}

impl Role {
    /// Every role.
    pub const ALL: [Role; 5] = [Role::Inspector, Role::Department, Role::Operator, Role::Auditor, Role::Intake];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Inspector => "INSPECTOR",
            Role::Department => "DEPARTMENT",
            Role::Operator => "OPERATOR",
            Role::Auditor => "AUDITOR",
            Role::Intake => "INTAKE",
        }
    }
}

impl FromStr for Role {
    type Err = String;

    fn from_str(s: &str) -> Result<Role, String> {
        Role::ALL
            .into_iter()
            .find(|r| r.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| format!("unknown role `{s}`: one of INSPECTOR, DEPARTMENT, OPERATOR, AUDITOR, INTAKE"))
    }
}

/// The claims of a jiancha token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Who: a person's or a system's id; rate limits are per subject.
    pub sub: String,
    /// The issuer, checked against the configuration.
    pub iss: String,
    /// Expiry, seconds since the epoch.
    pub exp: u64,
    /// Issued at.
    #[serde(default)]
    pub iat: u64,
    /// Not valid before (seconds since the epoch), when set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<u64>,
    /// The audience, when the deployment uses one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub aud: Option<String>,
    /// The role.
    pub role: Role,
    /// DEPARTMENT tokens: the department's code.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
}

/// An authenticated caller, put in each request's extensions.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Caller {
    /// The token's subject.
    pub subject: String,
    /// Its role.
    pub role: Role,
    /// Its department, for DEPARTMENT callers.
    pub department: Option<String>,
}

impl Caller {
    /// PERMISSION_DENIED unless the caller has one of `roles`.
    pub fn require(&self, method: &str, roles: &[Role]) -> Result<(), Status> {
        if roles.contains(&self.role) {
            return Ok(());
        }
        let allowed: Vec<&str> = roles.iter().map(|r| r.as_str()).collect();
        Err(denied(
            "ROLE_NOT_ALLOWED",
            format!("{method} is not open to role {}; it needs one of {}", self.role.as_str(), allowed.join(", ")),
            [("role", self.role.as_str().to_owned()), ("method", method.to_owned())],
        ))
    }

    /// The departments this caller may see: None for every department.
    pub fn department_scope(&self) -> Option<&str> {
        match self.role {
            Role::Department => Some(self.department.as_deref().unwrap_or("")),
            _ => None,
        }
    }

    /// The department a list is limited to: a DEPARTMENT caller's own (PERMISSION_DENIED
    /// if it asked for another), else the one asked for, if any.
    pub fn department_filter(&self, what: &str, asked: Option<String>) -> Result<Option<String>, Status> {
        match (self.department_scope(), asked) {
            (Some(own), asked) => {
                if let Some(asked) = asked {
                    self.check_department(what, &asked)?;
                }
                Ok(Some(own.to_owned()))
            }
            (None, asked) => Ok(asked),
        }
    }

    /// PERMISSION_DENIED when a DEPARTMENT caller reaches for another department's data.
    pub fn check_department(&self, what: &str, department: &str) -> Result<(), Status> {
        match self.department_scope() {
            Some(own) if own != department => Err(denied(
                "OTHER_DEPARTMENT",
                format!("{what} belongs to department {department}; this token is for department {own}"),
                [("department_code", department.to_owned()), ("token_department", own.to_owned())],
            )),
            _ => Ok(()),
        }
    }
}

/// A PERMISSION_DENIED status with its ErrorInfo.
pub fn denied<const N: usize>(reason: &str, message: String, metadata: [(&str, String); N]) -> Status {
    let mut details = ErrorDetails::new();
    let metadata: HashMap<String, String> = metadata.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    details.set_error_info(reason, ERROR_DOMAIN, metadata);
    Status::with_error_details(Code::PermissionDenied, message, details)
}

/// An UNAUTHENTICATED status with its ErrorInfo.
pub fn unauthenticated(reason: &str, message: impl Into<String>) -> Status {
    let mut details = ErrorDetails::new();
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::new());
    Status::with_error_details(Code::Unauthenticated, message, details)
}

/// A configuration the gateway cannot authenticate with.
#[derive(Debug, thiserror::Error)]
#[error("grpc.auth: {0}")]
pub struct AuthConfigError(pub String);

/// Verifies tokens: the key for tokens without a `kid`, and the rotation keys by `kid`.
#[derive(Clone)]
pub struct Authenticator {
    default: Option<(DecodingKey, Validation)>,
    by_kid: HashMap<String, (DecodingKey, Validation)>,
    max_lifetime_secs: u64,
}

impl std::fmt::Debug for Authenticator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Authenticator")
            .field("default", &self.default.as_ref().map(|(_, v)| v.algorithms.clone()))
            .field("kids", &self.by_kid.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

fn algorithm(name: &str) -> Result<Algorithm, AuthConfigError> {
    match name {
        "HS256" => Ok(Algorithm::HS256),
        "EdDSA" => Ok(Algorithm::EdDSA),
        "RS256" => Ok(Algorithm::RS256),
        "ES256" => Ok(Algorithm::ES256),
        other => Err(AuthConfigError(format!("algorithm `{other}` is not supported: HS256, EdDSA, RS256 or ES256"))),
    }
}

fn read(path: &std::path::Path, what: &str) -> Result<Vec<u8>, AuthConfigError> {
    std::fs::read(path).map_err(|e| AuthConfigError(format!("{what} {}: {e}", path.display())))
}

/// Leeway for clocks that differ between the issuer and this server, seconds.
const LEEWAY_SECS: u64 = 30;

/// One key and the checks every token verified with it must pass.
fn verification(
    config: &AuthConfig,
    algorithm_name: &str,
    secret_file: Option<&std::path::PathBuf>,
    public_key_file: Option<&std::path::PathBuf>,
    audience: &str,
) -> Result<(DecodingKey, Validation), AuthConfigError> {
    let alg = algorithm(algorithm_name)?;
    let key = match alg {
        Algorithm::HS256 => {
            let path = secret_file.ok_or_else(|| AuthConfigError("HS256 needs `secret_file`".into()))?;
            let secret = read(path, "secret_file")?;
            let secret = secret.trim_ascii();
            if secret.len() < 32 {
                return Err(AuthConfigError(format!("secret_file {}: at least 32 bytes are needed", path.display())));
            }
            DecodingKey::from_secret(secret)
        }
        _ => {
            let path = public_key_file.ok_or_else(|| AuthConfigError(format!("{alg:?} needs `public_key_file`")))?;
            let pem = read(path, "public_key_file")?;
            let parsed = match alg {
                Algorithm::EdDSA => DecodingKey::from_ed_pem(&pem),
                Algorithm::RS256 => DecodingKey::from_rsa_pem(&pem),
                _ => DecodingKey::from_ec_pem(&pem),
            };
            parsed.map_err(|e| AuthConfigError(format!("public_key_file {}: {e}", path.display())))?
        }
    };
    let mut validation = Validation::new(alg);
    validation.set_issuer(&[&config.issuer]);
    validation.set_required_spec_claims(&["exp", "iss", "sub", "aud"]);
    validation.set_audience(&[audience]);
    validation.validate_nbf = true;
    validation.leeway = LEEWAY_SECS;
    Ok((key, validation))
}

impl Authenticator {
    /// From the configuration: the keys, the issuer and the audience to require, the
    /// longest lifetime allowed.
    pub fn from_config(config: &AuthConfig) -> Result<Authenticator, AuthConfigError> {
        let audience = config.audience.as_deref().filter(|a| !a.trim().is_empty()).ok_or_else(|| {
            AuthConfigError(
                "`audience` is required: tokens must name this deployment, so that one made for another system is refused".into(),
            )
        })?;
        let max_lifetime_ms = i64::try_from(config.max_token_lifetime.get().as_millis())
            .ok()
            .filter(|&ms| ms > 0)
            .ok_or_else(|| AuthConfigError(format!("max_token_lifetime `{}` is not a positive duration", config.max_token_lifetime)))?;
        let default = if config.secret_file.is_some() || config.public_key_file.is_some() {
            Some(verification(config, &config.algorithm, config.secret_file.as_ref(), config.public_key_file.as_ref(), audience)?)
        } else {
            None
        };
        let mut by_kid = HashMap::new();
        for k in &config.keys {
            let v = verification(config, &k.algorithm, k.secret_file.as_ref(), k.public_key_file.as_ref(), audience)
                .map_err(|e| AuthConfigError(format!("keys `{}`: {}", k.kid, e.0)))?;
            if by_kid.insert(k.kid.clone(), v).is_some() {
                return Err(AuthConfigError(format!("keys: kid `{}` appears twice", k.kid)));
            }
        }
        if default.is_none() && by_kid.is_empty() {
            return Err(AuthConfigError("no verification key: set secret_file or public_key_file, or [[grpc.auth.keys]]".into()));
        }
        Ok(Authenticator { default, by_kid, max_lifetime_secs: (max_lifetime_ms / 1000) as u64 })
    }

    /// The caller of a request, from its `authorization: Bearer …` header.
    pub fn authenticate<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .ok_or_else(|| unauthenticated("TOKEN_MISSING", "no `authorization: Bearer <token>` header"))?;
        let text = header.to_str().map_err(|_| unauthenticated("TOKEN_MALFORMED", "the authorization header is not ASCII"))?;
        let token = text
            .strip_prefix("Bearer ")
            .or_else(|| text.strip_prefix("bearer "))
            .ok_or_else(|| unauthenticated("TOKEN_MALFORMED", "the authorization header must be `Bearer <token>`"))?;
        self.verify(token.trim())
    }

    /// The caller a token stands for, at the current time.
    pub fn verify(&self, token: &str) -> Result<Caller, Status> {
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_secs());
        self.verify_at(token, now)
    }

    /// The caller a token stands for, checked at `now_secs` (signature, issuer,
    /// audience, `exp` and `nbf` by the library; `iat` and the lifetime here).
    pub fn verify_at(&self, token: &str, now_secs: u64) -> Result<Caller, Status> {
        use jsonwebtoken::errors::ErrorKind;
        let header = jsonwebtoken::decode_header(token)
            .map_err(|e| unauthenticated("TOKEN_MALFORMED", format!("the token's header cannot be read: {e}")))?;
        let (key, validation) = match &header.kid {
            Some(kid) => self
                .by_kid
                .get(kid)
                .ok_or_else(|| unauthenticated("TOKEN_UNKNOWN_KEY", format!("no verification key has kid `{}`", kid.escape_debug())))?,
            None => self
                .default
                .as_ref()
                .ok_or_else(|| unauthenticated("TOKEN_UNKNOWN_KEY", "the token names no `kid` and no default key is configured"))?,
        };
        let data = jsonwebtoken::decode::<Claims>(token, key, validation).map_err(|e| {
            let (reason, message) = match e.kind() {
                ErrorKind::ExpiredSignature => ("TOKEN_EXPIRED", "the token has expired".to_owned()),
                ErrorKind::ImmatureSignature => ("TOKEN_NOT_YET_VALID", "the token is not valid yet (nbf)".to_owned()),
                ErrorKind::InvalidIssuer => ("TOKEN_WRONG_ISSUER", "the token was issued by another issuer".to_owned()),
                ErrorKind::InvalidAudience => ("TOKEN_WRONG_AUDIENCE", "the token is for another audience".to_owned()),
                ErrorKind::InvalidSignature | ErrorKind::InvalidAlgorithm => {
                    ("TOKEN_BAD_SIGNATURE", "the token's signature does not verify with the configured key".to_owned())
                }
                ErrorKind::MissingRequiredClaim(c) => ("TOKEN_MALFORMED", format!("the token has no `{c}` claim")),
                ErrorKind::Json(err) => ("TOKEN_MALFORMED", format!("the token's claims are not valid: {err}")),
                other => ("TOKEN_MALFORMED", format!("the token cannot be read: {other:?}")),
            };
            unauthenticated(reason, message)
        })?;
        let claims = data.claims;
        if claims.iat == 0 {
            return Err(unauthenticated("TOKEN_MALFORMED", "the token has no `iat` claim: its lifetime cannot be checked"));
        }
        if claims.iat > now_secs + LEEWAY_SECS {
            return Err(unauthenticated("TOKEN_NOT_YET_VALID", "the token says it was issued in the future"));
        }
        if claims.exp.saturating_sub(claims.iat) > self.max_lifetime_secs {
            return Err(unauthenticated(
                "TOKEN_LIFETIME_TOO_LONG",
                format!("the token is valid for longer than the {} s this deployment allows; issue a shorter one", self.max_lifetime_secs),
            ));
        }
        let department = claims.department.filter(|d| !d.trim().is_empty());
        if claims.role == Role::Department && department.is_none() {
            return Err(unauthenticated("TOKEN_MALFORMED", "a DEPARTMENT token must carry a `department` claim"));
        }
        Ok(Caller { subject: claims.sub, role: claims.role, department })
    }
}

/// What a new token says.
#[derive(Clone, Debug)]
pub struct TokenRequest {
    /// Subject.
    pub subject: String,
    /// Role.
    pub role: Role,
    /// Department (DEPARTMENT tokens).
    pub department: Option<String>,
    /// Issuer.
    pub issuer: String,
    /// Audience.
    pub audience: Option<String>,
    /// Validity, seconds.
    pub ttl_secs: u64,
    /// The verification key's id (`kid` header), when keys rotate.
    pub kid: Option<String>,
}

/// Signs a token: HS256 with `key` as the shared secret, or EdDSA/RS256/ES256 with `key`
/// as a PEM private key.
pub fn mint(req: &TokenRequest, algorithm_name: &str, key: &[u8], now_secs: u64) -> Result<String, AuthConfigError> {
    let alg = algorithm(algorithm_name)?;
    let encoding = match alg {
        Algorithm::HS256 => EncodingKey::from_secret(key.trim_ascii()),
        Algorithm::EdDSA => EncodingKey::from_ed_pem(key).map_err(|e| AuthConfigError(e.to_string()))?,
        Algorithm::RS256 => EncodingKey::from_rsa_pem(key).map_err(|e| AuthConfigError(e.to_string()))?,
        _ => EncodingKey::from_ec_pem(key).map_err(|e| AuthConfigError(e.to_string()))?,
    };
    if req.role == Role::Department && req.department.is_none() {
        return Err(AuthConfigError("a DEPARTMENT token needs a department code".into()));
    }
    let claims = Claims {
        sub: req.subject.clone(),
        iss: req.issuer.clone(),
        exp: now_secs + req.ttl_secs,
        iat: now_secs,
        nbf: Some(now_secs),
        aud: req.audience.clone(),
        role: req.role,
        department: req.department.clone(),
    };
    let mut header = Header::new(alg);
    header.kid = req.kid.clone();
    jsonwebtoken::encode(&header, &claims, &encoding).map_err(|e| AuthConfigError(e.to_string()))
}

/// A client-side interceptor that sends `authorization: Bearer <token>` on every call
/// (nothing when the token is None), for tools and tests that call the services.
#[derive(Clone, Debug)]
pub struct Bearer(pub Option<String>);

impl tonic::service::Interceptor for Bearer {
    fn call(&mut self, mut req: Request<()>) -> Result<Request<()>, Status> {
        if let Some(t) = &self.0 {
            let value =
                format!("Bearer {}", t.trim()).parse().map_err(|_| Status::invalid_argument("the token is not valid header text"))?;
            req.metadata_mut().insert("authorization", value);
        }
        Ok(req)
    }
}

/// The caller put in a request's extensions by the interceptor.
pub fn caller<T>(request: &Request<T>) -> Result<Caller, Status> {
    request.extensions().get::<Caller>().cloned().ok_or_else(|| unauthenticated("TOKEN_MISSING", "the request was not authenticated"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::VerificationKey;

    const AUDIENCE: &str = "jiancha-test";

    fn write_secret(name: &str, secret: &[u8]) -> std::path::PathBuf {
        let dir = std::env::temp_dir().join(format!("jiancha-auth-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(name), secret).unwrap();
        dir.join(name)
    }

    fn setup() -> (Authenticator, Vec<u8>, AuthConfig) {
        let secret = b"0123456789abcdef0123456789abcdef-test".to_vec();
        let config =
            AuthConfig { secret_file: Some(write_secret("secret", &secret)), audience: Some(AUDIENCE.into()), ..AuthConfig::default() };
        (Authenticator::from_config(&config).unwrap(), secret, config)
    }

    fn now() -> u64 {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs()
    }

    fn req(role: Role, department: Option<&str>) -> TokenRequest {
        TokenRequest {
            subject: "t".into(),
            role,
            department: department.map(Into::into),
            issuer: "jiancha".into(),
            audience: Some(AUDIENCE.into()),
            ttl_secs: 600,
            kid: None,
        }
    }

    fn reason(status: &Status) -> String {
        status.get_details_error_info().map(|i| i.reason).unwrap_or_default()
    }

    #[test]
    fn tokens_round_trip_and_failures_are_named() {
        let (auth, secret, _) = setup();
        let token = mint(&req(Role::Department, Some("SCJG")), "HS256", &secret, now()).unwrap();
        let caller = auth.verify(&token).unwrap();
        assert_eq!(caller.role, Role::Department);
        assert_eq!(caller.department.as_deref(), Some("SCJG"));

        let expired = mint(&req(Role::Inspector, None), "HS256", &secret, now() - 3600).unwrap();
        let err = auth.verify(&expired).unwrap_err();
        assert_eq!(err.code(), Code::Unauthenticated);
        assert_eq!(reason(&err), "TOKEN_EXPIRED");

        let forged = mint(&req(Role::Inspector, None), "HS256", b"another-secret-another-secret-another", now()).unwrap();
        assert_eq!(reason(&auth.verify(&forged).unwrap_err()), "TOKEN_BAD_SIGNATURE");

        let mut other = req(Role::Inspector, None);
        other.issuer = "elsewhere".into();
        let wrong_issuer = mint(&other, "HS256", &secret, now()).unwrap();
        assert_eq!(reason(&auth.verify(&wrong_issuer).unwrap_err()), "TOKEN_WRONG_ISSUER");
        assert_eq!(reason(&auth.verify("not a token").unwrap_err()), "TOKEN_MALFORMED");
        assert!(mint(&req(Role::Department, None), "HS256", &secret, now()).is_err());
    }

    #[test]
    fn audience_nbf_and_lifetime_are_checked() {
        let (auth, secret, config) = setup();
        // Another system's token, or one naming no audience.
        let mut other = req(Role::Inspector, None);
        other.audience = Some("another-system".into());
        assert_eq!(reason(&auth.verify(&mint(&other, "HS256", &secret, now()).unwrap()).unwrap_err()), "TOKEN_WRONG_AUDIENCE");
        other.audience = None;
        assert_eq!(reason(&auth.verify(&mint(&other, "HS256", &secret, now()).unwrap()).unwrap_err()), "TOKEN_MALFORMED");
        // Issued (nbf) an hour from now.
        let later = mint(&req(Role::Inspector, None), "HS256", &secret, now() + 3600).unwrap();
        let err = auth.verify(&later).unwrap_err();
        assert!(["TOKEN_NOT_YET_VALID"].contains(&reason(&err).as_str()), "{err:?}");
        // Valid for a year: longer than the 30 days allowed.
        let mut long = req(Role::Inspector, None);
        long.ttl_secs = 365 * 86_400;
        assert_eq!(reason(&auth.verify(&mint(&long, "HS256", &secret, now()).unwrap()).unwrap_err()), "TOKEN_LIFETIME_TOO_LONG");
        // No audience configured: refused at start.
        let open = AuthConfig { audience: None, ..config };
        assert!(Authenticator::from_config(&open).unwrap_err().to_string().contains("audience"));
    }

    #[test]
    fn keys_rotate_by_kid() {
        let old = b"old-secret-old-secret-old-secret-old".to_vec();
        let new = b"new-secret-new-secret-new-secret-new".to_vec();
        let key = |kid: &str, file| VerificationKey {
            kid: kid.into(),
            algorithm: "HS256".into(),
            secret_file: Some(file),
            public_key_file: None,
        };
        let config = AuthConfig {
            audience: Some(AUDIENCE.into()),
            keys: vec![key("2026-11", write_secret("old", &old)), key("2026-12", write_secret("new", &new))],
            ..AuthConfig::default()
        };
        let auth = Authenticator::from_config(&config).unwrap();
        for (kid, secret) in [("2026-11", &old), ("2026-12", &new)] {
            let mut r = req(Role::Auditor, None);
            r.kid = Some(kid.into());
            assert_eq!(auth.verify(&mint(&r, "HS256", secret, now()).unwrap()).unwrap().role, Role::Auditor, "{kid}");
        }
        // Signed with the old secret but claiming the new kid; an unknown kid; no kid.
        let mut r = req(Role::Auditor, None);
        r.kid = Some("2026-12".into());
        assert_eq!(reason(&auth.verify(&mint(&r, "HS256", &old, now()).unwrap()).unwrap_err()), "TOKEN_BAD_SIGNATURE");
        r.kid = Some("2025-01".into());
        assert_eq!(reason(&auth.verify(&mint(&r, "HS256", &old, now()).unwrap()).unwrap_err()), "TOKEN_UNKNOWN_KEY");
        r.kid = None;
        assert_eq!(reason(&auth.verify(&mint(&r, "HS256", &old, now()).unwrap()).unwrap_err()), "TOKEN_UNKNOWN_KEY");
    }

    #[test]
    fn roles_and_departments_are_enforced() {
        let dept = Caller { subject: "s".into(), role: Role::Department, department: Some("A".into()) };
        assert!(dept.check_department("item X", "A").is_ok());
        let err = dept.check_department("item X", "B").unwrap_err();
        assert_eq!(err.code(), Code::PermissionDenied);
        assert_eq!(reason(&err), "OTHER_DEPARTMENT");
        let err = dept.require("ReplaceCatalog", &[Role::Operator]).unwrap_err();
        assert_eq!(reason(&err), "ROLE_NOT_ALLOWED");
        let inspector = Caller { subject: "i".into(), role: Role::Inspector, department: None };
        assert!(inspector.check_department("item X", "B").is_ok());
    }
}
