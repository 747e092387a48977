//! Local set-up for `jiancha up` and tests: a private CA, a server certificate for
//! localhost signed by it, a client certificate for mutual TLS, an HS256 secret, and a
//! token for each role — written under one directory, so that `grpcurl` can follow
//! the README with TLS and tokens exactly as in production.

use crate::auth::{Role, TokenRequest, mint};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

/// The audience of the local set-up's tokens.
pub const LOCAL_AUDIENCE: &str = "jiancha-local";

/// What [`prepare`] wrote.
#[derive(Clone, Debug)]
pub struct LocalSetup {
    /// The CA certificate clients trust (`grpcurl -cacert`).
    pub ca_cert: PathBuf,
    /// The server's certificate and key.
    pub server_cert: PathBuf,
    /// The server's private key.
    pub server_key: PathBuf,
    /// A department system's client certificate and key (mutual TLS).
    pub client_cert: PathBuf,
    /// Its key.
    pub client_key: PathBuf,
    /// The HS256 secret.
    pub secret_file: PathBuf,
    /// One token file per role: (role, department, file).
    pub tokens: Vec<(Role, Option<String>, PathBuf)>,
}

impl LocalSetup {
    /// Points `config` at this set-up: TLS with its server certificate and client CA,
    /// HS256 tokens with its secret and audience.
    pub fn apply(&self, config: &mut crate::Config) {
        let g = &mut config.grpc;
        g.tls_cert = Some(self.server_cert.clone());
        g.tls_key = Some(self.server_key.clone());
        g.client_ca = Some(self.ca_cert.clone());
        g.auth.secret_file = Some(self.secret_file.clone());
        g.auth.public_key_file = None;
        g.auth.algorithm = "HS256".into();
        g.auth.audience = Some(LOCAL_AUDIENCE.to_owned());
    }
}

/// Writes a CA, certificates, a secret and tokens (valid `ttl_secs`) under `dir`.
/// DEPARTMENT tokens are made for each of `departments`.
pub fn prepare(dir: &Path, issuer: &str, departments: &[&str], ttl_secs: u64) -> Result<LocalSetup, String> {
    fn err(what: &'static str) -> impl Fn(rcgen::Error) -> String {
        move |e| format!("{what}: {e}")
    }
    let tls = dir.join("tls");
    let tokens_dir = dir.join("tokens");
    for d in [dir, &tls, &tokens_dir] {
        crate::files::private_dir(d).map_err(|e| format!("creating {}: {e}", d.display()))?;
    }
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).map_err(err("CA parameters"))?;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.distinguished_name.push(DnType::CommonName, "jiancha local CA");
    ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().map_err(err("CA key"))?).map_err(err("CA certificate"))?;

    let server_key = KeyPair::generate().map_err(err("server key"))?;
    let mut server_params = CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()]).map_err(err("server names"))?;
    server_params.distinguished_name.push(DnType::CommonName, "jiancha gateway");
    let server = server_params.signed_by(&server_key, &ca).map_err(err("server certificate"))?;

    let client_key = KeyPair::generate().map_err(err("client key"))?;
    let mut client_params = CertificateParams::new(Vec::<String>::new()).map_err(err("client parameters"))?;
    client_params.distinguished_name.push(DnType::CommonName, departments.first().copied().unwrap_or("department"));
    let client = client_params.signed_by(&client_key, &ca).map_err(err("client certificate"))?;

    let mut random = [0u8; 32];
    getrandom::fill(&mut random).map_err(|e| format!("random secret: {e}"))?;
    let secret: String = random.iter().map(|b| format!("{b:02x}")).collect();
    // Keys, the secret and tokens are the owner's alone (0600 in 0700 folders); the
    // certificates are public but live beside them.
    let write = |path: PathBuf, text: &str| -> Result<PathBuf, String> {
        crate::files::write_private(&path, text.as_bytes()).map_err(|e| format!("writing {}: {e}", path.display()))?;
        Ok(path)
    };
    let setup = LocalSetup {
        ca_cert: write(tls.join("ca.pem"), &ca.pem())?,
        server_cert: write(tls.join("server.pem"), &server.pem())?,
        server_key: write(tls.join("server.key"), &server_key.serialize_pem())?,
        client_cert: write(tls.join("client.pem"), &client.pem())?,
        client_key: write(tls.join("client.key"), &client_key.serialize_pem())?,
        secret_file: write(dir.join("jwt.secret"), &secret)?,
        tokens: Vec::new(),
    };
    let now = SystemTime::now().duration_since(SystemTime::UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let mut tokens = Vec::new();
    let mut wanted: Vec<(Role, Option<String>)> =
        vec![(Role::Inspector, None), (Role::Operator, None), (Role::Auditor, None), (Role::Intake, None)];
    wanted.extend(departments.iter().map(|d| (Role::Department, Some((*d).to_owned()))));
    for (role, department) in wanted {
        let name = match &department {
            Some(d) => format!("department-{d}.jwt"),
            None => format!("{}.jwt", role.as_str().to_ascii_lowercase()),
        };
        let subject = match &department {
            Some(d) => format!("system:{d}"),
            None => format!("local-{}", role.as_str().to_ascii_lowercase()),
        };
        let req = TokenRequest {
            subject,
            role,
            department: department.clone(),
            issuer: issuer.to_owned(),
            audience: Some(LOCAL_AUDIENCE.to_owned()),
            ttl_secs,
            kid: None,
        };
        let token = mint(&req, "HS256", secret.as_bytes(), now).map_err(|e| e.to_string())?;
        tokens.push((role, department, write(tokens_dir.join(name), &token)?));
    }
    Ok(LocalSetup { tokens, ..setup })
}
