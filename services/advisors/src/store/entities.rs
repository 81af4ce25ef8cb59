//! The advisors service's tables.

pub mod advisors {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "advisors")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub org_id: Uuid,
        pub name: String,
        pub description: String,
        pub endpoint_url: String,
        pub status: String,
        pub created_by: Option<Uuid>,
        pub created_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod payload_keys {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "payload_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub advisor_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        pub public_x: String,
        pub status: String,
        pub declared_at: DateTimeUtc,
        pub retired_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod consultations {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
    #[sea_orm(table_name = "consultations")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub advisor_id: Uuid,
        pub org_id: Uuid,
        pub question: String,
        pub context_json: String,
        pub status: String,
        pub requested_by: String,
        pub created_at: DateTimeUtc,
        pub answered_at: Option<DateTimeUtc>,
        pub answer: Option<String>,
        pub response_key_id: Option<String>,
        pub signed_request: Option<Json>,
        pub delivery_status: Option<String>,
        pub delivery_attempts: i32,
        pub delivery_last_error: Option<String>,
        pub delivered_at: Option<DateTimeUtc>,
        pub next_delivery_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod seen_nonces {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "seen_nonces")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub advisor_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        #[sea_orm(primary_key, auto_increment = false)]
        pub nonce: String,
        pub seen_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod delivery_keys {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "delivery_keys")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub kid: String,
        pub public_x: String,
        pub private_sealed: Vec<u8>,
        pub created_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
