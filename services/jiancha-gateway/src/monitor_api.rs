//! MonitorService: an item's timeline, lists of items, and the live alert stream with
//! a resume cursor.
//!
//! The cursor is, per partition of the alert topic, the offset after the last update
//! delivered (`0:15,1:0,2:7`). Updates of one alert id share a partition (the topic is
//! keyed by alert id), so a stream resumed from a cursor gets every later update of
//! every alert, in order, and none it already had.

use crate::view::{Logged, View};
use jiancha_core::catalog::DayKind;
use jiancha_core::engine::{ClockStatus, ItemRef, ItemStatus, ItemSummary, StoredEvent, Timeline};
use jiancha_core::event::EventType;
use jiancha_core::{Level, Timestamp};
use jiancha_platform::Config;
use jiancha_platform::auth::{self, Caller, Role};
use jiancha_platform::errors::bad_request;
use jiancha_platform::limits::StreamCounter;
use jiancha_platform::wall_clock;
use jiancha_proto::cursor::{format_cursor, parse_cursor};
use jiancha_proto::v1;
use jiancha_proto::v1::monitor_service_server::MonitorService;
use prost::Message as _;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use std::collections::HashSet;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Metric: live alert streams open.
pub const WATCHERS: &str = "jiancha_gateway_watchers";

/// The monitor read service.
#[derive(Clone, Debug)]
pub struct Monitor {
    view: Arc<View>,
    config: Arc<Config>,
    streams: Arc<StreamCounter>,
}

impl Monitor {
    /// Over a view; `config` names the alert topic and the per-caller stream cap.
    pub fn new(view: Arc<View>, config: Arc<Config>) -> Monitor {
        Monitor { view, config, streams: Arc::new(StreamCounter::default()) }
    }
}

const READERS: [Role; 3] = [Role::Inspector, Role::Department, Role::Auditor];

/// The wire value of an item status.
pub fn item_status(s: ItemStatus) -> v1::ItemStatus {
    match s {
        ItemStatus::Received => v1::ItemStatus::Received,
        ItemStatus::CorrectionPending => v1::ItemStatus::CorrectionPending,
        ItemStatus::Accepted => v1::ItemStatus::Accepted,
        ItemStatus::Suspended => v1::ItemStatus::Suspended,
        ItemStatus::Decided => v1::ItemStatus::Decided,
        ItemStatus::Closed => v1::ItemStatus::Closed,
    }
}

fn level(l: Option<Level>) -> v1::Level {
    match l {
        None => v1::Level::Unspecified,
        Some(Level::Warning) => v1::Level::Warning,
        Some(Level::Yellow) => v1::Level::Yellow,
        Some(Level::Red) => v1::Level::Red,
    }
}

fn event_detail(e: &StoredEvent) -> Option<String> {
    let text = e.text.clone().unwrap_or_default();
    match e.event_type {
        EventType::StepCompleted => Some(format!("环节 step: {text}")),
        EventType::Suspended => Some(format!("{text}, expected {} working day(s)", e.number)),
        EventType::Extended => Some(format!("{} day(s), approver: {}", e.number, if text.is_empty() { "(none)" } else { &text })),
        EventType::FeeCharged => Some(format!("{} fen", e.number)),
        EventType::Decided => Some(if e.number == 1 { "DENIED".into() } else { "APPROVED".into() }),
        _ => None,
    }
}

/// The wire form of a timeline.
fn timeline_message(t: &Timeline, service_name: Option<String>, as_of: Timestamp, history: Vec<v1::AlertHistoryEntry>) -> v1::ItemTimeline {
    let zone = t.zone;
    let events = t
        .state
        .events
        .iter()
        .map(|e| v1::TimelineEvent {
            event_id: e.event_id.clone(),
            r#type: v1::EventType::from_str_name(e.event_type.as_str()).map_or(0, |t| t as i32),
            occurred_at: e.occurred_at.to_rfc3339_in(zone),
            received_at: Timestamp(e.occurred_at.0 + i64::from(e.delay_ms)).to_rfc3339_in(zone),
            actor: e.actor.clone(),
            detail: event_detail(e),
        })
        .collect();
    let clocks = t
        .clocks
        .iter()
        .map(|c| v1::Clock {
            name: c.name.clone(),
            label_zh: c.label_zh.clone(),
            guards: jiancha_proto::alert_kind_value(c.guards),
            status: match c.status {
                ClockStatus::Running => v1::ClockStatus::Running,
                ClockStatus::Paused => v1::ClockStatus::Paused,
                ClockStatus::Met => v1::ClockStatus::Met,
                ClockStatus::Overdue => v1::ClockStatus::Overdue,
            } as i32,
            started_at: c.started_at.to_rfc3339_in(zone),
            deadline: c.deadline.to_rfc3339_in(zone),
            stopped_at: c.stopped_at.map(|s| s.to_rfc3339_in(zone)),
            budget_days: c.budget_days,
            day_kind: match c.day_kind {
                DayKind::Working => "WORKING".into(),
                DayKind::Natural => "NATURAL".into(),
            },
            remaining_ms: c.remaining_ms,
            remaining_days: c.remaining_days,
            derivation: Some(v1::Bilingual { zh: c.derivation.zh.clone(), en: c.derivation.en.clone() }),
        })
        .collect();
    v1::ItemTimeline {
        item_id: t.state.item_id.clone(),
        service_code: t.state.service_code.clone(),
        service_name,
        department_code: t.state.department_code.clone(),
        status: item_status(t.status) as i32,
        as_of: as_of.to_rfc3339_in(zone),
        events,
        clocks,
        alerts: t.alerts.iter().map(v1::Alert::from).collect(),
        history,
    }
}

