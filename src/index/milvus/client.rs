//! A thin async client over Milvus' gRPC API: authentication, per-request timeouts, status
//! checking and retries with backoff. Everything above it speaks [`IndexError`].

use std::future::Future;
use std::time::Duration;

use base64::Engine;
use tonic::codegen::InterceptedService;
use tonic::metadata::MetadataValue;
use tonic::transport::{Channel, ClientTlsConfig, Endpoint};
use tonic::{Code, Request, Status};

use super::proto::common;
use super::proto::milvus::milvus_service_client::MilvusServiceClient;
use crate::index::IndexError;

/// Adds `authorization` (Milvus' token or `user:password`, base64) to every request.
#[derive(Clone)]
pub(crate) struct Auth {
    header: Option<MetadataValue<tonic::metadata::Ascii>>,
}

impl tonic::service::Interceptor for Auth {
    fn call(&mut self, mut request: Request<()>) -> Result<Request<()>, Status> {
        if let Some(h) = &self.header {
            request.metadata_mut().insert("authorization", h.clone());
        }
        Ok(request)
    }
}

pub(crate) type Service = MilvusServiceClient<InterceptedService<Channel, Auth>>;

/// A Milvus connection: cheap to clone (one shared HTTP/2 channel).
#[derive(Clone)]
pub(crate) struct Client {
    inner: Service,
    uri: String,
    retries: u32,
    backoff: Duration,
}

/// The `common.Status` of a response, whatever its message type.
pub(crate) trait HasStatus {
    fn status(&self) -> Option<&common::Status>;
}

impl HasStatus for common::Status {
    fn status(&self) -> Option<&common::Status> {
        Some(self)
    }
}

macro_rules! has_status {
    ($($t:ty),* $(,)?) => {
        $(impl HasStatus for $t {
            fn status(&self) -> Option<&common::Status> {
                self.status.as_ref()
            }
        })*
    };
}

use super::proto::milvus as m;
has_status!(
    m::BoolResponse,
    m::DescribeCollectionResponse,
    m::GetLoadStateResponse,
    m::MutationResult,
    m::SearchResults,
    m::FlushResponse,
    m::QueryResults,
    m::GetVersionResponse,
);

/// Legacy `error_code`s worth retrying (servers that predate the `retriable` flag): rate limit,
/// a server or coordinator still starting.
const RETRIABLE_CODES: [i32; 3] = [49, 56, 57];

/// Milvus' code for "collection not loaded" (e.g. after the server restarted).
const COLLECTION_NOT_LOADED: i32 = 101;

/// A Milvus status that is not success, as text.
fn failure(status: &common::Status) -> Option<String> {
    if status.error_code == 0 && status.code == 0 {
        return None;
    }
    let reason = if status.reason.is_empty() {
        status.detail.as_str()
    } else {
        status.reason.as_str()
    };
    Some(format!(
        "{reason} (code {})",
        status.code.max(status.error_code)
    ))
}

/// gRPC codes that mean "the connection or the server is not there right now".
fn transient(code: Code) -> bool {
    matches!(
        code,
        Code::Unavailable | Code::Unknown | Code::DeadlineExceeded | Code::Cancelled
    )
}

