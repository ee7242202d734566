//! The gRPC retrieval service.