fn summary_message(s: ItemSummary) -> v1::ItemSummary {
    v1::ItemSummary {
        item_id: s.item_id,
        service_code: s.service_code,
        department_code: s.department_code,
        status: item_status(s.status) as i32,
        level: level(s.level) as i32,
        overdue: s.overdue,
        alerts_in_force: s.alerts_in_force as u32,
        next_deadline: s.next_deadline.map(|t| t.to_string()),
    }
}

/// Which updates a stream wants.
#[derive(Clone, Debug)]
struct Filter {
    departments: Option<HashSet<String>>,
    kinds: HashSet<i32>,
    min_level: i32,
}

impl Filter {
    fn matches(&self, a: &v1::Alert) -> bool {
        if let Some(ds) = &self.departments
            && !a.department_code.as_ref().is_some_and(|d| ds.contains(d))
        {
            return false;
        }
        (self.kinds.is_empty() || self.kinds.contains(&a.kind)) && a.level >= self.min_level
    }
}

type WatchStream = Pin<Box<dyn futures::Stream<Item = Result<v1::AlertUpdate, Status>> + Send>>;

#[tonic::async_trait]
impl MonitorService for Monitor {
    async fn get_item(&self, request: Request<v1::GetItemRequest>) -> Result<Response<v1::ItemTimeline>, Status> {
        let caller = auth::caller(&request)?;
        caller.require("GetItem", &READERS)?;
        let req = request.into_inner();
        let item_id = req.item_id;
        if item_id.is_empty() {
            return Err(bad_request("item_id", "item_id is required".into()));
        }
        // One answer for an id that does not exist and one of another department, so
        // that ids reveal nothing about their owner (DOMAIN §2, §6).
        let not_found = || Status::not_found(format!("item {item_id} is not known to the monitor"));
        let as_of = wall_clock();
        let (timeline, service_name) = {
            let engine = self.view.engine.read().unwrap_or_else(|e| e.into_inner());
            let item = match (caller.department_scope(), req.department_code.as_str()) {
                (Some(own), asked) if asked.is_empty() || asked == own => engine.find(own, &item_id).ok_or_else(not_found)?,
                (Some(_), _) => return Err(not_found()),
                (None, asked) if !asked.is_empty() => engine.find(asked, &item_id).ok_or_else(not_found)?,
                (None, _) => match engine.find_all(&item_id).as_slice() {
                    [] => return Err(not_found()),
                    [one] => *one,
                    several => {
                        let departments: Vec<&str> = several.iter().filter_map(|&i| engine.department_of(i)).collect();
                        return Err(bad_request(
                            "department_code",
                            format!("item_id {item_id} is used by departments {}: give department_code", departments.join(", ")),
                        ));
                    }
                },
            };
            let t = engine.timeline(item, as_of).ok_or_else(not_found)?;
            let name = t.state.service_code.as_deref().and_then(|c| engine.catalog().get(c)).map(|s| s.name.to_string());
            (t, name)
        };
        let history = self
            .view
            .history
            .get(&*crate::view::history_key(&timeline.state.department_code, &item_id))
            .map(|h| {
                h.iter()
                    .map(|e| v1::AlertHistoryEntry {
                        alert_id: e.alert_id.clone(),
                        kind: e.kind,
                        level: e.level,
                        status: e.status,
                        triggered_at: e.triggered_at.clone(),
                        partition: e.partition,
                        offset: e.offset,
                    })
                    .collect()
            })
            .unwrap_or_default();
        Ok(Response::new(timeline_message(&timeline, service_name, as_of, history)))
    }

