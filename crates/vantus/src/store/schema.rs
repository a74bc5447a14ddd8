//! What tables exist, read from the database itself.
//!
//! Backup, restore and `db copy` work from this description rather than a hand-kept list, so a
//! table added by a future migration is protected the day it is created. Tables whose name
//! starts with `_` (sqlx's migration ledger, copy bookkeeping) are not application data.
//!
//! Every application table must have a single-column primary key and columns of the types in
//! [`ColumnType`]; [`tables`] refuses anything else with an error naming the table, so a
//! migration that breaks the rule fails its tests instead of producing a backup that cannot
//! be restored.

use serde::{Deserialize, Serialize};

use super::Db;

/// Column types with one meaning on both engines.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ColumnType {
    Uuid,
    Timestamp,
    Text,
    Int,
    Bool,
    Float,
    Bytes,
}

impl ColumnType {
    /// Maps a declared SQLite type or a PostgreSQL `data_type` to a column type.
    pub fn from_declared(declared: &str) -> Option<Self> {
        Some(match declared.trim().to_ascii_lowercase().as_str() {
            "uuid" => ColumnType::Uuid,
            "timestamptz" | "timestamp with time zone" => ColumnType::Timestamp,
            "text" => ColumnType::Text,
            "bigint" | "int8" => ColumnType::Int,
            "boolean" | "bool" => ColumnType::Bool,
            "double precision" | "float8" => ColumnType::Float,
            "blob" | "bytea" => ColumnType::Bytes,
            _ => return None,
        })
    }
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Column {
    pub name: String,
    #[serde(rename = "type")]
    pub ty: ColumnType,
    pub nullable: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Table {
    pub name: String,
    pub columns: Vec<Column>,
    pub primary_key: String,
    /// Tables this one has foreign keys to; they are written first.
    #[serde(default)]
    pub references: Vec<String>,
}

impl Table {
    pub fn column(&self, name: &str) -> Option<&Column> {
        self.columns.iter().find(|c| c.name == name)
    }

    pub fn primary_key_column(&self) -> &Column {
        self.column(&self.primary_key)
            .expect("tables() checks the primary key is a column")
    }
}

#[derive(Debug, thiserror::Error)]
pub enum SchemaError {
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    #[error("table {table}: {problem}")]
    Unsupported { table: String, problem: String },
}

/// Identifiers that can be spliced into SQL: lowercase letters, digits, underscores.
pub fn is_identifier(s: &str) -> bool {
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c.is_ascii_lowercase() || c == '_')
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
        && s.len() <= 63
}

/// The application's tables in dependency order (referenced tables first).
pub async fn tables(db: &Db) -> Result<Vec<Table>, SchemaError> {
    let mut raw = match db {
        Db::Sqlite(pool) => sqlite_tables(pool).await?,
        Db::Postgres(pool) => pg_tables(pool).await?,
    };
    for (table, _, _, _) in &raw {
        if !is_identifier(table) {
            return Err(unsupported(
                table,
                "the name is not a plain lowercase identifier",
            ));
        }
    }
    let mut out = Vec::new();
    for (name, columns, pks, references) in raw.drain(..) {
        let mut cols = Vec::new();
        for (col, declared, nullable) in columns {
            if !is_identifier(&col) {
                return Err(unsupported(
                    &name,
                    format!("column \"{col}\" is not a plain identifier"),
                ));
            }
            let ty = ColumnType::from_declared(&declared).ok_or_else(|| {
                unsupported(
                    &name,
                    format!("column {col} has type {declared}, which backups cannot carry; use UUID, TIMESTAMPTZ, TEXT, BIGINT, BOOLEAN, DOUBLE PRECISION or BLOB/BYTEA"),
                )
            })?;
            cols.push(Column {
                name: col,
                ty,
                nullable,
            });
        }
        let primary_key = match pks.as_slice() {
            [one] => one.clone(),
            [] => return Err(unsupported(&name, "has no primary key")),
            _ => {
                return Err(unsupported(
                    &name,
                    "has a composite primary key; use a single id column",
                ));
            }
        };
        let mut references: Vec<String> = references.into_iter().filter(|r| r != &name).collect();
        references.sort();
        references.dedup();
        out.push(Table {
            name,
            columns: cols,
            primary_key,
            references,
        });
    }
    dependency_order(out)
}

fn unsupported(table: &str, problem: impl Into<String>) -> SchemaError {
    SchemaError::Unsupported {
        table: table.to_owned(),
        problem: problem.into(),
    }
}

/// Orders tables so every table comes after the tables it references (alphabetical among
/// equals, so the order is stable).
fn dependency_order(mut pending: Vec<Table>) -> Result<Vec<Table>, SchemaError> {
    pending.sort_by(|a, b| a.name.cmp(&b.name));
    let mut ordered: Vec<Table> = Vec::new();
    while !pending.is_empty() {
        let ready = pending.iter().position(|t| {
            t.references.iter().all(|r| {
                ordered.iter().any(|o| &o.name == r) || !pending.iter().any(|p| &p.name == r)
            })
        });
        match ready {
            Some(i) => ordered.push(pending.remove(i)),
            None => {
                return Err(unsupported(
                    &pending[0].name,
                    "is part of a foreign-key cycle; backups need an insert order",
                ));
            }
        }
    }
    Ok(ordered)
}

/// Moves every PostgreSQL sequence owned by an application column past the column's largest
/// value, so rows inserted after a restore or copy (which bring their own ids) do not collide.
/// Vantus keys are UUIDs, so today this finds nothing; it keeps future serial columns safe.
pub async fn reset_sequences(db: &Db) -> Result<u32, SchemaError> {
    let Db::Postgres(pool) = db else {
        return Ok(0);
    };
    let owned: Vec<(String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND column_default LIKE 'nextval(%'
           AND table_name NOT LIKE '\\_%'",
    )
    .fetch_all(pool)
    .await?;
    let mut n = 0;
    for (table, column) in owned {
        if !is_identifier(&table) || !is_identifier(&column) {
            continue;
        }
        let sql = format!(
            "SELECT setval(pg_get_serial_sequence('{table}', '{column}'), COALESCE(MAX(\"{column}\"), 0) + 1, false) FROM \"{table}\""
        );
        sqlx::query(sqlx::AssertSqlSafe(sql)).execute(pool).await?;
        n += 1;
    }
    Ok(n)
}

type RawTable = (
    String,
    Vec<(String, String, bool)>,
    Vec<String>,
    Vec<String>,
);

async fn sqlite_tables(pool: &sqlx::SqlitePool) -> Result<Vec<RawTable>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master
         WHERE type = 'table' AND name NOT LIKE 'sqlite\\_%' ESCAPE '\\' AND name NOT LIKE '\\_%' ESCAPE '\\'
         ORDER BY name",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for name in names {
        let cols: Vec<(String, String, bool, i64)> = sqlx::query_as(
            "SELECT name, type, \"notnull\" = 0, pk FROM pragma_table_info($1) ORDER BY cid",
        )
        .bind(&name)
        .fetch_all(pool)
        .await?;
        let refs: Vec<String> =
            sqlx::query_scalar("SELECT \"table\" FROM pragma_foreign_key_list($1)")
                .bind(&name)
                .fetch_all(pool)
                .await?;
        let pks = cols
            .iter()
            .filter(|c| c.3 > 0)
            .map(|c| c.0.clone())
            .collect();
        // SQLite lets primary-key columns be NULL unless declared otherwise; they never are.
        let columns = cols
            .into_iter()
            .map(|(n, t, nullable, pk)| (n, t, nullable && pk == 0))
            .collect();
        out.push((name, columns, pks, refs));
    }
    Ok(out)
}

