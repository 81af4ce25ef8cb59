//! The usage service's tables.

pub mod usage_hourly {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "usage_hourly")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub org_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub hour: DateTimeUtc,
        /// The nil id for requests made with a session.
        #[sea_orm(primary_key, auto_increment = false)]
        pub key_id: Uuid,
        #[sea_orm(primary_key, auto_increment = false)]
        pub status_class: i16,
        pub requests: i64,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

pub mod usage_batches {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "usage_batches")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub batch_id: Uuid,
        pub received_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}