    async fn list_items(&self, request: Request<v1::ListItemsRequest>) -> Result<Response<v1::ListItemsResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require("ListItems", &READERS)?;
        let req = request.into_inner();
        let department = caller.department_filter("the items asked for", req.department_code.clone())?;
        let page_size = match req.page_size {
            0 => 100,
            n if n > 1000 => return Err(bad_request("page_size", format!("page_size {n} is over the maximum of 1000"))),
            n => n as usize,
        };
        let start: u32 = if req.page_token.is_empty() {
            0
        } else {
            req.page_token
                .parse()
                .map_err(|_| bad_request("page_token", format!("page_token `{}` was not issued by this service", req.page_token)))?
        };
        let status = req.status.map(|s| v1::ItemStatus::try_from(s).unwrap_or(v1::ItemStatus::Unspecified));
        let engine = self.view.engine.read().unwrap_or_else(|e| e.into_inner());
        let total = engine.len() as u32;
        let mut items = Vec::with_capacity(page_size);
        let mut next = start;
        while next < total && items.len() < page_size {
            let item = ItemRef(next);
            next += 1;
            let Some(s) = engine.summary(item) else { continue };
            if department.as_ref().is_some_and(|d| *d != s.department_code)
                || req.service_code.as_ref().is_some_and(|c| s.service_code.as_ref() != Some(c))
                || status.is_some_and(|st| item_status(s.status) != st)
                || req.overdue.is_some_and(|o| o != s.overdue)
                || req.min_level.is_some_and(|l| (level(s.level) as i32) < l)
            {
                continue;
            }
            items.push(summary_message(s));
        }
        let next_page_token = if next < total { next.to_string() } else { String::new() };
        Ok(Response::new(v1::ListItemsResponse { items, next_page_token }))
    }

    type WatchAlertsStream = WatchStream;

    async fn watch_alerts(&self, request: Request<v1::WatchAlertsRequest>) -> Result<Response<WatchStream>, Status> {
        let caller = auth::caller(&request)?;
        caller.require("WatchAlerts", &READERS)?;
        let req = request.into_inner();
        let filter = filter_for(&caller, &req)?;
        let slot = self.streams.acquire(&caller.subject, self.config.grpc.watchers_per_caller).ok_or_else(|| {
            Status::resource_exhausted(format!(
                "caller {} already holds {} alert streams, the most allowed",
                caller.subject, self.config.grpc.watchers_per_caller
            ))
        })?;
        let cursor = {
            let log = self.view.log.read().unwrap_or_else(|e| e.into_inner());
            match req.cursor.as_str() {
                "" => log.end(),
                "earliest" => vec![0; log.partitions()],
                text => parse_cursor(text, log.partitions()).map_err(|e| bad_request("cursor", format!("cursor `{text}`: {e}")))?,
            }
        };
        let (tx, rx) = mpsc::channel(256);
        let view = self.view.clone();
        let config = self.config.clone();
        tokio::spawn(async move {
            let _slot = slot;
            metrics::gauge!(WATCHERS).increment(1.0);
            if let Err(status) = stream_alerts(view, config, filter, cursor, &tx).await {
                let _ = tx.send(Err(status)).await;
            }
            metrics::gauge!(WATCHERS).decrement(1.0);
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx)) as WatchStream))
    }
}

fn filter_for(caller: &Caller, req: &v1::WatchAlertsRequest) -> Result<Filter, Status> {
    let departments = match caller.department_scope() {
        Some(own) => {
            for d in &req.department_codes {
                caller.check_department("the alerts asked for", d)?;
            }
            Some(HashSet::from([own.to_owned()]))
        }
        None if req.department_codes.is_empty() => None,
        None => Some(req.department_codes.iter().cloned().collect()),
    };
    for &k in &req.kinds {
        if jiancha_proto::alert_kind(k).is_none() {
            return Err(bad_request("kinds", format!("alert kind value {k} is not defined")));
        }
    }
    Ok(Filter { departments, kinds: req.kinds.iter().copied().collect(), min_level: req.min_level })
}

type Tx = mpsc::Sender<Result<v1::AlertUpdate, Status>>;

