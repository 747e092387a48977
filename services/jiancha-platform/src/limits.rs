//! Per-caller limits: a token bucket of events per second, and a cap on live streams.
//! One caller flooding the gateway is slowed down or refused; the others keep their share.

use dashmap::DashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Debug)]
struct Bucket {
    tokens: f64,
    last: Instant,
}

/// Token buckets by caller subject.
#[derive(Debug)]
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    buckets: DashMap<String, Bucket>,
}

impl RateLimiter {
    /// `rate` events per second, `burst` at once.
    pub fn new(rate: f64, burst: f64) -> RateLimiter {
        RateLimiter { rate, burst, buckets: DashMap::new() }
    }

    /// Takes `n` tokens for `subject`, or says how long until they are there.
    pub fn try_take(&self, subject: &str, n: f64) -> Result<(), Duration> {
        let now = Instant::now();
        let mut bucket = self.buckets.entry(subject.to_owned()).or_insert_with(|| Bucket { tokens: self.burst, last: now });
        let refill = now.duration_since(bucket.last).as_secs_f64() * self.rate;
        bucket.tokens = (bucket.tokens + refill).min(self.burst);
        bucket.last = now;
        if bucket.tokens >= n {
            bucket.tokens -= n;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((n - bucket.tokens) / self.rate))
        }
    }

    /// Waits until `n` tokens are there for `subject`, then takes them.
    pub async fn take(&self, subject: &str, n: f64) {
        while let Err(wait) = self.try_take(subject, n) {
            tokio::time::sleep(wait.max(Duration::from_millis(1))).await;
        }
    }
}

/// RESOURCE_EXHAUSTED for a caller over its rate, with RetryInfo saying when to retry.
pub fn over_rate(subject: &str, what: &str, wait: Duration) -> tonic::Status {
    let mut details = tonic_types::ErrorDetails::new();
    details.set_retry_info(Some(wait));
    <tonic::Status as tonic_types::StatusExt>::with_error_details(
        tonic::Code::ResourceExhausted,
        format!("caller {subject} is over its {what} rate; retry after {} ms", wait.as_millis()),
        details,
    )
}

/// Live streams held by each caller.
#[derive(Debug, Default)]
pub struct StreamCounter {
    held: Arc<DashMap<String, usize>>,
}

/// A stream slot; released on drop.
#[derive(Debug)]
pub struct StreamSlot {
    held: Arc<DashMap<String, usize>>,
    subject: String,
}

impl StreamCounter {
    /// A slot for `subject`, unless it already holds `max`.
    pub fn acquire(&self, subject: &str, max: usize) -> Option<StreamSlot> {
        let mut n = self.held.entry(subject.to_owned()).or_insert(0);
        if *n >= max {
            return None;
        }
        *n += 1;
        Some(StreamSlot { held: self.held.clone(), subject: subject.to_owned() })
    }
}

impl Drop for StreamSlot {
    fn drop(&mut self) {
        if let Some(mut n) = self.held.get_mut(&self.subject) {
            *n = n.saturating_sub(1);
        }
    }
}

/// The client's deadline from the `grpc-timeout` header (`100m`, `5S`, …), if any.
/// The header is network input: at most 8 digits (the gRPC wire format's own limit),
/// and the arithmetic cannot overflow whatever it holds.
pub fn grpc_timeout(metadata: &tonic::metadata::MetadataMap) -> Option<Duration> {
    let text = metadata.get("grpc-timeout")?.to_str().ok()?;
    let unit = text.chars().last()?;
    let digits = &text[..text.len() - unit.len_utf8()];
    if digits.is_empty() || digits.len() > 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    match unit {
        'H' => n.checked_mul(3600).map(Duration::from_secs),
        'M' => n.checked_mul(60).map(Duration::from_secs),
        'S' => Some(Duration::from_secs(n)),
        'm' => Some(Duration::from_millis(n)),
        'u' => Some(Duration::from_micros(n)),
        'n' => Some(Duration::from_nanos(n)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_refuse_beyond_the_burst_per_caller() {
        let limiter = RateLimiter::new(10.0, 5.0);
        for _ in 0..5 {
            assert!(limiter.try_take("a", 1.0).is_ok());
        }
        let wait = limiter.try_take("a", 1.0).unwrap_err();
        assert!(wait <= Duration::from_millis(100), "{wait:?}");
        // Another caller is unaffected.
        assert!(limiter.try_take("b", 1.0).is_ok());
    }

    #[test]
    fn stream_slots_are_capped_and_released() {
        let counter = StreamCounter::default();
        let a = counter.acquire("x", 2).unwrap();
        let _b = counter.acquire("x", 2).unwrap();
        assert!(counter.acquire("x", 2).is_none());
        drop(a);
        assert!(counter.acquire("x", 2).is_some());
    }

    #[test]
    fn grpc_timeouts_parse() {
        let mut m = tonic::metadata::MetadataMap::new();
        m.insert("grpc-timeout", "250m".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_millis(250)));
        m.insert("grpc-timeout", "3S".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_secs(3)));
        m.insert("grpc-timeout", "99999999H".parse().unwrap());
        assert_eq!(grpc_timeout(&m), Some(Duration::from_secs(99_999_999 * 3600)));
        // Hostile values are ignored (the configured timeout applies), never a panic.
        for bad in ["18446744073709551615H", "999999999H", "H", "-5S", "5s", "+5S", "5 S", ""] {
            m.insert("grpc-timeout", bad.parse().unwrap());
            assert_eq!(grpc_timeout(&m), None, "{bad}");
        }
    }
}
