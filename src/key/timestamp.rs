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
        // The decimal in a stack buffer, not a String: this runs once per flow, for its label.
        let mut buf = [0u8; 44];
        let mut n = 0;
        let mut put = |bytes: &[u8]| {
            buf[n..n + bytes.len()].copy_from_slice(bytes);
            n += bytes.len();
        };
        if self.sec < 0 {
            put(b"-");
        }
        let (d, start) = digits(self.sec.unsigned_abs(), 1);
        put(&d[start..]);
        if self.digits > 0 {
            put(b".");
            let (d, start) = digits(self.frac, usize::from(self.digits));
            put(&d[start..]);
        }
        std::str::from_utf8(&buf[..n])
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(0.0)
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
        let mut out = Vec::with_capacity(32);
        self.write_rfc3339(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// [`Timestamp::rfc3339`] appended to `out`. `flows` writes two per flow, so the digits are written by hand
    /// (format! was an eighth of its time) and the date and time of day of the last second shown are kept per
    /// thread: flows listed in time order mostly share their second with the one before.
    pub fn write_rfc3339(&self, out: &mut Vec<u8>) {
        thread_local! {
            static LAST: std::cell::Cell<(i64, [u8; 20], u8)> = const { std::cell::Cell::new((i64::MIN, [0; 20], 0)) };
        }
        let (sec, head, len) = LAST.with(|c| c.get());
        if sec == self.sec && sec != i64::MIN {
            out.extend_from_slice(&head[..usize::from(len)]);
        } else {
            let Ok(t) = time::OffsetDateTime::from_unix_timestamp(self.sec) else {
                out.extend_from_slice(self.decimal().as_bytes());
                return;
            };
            let mut head = Vec::with_capacity(20);
            let year = t.year();
            if year < 0 {
                head.push(b'-');
            }
            put_digits(&mut head, u64::from(year.unsigned_abs()), 4);
            head.push(b'-');
            put_digits(&mut head, u64::from(t.month() as u8), 2);
            head.push(b'-');
            put_digits(&mut head, u64::from(t.day()), 2);
            head.push(b'T');
            put_digits(&mut head, u64::from(t.hour()), 2);
            head.push(b':');
            put_digits(&mut head, u64::from(t.minute()), 2);
            head.push(b':');
            put_digits(&mut head, u64::from(t.second()), 2);
            out.extend_from_slice(&head);
            let mut kept = [0; 20];
            kept[..head.len()].copy_from_slice(&head);
            LAST.with(|c| c.set((self.sec, kept, head.len() as u8)));
        }
        if self.digits > 0 {
            out.push(b'.');
            put_digits(out, self.frac, usize::from(self.digits));
        }
        out.push(b'Z');
    }

    /// [`Timestamp::decimal`] appended to `out`.
    pub fn write_decimal(&self, out: &mut Vec<u8>) {
        if self.sec < 0 {
            out.push(b'-');
        }
        put_digits(out, self.sec.unsigned_abs(), 1);
        if self.digits > 0 {
            out.push(b'.');
            put_digits(out, self.frac, usize::from(self.digits));
        }
    }
}

/// `v` in decimal, zero-padded to at least `width` digits (at most 20). Two digits at a time from a table, as
/// itoa does: listing every flow writes about ten numbers per flow.
pub fn put_digits(out: &mut Vec<u8>, v: u64, width: usize) {
    let (buf, start) = digits(v, width);
    out.extend_from_slice(&buf[start..]);
}

/// [`put_digits`]'s digits in a stack buffer: they are `buf[start..]`.
pub(crate) fn digits(v: u64, width: usize) -> ([u8; 20], usize) {
    const PAIRS: &[u8; 200] = b"0001020304050607080910111213141516171819\
        2021222324252627282930313233343536373839\
        4041424344454647484950515253545556575859\
        6061626364656667686970717273747576777879\
        8081828384858687888990919293949596979899";
    let mut buf = [b'0'; 20];
    let mut i = buf.len();
    let mut v = v;
    while v >= 100 {
        let d = (v % 100) as usize * 2;
        v /= 100;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    }
    if v >= 10 {
        let d = v as usize * 2;
        i -= 2;
        buf[i..i + 2].copy_from_slice(&PAIRS[d..d + 2]);
    } else if v > 0 {
        i -= 1;
        buf[i] = b'0' + v as u8;
    }
    (buf, i.min(buf.len() - width.min(buf.len())))
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

    #[test]
    fn the_kept_second_is_the_one_shown() {
        // The per-thread second must follow the timestamp: the same second, a new one, then the first again.
        let a = Timestamp::new(1_385_391_358, 1, 6);
        let b = Timestamp::new(1_385_391_359, 2, 6);
        let want_a = "2013-11-25T14:55:58.000001Z";
        assert_eq!(a.rfc3339(), want_a);
        assert_eq!(a.rfc3339(), want_a);
        assert_eq!(b.rfc3339(), "2013-11-25T14:55:59.000002Z");
        assert_eq!(a.rfc3339(), want_a);
        // Out of the calendar's range: the exact decimal, as before.
        let far = Timestamp::new(i64::MAX / 2, 5, 1);
        assert_eq!(far.rfc3339(), far.decimal());
    }

    #[test]
    fn put_digits_is_format() {
        for v in [
            0u64,
            1,
            9,
            10,
            99,
            100,
            101,
            999,
            1000,
            12_345,
            1 << 40,
            u64::MAX,
        ] {
            for width in [1, 2, 6, 9, 20] {
                let mut out = Vec::new();
                put_digits(&mut out, v, width);
                assert_eq!(
                    String::from_utf8(out).unwrap(),
                    format!("{v:0width$}"),
                    "{v} {width}"
                );
            }
        }
    }

    #[test]
    fn write_decimal_is_decimal() {
        for t in [
            Timestamp::new(0, 0, 0),
            Timestamp::new(1_700_000_000, 120, 6),
            Timestamp::new(-1, 5, 1),
            Timestamp::new(i64::MIN, 0, 9),
            Timestamp::new(i64::MAX, 999_999_999, 9),
        ] {
            let mut out = Vec::new();
            t.write_decimal(&mut out);
            assert_eq!(String::from_utf8(out).unwrap(), t.decimal(), "{t:?}");
        }
    }
}
