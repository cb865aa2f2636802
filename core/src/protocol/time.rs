//! Timestamps as ChatKit sends them: ISO-8601, microseconds, UTC with `Z`.

use chrono::{DateTime, Datelike, NaiveDateTime, SubsecRound, Timelike, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// A point in time, stored with microsecond precision and always in UTC.
///
/// Serialized like pydantic serializes an aware UTC datetime:
/// `2026-11-25T22:02:39.394192Z`, with the fraction dropped when it is zero.
/// Parsing also accepts the naive form the Python SDK emits (read as UTC) and
/// any RFC 3339 offset.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// The current time, truncated to microseconds.
    pub fn now() -> Self {
        Self(Utc::now().trunc_subsecs(6))
    }

    /// Wraps a UTC time, truncating it to microseconds.
    pub fn from_utc(at: DateTime<Utc>) -> Self {
        Self(at.trunc_subsecs(6))
    }

    /// Microseconds since the Unix epoch.
    pub fn as_micros(&self) -> i64 {
        self.0.timestamp_micros()
    }

    /// Builds a timestamp from microseconds since the Unix epoch.
    pub fn from_micros(micros: i64) -> Option<Self> {
        DateTime::<Utc>::from_timestamp_micros(micros).map(Self)
    }

    /// The wrapped UTC time.
    pub fn as_datetime(&self) -> DateTime<Utc> {
        self.0
    }

    /// Parses the ISO-8601 forms described on the type.
    pub fn parse(text: &str) -> Option<Self> {
        if let Ok(at) = DateTime::parse_from_rfc3339(text) {
            return Some(Self::from_utc(at.with_timezone(&Utc)));
        }
        NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
            .ok()
            .map(|naive| Self::from_utc(naive.and_utc()))
    }

    /// chrono's spelling, for the instants `Display` leaves to it.
    fn fmt_with_chrono(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0.timestamp_subsec_micros() == 0 {
            write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%SZ"))
        } else {
            write!(f, "{}", self.0.format("%Y-%m-%dT%H:%M:%S%.6fZ"))
        }
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (date, time) = (self.0.date_naive(), self.0.time());
        // Written field by field: every item and event carries a timestamp,
        // and chrono's format strings are parsed again on each call. Years
        // outside four digits and leap seconds keep chrono's spelling.
        if !(0..=9999).contains(&date.year()) || time.nanosecond() >= 1_000_000_000 {
            return self.fmt_with_chrono(f);
        }
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
            date.year(),
            date.month(),
            date.day(),
            time.hour(),
            time.minute(),
            time.second()
        )?;
        match self.0.timestamp_subsec_micros() {
            0 => f.write_str("Z"),
            micros => write!(f, ".{micros:06}Z"),
        }
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = std::borrow::Cow::<'de, str>::deserialize(deserializer)?;
        Timestamp::parse(&text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid datetime `{text}`")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_microseconds_with_z_and_drops_a_zero_fraction() {
        let at = Timestamp::from_micros(1_764_108_159_394_192).unwrap();
        assert_eq!(at.to_string(), "2025-11-25T22:02:39.394192Z");
        let whole = Timestamp::from_micros(1_764_108_159_000_000).unwrap();
        assert_eq!(whole.to_string(), "2025-11-25T22:02:39Z");
    }

    /// The Display of any timestamp equals chrono's formatting of it.
    struct Chrono(Timestamp);

    impl fmt::Display for Chrono {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            self.0.fmt_with_chrono(f)
        }
    }

    #[test]
    fn formats_like_chrono_across_the_calendar() {
        // Epoch, leap days, the ends of the four-digit years and a walk
        // through the calendar with odd steps, whole seconds included.
        let mut micros = vec![
            0,
            -1,
            951_782_400_000_000,
            253_402_300_799_999_999,
            253_402_300_800_000_000,
            -62_167_219_200_000_000,
            -62_167_219_200_000_001,
        ];
        let mut at: i64 = -62_000_000_000_000_000;
        while at < 250_000_000_000_000_000 {
            micros.push(at);
            micros.push(at - at.rem_euclid(1_000_000));
            at += 7_919_000_003_117;
        }
        for micros in micros {
            let stamp = Timestamp::from_micros(micros).unwrap();
            assert_eq!(stamp.to_string(), Chrono(stamp).to_string(), "{micros}");
        }
        let leap = Timestamp::parse("2016-12-31T23:59:60.5Z").unwrap();
        assert_eq!(leap.to_string(), Chrono(leap).to_string());
    }

    #[test]
    fn parses_naive_python_timestamps_as_utc() {
        let at = Timestamp::parse("2026-11-25T22:02:39.394192").unwrap();
        assert_eq!(at.to_string(), "2026-11-25T22:02:39.394192Z");
        let offset = Timestamp::parse("2026-11-25T23:02:39+01:00").unwrap();
        assert_eq!(offset.to_string(), "2026-11-25T22:02:39Z");
        assert!(Timestamp::parse("yesterday").is_none());
    }
}
