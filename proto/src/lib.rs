//! The gRPC contract of Keyplane, generated from `proto/keyplane/**` at build time.

#![allow(clippy::all, clippy::pedantic)]

/// Encoded descriptor set of every Keyplane proto, for gRPC reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] = include_bytes!(concat!(env!("OUT_DIR"), "/keyplane_descriptor.bin"));

pub mod types {
    pub mod v1 {
        tonic::include_proto!("keyplane.types.v1");
    }
}

pub mod identity {
    pub mod v1 {
        tonic::include_proto!("keyplane.identity.v1");
    }
}

pub mod keys {
    pub mod v1 {
        tonic::include_proto!("keyplane.keys.v1");
    }
}

pub mod orgs {
    pub mod v1 {
        tonic::include_proto!("keyplane.orgs.v1");
    }
}

pub mod usage {
    pub mod v1 {
        tonic::include_proto!("keyplane.usage.v1");
    }
}

pub mod advisors {
    pub mod v1 {
        tonic::include_proto!("keyplane.advisors.v1");
    }
}

mod redacted;
