//! Per-method gRPC metrics for every jiancha server: requests by service, method and
//! status code, and their duration (a stream's lasts until its end). Method labels come
//! only from the methods the servers define, so that requests for made-up paths cannot
//! grow the number of series.

use http_body::{Body, Frame, SizeHint};
use prost::Message;
use std::collections::HashSet;
use std::future::Future;
use std::pin::Pin;
use std::sync::OnceLock;
use std::task::{Context, Poll};
use std::time::Instant;

/// Metric: requests finished, by `service`, `method` and `code` (`OK`, `NOT_FOUND`…).
pub const REQUESTS: &str = "jiancha_grpc_requests_total";
/// Metric: from a request's arrival to the end of its answer, by `service` and `method`.
pub const DURATION: &str = "jiancha_grpc_request_duration_seconds";

/// Describes the metrics.
pub fn describe() {
    metrics::describe_counter!(REQUESTS, "gRPC requests finished, by service, method and status code");
    metrics::describe_histogram!(
        DURATION,
        metrics::Unit::Seconds,
        "gRPC request duration, from arrival to the end of the answer (a stream: to its end)"
    );
}

/// `/package.Service/Method` of every method served: jiancha's, health and reflection.
fn known_methods() -> &'static HashSet<String> {
    static KNOWN: OnceLock<HashSet<String>> = OnceLock::new();
    KNOWN.get_or_init(|| {
        let mut known = HashSet::new();
        for bytes in [jiancha_proto::FILE_DESCRIPTOR_SET, tonic_health::pb::FILE_DESCRIPTOR_SET] {
            let Ok(set) = prost_types::FileDescriptorSet::decode(bytes) else { continue };
            for file in set.file {
                for service in &file.service {
                    for method in &service.method {
                        known.insert(format!("/{}.{}/{}", file.package(), service.name(), method.name()));
                    }
                }
            }
        }
        for reflection in ["grpc.reflection.v1.ServerReflection", "grpc.reflection.v1alpha.ServerReflection"] {
            known.insert(format!("/{reflection}/ServerReflectionInfo"));
        }
        known
    })
}

/// The labels of a request path: its service and method, or `unknown` for both.
pub fn labels(path: &str) -> (String, String) {
    match path.strip_prefix('/').and_then(|p| p.split_once('/')) {
        Some((service, method)) if known_methods().contains(path) => (service.to_owned(), method.to_owned()),
        _ => ("unknown".into(), "unknown".into()),
    }
}

/// The canonical name of a gRPC status code.
pub fn code_name(code: &str) -> &'static str {
    match code.trim() {
        "0" => "OK",
        "1" => "CANCELLED",
        "2" => "UNKNOWN",
        "3" => "INVALID_ARGUMENT",
        "4" => "DEADLINE_EXCEEDED",
        "5" => "NOT_FOUND",
        "6" => "ALREADY_EXISTS",
        "7" => "PERMISSION_DENIED",
        "8" => "RESOURCE_EXHAUSTED",
        "9" => "FAILED_PRECONDITION",
        "10" => "ABORTED",
        "11" => "OUT_OF_RANGE",
        "12" => "UNIMPLEMENTED",
        "13" => "INTERNAL",
        "14" => "UNAVAILABLE",
        "15" => "DATA_LOSS",
        "16" => "UNAUTHENTICATED",
        _ => "UNKNOWN",
    }
}

/// The layer: `Server::builder().layer(GrpcMetricsLayer)`.
#[derive(Clone, Copy, Debug, Default)]
pub struct GrpcMetricsLayer;

impl<S> tower_layer::Layer<S> for GrpcMetricsLayer {
    type Service = GrpcMetrics<S>;

    fn layer(&self, inner: S) -> GrpcMetrics<S> {
        GrpcMetrics { inner }
    }
}

/// The service the layer wraps.
#[derive(Clone, Debug)]
pub struct GrpcMetrics<S> {
    inner: S,
}

/// What is recorded once the answer ends.
#[derive(Debug)]
struct Call {
    service: String,
    method: String,
    started: Instant,
    recorded: bool,
}

impl Call {
    fn finish(&mut self, code: &'static str) {
        if std::mem::replace(&mut self.recorded, true) {
            return;
        }
        let (service, method) = (self.service.clone(), self.method.clone());
        metrics::counter!(REQUESTS, "service" => service.clone(), "method" => method.clone(), "code" => code).increment(1);
        metrics::histogram!(DURATION, "service" => service, "method" => method).record(self.started.elapsed().as_secs_f64());
    }
}

impl Drop for Call {
    /// An answer dropped before its end: the client went away.
    fn drop(&mut self) {
        self.finish("CANCELLED");
    }
}

impl<S, B, ResBody> tower_service::Service<http::Request<B>> for GrpcMetrics<S>
where
    S: tower_service::Service<http::Request<B>, Response = http::Response<ResBody>>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Observed<ResBody>>;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        let (service, method) = labels(request.uri().path());
        let mut call = Call { service, method, started: Instant::now(), recorded: false };
        let answer = self.inner.call(request);
        Box::pin(async move {
            let response = match answer.await {
                Ok(response) => response,
                Err(e) => {
                    call.finish("UNKNOWN");
                    return Err(e);
                }
            };
            // A trailers-only answer (most errors) carries its status in the headers.
            if let Some(code) = response.headers().get("grpc-status").and_then(|v| v.to_str().ok()) {
                call.finish(code_name(code));
            }
            Ok(response.map(|body| Observed { body, call }))
        })
    }
}

pin_project_lite::pin_project! {
    /// An answer's body, watched for the status in its trailers.
    pub struct Observed<B> {
        #[pin]
        body: B,
        call: Call,
    }
}

impl<B: std::fmt::Debug> std::fmt::Debug for Observed<B> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed").field("body", &self.body).finish()
    }
}

impl<B: Body> Body for Observed<B> {
    type Data = B::Data;
    type Error = B::Error;

    fn poll_frame(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Result<Frame<B::Data>, B::Error>>> {
        let this = self.project();
        let polled = this.body.poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let Some(trailers) = frame.trailers_ref() {
                    let code = trailers.get("grpc-status").and_then(|v| v.to_str().ok()).map_or("UNKNOWN", code_name);
                    this.call.finish(code);
                }
            }
            Poll::Ready(Some(Err(_))) => this.call.finish("INTERNAL"),
            Poll::Ready(None) => this.call.finish("UNKNOWN"),
            Poll::Pending => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_served_methods_become_labels() {
        assert_eq!(labels("/jiancha.v1.IngestService/Submit"), ("jiancha.v1.IngestService".into(), "Submit".into()));
        assert_eq!(labels("/grpc.health.v1.Health/Check"), ("grpc.health.v1.Health".into(), "Check".into()));
        assert_eq!(labels("/jiancha.v1.IngestService/Anything"), ("unknown".into(), "unknown".into()));
        assert_eq!(labels("/made.up/Path"), ("unknown".into(), "unknown".into()));
        assert_eq!(code_name("5"), "NOT_FOUND");
        assert_eq!(code_name("99"), "UNKNOWN");
    }
}
