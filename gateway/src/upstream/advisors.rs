use keyplane_proto::advisors::v1::*;

super::rpcs!(advisors {
    register_advisor(RegisterAdvisorRequest) -> Advisor;
    list_advisors(ListAdvisorsRequest) -> ListAdvisorsResponse;
    consult(ConsultRequest) -> Consultation;
    get_consultation(GetConsultationRequest) -> Consultation;
    declare_payload_key(DeclarePayloadKeyRequest) -> PayloadKey;
    list_payload_keys(ListPayloadKeysRequest) -> ListPayloadKeysResponse;
    retire_payload_key(RetirePayloadKeyRequest) -> PayloadKey;
    respond_to_consultation(RespondToConsultationRequest) -> Consultation;
    list_delivery_keys(ListDeliveryKeysRequest) -> ListPayloadKeysResponse;
});
