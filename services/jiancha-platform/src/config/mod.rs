//! The monitor's configuration, in layers: built-in defaults, then a TOML file
//! (`--config`), then `JIANCHA_*` environment variables, then command-line flags.

mod layers;
mod reference;
mod span;

pub use layers::{EnvVar, Key, SECRET_PROPERTY_WORDS};

pub use span::{DURATION_RULE, TimeSpan};

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;
use std::time::Duration;

/// Topic names.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Topics {
    /// Approval events in (key = item_id) from trusted writers only: the gRPC gateway,
    /// which takes the department from the caller's token, and operators' tools.
    pub events: String,
    /// Per-department input topics are `{department_prefix}{CODE}{department_suffix}`
    /// (`jiancha.dept.SCJG.events`): a department system writes only its own (a
    /// prefixed ACL on `jiancha.dept.SCJG.`), and the monitor dead-letters a record whose
    /// `department_code` is not the topic's (DEPARTMENT_MISMATCH).
    pub department_prefix: String,
    /// See `department_prefix`.
    pub department_suffix: String,
    /// Alert updates out (key = alert_id).
    pub alerts: String,
    /// Invalid records, byte for byte, with the reason in headers.
    pub dead_letter: String,
    /// Alert records the accountability service cannot read or trust, byte for byte,
    /// with the reason in headers (the same headers as `dead_letter`).
    pub alerts_dead_letter: String,
    /// The compacted changelog of item states (key = item_id).
    pub state: String,
}

impl Default for Topics {
    fn default() -> Self {
        Topics {
            events: "jiancha.events".into(),
            department_prefix: "jiancha.dept.".into(),
            department_suffix: ".events".into(),
            alerts: "jiancha.alerts".into(),
            dead_letter: "jiancha.events.dlq".into(),
            alerts_dead_letter: "jiancha.alerts.dlq".into(),
            state: "jiancha.monitor.state".into(),
        }
    }
}

/// Characters a department code may have to name an input topic (Kafka allows
/// `[A-Za-z0-9._-]`; the dot is kept out so that prefixed ACLs cannot overlap).
pub fn topic_safe_code(code: &str) -> bool {
    !code.is_empty() && code.len() <= 64 && code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

impl Topics {
    /// The input topic of a department, when its code can name a topic.
    pub fn department_topic(&self, department_code: &str) -> Option<String> {
        topic_safe_code(department_code).then(|| format!("{}{department_code}{}", self.department_prefix, self.department_suffix))
    }

    /// The department whose input topic this is.
    pub fn department_of_topic<'a>(&self, topic: &'a str) -> Option<&'a str> {
        let code = topic.strip_prefix(self.department_prefix.as_str())?.strip_suffix(self.department_suffix.as_str())?;
        topic_safe_code(code).then_some(code)
    }

    /// The subscription pattern of every department's input topic (librdkafka: a
    /// leading `^` makes it a regular expression).
    pub fn department_pattern(&self) -> String {
        format!("^{}[A-Za-z0-9_-]+{}$", regex_escape(&self.department_prefix), regex_escape(&self.department_suffix))
    }

    /// Every topic jiancha uses, with the input topics of `departments`.
    pub fn all(&self, departments: &[String]) -> Vec<String> {
        let mut names =
            vec![self.events.clone(), self.alerts.clone(), self.dead_letter.clone(), self.alerts_dead_letter.clone(), self.state.clone()];
        names.extend(departments.iter().filter_map(|d| self.department_topic(d)));
        names
    }

    /// Whether records of this topic carry events.
    pub fn is_event_topic(&self, topic: &str) -> bool {
        topic == self.events || self.department_of_topic(topic).is_some()
    }
}

fn regex_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() * 2);
    for c in text.chars() {
        if !c.is_ascii_alphanumeric() && c != '_' {
            out.push('\\');
        }
        out.push(c);
    }
    out
}

/// A value of the `[kafka]` table: librdkafka takes every property as text.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(untagged)]
pub enum KafkaValue {
    /// `"SASL_SSL"`.
    Text(String),
    /// `30000`.
    Integer(i64),
    /// `true`.
    Flag(bool),
}

impl std::fmt::Display for KafkaValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KafkaValue::Text(t) => f.write_str(t),
            KafkaValue::Integer(n) => write!(f, "{n}"),
            KafkaValue::Flag(b) => write!(f, "{b}"),
        }
    }
}

/// How callers prove who they are (DOMAIN §6 roles in signed JWT bearer tokens).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AuthConfig {
    /// The `iss` every token must carry.
    pub issuer: String,
    /// The `aud` every token must carry: this deployment's name, so that a token made
    /// for another system is refused. Required.
    pub audience: Option<String>,
    /// HS256, EdDSA, RS256 or ES256: the key used for tokens without a `kid`.
    pub algorithm: String,
    /// HS256: a file holding the shared secret (at least 32 bytes).
    pub secret_file: Option<PathBuf>,
    /// EdDSA, RS256, ES256: the issuer's public key (PEM).
    pub public_key_file: Option<PathBuf>,
    /// More verification keys, chosen by a token's `kid` header: during a rotation the
    /// old and the new key are both here.
    pub keys: Vec<VerificationKey>,
    /// The longest a token may be valid (`exp` − `iat`), so that a leaked token does not
    /// work for ever ("30d").
    pub max_token_lifetime: TimeSpan,
}

