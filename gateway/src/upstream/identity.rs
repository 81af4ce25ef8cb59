use keyplane_proto::identity::v1::*;

super::rpcs!(identity {
    signup(SignupRequest) -> SessionTokens;
    login(LoginRequest) -> SessionTokens;
    refresh(RefreshRequest) -> SessionTokens;
    logout(LogoutRequest) -> LogoutResponse;
    authenticate(AuthenticateRequest) -> AuthenticateResponse;
    get_jwks(GetJwksRequest) -> GetJwksResponse;
    get_user(GetUserRequest) -> User;
    verify_email(VerifyEmailRequest) -> User;
    resend_verification(ResendVerificationRequest) -> ResendVerificationResponse;
    list_dev_mailbox(ListDevMailboxRequest) -> ListDevMailboxResponse;
});
