//! Who is logged in: sessions kept in memory behind a random id in an HttpOnly,
//! SameSite=Strict cookie; a CSRF token per session that every change must carry; idle
//! and absolute expiry; one-time login links for the local set-up.

use dashmap::DashMap;
use jiancha_platform::auth::Role;
use serde::{Deserialize, Serialize};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The session cookie's name.
pub const COOKIE: &str = "jiancha_session";

/// The audience of login-link tokens: a gRPC token is never a login link, nor the reverse.
pub const LINK_AUDIENCE: &str = "jiancha-console-login";

/// How long a login link is valid.
pub const LINK_TTL_SECS: u64 = 15 * 60;

/// A logged-in user: what the services are told on their behalf.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct User {
    /// Their id at the identity provider (the token subject, the audit log's `who`).
    pub subject: String,
    /// The name shown.
    pub name: String,
    /// DOMAIN §6 role.
    pub role: Role,
    /// For DEPARTMENT users.
    pub department: Option<String>,
}

impl User {
    /// A department user's department: everything they see is limited to it.
    pub fn scope(&self) -> Option<&str> {
        match self.role {
            Role::Department => self.department.as_deref(),
            _ => None,
        }
    }
}

/// One session.
#[derive(Debug)]
pub struct Session {
    /// The user.
    pub user: User,
    /// The CSRF token forms carry.
    pub csrf: String,
    created: Instant,
    last_seen: Instant,
}

/// Random hex of `bytes` bytes.
pub fn random_hex(bytes: usize) -> String {
    let mut b = vec![0u8; bytes];
    // getrandom fails only without an OS random source; a session id must then not exist.
    if getrandom::fill(&mut b).is_err() {
        panic!("no operating system random source");
    }
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// Every session, and the login links already used.
#[derive(Debug)]
pub struct Sessions {
    map: DashMap<String, Session>,
    used_links: DashMap<String, u64>,
    idle: Duration,
    max: Duration,
}

impl Sessions {
    /// Sessions ending after `idle` unused or `max` after login.
    pub fn new(idle: Duration, max: Duration) -> Arc<Sessions> {
        Arc::new(Sessions { map: DashMap::new(), used_links: DashMap::new(), idle, max })
    }

    /// Opens a session for `user`: its id (the cookie's value).
    pub fn open(&self, user: User) -> String {
        let id = random_hex(32);
        let now = Instant::now();
        self.map.insert(id.clone(), Session { user, csrf: random_hex(16), created: now, last_seen: now });
        metrics::gauge!(crate::SESSIONS).set(self.map.len() as f64);
        id
    }

    /// The session's user and CSRF token, marking it used; None when unknown or expired.
    pub fn touch(&self, id: &str) -> Option<(User, String)> {
        let now = Instant::now();
        let mut s = self.map.get_mut(id)?;
        if now.duration_since(s.last_seen) > self.idle || now.duration_since(s.created) > self.max {
            drop(s);
            self.map.remove(id);
            return None;
        }
        s.last_seen = now;
        Some((s.user.clone(), s.csrf.clone()))
    }

    /// Ends a session.
    pub fn close(&self, id: &str) {
        self.map.remove(id);
        metrics::gauge!(crate::SESSIONS).set(self.map.len() as f64);
    }

    /// Drops expired sessions and the memory of expired links.
    pub fn sweep(&self, now_secs: u64) {
        let now = Instant::now();
        self.map.retain(|_, s| now.duration_since(s.last_seen) <= self.idle && now.duration_since(s.created) <= self.max);
        self.used_links.retain(|_, exp| *exp > now_secs);
        metrics::gauge!(crate::SESSIONS).set(self.map.len() as f64);
    }

    /// Records a login link's id as used: false when it was used before.
    pub fn use_link(&self, jti: &str, exp: u64) -> bool {
        self.used_links.insert(jti.to_owned(), exp).is_none()
    }

    /// Sessions open.
    pub fn len(&self) -> usize {
        self.map.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }
}

/// The claims of a one-time login link.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct LinkClaims {
    /// The link's id: used once.
    pub jti: String,
    /// The user's id.
    pub sub: String,
    /// Issuer.
    pub iss: String,
    /// Audience ([`LINK_AUDIENCE`]).
    pub aud: String,
    /// Expiry.
    pub exp: u64,
    /// Issued at.
    pub iat: u64,
    /// Role.
    pub role: Role,
    /// Department, for DEPARTMENT users.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub department: Option<String>,
}

/// Signs a login link's token (HS256 with `secret`), valid [`LINK_TTL_SECS`].
pub fn link_token(secret: &[u8], role: Role, department: Option<&str>, now_secs: u64) -> Result<String, String> {
    if role == Role::Department && department.is_none() {
        return Err("a DEPARTMENT login needs --department CODE".into());
    }
    let subject = match (role, department) {
        (Role::Department, Some(d)) => format!("local-department-{d}"),
        _ => format!("local-{}", role.as_str().to_ascii_lowercase()),
    };
    let claims = LinkClaims {
        jti: random_hex(16),
        sub: subject,
        iss: "jiancha-console".into(),
        aud: LINK_AUDIENCE.into(),
        exp: now_secs + LINK_TTL_SECS,
        iat: now_secs,
        role,
        department: department.map(str::to_owned),
    };
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret.trim_ascii()),
    )
    .map_err(|e| e.to_string())
}

/// Checks a login link's token: signature, audience, expiry (no leeway).
pub fn verify_link(secret: &[u8], token: &str) -> Result<LinkClaims, String> {
    let mut v = jsonwebtoken::Validation::new(jsonwebtoken::Algorithm::HS256);
    v.set_audience(&[LINK_AUDIENCE]);
    v.set_issuer(&["jiancha-console"]);
    v.leeway = 0;
    v.set_required_spec_claims(&["exp", "aud", "iss", "sub"]);
    jsonwebtoken::decode::<LinkClaims>(token, &jsonwebtoken::DecodingKey::from_secret(secret.trim_ascii()), &v)
        .map(|d| d.claims)
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_verify_once_signed_and_for_the_console_only() {
        let secret = b"0123456789abcdef0123456789abcdef";
        let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs();
        let t = link_token(secret, Role::Department, Some("SCJG"), now).unwrap();
        let c = verify_link(secret, &t).unwrap();
        assert_eq!((c.role, c.department.as_deref()), (Role::Department, Some("SCJG")));
        assert!(verify_link(b"another secret another secret 12", &t).is_err());
        let old = link_token(secret, Role::Inspector, None, now - LINK_TTL_SECS - 5).unwrap();
        assert!(verify_link(secret, &old).is_err());
        let sessions = Sessions::new(Duration::from_secs(60), Duration::from_secs(600));
        assert!(sessions.use_link(&c.jti, c.exp));
        assert!(!sessions.use_link(&c.jti, c.exp));
        assert!(link_token(secret, Role::Department, None, now).is_err());
    }

    #[test]
    fn sessions_expire_when_idle() {
        let sessions = Sessions::new(Duration::from_millis(30), Duration::from_secs(600));
        let user = User { subject: "wang".into(), name: "王".into(), role: Role::Inspector, department: None };
        let id = sessions.open(user.clone());
        assert_eq!(sessions.touch(&id).map(|(u, _)| u), Some(user));
        std::thread::sleep(Duration::from_millis(50));
        assert!(sessions.touch(&id).is_none());
        assert!(sessions.touch("nonexistent").is_none());
    }
}
