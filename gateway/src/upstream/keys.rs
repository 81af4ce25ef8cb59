use keyplane_proto::keys::v1::*;

super::rpcs!(keys {
    create_key(CreateKeyRequest) -> KeyWithSecret;
    list_keys(ListKeysRequest) -> ListKeysResponse;
    get_key(GetKeyRequest) -> ApiKey;
    update_key(UpdateKeyRequest) -> ApiKey;
    revoke_key(RevokeKeyRequest) -> ApiKey;
    regenerate_key(RegenerateKeyRequest) -> KeyWithSecret;
    ensure_bootstrap_key(EnsureBootstrapKeyRequest) -> EnsureBootstrapKeyResponse;
    record_use(RecordUseRequest) -> RecordUseResponse;
    create_mcp_token(CreateMcpTokenRequest) -> McpTokenWithSecret;
    list_mcp_tokens(ListMcpTokensRequest) -> ListMcpTokensResponse;
    revoke_mcp_token(RevokeMcpTokenRequest) -> McpToken;
    revoke_leaked(RevokeLeakedRequest) -> RevokeLeakedResponse;
});
