#!/usr/bin/env python3
"""Keyplane's gRPC services called straight from Python, as an internal caller does.

An internal caller is a service of yours inside the deployment (say `billing`) that holds
the platform's internal secret. This example:

  1. generates Python stubs from the repository's proto/ with grpcio-tools, into a
     temporary directory (nothing generated is kept);
  2. asks identity.Authenticate who an API key is (the one call a backend needs to check
     a raw credential itself);
  3. lists the keys of that key's org with keys.ListKeys, acting *for that key*: the
     principal Authenticate answered travels in the token's `prn`, so the key's own scopes
     and its holder's current role decide (a key without `read:keys` is refused:
     PERMISSION_DENIED, reason `insufficient_scope`). The services believe the `prn` of any
     token signed with the secret: whoever holds it is trusted to pass on what
     Authenticate answered, unchanged;
  4. shows that a call without a token, or with one signed by another secret, is refused
     (UNAUTHENTICATED, reason `internal_auth_required`);
  5. lists the services through server reflection (v1alpha, what grpcio-reflection speaks).

It prints one JSON document with what it saw. Secrets come from the environment, never
the command line (which other users of the machine can read):

  KEYPLANE_INTERNAL_SECRET=… KEYPLANE_API_KEY=phosra_test_… \\
    python client.py --identity 127.0.0.1:50051 --keys 127.0.0.1:50052

Needs grpcio and grpcio-tools; grpcio-status to read the error's reason and
grpcio-reflection to list services (both optional: left out of the output without them).
"""

import argparse
import base64
import hashlib
import hmac
import importlib
import importlib.resources
import json
import os
import pathlib
import sys
import tempfile
import time

import grpc
from google.protobuf import json_format
from grpc_tools import protoc

PROTO_DIR = pathlib.Path(__file__).resolve().parents[2] / "proto"
PROTOS = [
    "keyplane/types/v1/types.proto",
    "keyplane/identity/v1/identity.proto",
    "keyplane/keys/v1/keys.proto",
]
# The metadata key and audience the services expect (services/common/src/internal_auth.rs).
TOKEN_METADATA = "x-keyplane-internal"
AUDIENCE = "keyplane-internal"
TOKEN_LIFETIME_SECS = 60
TIMEOUT_SECS = 5


def generate_stubs(out_dir):
    """Compiles proto/ into `out_dir` and makes it importable."""
    # google/protobuf/*.proto (timestamp, …) ship inside grpcio-tools.
    well_known = importlib.resources.files("grpc_tools") / "_proto"
    status = protoc.main([
        "grpc_tools.protoc",
        f"-I{PROTO_DIR}",
        f"-I{well_known}",
        f"--python_out={out_dir}",
        f"--grpc_python_out={out_dir}",
        *PROTOS,
    ])
    if status != 0:
        sys.exit(f"protoc failed with status {status}")
    sys.path.insert(0, str(out_dir))


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def compact_json(value):
    return b64url(json.dumps(value, separators=(",", ":")).encode())


def internal_token(secret, service, principal=None):
    """A fresh HS256 JWT proving the caller is inside the system, as the README documents.

    Minted with the standard library (hmac, hashlib, base64) rather than PyJWT: signing an
    HS256 token is a dozen lines, the exact claims stay visible, and the example needs no
    extra package. The pitfalls JWT libraries guard against are in *verifying* tokens,
    which only the services do.
    """
    now = int(time.time())
    claims = {"iss": service, "aud": AUDIENCE, "iat": now, "exp": now + TOKEN_LIFETIME_SECS}
    if principal is not None:
        claims["prn"] = principal
    header = {"alg": "HS256"}
    signing_input = f"{compact_json(header)}.{compact_json(claims)}"
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    return f"{signing_input}.{b64url(signature)}"


def timestamp(message, field):
    return getattr(message, field).ToJsonString() if message.HasField(field) else None


def acting_for(principal):
    """The principal Authenticate answered, in the JSON shape the services read from `prn`
    (serde's form of services/common/src/principal.rs)."""
    kind = principal.WhichOneof("kind")
    if kind == "api_key":
        k = principal.api_key
        return {
            "type": "api_key",
            "key_id": k.key_id,
            "org_id": k.org_id,
            "name": k.name,
            "prefix": k.prefix,
            "environment": {1: "test", 2: "live"}[k.environment],
            # Rust's enum Scopes { Full, Only(set) }, as serde writes it.
            "scopes": "Full" if k.full_access else {"Only": sorted(k.scopes)},
            "resource_ids": list(k.resource_ids),
            "expires_at": timestamp(k, "expires_at"),
            "grace_ends_at": timestamp(k, "grace_ends_at") if k.in_grace else None,
            "created_by": k.created_by or None,
            "revision": k.revision,
            "rate_limit": (
                {"requests": k.rate_limit.requests, "per_seconds": k.rate_limit.per_seconds}
                if k.HasField("rate_limit") else None
            ),
        }
    if kind == "session":
        s = principal.session
        return {
            "type": "user",
            "user_id": s.user_id,
            "session_id": s.session_id or None,
            "email": s.email,
            "name": s.name,
            "issuer": s.issuer,
        }
    raise ValueError(f"this example acts only for API keys and sessions, not {kind}")


