//! The whole live stack in one test process: a Tansu broker (child process), the monitor
//! and the gRPC gateway (TLS, tokens made by `jiancha_platform::local`), and tonic
//! clients that call the gateway over loopback as department systems and inspectors do.

use crate::kafka::{Broker, Scratch};
use crate::repo_root;
use jiancha_platform::Config;
use jiancha_platform::auth::Role;
use jiancha_platform::local::{LocalSetup, prepare};
use jiancha_proto::v1;
use jiancha_proto::v1::catalog_service_client::CatalogServiceClient;
use jiancha_proto::v1::ingest_service_client::IngestServiceClient;
use jiancha_proto::v1::monitor_service_client::MonitorServiceClient;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::runtime::Runtime;
use tokio::sync::watch;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Identity};

/// Departments of the demo catalog used by the tests.
pub const OWN: &str = "SCJG";
/// Another department.
pub const OTHER: &str = "ZRZY";
/// Every department of the demo catalog (each gets a DEPARTMENT token).
pub const DEPARTMENTS: [&str; 8] = ["GAJ", "JTJ", "JYJ", "SCJG", "SHJ", "WJW", "ZJJ", "ZRZY"];

pub use jiancha_platform::auth::Bearer;

/// Broker, monitor and gateway; everything stops on drop.
pub struct Stack {
    /// The runtime the monitor, the gateway and the clients run on.
    pub rt: Runtime,
    /// The broker.
    pub broker: Broker,
    /// Files: catalog, calendars, certificates, tokens.
    pub dir: Scratch,
    /// Certificates and tokens.
    pub local: LocalSetup,
    /// The configuration both run with.
    pub config: Config,
    /// The gateway's address.
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
}

impl std::fmt::Debug for Stack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Stack").field("addr", &self.addr).finish_non_exhaustive()
    }
}

impl Stack {
    /// Starts everything; `tune` adjusts the configuration first.
    pub fn start(name: &str, tune: impl FnOnce(&mut Config)) -> Stack {
        if let Ok(filter) = std::env::var("JIANCHA_IT_LOG") {
            let _ = tracing_subscriber::fmt().with_env_filter(tracing_subscriber::EnvFilter::new(filter)).with_test_writer().try_init();
        }
        let dir = Scratch::new(name);
        let broker = Broker::start(&dir.0);
        let catalog = dir.0.join("catalog.toml");
        std::fs::copy(repo_root().join("deploy/demo/catalog.toml"), &catalog).expect("catalog copy");
        let local = prepare(&dir.0.join("local"), "jiancha", &DEPARTMENTS, 3600).expect("local TLS and tokens");
        let mut config = Config {
            kafka_bootstrap: broker.bootstrap(),
            partitions: 2,
            catalog: Some(catalog),
            calendar_dir: Some(dir.0.join("calendars")),
            metrics_listen: String::new(),
            reload_interval: jiancha_platform::config::TimeSpan::secs(1),
            group_id: format!("it-{name}"),
            ..Config::default()
        };
        config.grpc.listen = "127.0.0.1:0".into();
        local.apply(&mut config);
        tune(&mut config);
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(4).enable_all().build().expect("runtime");
        let (stop, shutdown) = watch::channel(false);
        let addr = rt.block_on(async {
            let gateway = jiancha_gateway::start(config.clone(), shutdown.clone()).await.expect("gateway starts");
            let addr = gateway.addr;
            tokio::spawn(async move {
                let _ = gateway.wait().await;
            });
            tokio::spawn(jiancha_monitor::monitor::run(config.clone(), shutdown));
            addr
        });
        Stack { rt, broker, dir, local, config, addr, stop }
    }

    /// A token of `role` (DEPARTMENT: of `department`).
    pub fn token(&self, role: Role, department: Option<&str>) -> String {
        let (_, _, file) = self
            .local
            .tokens
            .iter()
            .find(|(r, d, _)| *r == role && d.as_deref() == department)
            .unwrap_or_else(|| panic!("no local token for {role:?} {department:?}"));
        std::fs::read_to_string(file).expect("token file")
    }