/// Sends every update at or after `cursor` that passes `filter`, then follows the log
/// until the client goes away.
async fn stream_alerts(view: Arc<View>, config: Arc<Config>, filter: Filter, mut cursor: Vec<i64>, tx: &Tx) -> Result<(), Status> {
    let mut appended = view.appended.subscribe();
    let mut next_seq = 0u64;
    loop {
        let (gaps, batch) = {
            let log = view.log.read().unwrap_or_else(|e| e.into_inner());
            // The topic may have gained partitions since the cursor was made.
            if cursor.len() < log.partitions() {
                cursor.resize(log.partitions(), 0);
            }
            let gaps = log.gaps(&cursor);
            let batch = if gaps.is_empty() { log.read_from(next_seq, 1024) } else { Vec::new() };
            (gaps, batch)
        };
        if !gaps.is_empty() {
            // Older than memory: read those offsets from the topic.
            let (config, f) = (config.clone(), filter.clone());
            let tx2 = tx.clone();
            let before = cursor.clone();
            cursor = tokio::task::spawn_blocking(move || catch_up(&config, &gaps, before, &f, &tx2))
                .await
                .map_err(|e| Status::internal(format!("catch-up task: {e}")))??;
            continue;
        }
        if batch.is_empty() {
            tokio::select! {
                changed = appended.changed() => if changed.is_err() { return Ok(()) },
                _ = tx.closed() => return Ok(()),
            }
            continue;
        }
        for entry in &batch {
            next_seq = entry.seq + 1;
            if deliver(entry, &filter, &mut cursor, tx).await.is_err() {
                return Ok(()); // The client went away.
            }
        }
    }
}

async fn deliver(entry: &Logged, filter: &Filter, cursor: &mut Vec<i64>, tx: &Tx) -> Result<(), ()> {
    let p = entry.partition as usize;
    if p >= cursor.len() {
        cursor.resize(p + 1, 0);
    }
    if entry.offset < cursor[p] {
        return Ok(()); // Already delivered.
    }
    cursor[p] = entry.offset + 1;
    if !filter.matches(&entry.alert) {
        return Ok(());
    }
    let update = v1::AlertUpdate { alert: Some(entry.alert.clone()), cursor: format_cursor(cursor) };
    tx.send(Ok(update)).await.map_err(|_| ())
}

/// Reads `[from, to)` of each gap from the alert topic and sends what passes the filter.
fn catch_up(config: &Config, gaps: &[(i32, i64, i64)], mut cursor: Vec<i64>, filter: &Filter, tx: &Tx) -> Result<Vec<i64>, Status> {
    let unavailable = |e: rdkafka::error::KafkaError| Status::unavailable(format!("reading the alert topic: {e}"));
    let topic = config.topics.alerts.as_str();
    let consumer: BaseConsumer = jiancha_platform::kafka::consumer(config)
        .set("group.id", "jiancha-gateway-catch-up")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .create()
        .map_err(unavailable)?;
    let mut tpl = TopicPartitionList::new();
    for &(p, from, _) in gaps {
        tpl.add_partition_offset(topic, p, Offset::Offset(from)).map_err(unavailable)?;
    }
    consumer.assign(&tpl).map_err(unavailable)?;
    let mut open: HashSet<i32> = gaps.iter().map(|g| g.0).collect();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    // Ask the broker for watermarks at the start and whenever a poll comes back empty,
    // not for every record.
    let mut idle = true;
    while !open.is_empty() {
        if std::time::Instant::now() > deadline {
            return Err(Status::unavailable("the alert topic did not deliver the requested range within 2 minutes"));
        }
        if idle {
            for &(p, _, to) in gaps {
                // Records deleted by retention: move to what exists.
                if open.contains(&p)
                    && let Ok((low, _)) = consumer.fetch_watermarks(topic, p, Duration::from_secs(5))
                    && low >= to
                {
                    open.remove(&p);
                    cursor[p as usize] = cursor[p as usize].max(to);
                }
            }
        }
        let Some(msg) = consumer.poll(Duration::from_millis(200)) else {
            idle = true;
            continue;
        };
        idle = false;
        let msg = msg.map_err(unavailable)?;
        let (p, offset) = (msg.partition(), msg.offset());
        let Some(&(_, _, to)) = gaps.iter().find(|g| g.0 == p) else { continue };
        if offset >= to {
            open.remove(&p);
            continue;
        }
        if offset + 1 >= to {
            open.remove(&p);
        }
        if offset < cursor[p as usize] {
            continue;
        }
        cursor[p as usize] = offset + 1;
        let Some(Ok(alert)) = msg.payload().map(v1::Alert::decode) else { continue };
        if filter.matches(&alert) {
            let update = v1::AlertUpdate { alert: Some(alert), cursor: format_cursor(&cursor) };
            if tx.blocking_send(Ok(update)).is_err() {
                return Err(Status::cancelled("the client went away"));
            }
        }
    }
    Ok(cursor)
}