/// One verification key of a rotation, named by the `kid` tokens carry.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct VerificationKey {
    /// The key id (`kid` header).
    pub kid: String,
    /// HS256, EdDSA, RS256 or ES256.
    pub algorithm: String,
    /// HS256: the shared secret's file.
    pub secret_file: Option<PathBuf>,
    /// EdDSA, RS256, ES256: the public key (PEM).
    pub public_key_file: Option<PathBuf>,
}

impl Default for AuthConfig {
    fn default() -> Self {
        AuthConfig {
            issuer: "jiancha".into(),
            audience: None,
            algorithm: "HS256".into(),
            secret_file: None,
            public_key_file: None,
            keys: Vec::new(),
            max_token_lifetime: TimeSpan::days(30),
        }
    }
}

/// The gRPC gateway (ingest, monitor queries, live alerts, catalog).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct GrpcConfig {
    /// Listen address.
    pub listen: String,
    /// Server certificate chain (PEM).
    pub tls_cert: Option<PathBuf>,
    /// Server private key (PEM).
    pub tls_key: Option<PathBuf>,
    /// CA of department systems' client certificates (mutual TLS), when set.
    pub client_ca: Option<PathBuf>,
    /// With `client_ca`: refuse connections without a client certificate.
    pub require_client_cert: bool,
    /// Serve without TLS. For local use only; the log warns.
    pub plaintext: bool,
    /// Tokens.
    pub auth: AuthConfig,
    /// Largest request message, bytes.
    pub max_message_bytes: usize,
    /// Events per second one caller may submit (token bucket; streams are slowed down,
    /// single submits refused with RESOURCE_EXHAUSTED).
    pub rate_per_caller: f64,
    /// Events one caller may submit at once above the rate.
    pub burst_per_caller: f64,
    /// Live alert streams one caller may hold.
    pub watchers_per_caller: usize,
    /// Alert updates kept in memory for resuming streams; older cursors are served from the topic.
    pub watch_buffer: usize,
    /// Longest time a request may take when the client sets no deadline ("30s").
    pub request_timeout: TimeSpan,
    /// Events one SubmitStream may carry; past that the stream ends with the results so
    /// far and `truncated` set (the answer lists every event, so it must stay bounded).
    pub max_stream_events: u64,
    /// Connections held open at once; more are closed at once (and counted).
    pub max_connections: usize,
    /// How long a client has to finish the TLS handshake ("10s").
    pub tls_handshake_timeout: TimeSpan,
    /// A DEPARTMENT token is honoured only over a connection whose client certificate
    /// names the same department (its Common Name or a DNS name): a stolen token is
    /// useless without the department's key. Needs `client_ca`.
    pub bind_client_certificate: bool,
}

impl Default for GrpcConfig {
    fn default() -> Self {
        GrpcConfig {
            listen: "127.0.0.1:50051".into(),
            tls_cert: None,
            tls_key: None,
            client_ca: None,
            require_client_cert: false,
            plaintext: false,
            auth: AuthConfig::default(),
            max_message_bytes: 4 << 20,
            rate_per_caller: 5000.0,
            burst_per_caller: 10000.0,
            watchers_per_caller: 32,
            watch_buffer: 100_000,
            request_timeout: TimeSpan::secs(30),
            max_stream_events: 100_000,
            max_connections: 10_000,
            tls_handshake_timeout: TimeSpan::secs(10),
            bind_client_certificate: false,
        }
    }
}

impl GrpcConfig {
    /// `request_timeout` as a duration.
    pub fn timeout(&self) -> Duration {
        self.request_timeout.get()
    }

    /// `tls_handshake_timeout` as a duration.
    pub fn handshake_timeout(&self) -> Duration {
        self.tls_handshake_timeout.get()
    }
}

/// The score of DOMAIN §7: points taken off per 100 items decided.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ScoreWeights {
    /// The score with nothing taken off.
    pub base: f64,
    /// Per STEP_OVERDUE alert.
    pub step_overdue: f64,
    /// Per YELLOW alert.
    pub yellow: f64,
    /// Per RED alert.
    pub red: f64,
    /// Per repeat-offender mark.
    pub repeat_offender: f64,
}

impl Default for ScoreWeights {
    fn default() -> Self {
        ScoreWeights { base: 100.0, step_overdue: 1.0, yellow: 2.0, red: 5.0, repeat_offender: 10.0 }
    }
}

/// The escalation chain of DOMAIN §6, counted in working days of the service's calendar
/// (the start day not counted) from when the answer became due: the alert's publication,
/// a send-back, a complaint's filing or acceptance.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EscalationChain {
    /// 催办: a reminder after this many working days without a reply.
    pub remind_days: u32,
    /// 督办: a YELLOW case becomes RED (every case is flagged ESCALATED).
    pub supervise_days: u32,
    /// 通报: the case is marked for the next published report.
    pub publicize_days: u32,
    /// A complaint not accepted or rejected within this many working days is escalated
    /// (督办 of the inspection office); 催办 and 通报 as for cases.
    pub complaint_acceptance_days: u32,
}

