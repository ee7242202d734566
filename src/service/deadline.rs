//! The client's deadline (`grpc-timeout`), enforced so that the client gets DEADLINE_EXCEEDED
//! and queued work for it is dropped.

use std::future::Future;
use std::time::{Duration, Instant};

use tonic::metadata::MetadataMap;

use super::ServiceError;

/// tonic's timeout layers (server and client) answer CANCELLED at the exact deadline. Giving up a
/// little earlier (5% of the budget, 2 to 20 ms) lets our DEADLINE_EXCEEDED travel back to the
/// client before its own timer fires; an answer arriving later would be discarded anyway.
fn margin(timeout: Duration) -> Duration {
    (timeout / 20).clamp(Duration::from_millis(2), Duration::from_millis(20))
}

/// The instant by which the handler must answer, from the `grpc-timeout` header; `None` when
/// the client set no deadline (or sent a malformed one, which tonic ignores too).
pub fn from_metadata(metadata: &MetadataMap) -> Option<Instant> {
    let timeout = parse_timeout(metadata.get("grpc-timeout")?.to_str().ok()?)?;
    Some(Instant::now() + timeout - margin(timeout).min(timeout / 2))
}

/// Parses the gRPC wire format: up to 8 digits and a unit (H, M, S, m, u, n).
fn parse_timeout(s: &str) -> Option<Duration> {
    if s.len() < 2 || s.len() > 9 {
        return None;
    }
    let (digits, unit) = s.split_at(s.len() - 1);
    let n: u64 = digits.parse().ok()?;
    Some(match unit {
        "H" => Duration::from_secs(n * 3600),
        "M" => Duration::from_secs(n * 60),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    })
}

/// Runs `work`, failing with DEADLINE_EXCEEDED when `deadline` passes first (which drops `work`
/// and with it every queued entry's reply channel, so the batcher skips them).
pub async fn within<T>(
    deadline: Option<Instant>,
    work: impl Future<Output = Result<T, ServiceError>>,
) -> Result<T, ServiceError> {
    match deadline {
        None => work.await,
        Some(d) => tokio::time::timeout_at(d.into(), work).await.unwrap_or(Err(
            ServiceError::DeadlineExceeded("processing the request"),
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_grpc_timeout_units() {
        assert_eq!(parse_timeout("1H"), Some(Duration::from_secs(3600)));
        assert_eq!(parse_timeout("250m"), Some(Duration::from_millis(250)));
        assert_eq!(
            parse_timeout("99999999u"),
            Some(Duration::from_micros(99_999_999))
        );
        assert_eq!(parse_timeout("5n"), Some(Duration::from_nanos(5)));
        assert_eq!(parse_timeout("m"), None);
        assert_eq!(parse_timeout("12x"), None);
        assert_eq!(parse_timeout("123456789S"), None);
    }
}