async fn pg_tables(pool: &sqlx::PgPool) -> Result<Vec<RawTable>, sqlx::Error> {
    let names: Vec<String> = sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'
           AND table_name NOT LIKE '\\_%'
         ORDER BY table_name",
    )
    .fetch_all(pool)
    .await?;
    let mut out = Vec::new();
    for name in names {
        let columns: Vec<(String, String, bool)> = sqlx::query_as(
            "SELECT column_name::text, data_type::text, is_nullable = 'YES'
             FROM information_schema.columns
             WHERE table_schema = current_schema() AND table_name = $1
             ORDER BY ordinal_position",
        )
        .bind(&name)
        .fetch_all(pool)
        .await?;
        let pks: Vec<String> = sqlx::query_scalar(
            "SELECT kcu.column_name::text
             FROM information_schema.table_constraints tc
             JOIN information_schema.key_column_usage kcu
               ON tc.constraint_name = kcu.constraint_name AND tc.table_schema = kcu.table_schema
             WHERE tc.table_schema = current_schema() AND tc.table_name = $1
               AND tc.constraint_type = 'PRIMARY KEY'
             ORDER BY kcu.ordinal_position",
        )
        .bind(&name)
        .fetch_all(pool)
        .await?;
        let refs: Vec<String> = sqlx::query_scalar(
            "SELECT DISTINCT ccu.table_name::text
             FROM information_schema.table_constraints tc
             JOIN information_schema.constraint_column_usage ccu
               ON tc.constraint_name = ccu.constraint_name AND tc.table_schema = ccu.table_schema
             WHERE tc.table_schema = current_schema() AND tc.table_name = $1
               AND tc.constraint_type = 'FOREIGN KEY'",
        )
        .bind(&name)
        .fetch_all(pool)
        .await?;
        out.push((name, columns, pks, refs));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(name: &str, refs: &[&str]) -> Table {
        Table {
            name: name.into(),
            columns: vec![],
            primary_key: "id".into(),
            references: refs.iter().map(|s| s.to_string()).collect(),
        }
    }

    #[test]
    fn referenced_tables_come_first() {
        let order = dependency_order(vec![
            t("c", &["b"]),
            t("b", &["a"]),
            t("a", &[]),
            t("d", &[]),
        ])
        .unwrap();
        let names: Vec<_> = order.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c", "d"]);
        assert!(dependency_order(vec![t("x", &["y"]), t("y", &["x"])]).is_err());
    }

    #[test]
    fn declared_types_map_on_both_engines() {
        assert_eq!(
            ColumnType::from_declared("TIMESTAMPTZ"),
            Some(ColumnType::Timestamp)
        );
        assert_eq!(
            ColumnType::from_declared("timestamp with time zone"),
            Some(ColumnType::Timestamp)
        );
        assert_eq!(ColumnType::from_declared("UUID"), Some(ColumnType::Uuid));
        assert_eq!(
            ColumnType::from_declared("integer"),
            None,
            "only BIGINT: one width on both engines"
        );
        assert!(
            is_identifier("content_items") && !is_identifier("x; DROP") && !is_identifier("Abc")
        );
    }
}