impl Default for EscalationChain {
    fn default() -> Self {
        EscalationChain { remind_days: 3, supervise_days: 5, publicize_days: 10, complaint_acceptance_days: 5 }
    }
}

/// Where one party is notified.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Contacts {
    /// E-mail addresses.
    pub email: Vec<String>,
    /// Mobile numbers (through the SMS gateway).
    pub sms: Vec<String>,
    /// Webhook URLs (signed; see `webhook_secret`).
    pub webhook: Vec<String>,
}

/// A department's contacts (`[[accountability.notifications.department]]`).
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct DepartmentContacts {
    /// Department code.
    pub code: String,
    /// E-mail addresses.
    pub email: Vec<String>,
    /// Mobile numbers.
    pub sms: Vec<String>,
    /// Webhook URLs.
    pub webhook: Vec<String>,
}

/// The SMTP server notifications are sent through.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmtpConfig {
    /// Host name.
    pub host: String,
    /// Port (25, 465 for `tls`, 587 for `starttls`).
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    pub tls: String,
    /// The sender (`监察平台 <jiancha@example.gov.cn>`).
    pub from: String,
    /// User name, when the server asks for one.
    pub username: Option<String>,
    /// File holding the password.
    pub password_file: Option<PathBuf>,
}

impl Default for SmtpConfig {
    fn default() -> Self {
        SmtpConfig {
            host: "localhost".into(),
            port: 25,
            tls: "none".into(),
            from: "jiancha <jiancha@localhost>".into(),
            username: None,
            password_file: None,
        }
    }
}

/// An SMS gateway spoken to over HTTP: a JSON POST of `{"to", "text", "idempotency_key"}`.
#[derive(Clone, Debug, Default, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct SmsConfig {
    /// The gateway's URL.
    pub url: String,
    /// File holding the bearer token, when the gateway asks for one.
    pub token_file: Option<PathBuf>,
}

/// Notifications (DOMAIN §6): each notifiable change of a case is written to an outbox
/// in its own transaction, then delivered to every contact of the department and of the
/// inspectors, each delivery with an idempotency key and retried with backoff.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct NotificationsConfig {
    /// The inspection office's contacts.
    pub inspectors: Contacts,
    /// Each department's contacts.
    pub department: Vec<DepartmentContacts>,
    /// File holding the secret of the webhooks' HMAC-SHA256 signature; webhooks are not
    /// sent without one.
    pub webhook_secret_file: Option<PathBuf>,
    /// E-mail; none sent without it.
    pub smtp: Option<SmtpConfig>,
    /// SMS gateway; none sent without it.
    pub sms: Option<SmsConfig>,
    /// How long one delivery attempt may take.
    pub timeout: TimeSpan,
    /// The first retry's delay; each next one doubles, up to `retry_max`.
    pub retry_initial: TimeSpan,
    /// The longest delay between retries.
    pub retry_max: TimeSpan,
    /// After this many failed attempts a delivery is given up (FAILED, visible on the case
    /// and in the metrics).
    pub max_attempts: u32,
    /// How often the outbox is read.
    pub poll_interval: TimeSpan,
}

impl Default for NotificationsConfig {
    fn default() -> Self {
        NotificationsConfig {
            inspectors: Contacts::default(),
            department: Vec::new(),
            webhook_secret_file: None,
            smtp: None,
            sms: None,
            timeout: TimeSpan::secs(10),
            retry_initial: TimeSpan::secs(5),
            retry_max: TimeSpan::secs(3600),
            max_attempts: 24,
            poll_interval: TimeSpan::secs(1),
        }
    }
}

/// Published reports (通报, DOMAIN §7).
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ReportsConfig {
    /// The issuing body printed on every report.
    pub issuing_body: String,
    /// The number's prefix: `监察绩效通报〔2026〕3号`.
    pub number_prefix: String,
}

impl Default for ReportsConfig {
    fn default() -> Self {
        ReportsConfig { issuing_body: "纪检监察机关".into(), number_prefix: "监察绩效通报".into() }
    }
}

/// The accountability queue and statistics.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct AccountabilityConfig {
    /// `postgres://user:password@host/db` or `sqlite://FILE`.
    pub database: String,
    /// gRPC listen address of AccountabilityService and StatsService (TLS and tokens as in `[grpc]`).
    pub listen: String,
    /// Consumer group.
    pub group_id: String,
    /// How often unreplied YELLOW cases are checked for 督办 escalation ("30s").
    pub escalation_interval: TimeSpan,
    /// Score weights.
    pub weights: ScoreWeights,
    /// The escalation chain (督查督办): working days without an answer before each step.
    pub chain: EscalationChain,
    /// Notifications to departments and inspectors (signed webhook, e-mail, SMS gateway).
    pub notifications: NotificationsConfig,
    /// Published reports (通报).
    pub reports: ReportsConfig,
    /// Requests per second one caller may make (token bucket); over it, RESOURCE_EXHAUSTED.
    pub requests_per_caller: f64,
    /// Requests one caller may make at once above the rate.
    pub burst_per_caller: f64,
}

