//! IngestService: events from department systems, validated against DOMAIN §2 and
//! published to the event topic. The answer comes after the broker acknowledged.

use futures::StreamExt;
use futures::stream::FuturesOrdered;
use jiancha_core::event::{Event, InvalidEvent};
use jiancha_platform::auth::{self, Caller, ERROR_DOMAIN, Role};
use jiancha_platform::codec;
use jiancha_platform::limits::{RateLimiter, grpc_timeout};
use jiancha_proto::v1;
use jiancha_proto::v1::ingest_service_server::IngestService;
use prost::Message as _;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;
use tonic::{Code, Request, Response, Status, Streaming};
use tonic_types::{ErrorDetails, StatusExt};

/// Metric: events through the gateway, by result.
pub const SUBMITTED: &str = "jiancha_gateway_events_total";
/// The results of [`SUBMITTED`].
pub const RESULTS: [&str; 5] = ["accepted", "invalid", "denied", "rate_limited", "unavailable"];

/// Events a stream may have in flight to the broker at once.
const IN_FLIGHT: usize = 4096;

/// The ingest service.
#[derive(Clone)]
pub struct Ingest {
    producer: FutureProducer,
    topic: Arc<str>,
    limiter: Arc<RateLimiter>,
    timeout: Duration,
    max_stream_events: u64,
    query_secret: Option<Arc<[u8]>>,
}

impl std::fmt::Debug for Ingest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ingest").field("topic", &self.topic).finish_non_exhaustive()
    }
}

/// Why an event was not published.
struct Refusal {
    event_id: String,
    status: Status,
    violations: Vec<v1::FieldViolation>,
}

impl Ingest {
    /// Publishes to `topic` with `producer` (idempotent), `timeout` when the client sets
    /// no deadline; a stream takes at most `max_stream_events`.
    pub fn new(producer: FutureProducer, topic: &str, limiter: Arc<RateLimiter>, timeout: Duration, max_stream_events: u64) -> Ingest {
        Ingest { producer, topic: Arc::from(topic), limiter, timeout, max_stream_events, query_secret: None }
    }

    /// Answers SUBMITTED events with the applicant's query code under `secret`.
    pub fn with_query_codes(self, secret: Option<Vec<u8>>) -> Ingest {
        Ingest { query_secret: secret.map(Arc::from), ..self }
    }

    /// The query code of a SUBMITTED event, when codes are issued.
    fn query_code(&self, event: &Event) -> String {
        match (&self.query_secret, &event.body) {
            (Some(secret), jiancha_core::event::EventBody::Submitted) => {
                jiancha_platform::progress::query_code(secret, &event.department_code, &event.item_id)
            }
            _ => String::new(),
        }
    }

    /// Validates one event for a caller: Ok with the bytes to publish, or the refusal.
    fn check(caller: &Caller, event: Option<v1::Event>) -> Result<(Event, Vec<u8>), Refusal> {
        let Some(msg) = event else {
            let v = violation("event", "MISSING_FIELD", "the request carries no event");
            let status = invalid_status("the request carries no event", "MISSING_FIELD", &v);
            return Err(Refusal { event_id: String::new(), status, violations: vec![v] });
        };
        let bytes = msg.encode_to_vec();
        let event = Event::try_from(msg).map_err(|e| refusal_of(&e))?;
        caller.check_department(&format!("event {} of item {}", event.event_id, event.item_id), &event.department_code).map_err(
            |status| Refusal {
                event_id: event.event_id.clone(),
                status,
                violations: vec![violation(
                    "department_code",
                    "OTHER_DEPARTMENT",
                    "a department may submit events of its own department_code only",
                )],
            },
        )?;
        Ok((event, bytes))
    }

    async fn publish(&self, item_id: String, bytes: Vec<u8>, timeout: Duration) -> Result<(i32, i64), Status> {
        let headers = OwnedHeaders::new().insert(Header { key: codec::CONTENT_TYPE, value: Some(codec::PROTOBUF) });
        let record = FutureRecord::to(&self.topic).key(&item_id).payload(&bytes).headers(headers);
        match self.producer.send(record, Timeout::After(timeout)).await {
            Ok(delivery) => Ok((delivery.partition, delivery.offset)),
            Err((e, _)) => {
                Err(Status::unavailable(format!("the event topic did not acknowledge the event: {e}; it was not stored, send it again")))
            }
        }
    }

    fn deadline(&self, metadata: &tonic::metadata::MetadataMap) -> Duration {
        grpc_timeout(metadata).map_or(self.timeout, |d| d.min(self.timeout))
    }
}

fn violation(field: &str, reason: &str, description: &str) -> v1::FieldViolation {
    v1::FieldViolation { field: field.to_owned(), reason: reason.to_owned(), description: description.to_owned() }
}

