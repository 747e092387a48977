//! The gateway's read model, built from the monitor's topics: every item from the
//! compacted state changelog (imported into an engine, so clocks are counted by the
//! same code as the monitor's), every alert update from the alert topic (each item's
//! history, and the recent updates in memory for live streams).
//!
//! One thread tails both topics from the beginning. The gateway reports SERVING on the
//! health service once it has read to the end of what existed when it started.

use jiancha_core::engine::Engine;
use jiancha_core::{Calendars, Catalog};
use jiancha_platform::Config;
use jiancha_proto::v1;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::error::KafkaError;
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::{info, warn};

/// One alert update as read from the alert topic.
#[derive(Debug)]
pub struct Logged {
    /// Position in the in-memory log (0, 1, 2 … over the gateway's life).
    pub seq: u64,
    /// Partition of the alert topic.
    pub partition: i32,
    /// Offset in it.
    pub offset: i64,
    /// The update.
    pub alert: v1::Alert,
}

/// One entry of an item's alert history.
#[derive(Clone, Debug)]
pub struct HistoryEntry {
    /// The alert.
    pub alert_id: String,
    /// Kind (wire value).
    pub kind: i32,
    /// Level (wire value).
    pub level: i32,
    /// FIRED / RETRACTED (wire value).
    pub status: i32,
    /// As published.
    pub triggered_at: String,
    /// Partition of the alert topic.
    pub partition: i32,
    /// Offset in it.
    pub offset: i64,
}

/// The recent alert updates, and per partition where memory starts and ends.
#[derive(Debug)]
pub struct AlertLog {
    entries: VecDeque<Arc<Logged>>,
    next_seq: u64,
    /// Per partition: the lowest offset that memory still serves (older ones were evicted).
    start: Vec<i64>,
    /// Per partition: the offset after the last update read.
    end: Vec<i64>,
    capacity: usize,
}

impl AlertLog {
    fn new(partitions: usize, capacity: usize) -> AlertLog {
        AlertLog { entries: VecDeque::new(), next_seq: 0, start: vec![0; partitions], end: vec![0; partitions], capacity: capacity.max(1) }
    }

    fn push(&mut self, partition: i32, offset: i64, alert: v1::Alert) {
        let p = partition as usize;
        if p >= self.end.len() {
            self.end.resize(p + 1, 0);
            self.start.resize(p + 1, 0);
        }
        self.end[p] = offset + 1;
        self.entries.push_back(Arc::new(Logged { seq: self.next_seq, partition, offset, alert }));
        self.next_seq += 1;
        while self.entries.len() > self.capacity {
            if let Some(old) = self.entries.pop_front() {
                self.start[old.partition as usize] = old.offset + 1;
            }
        }
    }

    /// Per partition, the offset after the last update read: "now" for a new stream.
    pub fn end(&self) -> Vec<i64> {
        self.end.clone()
    }

    /// Partitions where `cursor` is older than memory: (partition, from, to).
    pub fn gaps(&self, cursor: &[i64]) -> Vec<(i32, i64, i64)> {
        self.start
            .iter()
            .enumerate()
            .map(|(p, &s)| (p as i32, cursor.get(p).copied().unwrap_or(0), s))
            .filter(|&(_, from, s)| from < s)
            .collect()
    }

    /// Up to `max` updates from sequence `from` on.
    pub fn read_from(&self, from: u64, max: usize) -> Vec<Arc<Logged>> {
        let first = self.entries.front().map_or(self.next_seq, |e| e.seq);
        let skip = from.saturating_sub(first) as usize;
        self.entries.iter().skip(skip).take(max).cloned().collect()
    }

    /// How many partitions the alert topic has.
    pub fn partitions(&self) -> usize {
        self.end.len()
    }
}

/// The key of an item's alert history: its department, NUL, its item id (DOMAIN §2:
/// two departments' items with one id have separate histories).
pub fn history_key(department_code: &str, item_id: &str) -> Box<str> {
    format!("{department_code}\0{item_id}").into_boxed_str()
}

