//! The `Date` header line every response carries (RFC 9110 §6.6.1: an origin server with
//! a clock must send it), in IMF-fixdate: `Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n`; and
//! the access log's time, in the common log format: `06/Nov/1994:08:49:37 +0000`. One
//! calendar for both.
//!
//! Invariants:
//! - The line is formatted at most once a second, into a fixed array: a response copies
//!   it and never formats or allocates for it. The loop sets the time once per
//!   connection input ([`DateLine::set`]); within the same second that is one division
//!   and one comparison.
//! - The time is whatever the caller passes (microseconds since the Unix epoch): the
//!   loop derives it from its monotonic clock (`clock.rs`), so the line never reads the
//!   system clock itself, and tests pass a fixed time for golden bytes.

/// `Date: ` + 29 characters of IMF-fixdate + CRLF.
const LEN: usize = 37;

const DAYS: [&[u8; 3]; 7] = [b"Sun", b"Mon", b"Tue", b"Wed", b"Thu", b"Fri", b"Sat"];
const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// The `Date` line of the current second.
#[derive(Clone, Copy, Debug)]
pub struct DateLine {
    /// The second the line shows, since the Unix epoch.
    secs: u64,
    line: [u8; LEN],
}

impl DateLine {
    /// The line for `epoch_us` (microseconds since the Unix epoch).
    pub fn at(epoch_us: u64) -> DateLine {
        let secs = epoch_us / 1_000_000;
        DateLine {
            secs,
            line: format_line(secs),
        }
    }

    /// Moves the line to `epoch_us`; formats only when the second changed.
    pub fn set(&mut self, epoch_us: u64) {
        let secs = epoch_us / 1_000_000;
        if secs != self.secs {
            *self = DateLine {
                secs,
                line: format_line(secs),
            };
        }
    }

    /// `Date: …\r\n`.
    pub fn as_bytes(&self) -> &[u8] {
        &self.line
    }
}

fn format_line(secs: u64) -> [u8; LEN] {
    let days = secs / 86_400;
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(days);
    let mut line = [0u8; LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        line[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(b"Date: ");
    // 1970-01-01 was a Thursday.
    put(DAYS[((days + 4) % 7) as usize]);
    put(b", ");
    put(&two_digits(day));
    put(b" ");
    put(MONTHS[month as usize - 1]);
    put(b" ");
    // Four digits until the year 10000; past that the clock is not to be believed.
    let year = year.min(9999);
    put(&four_digits(year));
    put(b" ");
    put(&clock_time(of_day));
    put(b" GMT\r\n");
    line
}

/// The length of a [`log_time`].
pub const LOG_TIME_LEN: usize = 26;

/// `06/Nov/1994:08:49:37 +0000`: the common log format's time of `secs` since the Unix
/// epoch, in UTC.
pub fn log_time(secs: u64) -> [u8; LOG_TIME_LEN] {
    let of_day = secs % 86_400;
    let (year, month, day) = civil_from_days(secs / 86_400);
    let year = year.min(9999);
    let mut out = [0u8; LOG_TIME_LEN];
    let mut at = 0;
    let mut put = |bytes: &[u8]| {
        out[at..at + bytes.len()].copy_from_slice(bytes);
        at += bytes.len();
    };
    put(&two_digits(day));
    put(b"/");
    put(MONTHS[month as usize - 1]);
    put(b"/");
    put(&four_digits(year));
    put(b":");
    put(&clock_time(of_day));
    put(b" +0000");
    out
}

/// `HH:MM:SS` of the second `of_day` of a day.
fn clock_time(of_day: u64) -> [u8; 8] {
    let [h0, h1] = two_digits(of_day / 3600);
    let [m0, m1] = two_digits(of_day / 60 % 60);
    let [s0, s1] = two_digits(of_day % 60);
    [h0, h1, b':', m0, m1, b':', s0, s1]
}

fn four_digits(n: u64) -> [u8; 4] {
    let [a, b] = two_digits(n / 100);
    let [c, d] = two_digits(n % 100);
    [a, b, c, d]
}

fn two_digits(n: u64) -> [u8; 2] {
    [b'0' + (n / 10 % 10) as u8, b'0' + (n % 10) as u8]
}

/// (year, month 1–12, day 1–31) of a day counted from 1970-01-01, in the proleptic
/// Gregorian calendar (H. Hinnant's `civil_from_days`, for days on or after the epoch).
fn civil_from_days(days: u64) -> (u64, u64, u64) {
    let z = days + 719_468;
    let era = z / 146_097;
    let day_of_era = z % 146_097;
    let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
    let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
    let mp = (5 * day_of_year + 2) / 153;
    let day = day_of_year - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = year_of_era + era * 400 + u64::from(month <= 2);
    (year, month, day)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(epoch_secs: u64) -> String {
        String::from_utf8(DateLine::at(epoch_secs * 1_000_000).as_bytes().to_vec()).unwrap()
    }

    #[test]
    fn formats_imf_fixdate() {
        // RFC 9110's own example, and dates around leap days and year ends.
        assert_eq!(text(784_111_777), "Date: Sun, 06 Nov 1994 08:49:37 GMT\r\n");
        assert_eq!(text(0), "Date: Thu, 01 Jan 1970 00:00:00 GMT\r\n");
        assert_eq!(text(951_782_400), "Date: Tue, 29 Feb 2000 00:00:00 GMT\r\n");
        assert_eq!(text(1_709_251_199), "Date: Thu, 29 Feb 2024 23:59:59 GMT\r\n");
        assert_eq!(text(1_735_689_599), "Date: Tue, 31 Dec 2024 23:59:59 GMT\r\n");
        assert_eq!(text(4_102_444_800), "Date: Fri, 01 Jan 2100 00:00:00 GMT\r\n");
    }

    #[test]
    fn every_day_for_a_few_centuries_follows_the_one_before() {
        let mut last = civil_from_days(0);
        for days in 1..200 * 366 {
            let (y, m, d) = civil_from_days(days);
            let next_day = (y, m, d) == (last.0, last.1, last.2 + 1);
            let next_month = (y, m, d) == (last.0, last.1 + 1, 1);
            let next_year = (y, m, d) == (last.0 + 1, 1, 1) && last.1 == 12 && last.2 == 31;
            assert!(
                next_day || next_month || next_year,
                "{last:?} then {:?}",
                (y, m, d)
            );
            assert!(d <= 31 && (1..=12).contains(&m));
            last = (y, m, d);
        }
    }

    #[test]
    fn the_log_time_is_the_same_calendar_in_the_common_log_format() {
        assert_eq!(&log_time(951_868_799), b"29/Feb/2000:23:59:59 +0000");
        assert_eq!(&log_time(784_111_777), b"06/Nov/1994:08:49:37 +0000");
        assert_eq!(&log_time(1_796_032_800), b"30/Nov/2026:10:00:00 +0000");
    }

    #[test]
    fn the_line_changes_only_with_the_second() {
        let mut line = DateLine::at(784_111_777_000_000);
        line.set(784_111_777_999_999);
        assert!(line.as_bytes().ends_with(b"08:49:37 GMT\r\n"));
        line.set(784_111_778_000_000);
        assert!(line.as_bytes().ends_with(b"08:49:38 GMT\r\n"));
    }
}
