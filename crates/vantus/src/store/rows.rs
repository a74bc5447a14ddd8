//! Rows as engine-neutral values: the one encoding backups, restores and `db copy` share.
//!
//! A row is a JSON array in the table's column order. Each type has exactly one form: UUIDs as
//! hyphenated lowercase strings, timestamps as fixed-width UTC text (`Timestamp`), integers and
//! floats as JSON numbers, booleans as `true`/`false`, bytes as lowercase hex, NULL as `null`.
//! The SHA-256 of a table is taken over these lines in primary-key order, so the same data
//! gives the same checksum on SQLite and PostgreSQL.

use futures_util::TryStreamExt;
use serde_json::Value;
use sha2::{Digest, Sha256};
use sqlx::{
    ColumnIndex, Database, Decode, Encode, PgConnection, QueryBuilder, SqliteConnection, Type,
};
use uuid::Uuid;

use super::Timestamp;
use super::schema::{Column, ColumnType, Table};

pub type Row = Vec<Value>;

/// A connection (or transaction) on either engine.
pub enum Conn<'a> {
    Sqlite(&'a mut SqliteConnection),
    Postgres(&'a mut PgConnection),
}

impl Conn<'_> {
    /// Re-borrows for one call, so one connection serves a sequence of calls.
    pub fn reborrow(&mut self) -> Conn<'_> {
        match self {
            Conn::Sqlite(c) => Conn::Sqlite(c),
            Conn::Postgres(c) => Conn::Postgres(c),
        }
    }
}

/// Runs the same expression on whichever connection a [`Conn`] holds (the `on_db!` of
/// connections): the body is compiled once per engine.
macro_rules! on_conn {
    ($conn:expr, $c:ident => $body:expr) => {
        match $conn {
            $crate::store::Conn::Sqlite($c) => $body,
            $crate::store::Conn::Postgres($c) => $body,
        }
    };
}
pub(crate) use on_conn;

/// `sqlx::FromRow` for a struct read by `query_as` on either engine: each named field is read
/// from the column of the same name, each `flatten` field from the same row by its own
/// `FromRow`. Written by hand rather than derived: sqlx's derive brings in its proc-macro
/// crate, which builds both database drivers, TLS and the bundled SQLite a second time for the
/// host (ADR 0103). A field left out, or one that is not in the struct, fails to compile.
macro_rules! from_row {
    ($ty:ident { $($field:ident),* $(,)? } $(flatten { $($flat:ident),+ $(,)? })?) => {
        $crate::store::from_row!(@engine sqlx::sqlite::SqliteRow, $ty { $($field),* } $($($flat),+)?);
        $crate::store::from_row!(@engine sqlx::postgres::PgRow, $ty { $($field),* } $($($flat),+)?);
    };
    (@engine $row:ty, $ty:ident { $($field:ident),* } $($flat:ident),*) => {
        impl<'r> sqlx::FromRow<'r, $row> for $ty {
            fn from_row(row: &'r $row) -> Result<Self, sqlx::Error> {
                #[allow(unused_imports)]
                use sqlx::Row as _;
                Ok(Self {
                    $($field: row.try_get(stringify!($field))?,)*
                    $($flat: sqlx::FromRow::from_row(row)?,)*
                })
            }
        }
    };
}
pub(crate) use from_row;

/// Anything that can lend a connection of either engine: pool connections and transactions.
pub trait AsConn {
    fn as_conn(&mut self) -> Conn<'_>;
}

impl AsConn for sqlx::pool::PoolConnection<sqlx::Sqlite> {
    fn as_conn(&mut self) -> Conn<'_> {
        Conn::Sqlite(&mut *self)
    }
}

impl AsConn for sqlx::pool::PoolConnection<sqlx::Postgres> {
    fn as_conn(&mut self) -> Conn<'_> {
        Conn::Postgres(&mut *self)
    }
}

impl AsConn for sqlx::Transaction<'_, sqlx::Sqlite> {
    fn as_conn(&mut self) -> Conn<'_> {
        Conn::Sqlite(&mut *self)
    }
}

impl AsConn for sqlx::Transaction<'_, sqlx::Postgres> {
    fn as_conn(&mut self) -> Conn<'_> {
        Conn::Postgres(&mut *self)
    }
}

/// A [`Conn`] from any [`AsConn`]; lets `on_db!` bodies stay engine-agnostic.
pub fn conn<C: AsConn>(c: &mut C) -> Conn<'_> {
    c.as_conn()
}

