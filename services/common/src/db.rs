//! Connecting a service to its database: PostgreSQL (one schema per service) or SQLite.

use std::time::Duration;

pub use sea_orm::DbErr;
use sea_orm::{ConnectOptions, ConnectionTrait, Database, DatabaseConnection, SqlErr};

/// Connects to `url`. On PostgreSQL the service's tables live in `schema`, so services
/// may share one database without seeing each other's tables.
pub async fn connect(url: &str, schema: &str, max_connections: u32) -> Result<DatabaseConnection, DbErr> {
    let mut options = ConnectOptions::new(url.to_owned());
    options
        .connect_timeout(Duration::from_secs(3))
        // A database outage answers 503 quickly instead of queueing requests.
        .acquire_timeout(Duration::from_secs(3))
        .sqlx_logging(false);
    if is_sqlite(url) {
        ensure_sqlite_dir(url)?;
        // One connection: SQLite serialises writes anyway, and one writer cannot
        // deadlock upgrading a read transaction. The embedded default is for one machine.
        options.max_connections(1).min_connections(1).map_sqlx_sqlite_opts(|o| {
            o.journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
                .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
                .busy_timeout(Duration::from_secs(5))
                .foreign_keys(true)
        });
        return Database::connect(options).await;
    }
    options.max_connections(max_connections).min_connections(0).set_schema_search_path(schema.to_owned());
    let db = Database::connect(options).await?;
    if let Err(e) = db.execute_unprepared(&format!("CREATE SCHEMA IF NOT EXISTS \"{schema}\"")).await {
        // Two processes creating the schema at once: the loser finds it there.
        if !is_unique_violation(&e) {
            return Err(e);
        }
    }
    Ok(db)
}

pub fn is_sqlite(url: &str) -> bool {
    url.starts_with("sqlite:")
}

fn ensure_sqlite_dir(url: &str) -> Result<(), DbErr> {
    let path = url.trim_start_matches("sqlite://").trim_start_matches("sqlite:");
    let path = path.split('?').next().unwrap_or(path);
    if path.is_empty() || path == ":memory:" {
        return Ok(());
    }
    if let Some(dir) = std::path::Path::new(path).parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| DbErr::Custom(format!("cannot create {}: {e}", dir.display())))?;
    }
    Ok(())
}

pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// The database could not be reached (as opposed to a query that failed).
pub fn is_unavailable(err: &DbErr) -> bool {
    use sea_orm::RuntimeErr;
    match err {
        DbErr::ConnectionAcquire(_) | DbErr::Conn(_) => true,
        DbErr::Exec(RuntimeErr::SqlxError(e)) | DbErr::Query(RuntimeErr::SqlxError(e)) => is_outage(e),
        _ => false,
    }
}

/// Errors that say the server is away or going, not that the query was wrong: a lost
/// connection, and the SQLSTATEs of a server that shuts down, restarts or is full.
fn is_outage(e: &sqlx::Error) -> bool {
    match e {
        sqlx::Error::Io(_) | sqlx::Error::PoolTimedOut | sqlx::Error::PoolClosed | sqlx::Error::Tls(_) => true,
        sqlx::Error::Database(db) => db.code().is_some_and(|code| {
            // 08: connection exception; 57P01-03: admin shutdown, crash shutdown, cannot
            // connect now; 53300: too many connections.
            code.starts_with("08") || matches!(code.as_ref(), "57P01" | "57P02" | "57P03" | "53300")
        }),
        _ => false,
    }
}

/// How a database error reaches the caller: an outage (503) or our own fault (500).
pub enum DbFailure {
    Unavailable,
    Internal(String),
}

pub fn classify(err: &DbErr) -> DbFailure {
    if is_unavailable(err) {
        tracing::warn!(error = %err, "database unavailable");
        DbFailure::Unavailable
    } else {
        DbFailure::Internal(format!("database: {err}"))
    }
}

/// A client span for one query, named by the OpenTelemetry database conventions
/// (`SELECT credentials`): what a trace shows of a store's call.
pub fn span(db: &DatabaseConnection, operation: &'static str, table: &'static str) -> tracing::Span {
    if !crate::telemetry::exporting() {
        return tracing::Span::none();
    }
    let system = match db.get_database_backend() {
        sea_orm::DatabaseBackend::Postgres => "postgresql",
        sea_orm::DatabaseBackend::Sqlite => "sqlite",
        _ => "other_sql",
    };
    tracing::info_span!(
        "db",
        otel.name = %format_args!("{operation} {table}"),
        otel.kind = "client",
        db.system.name = system,
        db.operation.name = operation,
        db.collection.name = table,
    )
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use super::*;

    /// A database error with a SQLSTATE, as the server sends it.
    #[derive(Debug)]
    struct ServerError(&'static str);

    impl std::fmt::Display for ServerError {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            write!(f, "server error {}", self.0)
        }
    }

    impl std::error::Error for ServerError {}

    impl sqlx::error::DatabaseError for ServerError {
        fn message(&self) -> &str {
            "terminating connection due to administrator command"
        }
        fn code(&self) -> Option<Cow<'_, str>> {
            Some(Cow::Borrowed(self.0))
        }
        fn as_error(&self) -> &(dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn as_error_mut(&mut self) -> &mut (dyn std::error::Error + Send + Sync + 'static) {
            self
        }
        fn into_error(self: Box<Self>) -> Box<dyn std::error::Error + Send + Sync + 'static> {
            self
        }
        fn kind(&self) -> sqlx::error::ErrorKind {
            sqlx::error::ErrorKind::Other
        }
    }

    fn query_error(code: &'static str) -> DbErr {
        DbErr::Query(sea_orm::RuntimeErr::SqlxError(std::sync::Arc::new(sqlx::Error::Database(Box::new(ServerError(
            code,
        ))))))
    }

    #[test]
    fn a_server_shutting_down_is_an_outage_not_a_bug() {
        for code in ["57P01", "57P02", "57P03", "08006", "53300"] {
            assert!(is_unavailable(&query_error(code)), "{code}");
        }
        assert!(!is_unavailable(&query_error("42P01")), "an undefined table is our bug");
    }
}
