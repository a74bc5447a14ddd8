//! A UTC instant stored identically on both engines.
//!
//! PostgreSQL keeps microseconds in `timestamptz`; SQLite keeps whatever text it is given.
//! `Timestamp` truncates to microseconds in code, and on SQLite writes fixed-width text
//! (`2026-11-26T09:30:00.000000Z`), so ordering by the column is ordering by time and a value
//! copied between engines compares equal.

use std::fmt;

use serde::{Deserialize, Serialize};
use sqlx::encode::IsNull;
use sqlx::error::BoxDynError;
use sqlx::postgres::{PgHasArrayType, PgTypeInfo, PgValueRef, Postgres};
use sqlx::sqlite::{Sqlite, SqliteTypeInfo, SqliteValueRef};
use sqlx::{Decode, Encode, Type};
use time::format_description::well_known::Rfc3339;
use time::macros::format_description;
use time::{OffsetDateTime, UtcOffset};

#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Timestamp(#[serde(with = "time::serde::rfc3339")] OffsetDateTime);

impl Timestamp {
    pub fn now() -> Self {
        Self::from_datetime(OffsetDateTime::now_utc())
    }

    /// Converts to UTC and drops sub-microsecond precision.
    ///
    /// Panics only if the instant in UTC is outside years ±9999, which cannot happen for a
    /// time already in UTC (like `now`); for times from outside (archives, text columns) use
    /// [`Self::checked_from_datetime`].
    pub fn from_datetime(t: OffsetDateTime) -> Self {
        Self::checked_from_datetime(t).expect("a UTC time converts to UTC")
    }

    /// Converts to UTC and drops sub-microsecond precision; `None` when the instant falls
    /// outside the supported years once in UTC (`9999-12-31T23:59:59-01:00` is in year 10000).
    pub fn checked_from_datetime(t: OffsetDateTime) -> Option<Self> {
        let t = t.checked_to_offset(UtcOffset::UTC)?;
        t.replace_microsecond(t.microsecond()).ok().map(Self)
    }

    pub fn from_unix_micros(micros: i64) -> Option<Self> {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(micros) * 1000)
            .ok()
            .map(Self)
    }

    pub fn unix_micros(self) -> i64 {
        (self.0.unix_timestamp_nanos() / 1000) as i64
    }

    pub fn as_datetime(self) -> OffsetDateTime {
        self.0
    }

    /// `self + d`; a `d` beyond a year counts as a year (settings cap durations well below
    /// that), and an instant past the supported years stays `self`.
    pub fn plus(self, d: std::time::Duration) -> Self {
        self.shifted(d, OffsetDateTime::checked_add)
    }

    /// `self - d`, bounded like [`Self::plus`].
    pub fn minus(self, d: std::time::Duration) -> Self {
        self.shifted(d, OffsetDateTime::checked_sub)
    }

    fn shifted(
        self,
        d: std::time::Duration,
        op: fn(OffsetDateTime, time::Duration) -> Option<OffsetDateTime>,
    ) -> Self {
        let d = d.min(std::time::Duration::from_secs(365 * 24 * 3600));
        time::Duration::try_from(d)
            .ok()
            .and_then(|d| op(self.0, d))
            .and_then(Self::checked_from_datetime)
            .unwrap_or(self)
    }

    /// RFC 3339 with a fixed six-digit fraction: the storage form on SQLite.
    pub fn to_fixed_string(self) -> String {
        self.0
            .format(format_description!(
                "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:6]Z"
            ))
            .expect("a UTC timestamp formats")
    }

    /// RFC 3339 as used in feeds and sitemaps, to the second.
    pub fn to_rfc3339_seconds(self) -> String {
        self.0
            .replace_nanosecond(0)
            .expect("zero nanoseconds is valid")
            .format(&Rfc3339)
            .expect("a UTC timestamp formats")
    }

    /// `26 November 2026`, for people.
    pub fn to_long_date(self) -> String {
        self.0
            .format(format_description!(
                "[day padding:none] [month repr:long] [year]"
            ))
            .expect("a date formats")
    }

    /// `2026-11-26`, for the `datetime` attribute of `<time>`.
    pub fn to_iso_date(self) -> String {
        self.0
            .format(format_description!("[year]-[month]-[day]"))
            .expect("a date formats")
    }

    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        OffsetDateTime::parse(s, &Rfc3339)
            .ok()
            .and_then(Self::checked_from_datetime)
    }
}

