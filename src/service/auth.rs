//! Optional bearer-token authentication, applied to every service except health (so that
//! Kubernetes probes need no secret).

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

impl Interceptor for Auth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(key) = &self.key else {
            return Ok(request);
        };
        let token = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "));
        match token {
            Some(t) if constant_time_eq(t.as_bytes(), key) => Ok(request),
            Some(_) => Err(ServiceError::Unauthenticated("invalid API key").into()),
            None => Err(ServiceError::Unauthenticated(
                "missing API key: send metadata `authorization: Bearer <key>`",
            )
            .into()),
        }
    }
}

/// Compares without an early exit, so response timing does not reveal how much of a guess matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