#[derive(Debug, thiserror::Error)]
pub enum RowError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("table {table}, column {column}: {problem}")]
    Value {
        table: String,
        column: String,
        problem: String,
    },
    #[error("{0}")]
    Sink(String),
}

fn column_list(table: &Table) -> String {
    table
        .columns
        .iter()
        .map(|c| format!("\"{}\"", c.name))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `SELECT … ORDER BY pk`, optionally only rows after a key (for resuming). Text keys sort by
/// byte value on both engines (`COLLATE "C"` on PostgreSQL; SQLite's default is binary).
fn select_sql(table: &Table, postgres: bool, after: bool) -> String {
    let pk = &table.primary_key;
    let collate = if postgres && table.primary_key_column().ty == ColumnType::Text {
        " COLLATE \"C\""
    } else {
        ""
    };
    let filter = if after {
        format!(" WHERE \"{pk}\"{collate} > $1")
    } else {
        String::new()
    };
    format!(
        "SELECT {} FROM \"{}\"{filter} ORDER BY \"{pk}\"{collate}",
        column_list(table),
        table.name
    )
}

/// Streams every row of `table` (after `after`, when given) into `sink`, in primary-key order,
/// without holding more than one row in memory. Returns the number of rows.
pub async fn dump(
    conn: Conn<'_>,
    table: &Table,
    after: Option<&Value>,
    sink: &mut (dyn FnMut(Row) -> Result<(), RowError> + Send),
) -> Result<u64, RowError> {
    let mut n = 0u64;
    let sql = select_sql(table, matches!(conn, Conn::Postgres(_)), after.is_some());
    on_conn!(conn, c => {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(key) = after {
            q = bind_one(q, table, table.primary_key_column(), key)?;
        }
        let mut stream = q.fetch(&mut *c);
        while let Some(row) = stream.try_next().await? {
            sink(decode_row(&row, table)?)?;
            n += 1;
        }
    });
    Ok(n)
}

/// Up to `limit` rows after `after` (keyset pagination in primary-key order): how `db copy`
/// walks a table in batches it can resume from.
pub async fn read_page(
    conn: Conn<'_>,
    table: &Table,
    after: Option<&Value>,
    limit: usize,
) -> Result<Vec<Row>, RowError> {
    let mut out = Vec::with_capacity(limit);
    let postgres = matches!(conn, Conn::Postgres(_));
    let sql = format!(
        "{} LIMIT {limit}",
        select_sql(table, postgres, after.is_some())
    );
    on_conn!(conn, c => {
        let mut q = sqlx::query(sqlx::AssertSqlSafe(sql));
        if let Some(key) = after {
            q = bind_one(q, table, table.primary_key_column(), key)?;
        }
        for row in q.fetch_all(c).await? {
            out.push(decode_row(&row, table)?);
        }
    });
    Ok(out)
}

/// Rows and SHA-256 of a table as it is now.
pub async fn digest(conn: Conn<'_>, table: &Table) -> Result<TableDigest, RowError> {
    let mut d = TableDigest::default();
    dump(conn, table, None, &mut |row| {
        d.add(&row);
        Ok(())
    })
    .await?;
    Ok(d)
}

/// Running count and checksum of a table's canonical lines.
#[derive(Default, Clone)]
pub struct TableDigest {
    pub rows: u64,
    hasher: Sha256,
}

impl TableDigest {
    /// Adds a row and returns its canonical line (with the trailing newline).
    pub fn add(&mut self, row: &Row) -> String {
        let mut line = serde_json::to_string(row).expect("JSON values serialize");
        line.push('\n');
        self.add_line(line.as_bytes());
        line
    }

    /// Adds an already-encoded canonical line (as read back from an archive).
    pub fn add_line(&mut self, line: &[u8]) {
        self.hasher.update(line);
        self.rows += 1;
    }

    pub fn sha256(&self) -> String {
        hex::encode(self.hasher.clone().finalize())
    }
}

pub async fn count(conn: Conn<'_>, table: &Table) -> Result<i64, sqlx::Error> {
    let sql = format!("SELECT COUNT(*) FROM \"{}\"", table.name);
    on_conn!(conn, c => sqlx::query_scalar(sqlx::AssertSqlSafe(sql)).fetch_one(c).await)
}

/// The largest primary key present, for resuming a copy after the rows already there.
pub async fn max_key(conn: Conn<'_>, table: &Table) -> Result<Option<Value>, RowError> {
    let pk = &table.primary_key;
    let collate =
        if matches!(conn, Conn::Postgres(_)) && table.primary_key_column().ty == ColumnType::Text {
            " COLLATE \"C\""
        } else {
            ""
        };
    let key_only = Table {
        name: table.name.clone(),
        columns: vec![table.primary_key_column().clone()],
        primary_key: pk.clone(),
        references: vec![],
    };
    let sql = format!(
        "SELECT \"{pk}\" FROM \"{}\" ORDER BY \"{pk}\"{collate} DESC LIMIT 1",
        table.name
    );
    let mut last = None;
    on_conn!(conn, c => {
        if let Some(row) = sqlx::query(sqlx::AssertSqlSafe(sql)).fetch_optional(c).await? {
            last = decode_row(&row, &key_only)?.pop();
        }
    });
    Ok(last)
}

/// Deletes every row of a table (restore `--force`, inside its transaction).
pub async fn delete_all(conn: Conn<'_>, table: &Table) -> Result<u64, sqlx::Error> {
    let sql = format!("DELETE FROM \"{}\"", table.name);
    Ok(on_conn!(conn, c => sqlx::query(sqlx::AssertSqlSafe(sql)).execute(c).await?.rows_affected()))
}

/// Most bind parameters one INSERT may carry on SQLite (32766) and PostgreSQL (65535), with
/// room to spare.
const MAX_BINDS: usize = 30_000;

/// Rows per INSERT for a table with `columns` columns.
pub fn batch_size(columns: usize) -> usize {
    (MAX_BINDS / columns.max(1)).clamp(1, 1000)
}

/// Inserts rows given in `columns` order (the archive's) into `table`. Values are checked
/// against the column types first, so a malformed archive is refused with the table, column
/// and reason, never written halfway.
pub async fn insert(
    conn: Conn<'_>,
    table: &Table,
    columns: &[Column],
    rows: &[Row],
) -> Result<(), RowError> {
    if rows.is_empty() {
        return Ok(());
    }
    let typed: Vec<Vec<Bound>> = rows
        .iter()
        .map(|row| {
            if row.len() != columns.len() {
                return Err(RowError::Value {
                    table: table.name.clone(),
                    column: "*".into(),
                    problem: format!("row has {} values for {} columns", row.len(), columns.len()),
                });
            }
            row.iter()
                .zip(columns)
                .map(|(v, c)| Bound::from_json(&table.name, c, v))
                .collect()
        })
        .collect::<Result<_, _>>()?;
    let head = format!(
        "INSERT INTO \"{}\" ({}) ",
        table.name,
        columns
            .iter()
            .map(|c| format!("\"{}\"", c.name))
            .collect::<Vec<_>>()
            .join(", ")
    );
    on_conn!(conn, c => {
        build_insert(&head, typed).build().execute(c).await?;
    });
    Ok(())
}

/// A value converted to its Rust type, ready to bind.
enum Bound {
    Uuid(Option<Uuid>),
    Timestamp(Option<Timestamp>),
    Text(Option<String>),
    Int(Option<i64>),
    Bool(Option<bool>),
    Float(Option<f64>),
    Bytes(Option<Vec<u8>>),
}

impl Bound {
    fn from_json(table: &str, column: &Column, v: &Value) -> Result<Self, RowError> {
        let bad = |problem: String| RowError::Value {
            table: table.to_owned(),
            column: column.name.clone(),
            problem,
        };
        if v.is_null() {
            if !column.nullable {
                return Err(bad("null in a NOT NULL column".into()));
            }
            return Ok(match column.ty {
                ColumnType::Uuid => Bound::Uuid(None),
                ColumnType::Timestamp => Bound::Timestamp(None),
                ColumnType::Text => Bound::Text(None),
                ColumnType::Int => Bound::Int(None),
                ColumnType::Bool => Bound::Bool(None),
                ColumnType::Float => Bound::Float(None),
                ColumnType::Bytes => Bound::Bytes(None),
            });
        }
        let text = || {
            v.as_str()
                .ok_or_else(|| bad(format!("expected a string, found {v}")))
        };
        Ok(match column.ty {
            ColumnType::Uuid => Bound::Uuid(Some(
                Uuid::parse_str(text()?).map_err(|e| bad(format!("not a UUID: {e}")))?,
            )),
            ColumnType::Timestamp => Bound::Timestamp(Some(
                Timestamp::parse_rfc3339(text()?)
                    .ok_or_else(|| bad("not an RFC 3339 time".into()))?,
            )),
            ColumnType::Text => Bound::Text(Some(text()?.to_owned())),
            ColumnType::Int => Bound::Int(Some(
                v.as_i64()
                    .ok_or_else(|| bad(format!("expected an integer, found {v}")))?,
            )),
            ColumnType::Bool => Bound::Bool(Some(
                v.as_bool()
                    .ok_or_else(|| bad(format!("expected true or false, found {v}")))?,
            )),
            ColumnType::Float => Bound::Float(Some(
                v.as_f64()
                    .ok_or_else(|| bad(format!("expected a number, found {v}")))?,
            )),
            ColumnType::Bytes => Bound::Bytes(Some(
                hex::decode(text()?).map_err(|e| bad(format!("not hex: {e}")))?,
            )),
        })
    }
}

fn build_insert<DB>(head: &str, rows: Vec<Vec<Bound>>) -> QueryBuilder<DB>
where
    DB: Database,
    for<'a> Option<Uuid>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<Timestamp>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<String>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<i64>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<bool>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<f64>: Encode<'a, DB> + Type<DB>,
    for<'a> Option<Vec<u8>>: Encode<'a, DB> + Type<DB>,
{
    // Table and column names come from schema introspection (checked identifiers); values
    // are all bound parameters.
    let mut b = QueryBuilder::<DB>::new(head.to_owned());
    b.push_values(rows, |mut sep, row| {
        for v in row {
            match v {
                Bound::Uuid(x) => sep.push_bind(x),
                Bound::Timestamp(x) => sep.push_bind(x),
                Bound::Text(x) => sep.push_bind(x),
                Bound::Int(x) => sep.push_bind(x),
                Bound::Bool(x) => sep.push_bind(x),
                Bound::Float(x) => sep.push_bind(x),
                Bound::Bytes(x) => sep.push_bind(x),
            };
        }
    });
    b
}

fn bind_one<'q, DB>(
    q: sqlx::query::Query<'q, DB, <DB as Database>::Arguments>,
    table: &Table,
    column: &Column,
    v: &Value,
) -> Result<sqlx::query::Query<'q, DB, <DB as Database>::Arguments>, RowError>
where
    DB: Database,
    Option<Uuid>: Encode<'q, DB> + Type<DB>,
    Option<Timestamp>: Encode<'q, DB> + Type<DB>,
    Option<String>: Encode<'q, DB> + Type<DB>,
    Option<i64>: Encode<'q, DB> + Type<DB>,
    Option<bool>: Encode<'q, DB> + Type<DB>,
    Option<f64>: Encode<'q, DB> + Type<DB>,
    Option<Vec<u8>>: Encode<'q, DB> + Type<DB>,
{
    Ok(match Bound::from_json(&table.name, column, v)? {
        Bound::Uuid(x) => q.bind(x),
        Bound::Timestamp(x) => q.bind(x),
        Bound::Text(x) => q.bind(x),
        Bound::Int(x) => q.bind(x),
        Bound::Bool(x) => q.bind(x),
        Bound::Float(x) => q.bind(x),
        Bound::Bytes(x) => q.bind(x),
    })
}

