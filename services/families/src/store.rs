//! The families table.

use keyplane_common::page::Page;
use sea_orm::{ActiveModelTrait, ColumnTrait, DatabaseConnection, DbErr, EntityTrait, QueryFilter, Set};
use uuid::Uuid;

pub mod families {
    use sea_orm::entity::prelude::*;

    #[sea_orm::model]
    #[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
    #[sea_orm(table_name = "families")]
    pub struct Model {
        #[sea_orm(primary_key, auto_increment = false)]
        pub id: Uuid,
        pub org_id: Uuid,
        pub environment: String,
        pub name: String,
        pub created_by_key: Uuid,
        pub created_at: DateTimeUtc,
    }

    impl ActiveModelBehavior for ActiveModel {}
}

/// Whose data: an org in one environment, narrowed to pinned ids when there are any.
pub struct Tenant<'a> {
    pub org_id: Uuid,
    pub environment: &'a str,
    pub pinned: &'a [String],
}

pub struct Store {
    db: DatabaseConnection,
}

impl Store {
    pub fn new(db: DatabaseConnection) -> Self {
        Self { db }
    }

    pub async fn list(&self, tenant: &Tenant<'_>, page: &Page) -> Result<Vec<families::Model>, DbErr> {
        let mut query = families::Entity::find()
            .filter(families::Column::OrgId.eq(tenant.org_id))
            .filter(families::Column::Environment.eq(tenant.environment));
        if !tenant.pinned.is_empty() {
            let ids: Vec<Uuid> = tenant.pinned.iter().filter_map(|p| Uuid::parse_str(p).ok()).collect();
            query = query.filter(families::Column::Id.is_in(ids));
        }
        page.apply(query, families::Column::Id).all(&self.db).await
    }

    pub async fn get(&self, tenant: &Tenant<'_>, id: Uuid) -> Result<Option<families::Model>, DbErr> {
        families::Entity::find_by_id(id)
            .filter(families::Column::OrgId.eq(tenant.org_id))
            .filter(families::Column::Environment.eq(tenant.environment))
            .one(&self.db)
            .await
    }

    pub async fn create(&self, tenant: &Tenant<'_>, key_id: Uuid, name: String) -> Result<families::Model, DbErr> {
        families::ActiveModel {
            id: Set(Uuid::now_v7()),
            org_id: Set(tenant.org_id),
            environment: Set(tenant.environment.to_owned()),
            name: Set(name),
            created_by_key: Set(key_id),
            created_at: Set(keyplane_common::time::now()),
        }
        .insert(&self.db)
        .await
    }
}
