//! What a gRPC request to `ivt.v1.Retrieval` passes before its handler:
//!
//! - its method's message size limit ([`MessageLimits`]), checked on each message's 5-byte length
//!   prefix as the body streams in, so a message over the limit is refused before any of it is
//!   buffered (tonic's own limit is per service, and a Search needs far less than an EncodeImage);
//! - the answer to a request refused before the handler ran (over the limit, malformed protobuf,
//!   a body cut short): tonic calls an undecodable message INTERNAL, but it is the client's
//!   INVALID_ARGUMENT; and such requests are counted in `ivt_requests_total` like handled ones.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Instant;

use axum::body::Bytes;
use http_body::{Body as HttpBody, Frame, SizeHint};
use tonic::body::Body;
use tonic::server::NamedService;
use tonic::{Code, Status};
use tower::Service;

use super::refusals::{refused, Limit};
use super::{metrics, Limits};

/// Room in a message for everything but its texts and images: filters, ids, options.
const FIELDS: usize = 256 << 10;
/// Room for the id lists of a RemoveImages call.
const ID_LISTS: usize = 4 << 20;
/// Bytes a repeated field adds per entry (tag and length).
const PER_ENTRY: usize = 8;

/// What one method's request message may carry; the size limits follow from it.
#[derive(Debug, Clone, Copy)]
pub struct MessageLimit {
    /// The method (as in metrics).
    pub method: &'static str,
    /// Largest protobuf message (gRPC).
    pub grpc: usize,
    /// Largest JSON body (HTTP API): images in base64 (4/3), texts JSON-escaped (up to 6x).
    pub json: usize,
}

impl MessageLimit {
    fn new(
        method: &'static str,
        limits: &Limits,
        images: usize,
        texts: usize,
        fixed: usize,
    ) -> Self {
        let (image, text) = (limits.max_image_bytes, limits.max_text_bytes);
        let grpc = (images * (image + PER_ENTRY)).max(texts * (text + PER_ENTRY)) + fixed;
        let json =
            (images * (image.div_ceil(3) * 4 + PER_ENTRY)).max(texts * (6 * text + PER_ENTRY));
        Self {
            method,
            grpc,
            json: json + 2 * fixed,
        }
    }
}

/// Each method's message size limit, sized to what it can legitimately carry.
#[derive(Debug, Clone)]
pub struct MessageLimits {
    /// One text or one image, and a filter.
    pub search: MessageLimit,
    /// Up to `max_inputs` texts.
    pub encode_text: MessageLimit,
    /// Up to `max_inputs` images.
    pub encode_image: MessageLimit,
    /// One image and its metadata per message of the stream.
    pub add_images: MessageLimit,
    /// Lists of ids.
    pub remove_images: MessageLimit,
    /// Info, and paths no method answers.
    pub other: MessageLimit,
}

impl MessageLimits {
    /// The limits for requests within `limits`, with at most `max_inputs` inputs per call.
    pub fn new(limits: &Limits, max_inputs: usize) -> Self {
        let m =
            |method, images, texts, fixed| MessageLimit::new(method, limits, images, texts, fixed);
        Self {
            search: m("Search", 1, 1, FIELDS),
            encode_text: m("EncodeText", 0, max_inputs, FIELDS),
            encode_image: m("EncodeImage", max_inputs, 0, FIELDS),
            add_images: m("AddImages", 1, 0, FIELDS),
            remove_images: m("RemoveImages", 0, 0, ID_LISTS),
            other: m("Info", 0, 0, FIELDS),
        }
    }

    /// The largest of all: tonic's own per-service limit, a backstop (and the cap on a
    /// decompressed message).
    pub fn largest(&self) -> usize {
        [
            self.search,
            self.encode_text,
            self.encode_image,
            self.add_images,
            self.remove_images,
            self.other,
        ]
        .iter()
        .map(|l| l.grpc)
        .max()
        .unwrap_or(FIELDS)
    }