    /// A TLS channel to the gateway (no client certificate).
    pub fn channel(&self) -> Channel {
        self.channel_with(None)
    }

    /// A TLS channel, presenting the local client certificate when `client_cert`.
    pub fn channel_with(&self, identity: Option<Identity>) -> Channel {
        let ca = std::fs::read(&self.local.ca_cert).expect("ca");
        let mut tls = ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost");
        if let Some(id) = identity {
            tls = tls.identity(id);
        }
        let endpoint = Channel::from_shared(format!("https://127.0.0.1:{}", self.addr.port()))
            .expect("uri")
            .tls_config(tls)
            .expect("tls")
            .connect_timeout(Duration::from_secs(10));
        self.rt.block_on(endpoint.connect()).expect("connect to the gateway")
    }

    /// The local client certificate and key.
    pub fn client_identity(&self) -> Identity {
        Identity::from_pem(std::fs::read(&self.local.client_cert).expect("cert"), std::fs::read(&self.local.client_key).expect("key"))
    }

    /// Ingest client with `token`.
    pub fn ingest(&self, token: Option<String>) -> IngestServiceClient<InterceptedService<Channel, Bearer>> {
        IngestServiceClient::with_interceptor(self.channel(), Bearer(token))
    }

    /// Monitor client with `token`.
    pub fn monitor(&self, token: Option<String>) -> MonitorServiceClient<InterceptedService<Channel, Bearer>> {
        MonitorServiceClient::with_interceptor(self.channel(), Bearer(token))
    }

    /// Catalog client with `token`.
    pub fn catalog(&self, token: Option<String>) -> CatalogServiceClient<InterceptedService<Channel, Bearer>> {
        CatalogServiceClient::with_interceptor(self.channel(), Bearer(token))
    }

    /// Waits until the gateway knows `item_id` (the monitor processed it and its state reached the view).
    pub fn wait_for_item(&self, item_id: &str) -> v1::ItemTimeline {
        let mut client = self.monitor(Some(self.token(Role::Inspector, None)));
        let end = std::time::Instant::now() + Duration::from_secs(60);
        loop {
            match self.rt.block_on(client.get_item(v1::GetItemRequest { item_id: item_id.into(), ..Default::default() })) {
                Ok(r) => return r.into_inner(),
                Err(e) if std::time::Instant::now() > end => panic!(
                    "item {item_id} did not reach the gateway in 60 s: {e:?}; records: events {}, state {}, alerts {}",
                    self.topic_records("jiancha.events").len(),
                    self.topic_records("jiancha.monitor.state").len(),
                    self.topic_records("jiancha.alerts").len()
                ),
                Err(_) => std::thread::sleep(Duration::from_millis(200)),
            }
        }
    }

    /// Every record on a topic (key, value), read from the beginning.
    pub fn topic_records(&self, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
        crate::kafka::read_topic(&self.broker.bootstrap(), topic)
    }
}

impl Drop for Stack {
    fn drop(&mut self) {
        let _ = self.stop.send(true);
        std::thread::sleep(Duration::from_millis(300));
    }
}

/// An event in the protobuf form.
pub fn event(event_id: &str, item_id: &str, ty: v1::EventType, occurred_at: &str, department: &str) -> v1::Event {
    v1::Event {
        event_id: event_id.into(),
        item_id: item_id.into(),
        service_code: (ty == v1::EventType::Submitted).then(|| "SCJG-001".to_owned()),
        department_code: department.into(),
        r#type: ty as i32,
        occurred_at: occurred_at.into(),
        actor: (ty != v1::EventType::Submitted).then(|| "李四".to_owned()),
        ..v1::Event::default()
    }
}

/// An RFC 3339 instant `days` days and `minutes` minutes before now, in +08:00.
pub fn ago(days: i64, minutes: i64) -> String {
    let t = chrono::Utc::now() - chrono::Duration::days(days) - chrono::Duration::minutes(minutes);
    t.with_timezone(&chrono::FixedOffset::east_opt(8 * 3600).expect("offset")).to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}