impl Default for AccountabilityConfig {
    fn default() -> Self {
        AccountabilityConfig {
            database: "sqlite://jiancha-accountability.db".into(),
            listen: "127.0.0.1:50052".into(),
            group_id: "jiancha-accountability".into(),
            escalation_interval: TimeSpan::secs(30),
            weights: ScoreWeights::default(),
            chain: EscalationChain::default(),
            notifications: NotificationsConfig::default(),
            reports: ReportsConfig::default(),
            requests_per_caller: 50.0,
            burst_per_caller: 200.0,
        }
    }
}

impl AccountabilityConfig {
    /// `escalation_interval` as a duration.
    pub fn escalation(&self) -> Duration {
        self.escalation_interval.get()
    }
}

/// The inspector console (docs/console.md): a web server in front of the gRPC services.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct ConsoleConfig {
    /// Listen address of the pages.
    pub listen: String,
    /// The address users reach the console at (`https://jiancha.example.gov.cn`, TLS ended
    /// by the deployment's reverse proxy): the OpenID Connect redirect and printed links
    /// use it, and cookies are `Secure` when it is https. `http://LISTEN` when absent.
    pub public_url: Option<String>,
    /// The gateway (`https://gateway:50051`).
    pub gateway: String,
    /// The accountability service (`https://accountability:50052`).
    pub accountability: String,
    /// The CA the services' certificates are checked against; the system's when absent.
    pub services_ca: Option<PathBuf>,
    /// The name in the services' certificates, when it differs from the host in the URL.
    pub services_domain: Option<String>,
    /// How the console speaks for a logged-in user: it signs a short token with the
    /// user's role, department and name, which the services check like any other.
    /// HS256, EdDSA, RS256 or ES256.
    pub signing_algorithm: String,
    /// HS256: the shared secret file; else the private key (PEM) whose public key the
    /// services list in `grpc.auth.keys` under `signing_kid`.
    pub signing_key_file: Option<PathBuf>,
    /// The `kid` of the console's tokens.
    pub signing_kid: Option<String>,
    /// A session unused this long ends ("30m").
    pub idle_timeout: TimeSpan,
    /// A session ends this long after login, used or not ("12h").
    pub max_session: TimeSpan,
    /// One-time login links (`jiancha console login`): HS256 secret they are signed
    /// with. Absent: no login links (production logs in through OpenID Connect).
    pub login_link_secret_file: Option<PathBuf>,
    /// OpenID Connect login (政务统一身份认证).
    pub oidc: Option<OidcConfig>,
    /// Queries one address may make of the public progress page per minute.
    pub public_queries_per_minute: f64,
    /// Addresses of the reverse proxies in front of the console: for a request from one of
    /// them, the client's address is taken from `X-Forwarded-For` (the right-most address
    /// not itself a listed proxy), so that the public page's limit is per applicant and
    /// not per proxy. Empty: the connection's address.
    pub trusted_proxies: Vec<std::net::IpAddr>,
    /// The zone times are shown in.
    pub time_zone: String,
}

impl Default for ConsoleConfig {
    fn default() -> Self {
        ConsoleConfig {
            listen: "127.0.0.1:8080".into(),
            public_url: None,
            gateway: "https://127.0.0.1:50051".into(),
            accountability: "https://127.0.0.1:50052".into(),
            services_ca: None,
            services_domain: None,
            signing_algorithm: "HS256".into(),
            signing_key_file: None,
            signing_kid: None,
            idle_timeout: TimeSpan::mins(30),
            max_session: TimeSpan::hours(12),
            login_link_secret_file: None,
            oidc: None,
            public_queries_per_minute: 10.0,
            trusted_proxies: Vec::new(),
            time_zone: "Asia/Shanghai".into(),
        }
    }
}

/// OpenID Connect login: authorization code with PKCE against the deployment's identity
/// provider; the ID token's claims give the user's role and department.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OidcConfig {
    /// The issuer (`https://idp.example.gov.cn`); its discovery document is read from
    /// `ISSUER/.well-known/openid-configuration`.
    pub issuer: String,
    /// The console's client id at the provider.
    pub client_id: String,
    /// The client secret's file (confidential client); PKCE alone when absent.
    pub client_secret_file: Option<PathBuf>,
    /// Scopes asked for.
    pub scopes: String,
    /// The claim holding the role (a string or a list of strings).
    pub role_claim: String,
    /// The claim holding a DEPARTMENT user's department code.
    pub department_claim: String,
    /// The claim shown as the user's name (and recorded in the audit log).
    pub name_claim: String,
    /// Claim values → role (`"jjjc-inspectors" = "INSPECTOR"`); values not listed are
    /// taken as role names.
    pub roles: std::collections::BTreeMap<String, String>,
    /// The CA of the provider's certificate; the system's when absent.
    pub ca_file: Option<PathBuf>,
}

impl Default for OidcConfig {
    fn default() -> Self {
        OidcConfig {
            issuer: String::new(),
            client_id: "jiancha-console".into(),
            client_secret_file: None,
            scopes: "openid profile".into(),
            role_claim: "jiancha_role".into(),
            department_claim: "jiancha_department".into(),
            name_claim: "name".into(),
            roles: std::collections::BTreeMap::new(),
            ca_file: None,
        }
    }
}

