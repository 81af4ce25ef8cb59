//! The keys service's tables.

pub mod credentials {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "credentials")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub kind: String,
        pub org_id: Uuid,
        pub created_by: Option<Uuid>,
        pub name: String,
        pub environment: String,
        pub prefix: String,
        pub hash: String,
        pub previous_hash: Option<String>,
        pub previous_expires_at: Option<DateTimeUtc>,
        /// Null: full permission; else a JSON list of scopes.
        pub scopes: Option<Json>,
        pub resource_ids: Json,
        pub bootstrap: bool,
        pub created_at: DateTimeUtc,
        pub last_used_at: Option<DateTimeUtc>,
        pub expires_at: Option<DateTimeUtc>,
        pub revoked_at: Option<DateTimeUtc>,
        /// Grows with every change that matters to a verdict.
        pub revision: i64,
        /// The key's own rate limit (both set, or neither).
        pub rate_limit_requests: Option<i64>,
        pub rate_limit_per_seconds: Option<i64>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod use_batches {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "use_batches")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub batch_id: Uuid,
        pub received_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod bootstrap_claims {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "bootstrap_claims")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        pub key_id: Uuid,
        pub created_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod org_fences {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "org_fences")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        pub closed_at: Option<DateTimeUtc>,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod membership_fences {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "membership_fences")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub user_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub member_since: DateTimeUtc,
        pub closed_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