impl Client {
    /// Prepares a connection to `uri` (`http://host:port` or `https://...`). The connection is
    /// made lazily, so this succeeds while the server is down; calls then fail with
    /// [`IndexError::Unavailable`] after their retries.
    pub(crate) fn new(
        uri: &str,
        token: Option<&str>,
        timeout: Duration,
        retries: u32,
    ) -> Result<Self, IndexError> {
        let bad = |e: &dyn std::fmt::Display| {
            IndexError::InvalidParams(format!("Milvus URI `{uri}`: {e}"))
        };
        let uri_with_scheme = if uri.contains("://") {
            uri.to_string()
        } else {
            format!("http://{uri}")
        };
        let mut endpoint = Endpoint::from_shared(uri_with_scheme.clone())
            .map_err(|e| bad(&e))?
            .connect_timeout(timeout.min(Duration::from_secs(10)))
            .timeout(timeout)
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(30))
            .keep_alive_while_idle(true);
        if uri_with_scheme.starts_with("https://") {
            endpoint = endpoint
                .tls_config(ClientTlsConfig::new().with_webpki_roots())
                .map_err(|e| bad(&e))?;
        } else if !uri_with_scheme.starts_with("http://") {
            return Err(bad(&"the scheme must be http or https"));
        }
        let header = match token.filter(|t| !t.is_empty()) {
            Some(t) => {
                let encoded = base64::engine::general_purpose::STANDARD.encode(t);
                Some(
                    MetadataValue::try_from(encoded)
                        .map_err(|e| IndexError::InvalidParams(format!("Milvus token: {e}")))?,
                )
            }
            None => None,
        };
        let channel = endpoint.connect_lazy();
        let inner = MilvusServiceClient::with_interceptor(channel, Auth { header })
            .max_decoding_message_size(256 << 20)
            .max_encoding_message_size(256 << 20);
        Ok(Self {
            inner,
            uri: uri_with_scheme,
            retries,
            backoff: Duration::from_millis(200),
        })
    }

    /// The server address, for messages.
    pub(crate) fn uri(&self) -> &str {
        &self.uri
    }

    /// Sends `request` with `method` (e.g. `|mut c, r| async move { c.search(r).await }`),
    /// retrying as [`Client::call`] does: the one way requests are made.
    pub(crate) async fn send<R, T, F, Fut>(
        &self,
        what: &str,
        request: R,
        method: F,
    ) -> Result<T, IndexError>
    where
        R: Clone,
        T: HasStatus,
        F: Fn(Service, R) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        self.call(what, |c| method(c, request.clone())).await
    }

    /// Runs one RPC, retrying transport failures and retriable Milvus statuses with exponential
    /// backoff. `what` names the operation in errors. Only idempotent operations go through
    /// here (inserts are upserts by primary key).
    pub(crate) async fn call<T, F, Fut>(&self, what: &str, f: F) -> Result<T, IndexError>
    where
        T: HasStatus,
        F: Fn(Service) -> Fut,
        Fut: Future<Output = Result<tonic::Response<T>, Status>>,
    {
        let mut delay = self.backoff;
        let mut attempt = 0;
        loop {
            let last = attempt >= self.retries;
            match f(self.inner.clone()).await {
                Ok(response) => {
                    let response = response.into_inner();
                    let Some(status) = response.status() else {
                        return Ok(response);
                    };
                    let Some(message) = failure(status) else {
                        return Ok(response);
                    };
                    let retriable =
                        status.retriable || RETRIABLE_CODES.contains(&status.error_code);
                    if status.code == COLLECTION_NOT_LOADED {
                        // After a server restart: the health check reloads it.
                        return Err(IndexError::Unavailable(format!(
                            "Milvus at {} cannot {what} yet: {message}",
                            self.uri
                        )));
                    }
                    if !retriable || last {
                        return Err(IndexError::Backend(format!(
                            "Milvus at {} refused {what}: {message}",
                            self.uri
                        )));
                    }
                    tracing::warn!(what, %message, attempt, "Milvus asked to retry");
                }
                Err(status) if transient(status.code()) && !last => {
                    tracing::warn!(what, error = %status.message(), attempt, ?delay,
                        "Milvus unreachable; retrying");
                }
                Err(status) if transient(status.code()) => {
                    return Err(IndexError::Unavailable(format!(
                        "Milvus at {} did not answer {what} after {} attempts: {}",
                        self.uri,
                        attempt + 1,
                        describe(&status)
                    )));
                }
                Err(status) => {
                    return Err(IndexError::Backend(format!(
                        "Milvus at {} failed {what}: {}",
                        self.uri,
                        describe(&status)
                    )));
                }
            }
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
            attempt += 1;
        }
    }
}

/// A tonic status with its transport cause (e.g. "connection refused"), which tonic keeps in
/// the error source rather than the message.
fn describe(status: &Status) -> String {
    let mut text = format!("{:?}: {}", status.code(), status.message());
    let mut source = std::error::Error::source(status);
    while let Some(s) = source {
        // Transport errors repeat their cause in their own message.
        let cause = s.to_string();
        if !text.contains(&cause) {
            text.push_str(&format!(": {cause}"));
        }
        source = s.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_read_both_error_fields() {
        assert!(failure(&common::Status::default()).is_none());
        let old = common::Status {
            error_code: 4,
            reason: "collection not found".into(),
            ..Default::default()
        };
        assert_eq!(
            failure(&old).as_deref(),
            Some("collection not found (code 4)")
        );
        let new = common::Status {
            code: 100,
            detail: "nope".into(),
            ..Default::default()
        };
        assert_eq!(failure(&new).as_deref(), Some("nope (code 100)"));
    }

    #[test]
    fn bad_uris_are_refused_with_the_uri_named() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        let _guard = rt.enter();
        let e = Client::new("ftp://x:1", None, Duration::from_secs(1), 0)
            .err()
            .unwrap();
        assert!(e.to_string().contains("ftp://x:1"), "{e}");
        assert!(Client::new(
            "localhost:19530",
            Some("root:Milvus"),
            Duration::from_secs(1),
            0
        )
        .is_ok());
    }
}