/// Everything the monitor needs.
#[derive(Clone, Debug, Deserialize, Serialize, JsonSchema, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// Kafka bootstrap servers, `host:port[,host:port]`.
    pub kafka_bootstrap: String,
    /// librdkafka properties applied to every Kafka client of every role (TLS, SASL,
    /// timeouts): `"security.protocol" = "SASL_SSL"`. Secrets can come from the
    /// environment instead: `JIANCHA_KAFKA_PROP_SASL_PASSWORD` sets `sasl.password`.
    pub kafka: std::collections::BTreeMap<String, KafkaValue>,
    /// Consumer group of the monitors.
    pub group_id: String,
    /// Topic names.
    pub topics: Topics,
    /// Partitions of topics the monitor creates when absent.
    pub partitions: i32,
    /// Replication factor of topics it creates.
    pub replication: i32,
    /// The catalog file; the demo catalog when absent.
    pub catalog: Option<PathBuf>,
    /// Extra calendar files.
    pub calendars: Vec<PathBuf>,
    /// A directory whose `*.toml` files are calendars too; the gateway's ReplaceCalendar
    /// writes a calendar that no listed file holds there.
    pub calendar_dir: Option<PathBuf>,
    /// How often the catalog and calendar files are checked for changes ("5s").
    pub reload_interval: TimeSpan,
    /// Timers fire this long after their deadline on the wall clock ("0s").
    pub timer_grace: TimeSpan,
    /// A partition whose lag exceeds this many records is catching up: its clock is
    /// the timestamp of the records it consumes.
    pub catch_up_lag: i64,
    /// Records larger than this go to the dead-letter topic (bytes).
    pub max_record_bytes: usize,
    /// A commit (changelog, alerts, offsets) starts at least this often ("200ms"), and sooner, when none is being delivered, once 1 000 records wait or every record read is applied (docs/monitor.md, Delivery).
    pub commit_interval: TimeSpan,
    /// Prometheus metrics listen address; empty disables the endpoint.
    pub metrics_listen: String,
    /// How long the group waits for a member during a rebalance ("60s"): a crashed
    /// instance's partitions move after at most this long. A partition's restore must
    /// finish within it (Kafka's max.poll.interval.ms).
    pub rebalance_timeout: TimeSpan,
    /// Static group membership (Kafka's `group.instance.id`): an instance restarted with
    /// the same id takes its partitions back at once, without waiting for the group to
    /// evict its crashed predecessor. Unique per instance; unset by default.
    pub group_instance_id: Option<String>,
    /// After SIGINT/SIGTERM, how long a clean stop may take before the process exits
    /// anyway ("30s"); a second signal exits at once.
    pub shutdown_timeout: TimeSpan,
    /// A closed item leaves the monitors' memory and the state topic (a tombstone; the
    /// gateways forget it too) this long after its last event arrived ("180d"); "0s" keeps
    /// every item for ever. A later event of a retired item that occurred before the
    /// window is dead-lettered as ITEM_RETIRED. Statistics and cases are not affected
    /// (docs/operations.md#retention).
    pub closed_item_retention: TimeSpan,
    /// The gRPC gateway.
    pub grpc: GrpcConfig,
    /// The accountability queue.
    pub accountability: AccountabilityConfig,
    /// The inspector console.
    pub console: ConsoleConfig,
    /// The secret of the applicants' query codes (办件查询码): the gateway returns an
    /// item's code when its SUBMITTED event arrives, the public progress page checks it.
    pub query_code_secret_file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            kafka_bootstrap: "127.0.0.1:9092".into(),
            kafka: std::collections::BTreeMap::new(),
            group_id: "jiancha-monitor".into(),
            topics: Topics::default(),
            partitions: 8,
            replication: 1,
            catalog: None,
            calendars: Vec::new(),
            calendar_dir: None,
            reload_interval: TimeSpan::secs(5),
            timer_grace: TimeSpan::secs(0),
            catch_up_lag: 1000,
            max_record_bytes: 1 << 20,
            commit_interval: TimeSpan::millis(200),
            metrics_listen: "127.0.0.1:9464".into(),
            rebalance_timeout: TimeSpan::secs(60),
            group_instance_id: None,
            shutdown_timeout: TimeSpan::secs(30),
            closed_item_retention: TimeSpan::days(180),
            grpc: GrpcConfig::default(),
            accountability: AccountabilityConfig::default(),
            console: ConsoleConfig::default(),
            query_code_secret_file: None,
        }
    }
}

/// A configuration that cannot be used, with what to change.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("reading config {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not valid TOML of this shape: where, and what is wrong.
    #[error("config {}:{line}:{column}: {message}\n{excerpt}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// Line, from 1.
        line: usize,
        /// Column (characters), from 1.
        column: usize,
        /// What is wrong (names an unknown key, or the rule a value breaks).
        message: String,
        /// The line in question with the place marked.
        excerpt: String,
    },
    /// A file the configuration names cannot be read.
    #[error("config `{key}` names {}, which cannot be read", path.display())]
    File {
        /// The key naming it.
        key: String,
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `JIANCHA_*` variable's value does not fit its key.
    #[error("environment {var}={value:?} (sets `{key}`): {message}")]
    Environment {
        /// The variable.
        var: String,
        /// The key it sets.
        key: String,
        /// Its value.
        value: String,
        /// What is wrong.
        message: String,
    },
    /// A value breaks its rule.
    #[error("config `{key}` = `{value}`: {rule}")]
    Invalid {
        /// The key.
        key: &'static str,
        /// The value given.
        value: String,
        /// What is allowed.
        rule: &'static str,
    },
}