def refusal(error):
    """A failed call as {code, reason}: the reason is the stable machine code the REST body
    also carries, in the status details' google.rpc.ErrorInfo (needs grpcio-status)."""
    answer = {"code": error.code().name, "reason": None}
    try:
        from google.rpc import error_details_pb2
        from grpc_status import rpc_status
    except ImportError:
        return answer
    status = rpc_status.from_call(error)
    for detail in status.details if status else []:
        info = error_details_pb2.ErrorInfo()
        if detail.Is(info.DESCRIPTOR):
            detail.Unpack(info)
            answer["reason"] = info.reason
    return answer


def reflected_services(channel):
    """The services a server declares, through reflection (grpcio-reflection speaks v1alpha)."""
    try:
        from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
            ProtoReflectionDescriptorDatabase,
        )
    except ImportError:
        return None
    return sorted(ProtoReflectionDescriptorDatabase(channel).get_services())


def as_json(message):
    return json_format.MessageToDict(message, preserving_proto_field_name=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--identity", default="127.0.0.1:50051", help="the identity service's address")
    parser.add_argument("--keys", default="127.0.0.1:50052", help="the keys service's address")
    parser.add_argument("--service", default="billing", help="the calling service's name (the token's iss)")
    args = parser.parse_args()
    # Comma-separated while it rotates: the first signs (README, "To rotate").
    secret = os.environ["KEYPLANE_INTERNAL_SECRET"].split(",")[0].strip().encode()
    api_key = os.environ["KEYPLANE_API_KEY"]

    with tempfile.TemporaryDirectory(prefix="keyplane-stubs-") as out_dir:
        generate_stubs(out_dir)
        identity_pb2 = importlib.import_module("keyplane.identity.v1.identity_pb2")
        identity_grpc = importlib.import_module("keyplane.identity.v1.identity_pb2_grpc")
        keys_pb2 = importlib.import_module("keyplane.keys.v1.keys_pb2")
        keys_grpc = importlib.import_module("keyplane.keys.v1.keys_pb2_grpc")

    def token(principal=None):
        # A fresh token per call: each lives 60 s.
        return [(TOKEN_METADATA, internal_token(secret, args.service, principal))]

    # Plaintext, as inside the cluster; use grpc.secure_channel where the network needs TLS.
    with grpc.insecure_channel(args.identity) as identity_channel, grpc.insecure_channel(args.keys) as keys_channel:
        identity = identity_grpc.IdentityServiceStub(identity_channel)
        keys = keys_grpc.KeysServiceStub(keys_channel)

        # Who is this key? The service asks on its own behalf: no `prn`.
        try:
            answer = identity.Authenticate(
                identity_pb2.AuthenticateRequest(credential=api_key), metadata=token(), timeout=TIMEOUT_SECS
            )
        except grpc.RpcError as error:
            # An unknown, revoked or expired key: the reason says which (key_revoked, …).
            sys.exit(f"the key was refused: {json.dumps(refusal(error))}")
        principal = answer.principal
        if principal.WhichOneof("kind") != "api_key":
            sys.exit("KEYPLANE_API_KEY is not an API key")
        org_id = principal.api_key.org_id

        # The org's keys (the first page, 50; ListKeysRequest.page asks for more), as that
        # key may see them: a key without `read:keys` (or whose holder may no longer read
        # them) is refused, as it would be over REST.
        seen = {"principal": as_json(principal)}
        try:
            listed = keys.ListKeys(
                keys_pb2.ListKeysRequest(org_id=org_id), metadata=token(acting_for(principal)), timeout=TIMEOUT_SECS
            )
            seen["keys"] = [as_json(key) for key in listed.keys]
        except grpc.RpcError as error:
            seen["keys_refused"] = refusal(error)

        # Calls that prove nothing are refused before any handler runs.
        refused = {}
        forged = internal_token(b"not the platform's secret, but long enough", args.service)
        for case, metadata in [("no_token", []), ("wrong_secret", [(TOKEN_METADATA, forged)])]:
            try:
                keys.ListKeys(keys_pb2.ListKeysRequest(org_id=org_id), metadata=metadata, timeout=TIMEOUT_SECS)
                refused[case] = {"code": "OK", "reason": None}
            except grpc.RpcError as error:
                refused[case] = refusal(error)

        seen["refused"] = refused
        seen["services"] = reflected_services(keys_channel)

    print(json.dumps(seen, indent=2))


if __name__ == "__main__":
    main()