/// The read model.
pub struct View {
    /// Every item, with the catalog and calendars in force.
    pub engine: RwLock<Engine>,
    /// Each item's alert updates, in the order read, by [`history_key`].
    pub history: dashmap::DashMap<Box<str>, Vec<HistoryEntry>>,
    /// Recent alert updates.
    pub log: RwLock<AlertLog>,
    /// The sequence number of the next update: changes wake live streams.
    pub appended: watch::Sender<u64>,
    /// True once the topics were read to where they stood at start.
    pub ready: watch::Sender<bool>,
    stop: AtomicBool,
}

impl std::fmt::Debug for View {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("View").field("items", &self.history.len()).finish_non_exhaustive()
    }
}

impl View {
    /// An empty view with `partitions` alert partitions.
    pub fn new(catalog: Arc<Catalog>, calendars: Calendars, partitions: usize, capacity: usize) -> Arc<View> {
        Arc::new(View {
            engine: RwLock::new(Engine::new(catalog, calendars)),
            history: dashmap::DashMap::new(),
            log: RwLock::new(AlertLog::new(partitions, capacity)),
            appended: watch::channel(0).0,
            ready: watch::channel(false).0,
            stop: AtomicBool::new(false),
        })
    }

    /// Asks the tailing thread to stop.
    pub fn stop(&self) {
        self.stop.store(true, Ordering::Relaxed);
    }

    /// Takes one alert update read from `partition` at `offset`.
    pub fn add_alert(&self, partition: i32, offset: i64, alert: v1::Alert) {
        if let Some(item) = alert.item_id.as_deref() {
            let entry = HistoryEntry {
                alert_id: alert.alert_id.clone(),
                kind: alert.kind,
                level: alert.level,
                status: alert.status,
                triggered_at: alert.triggered_at.clone(),
                partition,
                offset,
            };
            let department = alert.department_code.as_deref().unwrap_or_default();
            self.history.entry(history_key(department, item)).or_default().push(entry);
        }
        let seq = {
            let mut log = self.log.write().unwrap_or_else(|e| e.into_inner());
            log.push(partition, offset, alert);
            log.next_seq
        };
        self.appended.send_replace(seq);
    }

    /// Takes one item state read from the changelog.
    pub fn add_state(&self, state: &jiancha_core::engine::ItemState) {
        let mut effects = Vec::new();
        self.engine.write().unwrap_or_else(|e| e.into_inner()).import(state, &mut effects);
    }

    /// A tombstone in the state topic: the monitor retired the item (closed, past the
    /// retention window); the view forgets it too. Keys of another form are ignored.
    pub fn remove_state(&self, key: &[u8]) {
        if let Some((department, item_id)) = jiancha_proto::parse_state_key(key) {
            self.engine.write().unwrap_or_else(|e| e.into_inner()).remove(department, item_id);
        }
    }
}