fn decode_row<R>(row: &R, table: &Table) -> Result<Row, RowError>
where
    R: sqlx::Row,
    usize: ColumnIndex<R>,
    for<'r> Option<Uuid>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<Timestamp>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<String>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<i64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<bool>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<f64>: Decode<'r, R::Database> + Type<R::Database>,
    for<'r> Option<Vec<u8>>: Decode<'r, R::Database> + Type<R::Database>,
{
    table
        .columns
        .iter()
        .enumerate()
        .map(|(i, c)| {
            let v = match c.ty {
                ColumnType::Uuid => row
                    .try_get::<Option<Uuid>, _>(i)?
                    .map(|u| Value::String(u.hyphenated().to_string())),
                ColumnType::Timestamp => row
                    .try_get::<Option<Timestamp>, _>(i)?
                    .map(|t| Value::String(t.to_fixed_string())),
                ColumnType::Text => row.try_get::<Option<String>, _>(i)?.map(Value::String),
                ColumnType::Int => row.try_get::<Option<i64>, _>(i)?.map(Value::from),
                ColumnType::Bool => row.try_get::<Option<bool>, _>(i)?.map(Value::Bool),
                ColumnType::Float => match row.try_get::<Option<f64>, _>(i)? {
                    None => None,
                    Some(f) => Some(Value::Number(serde_json::Number::from_f64(f).ok_or_else(
                        || RowError::Value {
                            table: table.name.clone(),
                            column: c.name.clone(),
                            problem: format!("{f} cannot be represented (NaN or infinite)"),
                        },
                    )?)),
                },
                ColumnType::Bytes => row
                    .try_get::<Option<Vec<u8>>, _>(i)?
                    .map(|b| Value::String(hex::encode(b))),
            };
            Ok(v.unwrap_or(Value::Null))
        })
        .collect()
}
