//! Optional bearer-token authentication, applied to every gRPC service except health (so that
//! Kubernetes probes need no secret) and to the HTTP API; one check for both protocols.

use std::sync::Arc;

use tonic::service::Interceptor;
use tonic::{Request, Status};

use super::ServiceError;

/// Checks `authorization: Bearer <key>`; lets everything through when no key is configured.
#[derive(Clone, Default)]
pub struct Auth {
    key: Option<Arc<[u8]>>,
}

impl Auth {
    /// An interceptor requiring `key`, or none when `key` is `None` or empty.
    pub fn new(key: Option<&str>) -> Self {
        Self {
            key: key.filter(|k| !k.is_empty()).map(|k| k.as_bytes().into()),
        }
    }
}

impl std::fmt::Debug for Auth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the key.
        f.debug_struct("Auth")
            .field("enabled", &self.key.is_some())
            .finish()
    }
}

impl Auth {
    /// Checks the value of an `authorization` header (gRPC metadata or HTTP header).
    pub fn check(&self, authorization: Option<&[u8]>) -> Result<(), ServiceError> {
        let Some(key) = &self.key else {
            return Ok(());
        };
        let token = authorization.and_then(|v| v.strip_prefix(b"Bearer "));
        match token {
            Some(t) if constant_time_eq(t, key) => Ok(()),
            Some(_) => Err(ServiceError::Unauthenticated("invalid API key")),
            None => Err(ServiceError::Unauthenticated(
                "missing API key: send `authorization: Bearer <key>`",
            )),
        }
    }
}

impl Interceptor for Auth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let header = request
            .metadata()
            .get("authorization")
            .map(|v| v.as_bytes());
        self.check(header)?;
        Ok(request)
    }
}

/// Compares without an early exit, so response timing does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
