//! Load on the gRPC gateway, over TLS with tokens as in production:
//!
//! 1. **Ingest**: N simulated events through `SubmitStream`, S concurrent streams (each
//!    with its department's token); events/s counted from the first request to the last
//!    broker acknowledgement. Then the same through unary `Submit` with C calls in flight.
//! 2. **Fan-out**: W `WatchAlerts` streams held open, then M alert updates published to
//!    the alert topic; the time until every watcher has every update, and the process's
//!    resident memory per held watcher (server and clients share the process: an upper
//!    bound for the server alone).
//!
//! The broker is librdkafka's in-process mock cluster unless `--kafka-bootstrap` names
//! a real one (see loadtests/README.md).

use anyhow::{Context, Result, bail};
use clap::Parser;
use futures::StreamExt;
use jiancha_platform::Config;
use jiancha_platform::auth::{Bearer, Role};
use jiancha_proto::v1;
use jiancha_sim::{SimConfig, simulate};
use prost::Message as _;
use rdkafka::config::ClientConfig;
use rdkafka::producer::{FutureProducer, FutureRecord};
use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};
use tonic::transport::{Certificate, Channel, ClientTlsConfig};

#[derive(Parser, Debug)]
#[command(name = "grpc-load", about = "Ingest throughput and WatchAlerts fan-out of the gRPC gateway")]
struct Args {
    /// A real broker; the in-process mock cluster when absent.
    #[arg(long)]
    kafka_bootstrap: Option<String>,
    /// Events through SubmitStream.
    #[arg(long, default_value_t = 200_000)]
    events: usize,
    /// Concurrent SubmitStream streams.
    #[arg(long, default_value_t = 8)]
    streams: usize,
    /// Events through unary Submit.
    #[arg(long, default_value_t = 20_000)]
    unary_events: usize,
    /// Unary calls in flight.
    #[arg(long, default_value_t = 64)]
    unary_in_flight: usize,
    /// WatchAlerts streams held.
    #[arg(long, default_value_t = 2_000)]
    watchers: usize,
    /// Alert updates published to the watchers.
    #[arg(long, default_value_t = 200)]
    alerts: usize,
    /// Partitions of the topics.
    #[arg(long, default_value_t = 8)]
    partitions: i32,
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let dir = std::env::temp_dir().join(format!("jiancha-grpc-load-{}", std::process::id()));
    let catalog = jiancha_platform::rules::load_rules(None, &[])?.0;
    let mut departments: Vec<String> = catalog.services().iter().map(|s| s.department.to_string()).collect();
    departments.sort();
    departments.dedup();
    let department_refs: Vec<&str> = departments.iter().map(String::as_str).collect();
    let local = jiancha_platform::local::prepare(&dir, "jiancha", &department_refs, 3600).map_err(anyhow::Error::msg)?;

    let mut config = Config { partitions: args.partitions, metrics_listen: String::new(), ..Config::default() };
    let cluster = match &args.kafka_bootstrap {
        Some(b) => {
            config.kafka_bootstrap = b.clone();
            None
        }
        None => {
            let cluster = rdkafka::mocking::MockCluster::new(1)?;
            config.kafka_bootstrap = cluster.bootstrap_servers();
            let t = &config.topics;
            for topic in [&t.events, &t.alerts, &t.dead_letter, &t.state] {
                cluster.create_topic(topic, args.partitions, 1)?;
            }
            Some(cluster)
        }
    };
    config.grpc.listen = "127.0.0.1:0".into();
    config.grpc.tls_cert = Some(local.server_cert.clone());
    config.grpc.tls_key = Some(local.server_key.clone());
    config.grpc.auth.secret_file = Some(local.secret_file.clone());
    config.grpc.rate_per_caller = 1e9;
    config.grpc.burst_per_caller = 1e9;
    config.grpc.watchers_per_caller = args.watchers + 16;
    let (_stop, shutdown) = tokio::sync::watch::channel(false);
    let gateway = jiancha_gateway::start(config.clone(), shutdown).await?;
    let broker = if cluster.is_some() { "in-process mock cluster" } else { "external broker" };
    println!("gateway {} (TLS), broker: {broker} {}, {} partitions", gateway.addr, config.kafka_bootstrap, args.partitions);

    let ca = std::fs::read(&local.ca_cert)?;
    let endpoint = Channel::from_shared(format!("https://127.0.0.1:{}", gateway.addr.port()))?
        .tls_config(ClientTlsConfig::new().ca_certificate(Certificate::from_pem(ca)).domain_name("localhost"))?;
    let token = |role: Role, dept: Option<&str>| -> Result<String> {
        let (_, _, f) = local.tokens.iter().find(|(r, d, _)| *r == role && d.as_deref() == dept).context("token")?;
        Ok(std::fs::read_to_string(f)?)
    };