fn out_of_range(t: OffsetDateTime) -> BoxDynError {
    format!("timestamp {t} is outside the supported years once converted to UTC").into()
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_fixed_string())
    }
}

impl Type<Sqlite> for Timestamp {
    fn type_info() -> SqliteTypeInfo {
        <String as Type<Sqlite>>::type_info()
    }
    fn compatible(ty: &SqliteTypeInfo) -> bool {
        <OffsetDateTime as Type<Sqlite>>::compatible(ty)
    }
}

impl Encode<'_, Sqlite> for Timestamp {
    fn encode_by_ref(
        &self,
        buf: &mut <Sqlite as sqlx::Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <String as Encode<Sqlite>>::encode(self.to_fixed_string(), buf)
    }
}

impl<'r> Decode<'r, Sqlite> for Timestamp {
    fn decode(value: SqliteValueRef<'r>) -> Result<Self, BoxDynError> {
        let t = <OffsetDateTime as Decode<Sqlite>>::decode(value)?;
        Self::checked_from_datetime(t).ok_or_else(|| out_of_range(t))
    }
}

impl Type<Postgres> for Timestamp {
    fn type_info() -> PgTypeInfo {
        <OffsetDateTime as Type<Postgres>>::type_info()
    }
    fn compatible(ty: &PgTypeInfo) -> bool {
        <OffsetDateTime as Type<Postgres>>::compatible(ty)
    }
}

impl PgHasArrayType for Timestamp {
    fn array_type_info() -> PgTypeInfo {
        <OffsetDateTime as PgHasArrayType>::array_type_info()
    }
}

impl Encode<'_, Postgres> for Timestamp {
    fn encode_by_ref(
        &self,
        buf: &mut <Postgres as sqlx::Database>::ArgumentBuffer,
    ) -> Result<IsNull, BoxDynError> {
        <OffsetDateTime as Encode<Postgres>>::encode_by_ref(&self.0, buf)
    }
}

impl<'r> Decode<'r, Postgres> for Timestamp {
    fn decode(value: PgValueRef<'r>) -> Result<Self, BoxDynError> {
        let t = <OffsetDateTime as Decode<Postgres>>::decode(value)?;
        Self::checked_from_datetime(t).ok_or_else(|| out_of_range(t))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_width_text_sorts_like_time() {
        let a = Timestamp::from_unix_micros(1_700_000_000_000_000).unwrap();
        let b = Timestamp::from_unix_micros(1_700_000_000_100_000).unwrap();
        assert!(a.to_fixed_string() < b.to_fixed_string());
        assert_eq!(a.to_fixed_string(), "2023-11-14T22:13:20.000000Z");
        assert_eq!(a.to_fixed_string().len(), b.to_fixed_string().len());
    }

    #[test]
    fn times_beyond_the_supported_years_in_utc_are_refused_not_a_panic() {
        assert_eq!(
            Timestamp::parse_rfc3339("9999-12-31T23:59:59.000000-23:59"),
            None
        );
        assert_eq!(Timestamp::parse_rfc3339("-9999-01-01T00:00:00+23:59"), None);
        let edge = Timestamp::parse_rfc3339("9999-12-31T23:59:59.999999Z").unwrap();
        assert_eq!(edge.to_fixed_string(), "9999-12-31T23:59:59.999999Z");
    }

    #[test]
    fn now_is_truncated_to_microseconds() {
        let t = Timestamp::now();
        assert_eq!(t.as_datetime().nanosecond() % 1000, 0);
        assert_eq!(Timestamp::from_unix_micros(t.unix_micros()), Some(t));
    }
}