/// Reads the alert and state topics from the beginning into `view`, then follows them,
/// until [`View::stop`]. Runs on its own thread.
pub fn tail(view: Arc<View>, config: Config) -> Result<(), KafkaError> {
    let consumer: BaseConsumer = jiancha_platform::kafka::consumer(&config)
        .set("group.id", "jiancha-gateway-view")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()?;
    let topics = [config.topics.alerts.as_str(), config.topics.state.as_str()];
    let mut tpl = TopicPartitionList::new();
    // What existed at start: (topic, partition) → high watermark still to reach.
    let mut waiting: HashMap<(String, i32), i64> = HashMap::new();
    for topic in topics {
        // A topic created a moment ago may show no partitions yet: ask again.
        let mut partitions = 0;
        for attempt in 0..50 {
            let metadata = consumer.fetch_metadata(Some(topic), Duration::from_secs(30))?;
            partitions = metadata.topics().first().filter(|t| t.error().is_none()).map_or(0, |t| t.partitions().len());
            if partitions > 0 || view.stop.load(Ordering::Relaxed) {
                break;
            }
            std::thread::sleep(Duration::from_millis(100 * (attempt + 1).min(10)));
        }
        info!(topic, partitions, "Gateway view reading");
        for p in 0..partitions as i32 {
            tpl.add_partition_offset(topic, p, Offset::Offset(0))?;
            let (low, high) = consumer.fetch_watermarks(topic, p, Duration::from_secs(30))?;
            if high > low {
                waiting.insert((topic.to_owned(), p), high);
            }
        }
    }
    consumer.assign(&tpl)?;
    let started = Instant::now();
    if waiting.is_empty() {
        view.ready.send_replace(true);
    }
    while !view.stop.load(Ordering::Relaxed) {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(msg)) => {
                let (topic, p, offset) = (msg.topic(), msg.partition(), msg.offset());
                if !waiting.is_empty() {
                    let key = (topic.to_owned(), p);
                    if waiting.get(&key).is_some_and(|&high| offset + 1 >= high) {
                        waiting.remove(&key);
                        if waiting.is_empty() {
                            let items = view.engine.read().map_or(0, |e| e.len());
                            info!(
                                items,
                                seconds = started.elapsed().as_secs_f64(),
                                "Gateway view caught up with the alert and state topics"
                            );
                            view.ready.send_replace(true);
                        }
                    }
                }
                if topic == config.topics.alerts {
                    match msg.payload().map(v1::Alert::decode) {
                        Some(Ok(alert)) => view.add_alert(p, offset, alert),
                        Some(Err(e)) => warn!(partition = p, offset, error = %e, "Alert record is not a jiancha.v1.Alert; skipped"),
                        None => {}
                    }
                } else if msg.key() != Some(jiancha_proto::HANDOVER_KEY) {
                    match (msg.payload(), msg.key()) {
                        (Some(value), _) => match jiancha_proto::decode_state(value) {
                            Ok(state) => view.add_state(&state),
                            Err(e) => warn!(partition = p, offset, error = %e, "State record cannot be read; skipped"),
                        },
                        (None, Some(key)) => view.remove_state(key),
                        (None, None) => {}
                    }
                }
            }
            Some(Err(e)) => warn!(error = %e, "Reading the monitor's topics"),
            None => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alert(id: &str) -> v1::Alert {
        v1::Alert { alert_id: id.into(), ..v1::Alert::default() }
    }

    #[test]
    fn a_tombstone_in_the_state_topic_removes_the_item_from_the_view() {
        let calendars = jiancha_core::Calendars::builtin();
        let catalog = Arc::new(jiancha_core::Catalog::from_toml(jiancha_platform::rules::DEMO_CATALOG, &calendars).unwrap());
        let mut source = jiancha_core::Engine::new(catalog.clone(), calendars.clone());
        let event = jiancha_core::parse_json_event(
            br#"{"event_id":"V-1","item_id":"V","service_code":"SCJG-001","department_code":"SCJG","type":"SUBMITTED","occurred_at":"2025-03-03T09:00:00+08:00"}"#,
        )
        .unwrap()
        .event;
        let item = match source.apply(&event, event.occurred_at, event.occurred_at, &mut Vec::new()) {
            jiancha_core::Applied::New => source.find("SCJG", "V").unwrap(),
            other => panic!("{other:?}"),
        };
        let view = View::new(catalog, calendars, 1, 10);
        view.add_state(&source.export(item).unwrap());
        assert_eq!(view.engine.read().unwrap().len(), 1);
        view.remove_state(b"not a key of this form");
        assert_eq!(view.engine.read().unwrap().len(), 1);
        view.remove_state(&jiancha_proto::state_key("SCJG", "V"));
        assert!(view.engine.read().unwrap().find("SCJG", "V").is_none());
    }

    #[test]
    fn the_log_keeps_the_newest_updates_and_names_what_it_evicted() {
        let mut log = AlertLog::new(1, 2);
        log.push(0, 0, alert("a"));
        log.push(0, 1, alert("b"));
        log.push(1, 0, alert("c")); // A partition the log did not know; evicts (0, 0).
        assert_eq!(log.partitions(), 2);
        assert_eq!(log.end(), [2, 1]);
        // A cursor made before partition 1 existed is shorter than the log: no panic, and
        // partition 0's evicted offset 0 is a gap to read from the topic.
        assert_eq!(log.gaps(&[0]), [(0, 0, 1)]);
        assert!(log.gaps(&[1, 0]).is_empty());
        let ids: Vec<String> = log.read_from(0, 10).iter().map(|l| l.alert.alert_id.clone()).collect();
        assert_eq!(ids, ["b", "c"]);
        assert_eq!(log.read_from(2, 10).len(), 1);
    }
}
