//! Times in filters: RFC 3339 (a missing zone means UTC), a date, epoch seconds, or `3h ago`.

use super::parse::{parse_duration, Bad, MAX_DAYS};

/// Parses a filter time to ns since the epoch, `ago` counting back from now.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as i64)
        .unwrap_or(0);
    parse_time_at(s, now)
}

/// Why an RFC 3339 time is refused.
enum Refused {
    Bad(Bad),
    /// A zone of more than 23:59 hours (as written).
    Offset(String),
}

impl From<Bad> for Refused {
    fn from(b: Bad) -> Refused {
        Refused::Bad(b)
    }
}

/// As [`parse_time`], with `now_ns` as the time `ago` counts back from.
pub(crate) fn parse_time_at(s: &str, now_ns: i64) -> Result<i64, String> {
    let refused = |r: Refused| {
        match r {
        Refused::Bad(Bad::Form) => format!(
            "'{s}' is not a time: write RFC 3339 (2024-03-01T10:00:00Z, 2024-03-01T10:00 for UTC, +02:00 zones), \
             a date (2024-03-01), epoch seconds (1700000000.5) or '3h ago'"
        ),
        Refused::Bad(Bad::Range) if s.ends_with(" ago") => format!(
            "'{s}' is out of range: a time back from now is at most {MAX_DAYS}d ago (292 years)"
        ),
        Refused::Bad(Bad::Range) => format!(
            "'{s}' is out of range: times are from 1677-09-21 to 2262-04-11 (ns since 1970 in 64 bits)"
        ),
        Refused::Offset(z) => format!(
            "'{s}' has a UTC offset of '{z}': an offset is -23:59 to +23:59 (RFC 3339 +HH:MM)"
        ),
    }
    };
    if let Some(back) = s.strip_suffix(" ago") {
        let d = parse_duration(back.trim()).map_err(|b| refused(b.into()))?;
        return Ok(now_ns.saturating_sub(d));
    }
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return epoch(s).map_err(|b| refused(b.into()));
    }
    rfc3339(s).map_err(refused)
}

/// `1700000000` or `1700000000.123456789`, exactly.
fn epoch(s: &str) -> Result<i64, Bad> {
    let (sec, frac) = s.split_once('.').unwrap_or((s, ""));
    if sec.is_empty() || frac.len() > 9 || frac.contains('.') {
        return Err(Bad::Form);
    }
    // Digits only (the caller saw to it): a number that does not parse has too many.
    let sec: i64 = sec.parse().map_err(|_| Bad::Range)?;
    let frac: i64 = if frac.is_empty() {
        0
    } else {
        format!("{frac:0<9}").parse().map_err(|_| Bad::Form)?
    };
    sec.checked_mul(1_000_000_000)
        .and_then(|n| n.checked_add(frac))
        .ok_or(Bad::Range)
}

fn num(s: &str, len: usize) -> Option<u32> {
    (s.len() == len && s.bytes().all(|b| b.is_ascii_digit()))
        .then(|| s.parse().ok())
        .flatten()
}

/// `YYYY-MM-DD[(T| )HH:MM[:SS[.frac]]][Z|±HH:MM]`.
fn rfc3339(s: &str) -> Result<i64, Refused> {
    let form = || Refused::Bad(Bad::Form);
    let (date, rest) = match s.find(['T', 't', ' ']) {
        Some(i) => (&s[..i], &s[i + 1..]),
        None => (s, ""),
    };
    let date = calendar_date(date).ok_or_else(form)?;
    let (clock, offset_s) = if rest.is_empty() {
        ("00:00", 0i64)
    } else if let Some(c) = rest.strip_suffix(['Z', 'z']) {
        (c, 0)
    } else if let Some(i) = rest.rfind(['+', '-']).filter(|&i| i >= 5) {
        let (c, z) = (&rest[..i], &rest[i..]);
        let sign = if z.starts_with('-') { -1 } else { 1 };
        let (hh, mm) = z[1..].split_once(':').ok_or_else(form)?;
        let (hh, mm) = (num(hh, 2).ok_or_else(form)?, num(mm, 2).ok_or_else(form)?);
        // RFC 3339's time-numoffset: hours 00-23, minutes 00-59.
        if hh > 23 || mm > 59 {
            return Err(Refused::Offset(z.to_string()));
        }
        (c, sign * (i64::from(hh) * 3600 + i64::from(mm) * 60))
    } else {
        (rest, 0)
    };
    let t = clock_time(clock).ok_or_else(form)?;
    let utc = time::PrimitiveDateTime::new(date, t)
        .assume_utc()
        .unix_timestamp_nanos();
    i64::try_from(utc - i128::from(offset_s) * 1_000_000_000).map_err(|_| Refused::Bad(Bad::Range))
}

/// `YYYY-MM-DD`.
fn calendar_date(date: &str) -> Option<time::Date> {
    let mut d = date.split('-');
    let (y, m, day) = (num(d.next()?, 4)?, num(d.next()?, 2)?, num(d.next()?, 2)?);
    if d.next().is_some() {
        return None;
    }
    let month = time::Month::try_from(u8::try_from(m).ok()?).ok()?;
    time::Date::from_calendar_date(y as i32, month, u8::try_from(day).ok()?).ok()
}

/// `HH:MM[:SS[.frac]]`.
fn clock_time(clock: &str) -> Option<time::Time> {
    let mut parts = clock.split(':');
    let (hh, mm) = (num(parts.next()?, 2)?, num(parts.next()?, 2)?);
    let (ss, nanos) = match parts.next() {
        None => (0, 0),
        Some(sec) => {
            let (whole, frac) = sec.split_once('.').unwrap_or((sec, ""));
            if frac.len() > 9 || !frac.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            let nanos = if frac.is_empty() {
                0
            } else {
                format!("{frac:0<9}").parse().ok()?
            };
            (num(whole, 2)?, nanos)
        }
    };
    if parts.next().is_some() {
        return None;
    }
    time::Time::from_hms_nano(
        u8::try_from(hh).ok()?,
        u8::try_from(mm).ok()?,
        u8::try_from(ss).ok()?,
        nanos,
    )
    .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: i64 = 1_000_000_000;

    #[test]
    fn every_form() {
        assert_eq!(
            parse_time_at("2024-03-01T10:00:00Z", 0),
            Ok(1_709_287_200 * S)
        );
        assert_eq!(parse_time_at("2024-03-01T10:00", 0), Ok(1_709_287_200 * S));
        assert_eq!(
            parse_time_at("2024-03-01 10:00:00.5", 0),
            Ok(1_709_287_200 * S + S / 2)
        );
        assert_eq!(
            parse_time_at("2024-03-01T12:00:00+02:00", 0),
            Ok(1_709_287_200 * S)
        );
        assert_eq!(
            parse_time_at("2024-03-01T05:00:00-05:00", 0),
            Ok(1_709_287_200 * S)
        );
        assert_eq!(parse_time_at("2024-03-01", 0), Ok(1_709_251_200 * S));
        assert_eq!(
            parse_time_at("1700000000.25", 0),
            Ok(1_700_000_000 * S + S / 4)
        );
        assert_eq!(parse_time_at("15m ago", 1000 * S), Ok(100 * S));
        assert!(parse_time_at("yesterdayish", 0).is_err());
        assert!(parse_time_at("2024-02-30", 0).is_err());
        assert!(parse_time_at("2024-03-01T25:00", 0).is_err());
    }
}
