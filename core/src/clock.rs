//! Wall-clock time the engine asks for, so that tests can move it.
//!
//! The engine reads the date through a [`Clock`] for one thing: which UTC
//! day a turn's tokens count against (the daily budget). A host passes
//! nothing and gets [`SystemClock`]; a test passes a [`ManualClock`] and
//! moves it to the next day.
//!
//! ```
//! use chatkit_engine::clock::{Clock, ManualClock};
//! let clock = ManualClock::at("2026-03-01T23:59:00Z").unwrap();
//! assert_eq!(clock.today(), "2026-03-01");
//! clock.advance(std::time::Duration::from_secs(120));
//! assert_eq!(clock.today(), "2026-03-02");
//! ```

use crate::error::{Error, Result};
use chrono::{DateTime, Utc};
use std::sync::Mutex;
use std::time::Duration;

/// A source of the current time.
pub trait Clock: Send + Sync + 'static {
    /// Now, in UTC.
    fn now(&self) -> DateTime<Utc>;

    /// Today's UTC date as `YYYY-MM-DD`.
    fn today(&self) -> String {
        self.now().format("%Y-%m-%d").to_string()
    }
}

/// The system's clock.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A clock that stands still until moved (tests, simulations).
#[derive(Debug)]
pub struct ManualClock {
    now: Mutex<DateTime<Utc>>,
}

impl ManualClock {
    /// A clock showing `now`.
    pub fn new(now: DateTime<Utc>) -> Self {
        Self {
            now: Mutex::new(now),
        }
    }

    /// A clock showing an RFC 3339 time (`2026-03-01T12:00:00Z`).
    pub fn at(rfc3339: &str) -> Result<Self> {
        let now = DateTime::parse_from_rfc3339(rfc3339)
            .map_err(|err| Error::invalid(format!("not an RFC 3339 time `{rfc3339}`: {err}")))?;
        Ok(Self::new(now.with_timezone(&Utc)))
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let mut now = self.now.lock().unwrap_or_else(|p| p.into_inner());
        let by = chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
        // Past the end of time the clock stays where it is.
        if let Some(later) = now.checked_add_signed(by) {
            *now = later;
        }
    }

    /// Sets the clock.
    pub fn set(&self, to: DateTime<Utc>) {
        *self.now.lock().unwrap_or_else(|p| p.into_inner()) = to;
    }
}

impl Clock for ManualClock {
    fn now(&self) -> DateTime<Utc> {
        *self.now.lock().unwrap_or_else(|p| p.into_inner())
    }
}
