//! Generated client code for the subset of Milvus' API in `proto/milvus/`.

#![allow(missing_docs, clippy::all, clippy::pedantic)]

/// `milvus.proto.common`: statuses, key/value pairs, placeholders, enums.
pub mod common {
    tonic::include_proto!("milvus.proto.common");
}

/// `milvus.proto.schema`: collection schemas and column data.
pub mod schema {
    tonic::include_proto!("milvus.proto.schema");
}

/// `milvus.proto.milvus`: the `MilvusService` RPCs.
pub mod milvus {
    tonic::include_proto!("milvus.proto.milvus");
}