impl Config {
    /// Defaults, overlaid by the file if given, then by `JIANCHA_*` variables (one for
    /// every key: [`Config::keys`]); the command's flags come last, set by the caller.
    pub fn load(file: Option<&std::path::Path>) -> Result<Config, ConfigError> {
        Config::load_with(file, std::env::vars())
    }

    /// [`Config::load`] with the environment given.
    pub fn load_with(file: Option<&std::path::Path>, vars: impl IntoIterator<Item = (String, String)>) -> Result<Config, ConfigError> {
        let mut config = match file {
            None => Config::default(),
            Some(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.into(), source })?;
                Config::parse(&text).map_err(|e| layers::parse_error(path, &text, &e))?
            }
        };
        let vars: Vec<(String, String)> = vars.into_iter().collect();
        layers::apply_environment(&mut config, &vars)?;
        for (key, value) in Config::kafka_env_properties(vars) {
            config.kafka.insert(key, KafkaValue::Text(value));
        }
        Ok(config)
    }

    /// A configuration from TOML text.
    pub fn parse(text: &str) -> Result<Config, toml::de::Error> {
        toml::from_str(text)
    }

    /// `JIANCHA_KAFKA_PROP_SASL_PASSWORD=…` → (`sasl.password`, …): Kafka properties
    /// from the environment, for secrets that should not sit in a file.
    pub fn kafka_env_properties(vars: impl IntoIterator<Item = (String, String)>) -> Vec<(String, String)> {
        vars.into_iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("JIANCHA_KAFKA_PROP_")?;
                (!name.is_empty()).then(|| (name.to_ascii_lowercase().replace('_', "."), v))
            })
            .collect()
    }

    /// The `[kafka]` properties as librdkafka takes them.
    pub fn kafka_properties(&self) -> impl Iterator<Item = (&str, String)> + '_ {
        self.kafka.iter().map(|(k, v)| (k.as_str(), v.to_string()))
    }

    /// Checks every value, naming the key at fault.
    pub fn validate(&self) -> Result<(), ConfigError> {
        if let Some(key) = self.kafka.keys().find(|k| crate::kafka::RESERVED_PROPERTIES.contains(&k.as_str())) {
            return Err(ConfigError::Invalid {
                key: "kafka",
                value: key.clone(),
                rule: "jiancha sets this property itself (kafka_bootstrap, group_id and group_instance_id are their own settings)",
            });
        }
        if self.partitions < 1 {
            return Err(ConfigError::Invalid { key: "partitions", value: self.partitions.to_string(), rule: "at least 1" });
        }
        if self.replication < 1 {
            return Err(ConfigError::Invalid { key: "replication", value: self.replication.to_string(), rule: "at least 1" });
        }
        for (key, value) in [
            ("accountability.escalation_interval", self.accountability.escalation_interval),
            ("accountability.notifications.timeout", self.accountability.notifications.timeout),
            ("accountability.notifications.retry_initial", self.accountability.notifications.retry_initial),
            ("accountability.notifications.poll_interval", self.accountability.notifications.poll_interval),
            ("shutdown_timeout", self.shutdown_timeout),
            ("commit_interval", self.commit_interval),
            ("reload_interval", self.reload_interval),
            ("rebalance_timeout", self.rebalance_timeout),
            ("grpc.request_timeout", self.grpc.request_timeout),
            ("grpc.tls_handshake_timeout", self.grpc.tls_handshake_timeout),
            ("grpc.auth.max_token_lifetime", self.grpc.auth.max_token_lifetime),
            ("console.idle_timeout", self.console.idle_timeout),
            ("console.max_session", self.console.max_session),
        ] {
            if value.is_zero() {
                return Err(ConfigError::Invalid { key, value: value.to_string(), rule: "longer than zero" });
            }
        }
        if self.grpc.max_stream_events == 0 || self.grpc.max_connections == 0 {
            return Err(ConfigError::Invalid {
                key: "grpc.max_stream_events",
                value: format!("{} (max_connections {})", self.grpc.max_stream_events, self.grpc.max_connections),
                rule: "grpc.max_stream_events and grpc.max_connections are at least 1",
            });
        }
        if self.grpc.require_client_cert && self.grpc.client_ca.is_none() {
            return Err(ConfigError::Invalid {
                key: "grpc.require_client_cert",
                value: "true".into(),
                rule: "needs grpc.client_ca, the CA that client certificates are checked against",
            });
        }
        if self.grpc.bind_client_certificate && self.grpc.client_ca.is_none() {
            return Err(ConfigError::Invalid {
                key: "grpc.bind_client_certificate",
                value: "true".into(),
                rule: "needs grpc.client_ca, the CA that client certificates are checked against",
            });
        }
        let chain = &self.accountability.chain;
        if !(1 <= chain.remind_days && chain.remind_days < chain.supervise_days && chain.supervise_days < chain.publicize_days)
            || chain.complaint_acceptance_days < 1
        {
            return Err(ConfigError::Invalid {
                key: "accountability.chain",
                value: format!(
                    "remind {} / supervise {} / publicize {} (complaint acceptance {})",
                    chain.remind_days, chain.supervise_days, chain.publicize_days, chain.complaint_acceptance_days
                ),
                rule: "working days with 1 <= remind_days < supervise_days < publicize_days, and complaint_acceptance_days at least 1",
            });
        }
        if let Some(smtp) = &self.accountability.notifications.smtp
            && !["none", "starttls", "tls"].contains(&smtp.tls.as_str())
        {
            return Err(ConfigError::Invalid {
                key: "accountability.notifications.smtp.tls",
                value: smtp.tls.clone(),
                rule: "none, starttls or tls",
            });
        }
        if !(self.accountability.requests_per_caller > 0.0 && self.accountability.burst_per_caller >= 1.0) {
            return Err(ConfigError::Invalid {
                key: "accountability.requests_per_caller",
                value: format!("{} (burst {})", self.accountability.requests_per_caller, self.accountability.burst_per_caller),
                rule: "a rate above 0 and a burst of at least 1",
            });
        }
        if !(self.grpc.rate_per_caller > 0.0 && self.grpc.burst_per_caller >= 1.0) {
            return Err(ConfigError::Invalid {
                key: "grpc.rate_per_caller",
                value: format!("{} (burst {})", self.grpc.rate_per_caller, self.grpc.burst_per_caller),
                rule: "a rate above 0 and a burst of at least 1",
            });
        }
        if self.console.time_zone.parse::<chrono_tz::Tz>().is_err() {
            return Err(ConfigError::Invalid {
                key: "console.time_zone",
                value: self.console.time_zone.clone(),
                rule: "an IANA time zone such as \"Asia/Shanghai\"",
            });
        }
        if self.console.public_queries_per_minute.is_nan() || self.console.public_queries_per_minute <= 0.0 {
            return Err(ConfigError::Invalid {
                key: "console.public_queries_per_minute",
                value: self.console.public_queries_per_minute.to_string(),
                rule: "above 0",
            });
        }
        if let Some(oidc) = &self.console.oidc
            && !(oidc.issuer.starts_with("https://")
                || oidc.issuer.starts_with("http://127.0.0.1")
                || oidc.issuer.starts_with("http://localhost"))
        {
            return Err(ConfigError::Invalid {
                key: "console.oidc.issuer",
                value: oidc.issuer.clone(),
                rule: "an https:// URL (plain http only on this host, for tests)",
            });
        }
        if self.kafka_bootstrap.trim().is_empty() {
            return Err(ConfigError::Invalid { key: "kafka_bootstrap", value: String::new(), rule: "host:port of a Kafka broker" });
        }
        Ok(())
    }

    /// Every file the configuration names, with its key: what `jiancha config check`
    /// opens.
    pub fn files(&self) -> Vec<(String, PathBuf)> {
        let mut files = Vec::new();
        let mut add = |key: &str, path: &Option<PathBuf>| {
            if let Some(p) = path {
                files.push((key.to_owned(), p.clone()));
            }
        };
        add("catalog", &self.catalog);
        add("calendar_dir", &self.calendar_dir);
        add("grpc.tls_cert", &self.grpc.tls_cert);
        add("grpc.tls_key", &self.grpc.tls_key);
        add("grpc.client_ca", &self.grpc.client_ca);
        add("grpc.auth.secret_file", &self.grpc.auth.secret_file);
        add("grpc.auth.public_key_file", &self.grpc.auth.public_key_file);
        for k in &self.grpc.auth.keys {
            add("grpc.auth.keys.secret_file", &k.secret_file);
            add("grpc.auth.keys.public_key_file", &k.public_key_file);
        }
        add("console.services_ca", &self.console.services_ca);
        add("console.signing_key_file", &self.console.signing_key_file);
        add("console.login_link_secret_file", &self.console.login_link_secret_file);
        if let Some(oidc) = &self.console.oidc {
            add("console.oidc.client_secret_file", &oidc.client_secret_file);
            add("console.oidc.ca_file", &oidc.ca_file);
        }
        add("query_code_secret_file", &self.query_code_secret_file);
        let n = &self.accountability.notifications;
        add("accountability.notifications.webhook_secret_file", &n.webhook_secret_file);
        if let Some(smtp) = &n.smtp {
            add("accountability.notifications.smtp.password_file", &smtp.password_file);
        }
        if let Some(sms) = &n.sms {
            add("accountability.notifications.sms.token_file", &sms.token_file);
        }
        files.extend(self.calendars.iter().map(|c| ("calendars".to_owned(), c.clone())));
        files
    }

    /// Every calendar file: those listed, then the `*.toml` files of `calendar_dir` in name order.
    pub fn calendar_files(&self) -> Vec<PathBuf> {
        let mut files = self.calendars.clone();
        if let Some(dir) = &self.calendar_dir
            && let Ok(entries) = std::fs::read_dir(dir)
        {
            let mut found: Vec<PathBuf> =
                entries.filter_map(|e| e.ok().map(|e| e.path())).filter(|p| p.extension().is_some_and(|x| x == "toml")).collect();
            found.sort();
            files.extend(found.into_iter().filter(|f| !self.calendars.contains(f)));
        }
        files
    }

    /// `reload_interval` as a duration.
    pub fn reload(&self) -> Duration {
        self.reload_interval.get()
    }

    /// `shutdown_timeout` as a duration.
    pub fn shutdown(&self) -> Duration {
        self.shutdown_timeout.get()
    }

    /// `timer_grace` as a duration.
    pub fn grace(&self) -> Duration {
        self.timer_grace.get()
    }

    /// `rebalance_timeout` as a duration.
    pub fn rebalance(&self) -> Duration {
        self.rebalance_timeout.get()
    }

    /// The retention window of closed items; None keeps them for ever.
    pub fn retention(&self) -> Option<Duration> {
        (!self.closed_item_retention.is_zero()).then(|| self.closed_item_retention.get())
    }

    /// `commit_interval` as a duration.
    pub fn commit(&self) -> Duration {
        self.commit_interval.get()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn department_topics_name_one_department_each() {
        let t = Topics::default();
        assert_eq!(t.department_topic("SCJG").as_deref(), Some("jiancha.dept.SCJG.events"));
        assert_eq!(t.department_of_topic("jiancha.dept.SCJG.events"), Some("SCJG"));
        assert_eq!(t.department_of_topic("jiancha.events"), None);
        assert_eq!(t.department_of_topic("jiancha.dept.A.B.events"), None, "a dot would let prefixed ACLs overlap");
        assert_eq!(t.department_topic("市场监管局"), None);
        assert_eq!(t.department_topic("../x"), None);
        assert_eq!(t.department_pattern(), "^jiancha\\.dept\\.[A-Za-z0-9_-]+\\.events$");
        assert!(t.is_event_topic("jiancha.events") && t.is_event_topic("jiancha.dept.GA.events"));
        assert!(!t.is_event_topic("jiancha.events.dlq"));
    }

    #[test]
    fn the_example_deployment_configuration_loads_and_validates() {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/config/jiancha.example.toml");
        let c = Config::load(Some(&file)).unwrap();
        c.validate().unwrap();
        assert_eq!(c.grpc.auth.algorithm, "EdDSA");
        assert_eq!(c.accountability.weights.red, 5.0);
        assert_eq!(c.partitions, 12);
        assert_eq!(c.kafka_properties().find(|(k, _)| *k == "security.protocol").map(|(_, v)| v).as_deref(), Some("SASL_SSL"));
        assert_eq!(c.grpc.auth.keys.len(), 2, "a rotation key and the console's key");
        assert!(c.grpc.bind_client_certificate);
        assert_eq!(c.console.signing_kid.as_deref(), Some("console"));
        let oidc = c.console.oidc.as_ref().unwrap();
        assert_eq!(oidc.roles.get("jjjc-inspectors").map(String::as_str), Some("INSPECTOR"));
        assert!(c.query_code_secret_file.is_some());
    }

    #[test]
    fn console_settings_are_checked() {
        let mut c = Config::default();
        c.console.time_zone = "Mars/Olympus".into();
        assert!(c.validate().unwrap_err().to_string().contains("console.time_zone"));
        c.console.time_zone = "Asia/Shanghai".into();
        c.console.idle_timeout = TimeSpan::secs(0);
        assert!(c.validate().unwrap_err().to_string().contains("console.idle_timeout"));
        c.console.idle_timeout = TimeSpan::mins(30);
        c.console.oidc = Some(OidcConfig { issuer: "http://idp.example.gov.cn".into(), ..OidcConfig::default() });
        assert!(c.validate().unwrap_err().to_string().contains("console.oidc.issuer"), "plain http only on this host");
        c.console.oidc = Some(OidcConfig { issuer: "https://idp.example.gov.cn".into(), ..OidcConfig::default() });
        c.validate().unwrap();
    }

    #[test]
    fn a_client_certificate_cannot_be_required_without_a_ca_to_check_it() {
        let mut c = Config::default();
        c.grpc.require_client_cert = true;
        assert!(c.validate().unwrap_err().to_string().contains("client_ca"));
        c.grpc.require_client_cert = false;
        c.grpc.bind_client_certificate = true;
        assert!(c.validate().unwrap_err().to_string().contains("client_ca"));
    }

    #[test]
    fn unknown_keys_and_bad_durations_are_named() {
        let dir = std::env::temp_dir().join(format!("jiancha-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("m.toml");
        std::fs::write(&file, "kafka_bootstrap = \"x:1\"\ncomit_interval = \"1s\"\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("comit_interval"), "{err}");
        std::fs::write(&file, "timer_grace = \"soon\"\n").unwrap();
        let err = Config::load(Some(&file)).unwrap_err().to_string();
        assert!(err.contains("m.toml:1:15") && err.contains("soon"), "{err}");
        std::fs::write(&file, "commit_interval = \"0s\"\n").unwrap();
        let err = Config::load(Some(&file)).unwrap().validate().unwrap_err().to_string();
        assert!(err.contains("commit_interval") && err.contains("longer than zero"), "{err}");
    }
}