    /// The limit of the method at `path` (`/ivt.v1.Retrieval/Search`).
    fn of_path(&self, path: &str) -> MessageLimit {
        match path.rsplit('/').next() {
            Some("Search") => self.search,
            Some("EncodeText") => self.encode_text,
            Some("EncodeImage") => self.encode_image,
            Some("AddImages") => self.add_images,
            Some("RemoveImages") => self.remove_images,
            _ => self.other,
        }
    }
}

/// How a request reached the server.
#[derive(Debug, Clone, Copy)]
pub enum Wire {
    /// A protobuf message over gRPC.
    Grpc,
    /// A JSON body over the HTTP API.
    Http,
}

/// Records the refusal of a message or body over its method's limit (`size` bytes, if known),
/// and returns the message the client sees.
pub fn refuse_oversized(limit: &MessageLimit, size: Option<u64>, wire: Wire) -> String {
    let (what, bytes) = match wire {
        Wire::Http => ("request body", limit.json),
        Wire::Grpc => ("request message", limit.grpc),
    };
    let size = size.map_or_else(|| "over".to_string(), |s| format!("{s} bytes, over"));
    let message = format!(
        "{} {what} is {size} its limit of {bytes} bytes (set by --max-image-bytes, \
         --max-text-bytes and --max-batch)",
        limit.method
    );
    refused(Limit::MessageSize, &message);
    message
}

/// Set by the handler when it takes the request: from then on it answers and counts.
#[derive(Clone, Default)]
pub struct Handled(Arc<AtomicBool>);

impl Handled {
    /// Marks the request as taken by its handler.
    pub fn mark(&self) {
        self.0.store(true, Ordering::Relaxed);
    }
}

/// The gate in front of the retrieval service (see the module docs).
#[derive(Clone)]
pub struct Gate<S> {
    inner: S,
    limits: Arc<MessageLimits>,
}

impl<S> Gate<S> {
    /// `inner` behind `limits`.
    pub fn new(inner: S, limits: MessageLimits) -> Self {
        Self {
            inner,
            limits: Arc::new(limits),
        }
    }
}

impl<S: NamedService> NamedService for Gate<S> {
    const NAME: &'static str = S::NAME;
}

type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send>>;

impl<S> Service<http::Request<Body>> for Gate<S>
where
    S: Service<http::Request<Body>, Response = http::Response<Body>, Error = Infallible>,
    S::Future: Send + 'static,
{
    type Response = http::Response<Body>;
    type Error = Infallible;
    type Future = BoxFuture<Result<Self::Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, mut request: http::Request<Body>) -> Self::Future {
        let start = Instant::now();
        let limit = self.limits.of_path(request.uri().path());
        let handled = Handled::default();
        request.extensions_mut().insert(handled.clone());
        let request = request.map(|body| Body::new(Limited::new(body, limit)));
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            if handled.0.load(Ordering::Relaxed) {
                return Ok(response);
            }
            Ok(refused_before_handler(limit.method, response, start))
        })
    }
}

/// Counts a request answered before its handler ran, and gives a malformed message the client's
/// code: tonic answers INTERNAL for what can only be the request's fault there (undecodable
/// protobuf, a body cut short, no message at all).
fn refused_before_handler(
    method: &'static str,
    response: http::Response<Body>,
    start: Instant,
) -> http::Response<Body> {
    let Some(status) = Status::from_header_map(response.headers()) else {
        return response;
    };
    let (code, message) = match status.code() {
        Code::Internal => (
            Code::InvalidArgument,
            format!("malformed {method} request: {}", status.message()),
        ),
        code => (code, status.message().to_string()),
    };
    metrics::request(method, code, start.elapsed());
    tracing::info!(method, ?code, error = %message, "refused before the handler");
    if code == status.code() {
        return response;
    }
    Status::new(code, message).into_http()
}

