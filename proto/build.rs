//! Compiles the protos with protox (pure Rust): no system `protoc` needed.

use std::{env, path::PathBuf};

use prost::Message;

const PROTOS: &[&str] = &[
    "keyplane/types/v1/types.proto",
    "keyplane/identity/v1/identity.proto",
    "keyplane/keys/v1/keys.proto",
    "keyplane/orgs/v1/orgs.proto",
    "keyplane/usage/v1/usage.proto",
    "keyplane/advisors/v1/advisors.proto",
];

/// Messages with a password, token, key or mail body in them.
const REDACTED: &[&str] = &[
    ".keyplane.identity.v1.SignupRequest",
    ".keyplane.identity.v1.LoginRequest",
    ".keyplane.identity.v1.RefreshRequest",
    ".keyplane.identity.v1.SessionTokens",
    ".keyplane.identity.v1.AuthenticateRequest",
    ".keyplane.identity.v1.VerifyEmailRequest",
    ".keyplane.identity.v1.Mail",
    ".keyplane.keys.v1.KeyWithSecret",
    ".keyplane.keys.v1.McpTokenWithSecret",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    for proto in PROTOS {
        println!("cargo:rerun-if-changed={proto}");
    }
    let fds = protox::compile(PROTOS, ["."])?;
    let out = PathBuf::from(env::var("OUT_DIR")?);
    // Served by every service's reflection endpoint.
    std::fs::write(out.join("keyplane_descriptor.bin"), fds.encode_to_vec())?;
    tonic_prost_build::configure()
        // RPCs that a later issue implements answer UNIMPLEMENTED until then.
        .generate_default_stubs(true)
        // Messages that carry a secret get a hand-written Debug that never prints it
        // (src/redacted.rs).
        .skip_debug(REDACTED)
        .compile_fds(fds)?;
    Ok(())
}
