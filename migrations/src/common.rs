//! Tables that several services own a copy of.

use sea_orm_migration::{prelude::*, schema::*};

/// The transactional outbox: an event committed with the change it describes, then
/// relayed at least once to its consumer (see `keyplane_common::outbox`).
pub fn create_outbox() -> TableCreateStatement {
    Table::create()
        .table("outbox")
        .if_not_exists()
        .col(pk_uuid("id"))
        .col(string("topic"))
        .col(json("payload"))
        .col(timestamp_with_time_zone("created_at"))
        .col(integer("attempts").default(0))
        .col(timestamp_with_time_zone("next_attempt_at"))
        .to_owned()
}

pub fn index_outbox_due() -> IndexCreateStatement {
    Index::create().name("outbox_due").table("outbox").col("next_attempt_at").to_owned()
}
