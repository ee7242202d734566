//! The HTTP/JSON API and the search page, beside gRPC on their own port (`--http-addr`):
//!
//! - `POST /v1/search`, `POST /v1/encode/text`, `POST /v1/encode/image`, `GET /v1/info`: the
//!   JSON mapping (`json.rs`) of the gRPC methods of the same names, answered by the same
//!   handlers ([`RetrievalService`]) — same validation, limits, queue, metrics and status codes;
//! - `GET /v1/images/{image_id}`: a JPEG thumbnail of a gallery image (`thumbnail.rs`);
//! - `GET /`: the search page (`page.html`, built into the binary).
//!
//! Errors answer `{"error": {"code": "INVALID_ARGUMENT", "message": "..."}}` with the HTTP status
//! of the gRPC code. With an API key, every `/v1/` route needs `Authorization: Bearer <key>`.

mod json;
mod thumbnail;

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{DefaultBodyLimit, Path, Request, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;
use serde_json::{json, Value};
use tonic::metadata::MetadataMap;
use tonic::Code;

use super::auth::Auth;
use super::gate::{refuse_oversized, MessageLimit, MessageLimits, Wire};
use super::infer::blocking;
use super::metrics::code_name;
use super::retrieval::{run, RetrievalService};
use super::telemetry::TraceContextLayer;
use super::{deadline, ServiceError};

/// The search page: one static file, no external resources.
const PAGE: &str = include_str!("page.html");

/// The page may only load what this server serves (no CDN), and nothing may frame it.
const PAGE_CSP: &str = "default-src 'self'; img-src 'self' blob: data:; \
    style-src 'self' 'unsafe-inline'; script-src 'self' 'unsafe-inline'; frame-ancestors 'none'";

#[derive(Clone)]
struct Http {
    service: RetrievalService,
    auth: Auth,
    limits: Arc<MessageLimits>,
}

/// The HTTP routes over `service`; each route's body limited as its gRPC method's message
/// (`limits`, in JSON: base64 images, escaped texts).
pub(super) fn router(service: RetrievalService, auth: Auth, limits: MessageLimits) -> Router {
    let body_limit = |l: MessageLimit| DefaultBodyLimit::max(l.json);
    let routes = [
        ("/v1/search", post(search), limits.search),
        ("/v1/encode/text", post(encode_text), limits.encode_text),
        ("/v1/encode/image", post(encode_image), limits.encode_image),
    ];
    let other = body_limit(limits.other);
    let state = Http {
        service,
        auth,
        limits: Arc::new(limits),
    };
    let api = routes
        .into_iter()
        .fold(Router::new(), |api, (path, route, limit)| {
            api.route(path, route.layer(body_limit(limit)))
        })
        .route("/v1/info", get(info))
        .route("/v1/images/{*image_id}", get(image))
        .route_layer(middleware::from_fn_with_state(state.clone(), authenticate));
    Router::new()
        .route("/", get(page))
        .merge(api)
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(other)
        // The caller's `traceparent` parents the request's span, as for gRPC.
        .layer(TraceContextLayer)
        .with_state(state)
}

/// An error answer: HTTP status and the JSON error body.
struct ApiError {
    status: StatusCode,
    code: Code,
    message: String,
}

impl From<ServiceError> for ApiError {
    fn from(e: ServiceError) -> Self {
        let code = e.code();
        if code == Code::Internal {
            tracing::error!(error = %e, "internal error");
        }
        let status = match e {
            // A body over its limit: the HTTP status for exactly that (429 means "slow down").
            ServiceError::MessageTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            _ => http_status(code),
        };
        ApiError {
            status,
            code,
            message: e.to_string(),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({ "error": { "code": code_name(self.code), "message": self.message } });
        let mut response = json_response(self.status, &body);
        if self.code == Code::Unauthenticated {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// The HTTP status of a gRPC code (the mapping grpc-gateway uses).
fn http_status(code: Code) -> StatusCode {
    match code {
        Code::Ok => StatusCode::OK,
        Code::InvalidArgument | Code::FailedPrecondition | Code::OutOfRange => {
            StatusCode::BAD_REQUEST
        }
        Code::Unauthenticated => StatusCode::UNAUTHORIZED,
        Code::PermissionDenied => StatusCode::FORBIDDEN,
        Code::NotFound => StatusCode::NOT_FOUND,
        Code::AlreadyExists | Code::Aborted => StatusCode::CONFLICT,
        Code::ResourceExhausted => StatusCode::TOO_MANY_REQUESTS,
        Code::Cancelled => StatusCode::from_u16(499).unwrap_or(StatusCode::BAD_REQUEST),
        Code::Unimplemented => StatusCode::NOT_IMPLEMENTED,
        Code::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
        Code::DeadlineExceeded => StatusCode::GATEWAY_TIMEOUT,
        Code::Unknown | Code::Internal | Code::DataLoss => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

fn json_response(status: StatusCode, body: &Value) -> Response {
    let headers = [(header::CONTENT_TYPE, "application/json")];
    (status, headers, body.to_string()).into_response()
}

/// A body the server would not read: over the route's limit (refused before it is buffered,
/// like a gRPC message over its method's limit), or a broken transfer.
fn body(body: Result<Bytes, BytesRejection>, limit: MessageLimit) -> Result<Bytes, ServiceError> {
    body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ServiceError::MessageTooLarge(refuse_oversized(&limit, None, Wire::Http))
        } else {
            ServiceError::InvalidArgument(format!(
                "cannot read the request body: {}",
                r.body_text()
            ))
        }
    })
}

/// The client's deadline, from a `grpc-timeout` header as gRPC clients send it (e.g. `500m`).
fn deadline(headers: &HeaderMap) -> Option<Instant> {
    deadline::from_metadata(&MetadataMap::from_headers(headers.clone()))
}

async fn authenticate(
    State(h): State<Http>,
    request: Request,
    next: Next,
) -> Result<Response, ApiError> {
    let header = request.headers().get(header::AUTHORIZATION);
    h.auth.check(header.map(HeaderValue::as_bytes))?;
    Ok(next.run(request).await)
}

async fn search(
    State(h): State<Http>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let deadline = deadline(&headers);
    let work = async {
        let raw = body(raw, h.limits.search)?;
        let req = json::parse::<json::SearchRequest>(&raw)?.into_proto()?;
        h.service.search(req, deadline).await
    };
    let r = run("Search", deadline, work).await?;
    Ok(json_response(StatusCode::OK, &json::search_response(&r)))
}

async fn encode_text(
    State(h): State<Http>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let deadline = deadline(&headers);
    let work = async {
        let raw = body(raw, h.limits.encode_text)?;
        let req = json::parse::<json::EncodeTextRequest>(&raw)?.into_proto();
        h.service.encode_text(req, deadline).await
    };
    let r = run("EncodeText", deadline, work).await?;
    Ok(json_response(StatusCode::OK, &json::encode_response(&r)))
}

async fn encode_image(
    State(h): State<Http>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let deadline = deadline(&headers);
    let work = async {
        let raw = body(raw, h.limits.encode_image)?;
        let req = json::parse::<json::EncodeImageRequest>(&raw)?.into_proto()?;
        h.service.encode_image(req, deadline).await
    };
    let r = run("EncodeImage", deadline, work).await?;
    Ok(json_response(StatusCode::OK, &json::encode_response(&r)))
}

async fn info(State(h): State<Http>, headers: HeaderMap) -> Result<Response, ApiError> {
    let r = run("Info", deadline(&headers), async { h.service.info() }).await?;
    Ok(json_response(StatusCode::OK, &json::info_response(&r)))
}

async fn image(
    State(h): State<Http>,
    headers: HeaderMap,
    image_id: Result<Path<String>, PathRejection>,
) -> Result<Response, ApiError> {
    let Path(image_id) =
        image_id.map_err(|e| ServiceError::InvalidArgument(format!("image id: {e}")))?;
    let work = async {
        let core = h.service.core()?;
        let (record, _) = core.gallery.image(image_id.clone()).await?;
        blocking(move || thumbnail::thumbnail(&image_id, record.path.as_deref())).await?
    };
    let jpeg = run("Thumbnail", deadline(&headers), work).await?;
    let headers = [
        (header::CONTENT_TYPE, "image/jpeg"),
        // Ids are stable; a removed image may linger in a browser for these few minutes.
        (header::CACHE_CONTROL, "private, max-age=300"),
    ];
    Ok((headers, jpeg).into_response())
}

async fn page() -> Response {
    let headers = [
        (header::CONTENT_TYPE, "text/html; charset=utf-8"),
        (header::CONTENT_SECURITY_POLICY, PAGE_CSP),
        (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
    ];
    (headers, PAGE).into_response()
}

async fn not_found() -> ApiError {
    ApiError {
        status: StatusCode::NOT_FOUND,
        code: Code::NotFound,
        message: "no such endpoint: see GET /v1/info, POST /v1/search, POST /v1/encode/text, \
                  POST /v1/encode/image, GET /v1/images/{image_id}"
            .into(),
    }
}

async fn method_not_allowed() -> ApiError {
    ApiError {
        status: StatusCode::METHOD_NOT_ALLOWED,
        code: Code::Unimplemented,
        message: "method not allowed on this endpoint".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_codes_are_4xx_and_server_faults_5xx() {
        assert_eq!(http_status(Code::InvalidArgument), 400);
        assert_eq!(http_status(Code::Unauthenticated), 401);
        assert_eq!(http_status(Code::NotFound), 404);
        assert_eq!(http_status(Code::AlreadyExists), 409);
        assert_eq!(http_status(Code::ResourceExhausted), 429);
        assert_eq!(http_status(Code::Internal), 500);
        assert_eq!(http_status(Code::Unavailable), 503);
        assert_eq!(http_status(Code::DeadlineExceeded), 504);
    }
}
