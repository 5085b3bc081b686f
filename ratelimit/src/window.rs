//! Fixed windows aligned on UTC, as envoyproxy/ratelimit's: a window of `n` seconds starts at
//! `now - now % n` (a day at 00:00 UTC; a week on a Thursday, as the Unix epoch; a month is 30 days
//! and a year 365, as there).

/// A rate limit's unit; the numbers are the RLS v3 `RateLimitResponse.RateLimit.Unit` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unit {
    Second = 1,
    Minute = 2,
    Hour = 3,
    Day = 4,
    Month = 5,
    Year = 6,
    Week = 7,
}

impl Unit {
    /// The YAML `unit`, case-insensitive; `None` for anything else (including `unknown`).
    pub fn parse(name: &str) -> Option<Unit> {
        Some(match name.to_ascii_lowercase().as_str() {
            "second" => Unit::Second,
            "minute" => Unit::Minute,
            "hour" => Unit::Hour,
            "day" => Unit::Day,
            "week" => Unit::Week,
            "month" => Unit::Month,
            "year" => Unit::Year,
            _ => return None,
        })
    }

    pub fn seconds(self) -> u64 {
        match self {
            Unit::Second => 1,
            Unit::Minute => 60,
            Unit::Hour => 3600,
            Unit::Day => 86_400,
            Unit::Week => 7 * 86_400,
            Unit::Month => 30 * 86_400,
            Unit::Year => 365 * 86_400,
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Unit::Second => "second",
            Unit::Minute => "minute",
            Unit::Hour => "hour",
            Unit::Day => "day",
            Unit::Week => "week",
            Unit::Month => "month",
            Unit::Year => "year",
        }
    }

    /// The start (Unix seconds) of the window holding `now`.
    pub fn window_start(self, now: u64) -> u64 {
        now - now % self.seconds()
    }

    /// Seconds from `now` until the window holding `now` ends (1 ..= the window's length).
    pub fn until_reset(self, now: u64) -> u64 {
        self.seconds() - now % self.seconds()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // 2026-12-03T11:35:18Z, a Thursday.
    const NOW: u64 = 1_796_297_718;

    #[test]
    fn windows_are_utc_aligned() {
        assert_eq!(Unit::Second.window_start(NOW), NOW);
        assert_eq!(Unit::Minute.window_start(NOW), NOW - 18);
        assert_eq!(Unit::Hour.window_start(NOW), NOW - 35 * 60 - 18);
        // Midnight UTC.
        assert_eq!(Unit::Day.window_start(NOW), NOW - (11 * 3600 + 35 * 60 + 18));
        assert_eq!(Unit::Day.window_start(NOW) % 86_400, 0);
        // Thursday 00:00 UTC, like 1970-01-01.
        assert_eq!(Unit::Week.window_start(NOW), Unit::Day.window_start(NOW));
    }

    #[test]
    fn until_reset_counts_down_to_the_boundary() {
        assert_eq!(Unit::Second.until_reset(NOW), 1);
        assert_eq!(Unit::Minute.until_reset(NOW), 42);
        assert_eq!(Unit::Day.until_reset(NOW), 86_400 - (11 * 3600 + 35 * 60 + 18));
        assert_eq!(Unit::Day.until_reset(Unit::Day.window_start(NOW)), 86_400);
        for unit in [Unit::Hour, Unit::Week, Unit::Month, Unit::Year] {
            assert_eq!(unit.window_start(NOW) + unit.seconds(), NOW + unit.until_reset(NOW));
        }
    }

    #[test]
    fn names_round_trip() {
        for unit in [Unit::Second, Unit::Minute, Unit::Hour, Unit::Day, Unit::Week, Unit::Month, Unit::Year] {
            assert_eq!(Unit::parse(unit.name()), Some(unit));
        }
        assert_eq!(Unit::parse("unknown"), None);
        assert_eq!(Unit::parse(""), None);
    }
}