    // 1. Ingest through SubmitStream.
    let events = simulate(
        &catalog,
        &jiancha_core::Calendars::builtin(),
        &SimConfig {
            seed: 7,
            items: args.events / 7 + 1,
            first_day: chrono::Local::now().date_naive() - chrono::Duration::days(30),
            spread_days: 20,
            irregular_share: 0.3,
        },
    );
    let mut by_stream: BTreeMap<(String, usize), Vec<v1::SubmitRequest>> = BTreeMap::new();
    let per_department = args.streams.div_ceil(departments.len()).max(1);
    let mut total = 0;
    for e in events.iter().take(args.events) {
        let Ok(parsed) = jiancha_core::parse_json_event(e.json.to_string().as_bytes()) else { continue };
        let ev = parsed.event;
        let lane = (e.item_id.bytes().map(usize::from).sum::<usize>()) % per_department;
        by_stream.entry((ev.department_code.clone(), lane)).or_default().push(v1::SubmitRequest { event: Some(v1::Event::from(&ev)) });
        total += 1;
    }
    println!("ingest: {total} events on {} streams ({} departments)", by_stream.len(), departments.len());
    let started = Instant::now();
    let mut tasks = Vec::new();
    for ((department, _), requests) in by_stream {
        let channel = endpoint.connect().await?;
        let mut client = v1::ingest_service_client::IngestServiceClient::with_interceptor(
            channel,
            Bearer(Some(token(Role::Department, Some(&department))?)),
        )
        .max_encoding_message_size(64 << 20);
        tasks.push(tokio::spawn(async move { client.submit_stream(futures::stream::iter(requests)).await.map(|r| r.into_inner()) }));
    }
    let mut accepted = 0;
    for t in tasks {
        let r = t.await??;
        accepted += r.accepted;
        if r.rejected > 0 {
            bail!("{} events refused: {:?}", r.rejected, r.results.iter().find(|x| x.code != "OK"));
        }
    }
    let took = started.elapsed();
    println!(
        "SubmitStream: {accepted} events acknowledged by the broker in {:.2} s = {:.0} events/s",
        took.as_secs_f64(),
        accepted as f64 / took.as_secs_f64()
    );

    // 1b. Unary Submit with calls in flight.
    let channel = endpoint.connect().await?;
    let dept = departments[0].clone();
    let client =
        v1::ingest_service_client::IngestServiceClient::with_interceptor(channel, Bearer(Some(token(Role::Department, Some(&dept))?)));
    let started = Instant::now();
    let done = futures::stream::iter(0..args.unary_events)
        .map(|i| {
            let mut c = client.clone();
            let e = v1::Event {
                event_id: format!("u-{i}"),
                item_id: format!("UNARY-{}", i / 4),
                service_code: Some("SCJG-001".into()),
                department_code: dept.clone(),
                r#type: v1::EventType::Submitted as i32,
                occurred_at: "2026-11-02T09:00:00+08:00".into(),
                ..Default::default()
            };
            async move { c.submit(v1::SubmitRequest { event: Some(e) }).await.is_ok() }
        })
        .buffer_unordered(args.unary_in_flight)
        .filter(|ok| futures::future::ready(*ok))
        .count()
        .await;
    let took = started.elapsed();
    println!(
        "Submit (unary, {} in flight): {done} events in {:.2} s = {:.0} events/s",
        args.unary_in_flight,
        took.as_secs_f64(),
        done as f64 / took.as_secs_f64()
    );

    // 2. Fan-out: hold W watchers, then publish M alert updates.
    let inspector = token(Role::Inspector, None)?;
    let before = jiancha_loadtest::rss_bytes();
    let received = Arc::new(AtomicUsize::new(0));
    let complete = Arc::new(AtomicUsize::new(0));
    let per_channel = 100;
    let mut channels = Vec::new();
    for _ in 0..args.watchers.div_ceil(per_channel) {
        channels.push(endpoint.connect().await?);
    }
    let mut watchers = Vec::new();
    for w in 0..args.watchers {
        let mut client = v1::monitor_service_client::MonitorServiceClient::with_interceptor(
            channels[w / per_channel].clone(),
            Bearer(Some(inspector.clone())),
        );
        let mut stream = client.watch_alerts(v1::WatchAlertsRequest::default()).await?.into_inner();
        let (received, complete, want) = (received.clone(), complete.clone(), args.alerts);
        watchers.push(tokio::spawn(async move {
            let mut n = 0;
            while let Some(Ok(_)) = stream.next().await {
                n += 1;
                received.fetch_add(1, Ordering::Relaxed);
                if n == want {
                    complete.fetch_add(1, Ordering::Relaxed);
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let held = jiancha_loadtest::rss_bytes();
    println!(
        "WatchAlerts: {} streams held on {} connections; resident memory {:.1} MiB -> {:.1} MiB ({:.1} KiB per watcher, server and clients together)",
        args.watchers,
        channels.len(),
        before as f64 / 1048576.0,
        held as f64 / 1048576.0,
        held.saturating_sub(before) as f64 / 1024.0 / args.watchers as f64
    );
    let producer: FutureProducer = ClientConfig::new().set("bootstrap.servers", &config.kafka_bootstrap).set("linger.ms", "1").create()?;
    let started = Instant::now();
    for i in 0..args.alerts {
        let alert = v1::Alert {
            alert_id: format!("{i:032x}"),
            status: v1::AlertStatus::Fired as i32,
            item_id: Some(format!("FANOUT-{i}")),
            department_code: Some(departments[i % departments.len()].clone()),
            kind: v1::AlertKind::PromisedOverdue as i32,
            level: v1::Level::Yellow as i32,
            triggered_at: "2026-11-20T00:00:00+08:00".into(),
            ..Default::default()
        };
        let payload = alert.encode_to_vec();
        producer
            .send(FutureRecord::to(&config.topics.alerts).key(&alert.alert_id).payload(&payload), Duration::from_secs(10))
            .await
            .map_err(|(e, _)| e)?;
    }
    let published = started.elapsed();
    let deadline = Instant::now() + Duration::from_secs(300);
    while complete.load(Ordering::Relaxed) < args.watchers && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let took = started.elapsed();
    let got = received.load(Ordering::Relaxed);
    println!(
        "fan-out: {} updates published in {:.2} s; {} of {} watchers got all of them; {got} deliveries in {:.2} s = {:.0} deliveries/s",
        args.alerts,
        published.as_secs_f64(),
        complete.load(Ordering::Relaxed),
        args.watchers,
        took.as_secs_f64(),
        got as f64 / took.as_secs_f64()
    );
    for w in watchers {
        w.abort();
    }
    drop(cluster);
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
