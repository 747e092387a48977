//! A real Kafka-protocol broker (Tansu, on sqlite) per test, and the monitor as a child
//! process, for the integration tests of the live monitor.

use jiancha_core::AlertStatus;
use serde_json::Value;
use std::collections::BTreeMap;
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Where the broker binary is: `JIANCHA_TANSU`, the cache `scripts/test` installs to, or PATH.
pub fn tansu_binary() -> PathBuf {
    if let Some(p) = std::env::var_os("JIANCHA_TANSU") {
        return p.into();
    }
    let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_default();
    let cached = home.join(".cache/jiancha/tansu/bin/tansu");
    if cached.exists() {
        return cached;
    }
    PathBuf::from("tansu")
}

/// A scratch directory removed on drop.
#[derive(Debug)]
pub struct Scratch(pub PathBuf);

impl Scratch {
    /// A fresh directory named after the test.
    pub fn new(name: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!("jiancha-it-{name}-{}-{}", std::process::id(), nanos()));
        std::fs::create_dir_all(&dir).expect("scratch dir");
        Scratch(dir)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if std::env::var_os("JIANCHA_IT_KEEP").is_some() {
            eprintln!("kept {}", self.0.display());
        } else {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

fn nanos() -> u128 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.as_nanos())
}

/// A free TCP port on the loopback.
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Waits for `cond`, checking every 200 ms, for at most `limit`.
pub fn wait_for(what: &str, limit: Duration, mut cond: impl FnMut() -> bool) {
    let end = Instant::now() + limit;
    while Instant::now() < end {
        if cond() {
            return;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    panic!("timed out after {limit:?} waiting for {what}");
}

/// A Tansu broker on 127.0.0.1 with sqlite storage; killed on drop.
#[derive(Debug)]
pub struct Broker {
    child: Option<Child>,
    /// Its port.
    pub port: u16,
    dir: PathBuf,
    advertised: Option<String>,
}

impl Broker {
    /// Starts a broker storing in `dir`.
    pub fn start(dir: &Path) -> Broker {
        let mut b = Broker { child: None, port: free_port(), dir: dir.to_path_buf(), advertised: None };
        b.spawn();
        b
    }

    /// Starts a broker that tells clients to connect to `advertised` (a TLS terminator
    /// in front of it, say) instead of its own port.
    pub fn start_advertising(dir: &Path, advertised: &str) -> Broker {
        let mut b = Broker { child: None, port: free_port(), dir: dir.to_path_buf(), advertised: Some(advertised.to_owned()) };
        b.spawn();
        b
    }

    fn spawn(&mut self) {
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let advertised = self.advertised.clone().unwrap_or_else(|| url.clone());
        let log = std::fs::OpenOptions::new().create(true).append(true).open(self.dir.join("broker.log")).expect("broker log");
        let child = Command::new(tansu_binary())
            .args(["broker", "--listener-url", &url, "--advertised-listener-url", &advertised, "--storage-engine", "sqlite://broker.db"])
            .current_dir(&self.dir)
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| {
                panic!("cannot start the Tansu broker ({}): {e}; run ./scripts/test, which installs it", tansu_binary().display())
            });
        self.child = Some(child);
        let port = self.port;
        wait_for("the broker to listen", Duration::from_secs(30), || TcpStream::connect(("127.0.0.1", port)).is_ok());
    }

    /// `host:port` for clients.
    pub fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Kills the broker (SIGKILL) and starts it again on the same port and storage.
    pub fn restart(&mut self, down_for: Duration) {
        self.kill();
        std::thread::sleep(down_for);
        self.spawn();
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The monitor as a child process.
#[derive(Debug)]
pub struct MonitorProcess {
    child: Option<Child>,
    /// Its log (stderr).
    pub log: PathBuf,
}

impl MonitorProcess {
    /// Starts `jiancha monitor` with `args` after the bootstrap; stderr goes to `log`.
    pub fn start(bin: &str, bootstrap: &str, log: PathBuf, args: &[&str]) -> MonitorProcess {
        let file = std::fs::OpenOptions::new().create(true).append(true).open(&log).expect("monitor log");
        let child = Command::new(bin)
            .args(["monitor", "--kafka-bootstrap", bootstrap, "--metrics-listen", "127.0.0.1:0"])
            .args(args)
            .env("JIANCHA_LOG", std::env::var("JIANCHA_IT_LOG").unwrap_or_else(|_| "info,rdkafka=warn".into()))
            .stdout(Stdio::null())
            .stderr(file)
            .spawn()
            .expect("start monitor");
        MonitorProcess { child: Some(child), log }
    }

    /// SIGKILL: no chance to flush or commit.
    pub fn kill9(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// SIGTERM, then waits for a clean exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        let mut c = self.child.take().expect("running");
        let _ = Command::new("kill").args(["-TERM", &c.id().to_string()]).status();
        let end = Instant::now() + Duration::from_secs(60);
        loop {
            if let Ok(Some(status)) = c.try_wait() {
                return status;
            }
            if Instant::now() > end {
                let _ = c.kill();
                panic!("the monitor did not stop within 60 s of SIGTERM");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The log so far.
    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for MonitorProcess {
    fn drop(&mut self) {
        self.kill9();
    }
}

/// Every alert update on the topic so far, in topic order per alert id.
/// A Kafka client configuration for the test broker.
pub fn client(bootstrap: &str) -> rdkafka::config::ClientConfig {
    jiancha_platform::kafka::client_for(bootstrap, &jiancha_platform::Config::default())
}

/// Sends JSON-lines events to the trusted event topic, as `jiancha produce` does.
pub fn produce_lines(bootstrap: &str, text: String, skip_invalid: bool) -> jiancha::tools::Produced {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let to = jiancha::tools::Destination::Topic("jiancha.events".into());
    rt.block_on(jiancha::tools::produce(client(bootstrap), &to, std::io::Cursor::new(text.into_bytes()), skip_invalid)).expect("produce")
}

pub fn read_alerts(bootstrap: &str) -> Vec<Value> {
    let mut out = Vec::new();
    jiancha::tools::print_alerts(crate::kafka::client(bootstrap), "jiancha.alerts", false, None, &mut out).expect("read alerts");
    String::from_utf8(out).expect("utf-8").lines().map(|l| serde_json::from_str(l).expect("alert JSON")).collect()
}

/// The effective alert set: alert id → (kind, triggered_at) of ids whose last update is FIRED.
pub fn effective(updates: &[Value]) -> BTreeMap<String, (String, String)> {
    let mut last: BTreeMap<String, &Value> = BTreeMap::new();
    for u in updates {
        last.insert(u["alert_id"].as_str().expect("id").to_owned(), u);
    }
    last.into_iter()
        .filter(|(_, u)| u["status"] == "FIRED")
        .map(|(id, u)| (id, (u["kind"].as_str().unwrap_or("").to_owned(), u["triggered_at"].as_str().unwrap_or("").to_owned())))
        .collect()
}

/// The same set from the engine's replay, through the same JSON form.
pub fn effective_of_replay(alerts: &[jiancha_core::Alert]) -> BTreeMap<String, (String, String)> {
    let values: Vec<Value> = alerts.iter().map(|a| a.to_json()).collect();
    let set = effective(&values);
    debug_assert!(alerts.iter().all(|a| a.status == AlertStatus::Fired || a.status == AlertStatus::Retracted));
    set
}

/// Ids whose update repeats the state of the update before it (same status and
/// instant) with different words: a redelivery that produced a different alert. (An
/// alert that moves and later moves back is FIRED again after another state; its
/// derivation may then rightly cite newer facts.)
pub fn conflicting_ids(updates: &[Value]) -> Vec<String> {
    consecutive(updates, |prev, u| prev != u)
}

/// Ids whose update repeats the update before it exactly: a publication that changed
/// nothing (allowed after a crash, at-least-once; not after a clean handover).
pub fn duplicated_ids(updates: &[Value]) -> Vec<String> {
    consecutive(updates, |prev, u| prev == u)
}

fn consecutive(updates: &[Value], bad: impl Fn(&Value, &Value) -> bool) -> Vec<String> {
    let mut last: BTreeMap<String, &Value> = BTreeMap::new();
    let mut ids = Vec::new();
    for u in updates {
        let id = u["alert_id"].as_str().unwrap_or("").to_owned();
        if let Some(prev) = last.get(&id)
            && prev["status"] == u["status"]
            && prev["triggered_at"] == u["triggered_at"]
            && bad(prev, u)
        {
            if ids.is_empty() {
                eprintln!("first repeat of {id}:\n  {prev}\n  {u}");
            }
            ids.push(id.clone());
        }
        last.insert(id, u);
    }
    ids
}

/// Every record of a topic (key, value), read from the beginning to the high watermarks.
pub fn read_topic(bootstrap: &str, topic: &str) -> Vec<(Vec<u8>, Vec<u8>)> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::Message;
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "jiancha-it-reader")
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let partitions: Vec<i32> = metadata.topics().iter().flat_map(|t| t.partitions().iter().map(|p| p.id())).collect();
    let mut tpl = TopicPartitionList::new();
    let mut remaining = 0;
    let mut highs = BTreeMap::new();
    for p in partitions {
        let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(10)).expect("watermarks");
        if high > low {
            tpl.add_partition_offset(topic, p, Offset::Beginning).expect("assign");
            highs.insert(p, high);
            remaining += 1;
        }
    }
    let mut out = Vec::new();
    if remaining == 0 {
        return out;
    }
    consumer.assign(&tpl).expect("assign");
    let end = Instant::now() + Duration::from_secs(30);
    while remaining > 0 && Instant::now() < end {
        if let Some(Ok(msg)) = consumer.poll(Duration::from_millis(200)) {
            out.push((msg.key().unwrap_or_default().to_vec(), msg.payload().unwrap_or_default().to_vec()));
            if highs.get(&msg.partition()).is_some_and(|&h| msg.offset() + 1 == h) {
                remaining -= 1;
            }
        }
    }
    out
}

/// A dead letter: the reason header, the record's bytes, and every header.
pub type DeadLetter = (String, Vec<u8>, BTreeMap<String, String>);

/// Reads the dead-letter topic from its beginning until `want` records came or 30 s passed.
pub fn read_dead_letters(bootstrap: &str, topic: &str, want: usize) -> Vec<DeadLetter> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::message::{Headers, Message};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .set("group.id", "dlq-reader")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(10)).expect("metadata");
    let mut tpl = TopicPartitionList::new();
    for p in metadata.topics()[0].partitions() {
        tpl.add_partition_offset(topic, p.id(), Offset::Beginning).expect("assign");
    }
    consumer.assign(&tpl).expect("assign");
    let mut dead = Vec::new();
    let end = Instant::now() + Duration::from_secs(30);
    while dead.len() < want && Instant::now() < end {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(500)) {
            let headers: BTreeMap<String, String> = m
                .headers()
                .map(|h| h.iter().map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap_or_default()).into_owned())).collect())
                .unwrap_or_default();
            dead.push((headers.get("jiancha.reason").cloned().unwrap_or_default(), m.payload().unwrap_or_default().to_vec(), headers));
        }
    }
    dead
}