/// A request body that fails with RESOURCE_EXHAUSTED as soon as a gRPC message's length prefix
/// says it is over the method's limit; the data passes through unchanged.
struct Limited {
    inner: Body,
    limit: MessageLimit,
    /// The length prefix being read (compression flag and big-endian length).
    prefix: [u8; 5],
    prefix_len: usize,
    /// Bytes of the current message still to pass.
    skip: u64,
}

impl Limited {
    fn new(inner: Body, limit: MessageLimit) -> Self {
        Self {
            inner,
            limit,
            prefix: [0; 5],
            prefix_len: 0,
            skip: 0,
        }
    }

    /// Follows the message framing through `data`; fails at a prefix over the limit.
    fn scan(&mut self, mut data: &[u8]) -> Result<(), Status> {
        while !data.is_empty() {
            if self.skip > 0 {
                let n = data
                    .len()
                    .min(usize::try_from(self.skip).unwrap_or(usize::MAX));
                self.skip -= n as u64;
                data = &data[n..];
                continue;
            }
            let n = data.len().min(self.prefix.len() - self.prefix_len);
            self.prefix[self.prefix_len..self.prefix_len + n].copy_from_slice(&data[..n]);
            self.prefix_len += n;
            data = &data[n..];
            if self.prefix_len == self.prefix.len() {
                self.prefix_len = 0;
                let [_, a, b, c, d] = self.prefix;
                let len = u32::from_be_bytes([a, b, c, d]) as u64;
                if len > self.limit.grpc as u64 {
                    let message = refuse_oversized(&self.limit, Some(len), Wire::Grpc);
                    return Err(Status::resource_exhausted(message));
                }
                self.skip = len;
            }
        }
        Ok(())
    }
}

impl HttpBody for Limited {
    type Data = Bytes;
    type Error = Status;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Status>>> {
        let this = self.get_mut();
        let frame = ready!(Pin::new(&mut this.inner).poll_frame(cx));
        if let Some(Ok(Some(data))) = frame.as_ref().map(|f| f.as_ref().map(Frame::data_ref)) {
            this.scan(data)?;
        }
        Poll::Ready(frame)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn framed(lens: &[u32]) -> Vec<u8> {
        let mut out = Vec::new();
        for &len in lens {
            out.push(0);
            out.extend_from_slice(&len.to_be_bytes());
            out.extend(std::iter::repeat_n(7u8, len as usize));
        }
        out
    }

    fn limited(grpc: usize) -> Limited {
        let limit = MessageLimit {
            method: "Search",
            grpc,
            json: grpc,
        };
        Limited::new(Body::empty(), limit)
    }

    #[test]
    fn follows_messages_across_any_chunking() {
        let data = framed(&[10, 0, 100, 3]);
        for chunk in 1..data.len() {
            let mut l = limited(100);
            for piece in data.chunks(chunk) {
                l.scan(piece).unwrap();
            }
            assert_eq!((l.prefix_len, l.skip), (0, 0), "chunk {chunk}");
        }
    }

    #[test]
    fn refuses_a_prefix_over_the_limit_wherever_it_falls() {
        let data = framed(&[10, 101]);
        for chunk in 1..=16 {
            let mut l = limited(100);
            let e = data
                .chunks(chunk)
                .try_for_each(|piece| l.scan(piece))
                .unwrap_err();
            assert_eq!(e.code(), Code::ResourceExhausted);
            assert!(
                e.message().contains("101 bytes, over its limit of 100"),
                "{e:?}"
            );
        }
    }

    #[test]
    fn search_takes_one_image_and_encode_image_a_batch() {
        let limits = Limits::default();
        let m = MessageLimits::new(&limits, 32);
        assert!(m.search.grpc > limits.max_image_bytes);
        assert!(m.search.grpc < 2 * limits.max_image_bytes);
        assert!(m.encode_text.grpc < 1 << 20);
        assert!(m.encode_image.grpc > 32 * limits.max_image_bytes);
        assert!(m.search.json > limits.max_image_bytes / 3 * 4);
        assert_eq!(m.largest(), m.encode_image.grpc);
    }
}
