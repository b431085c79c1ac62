//! A frame's time as the exact decimal the capture records, and the text forms traceflow shows times in.

/// A frame timestamp as the exact decimal `sec.frac` that the capture records.
///
/// `frac` has `digits` decimal places (6 for µs pcap, 9 for ns pcap, `if_tsresol` for pcapng), so the label can be
/// derived from the exact decimal, as Python's `Decimal` → `float` does, rather than from a lossy f64 sum.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Timestamp {
    /// Whole seconds since the epoch.
    pub sec: i64,
    /// The fraction of a second, in units of 10^-`digits` s.
    pub frac: u64,
    /// Decimal places of `frac` (at most 19).
    pub digits: u8,
}

impl Timestamp {
    /// Builds a timestamp, carrying a fraction that overflows its digits (some writers store usec >= 10^6).
    pub fn new(sec: i64, frac: u64, digits: u8) -> Timestamp {
        let digits = digits.min(19);
        let unit = 10u64.pow(u32::from(digits));
        Timestamp {
            sec: sec.saturating_add((frac / unit) as i64),
            frac: frac % unit,
            digits,
        }
    }

    /// Nanoseconds since the epoch (sub-ns resolutions are truncated), as stored in the `frames` table.
    pub fn as_ns(&self) -> i64 {
        let frac_ns = if self.digits <= 9 {
            self.frac * 10u64.pow(9 - u32::from(self.digits))
        } else {
            self.frac / 10u64.pow(u32::from(self.digits) - 9)
        };
        self.sec
            .saturating_mul(1_000_000_000)
            .saturating_add(frac_ns as i64)
    }

    /// The exact decimal text `sec.frac`, as PyPCAPKit's `time_epoch` Decimal prints it.
    pub fn decimal(&self) -> String {
        if self.digits == 0 {
            return format!("{}", self.sec);
        }
        format!(
            "{}.{:0width$}",
            self.sec,
            self.frac,
            width = self.digits as usize
        )
    }

    /// `float(time_epoch)`: the decimal parsed with correct rounding (Rust's parser rounds correctly).
    pub fn as_f64(&self) -> f64 {
        self.decimal().parse().unwrap_or(0.0)
    }
}

/// Decimal digits of a timestamp's fraction for a pcapng `if_tsresol` byte (pcap: 6 or 9), at most 9 (times are
/// stored in ns); a power-of-two resolution is shown in ns.
pub fn tsresol_digits(tsresol: u8) -> u8 {
    if tsresol & 0x80 != 0 {
        9
    } else {
        tsresol.min(9)
    }
}

impl Timestamp {
    /// The time stored as `ns` since the epoch, shown with `digits` decimal places (at most 9).
    pub fn from_ns(ns: i64, digits: u8) -> Timestamp {
        let d = digits.min(9);
        let sub = ns.rem_euclid(1_000_000_000) as u64;
        Timestamp::new(
            ns.div_euclid(1_000_000_000),
            sub / 10u64.pow(9 - u32::from(d)),
            d,
        )
    }

    /// RFC 3339 in UTC with the timestamp's own fraction digits, e.g. `2013-11-25T14:55:58.387631Z`; the exact
    /// decimal seconds when the year is out of range.
    pub fn rfc3339(&self) -> String {
        // Digits written by hand: `flows` prints two of these per flow, and format! was an eighth of its time.
        fn put(s: &mut String, v: u64, width: usize) {
            let mut buf = [b'0'; 20];
            let mut i = buf.len();
            let mut v = v;
            while v > 0 {
                i -= 1;
                buf[i] = b'0' + (v % 10) as u8;
                v /= 10;
            }
            let start = i.min(buf.len() - width.min(buf.len()));
            s.extend(buf[start..].iter().map(|&b| char::from(b)));
        }
        match time::OffsetDateTime::from_unix_timestamp(self.sec) {
            Ok(t) => {
                let mut s = String::with_capacity(32);
                let year = t.year();
                if year < 0 {
                    s.push('-');
                }
                put(&mut s, u64::from(year.unsigned_abs()), 4);
                s.push('-');
                put(&mut s, u64::from(t.month() as u8), 2);
                s.push('-');
                put(&mut s, u64::from(t.day()), 2);
                s.push('T');
                put(&mut s, u64::from(t.hour()), 2);
                s.push(':');
                put(&mut s, u64::from(t.minute()), 2);
                s.push(':');
                put(&mut s, u64::from(t.second()), 2);
                if self.digits > 0 {
                    s.push('.');
                    put(&mut s, self.frac, usize::from(self.digits));
                }
                s.push('Z');
                s
            }
            Err(_) => self.decimal(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_pads_every_field() {
        // 2013-11-25T14:55:58.387631Z, and the same fraction at ns and with no fraction.
        let t = Timestamp::new(1_385_391_358, 387_631, 6);
        assert_eq!(t.rfc3339(), "2013-11-25T14:55:58.387631Z");
        assert_eq!(
            Timestamp::new(1_385_391_358, 387_631, 9).rfc3339(),
            "2013-11-25T14:55:58.000387631Z"
        );
        assert_eq!(Timestamp::new(0, 0, 0).rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(Timestamp::new(-1, 5, 1).rfc3339(), "1969-12-31T23:59:59.5Z");
        // Year 1 and a fraction of zeros keep their widths.
        assert_eq!(
            Timestamp::new(-62_135_596_800, 0, 3).rfc3339(),
            "0001-01-01T00:00:00.000Z"
        );
    }
}