fn invalid_status(message: &str, reason: &str, v: &v1::FieldViolation) -> Status {
    let mut details = ErrorDetails::new();
    let path = if v.field == "event" { "event".to_owned() } else { format!("event.{}", v.field) };
    details.add_bad_request_violation(path, &v.description);
    details.set_error_info(reason, ERROR_DOMAIN, HashMap::from([("field".to_owned(), v.field.clone())]));
    Status::with_error_details(Code::InvalidArgument, message, details)
}

/// INVALID_ARGUMENT naming the field and the rule (google.rpc.BadRequest + ErrorInfo).
fn refusal_of(e: &InvalidEvent) -> Refusal {
    let field = e.field.unwrap_or("event");
    let v = violation(field, e.reason.as_str(), &e.message);
    let message = match &e.event_id {
        Some(id) => format!("event {id} is invalid: {}: {}", field, e.message),
        None => format!("the event is invalid: {}: {}", field, e.message),
    };
    Refusal {
        event_id: e.event_id.clone().unwrap_or_default(),
        status: invalid_status(&message, e.reason.as_str(), &v),
        violations: vec![v],
    }
}

fn count(result: &'static str) {
    metrics::counter!(SUBMITTED, "result" => result).increment(1);
}

#[tonic::async_trait]
impl IngestService for Ingest {
    async fn submit(&self, request: Request<v1::SubmitRequest>) -> Result<Response<v1::SubmitResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require("Submit", &[Role::Department])?;
        let timeout = self.deadline(request.metadata());
        if let Err(wait) = self.limiter.try_take(&caller.subject, 1.0) {
            count("rate_limited");
            return Err(jiancha_platform::limits::over_rate(&caller.subject, "event", wait));
        }
        let (event, bytes) = Self::check(&caller, request.into_inner().event).map_err(|r| {
            count(if r.status.code() == Code::PermissionDenied { "denied" } else { "invalid" });
            r.status
        })?;
        let query_code = self.query_code(&event);
        let (partition, offset) = self.publish(event.item_id, bytes, timeout).await.inspect_err(|_| count("unavailable"))?;
        count("accepted");
        Ok(Response::new(v1::SubmitResponse { event_id: event.event_id, partition, offset, query_code }))
    }

    async fn submit_stream(&self, request: Request<Streaming<v1::SubmitRequest>>) -> Result<Response<v1::SubmitStreamResponse>, Status> {
        let caller = auth::caller(&request)?;
        caller.require("SubmitStream", &[Role::Department])?;
        let timeout = self.deadline(request.metadata());
        let mut stream = request.into_inner();
        let mut pending = FuturesOrdered::new();
        let mut results = Vec::new();
        let mut index = 0u64;
        let mut truncated = false;
        loop {
            tokio::select! {
                biased;
                Some(done) = pending.next(), if !pending.is_empty() => {
                    results.push(done);
                }
                next = stream.message(), if pending.len() < IN_FLIGHT => {
                    let Some(req) = next? else { break };
                    if index >= self.max_stream_events {
                        // The answer lists every event: it must stay bounded.
                        truncated = true;
                        break;
                    }
                    self.limiter.take(&caller.subject, 1.0).await;
                    let i = index;
                    index += 1;
                    match Self::check(&caller, req.event) {
                        Err(r) => {
                            count(if r.status.code() == Code::PermissionDenied { "denied" } else { "invalid" });
                            pending.push_back(futures::future::Either::Left(futures::future::ready(v1::SubmitResult {
                                index: i,
                                event_id: r.event_id,
                                code: code_name(r.status.code()).to_owned(),
                                violations: r.violations,
                                message: r.status.message().to_owned(),
                                ..Default::default()
                            })));
                        }
                        Ok((event, bytes)) => {
                            let this = self.clone();
                            let query_code = self.query_code(&event);
                            pending.push_back(futures::future::Either::Right(async move {
                                match this.publish(event.item_id, bytes, timeout).await {
                                    Ok((partition, offset)) => {
                                        count("accepted");
                                        v1::SubmitResult { index: i, event_id: event.event_id, code: "OK".into(), partition, offset, query_code, ..Default::default() }
                                    }
                                    Err(status) => {
                                        count("unavailable");
                                        v1::SubmitResult { index: i, event_id: event.event_id, code: "UNAVAILABLE".into(), message: status.message().to_owned(), ..Default::default() }
                                    }
                                }
                            }));
                        }
                    }
                }
            }
        }
        while let Some(done) = pending.next().await {
            results.push(done);
        }
        let accepted = results.iter().filter(|r| r.code == "OK").count() as u64;
        Ok(Response::new(v1::SubmitStreamResponse { accepted, rejected: results.len() as u64 - accepted, results, truncated }))
    }
}

/// The canonical name of a status code.
fn code_name(code: Code) -> &'static str {
    match code {
        Code::Ok => "OK",
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::PermissionDenied => "PERMISSION_DENIED",
        Code::Unavailable => "UNAVAILABLE",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        _ => "UNKNOWN",
    }
}
