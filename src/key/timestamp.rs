//! A frame's time as the exact decimal the capture records, and the text forms traceflow shows times in.

/// A frame timestamp as the exact decimal `sec.frac` that the capture records.
///
/// `frac` has `digits` decimal places (6 for µs pcap, 9 for ns pcap, `if_tsresol` for pcapng), so the label can be
/// derived from the exact decimal, as Python's `Decimal` → `float` does, rather than from a lossy f64 sum. The
/// time is `sec + wraps·2^64 + frac·10^-digits`: pcapng's 64-bit ticks in whole seconds, or its `if_tsoffset`,
/// reach past what an `i64` of seconds holds, and PyPCAPKit's label keeps such times exact.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Timestamp {
    /// Whole seconds since the epoch (with `wraps`).
    pub sec: i64,
    /// The fraction of a second, in units of 10^-`digits` s (it adds to the seconds, also before 1970).
    pub frac: u64,
    /// Decimal places of `frac` (at most 19).
    pub digits: u8,
    /// Times 2^64 s added to `sec`: 0 but for times from 2^63 s on (it keeps the struct's size).
    pub wraps: i8,
}

impl Timestamp {
    /// Builds a timestamp, carrying a fraction that overflows its digits (some writers store usec >= 10^6).
    pub fn new(sec: i64, frac: u64, digits: u8) -> Timestamp {
        let digits = digits.min(19);
        let unit = 10u64.pow(u32::from(digits));
        Timestamp::from_secs(
            i128::from(sec) + i128::from(frac / unit),
            frac % unit,
            digits,
        )
    }

    /// The time `secs + frac·10^-digits` (`frac` below 10^`digits`), saturated to about ±1.7e20 s.
    pub fn from_secs(secs: i128, frac: u64, digits: u8) -> Timestamp {
        let (lo, hi) = (i128::from(i64::MIN), i128::from(i64::MAX));
        let wraps = if secs > hi {
            ((secs - lo) >> 64).min(i128::from(i8::MAX))
        } else if secs < lo {
            -(((hi - secs) >> 64).min(i128::from(i8::MAX)))
        } else {
            0
        };
        let rest = secs - (wraps << 64);
        Timestamp {
            sec: rest.clamp(lo, hi) as i64,
            frac,
            digits: digits.min(19),
            wraps: wraps as i8,
        }
    }

    /// The whole seconds, `wraps` included.
    pub fn secs(&self) -> i128 {
        i128::from(self.sec) + (i128::from(self.wraps) << 64)
    }

    /// Nanoseconds since the epoch (sub-ns resolutions are truncated), as stored in the `frames` table; times
    /// past what an `i64` of ns holds (1677 to 2262) are saturated.
    pub fn as_ns(&self) -> i64 {
        let frac_ns = if self.digits <= 9 {
            self.frac * 10u64.pow(9 - u32::from(self.digits))
        } else {
            self.frac / 10u64.pow(u32::from(self.digits) - 9)
        };
        (self.secs() * 1_000_000_000 + i128::from(frac_ns))
            .clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Whether [`Timestamp::as_ns`] holds this time whole (to the ns).
    pub fn fits_ns(&self) -> bool {
        let ns = self.as_ns();
        ns != i64::MIN && ns != i64::MAX
    }

    /// The sign, whole seconds and fraction of the time's decimal: a time before the epoch counts down, so
    /// `sec` -1 with `frac` 5 (of one digit) is `-0.5`.
    fn signed_parts(&self) -> (bool, u128, u64) {
        let secs = self.secs();
        if secs >= 0 {
            return (false, secs as u128, self.frac);
        }
        if self.frac == 0 || self.digits == 0 {
            return (true, secs.unsigned_abs(), 0);
        }
        let unit = 10u64.pow(u32::from(self.digits));
        (true, secs.unsigned_abs() - 1, unit - self.frac)
    }

    /// The exact decimal text `sec.frac`, as PyPCAPKit's `time_epoch` Decimal prints it.
    pub fn decimal(&self) -> String {
        let mut out = Vec::with_capacity(32);
        self.write_decimal(&mut out);
        String::from_utf8(out).unwrap_or_default()
    }

    /// `float(time_epoch)`: the decimal parsed with correct rounding (Rust's parser rounds correctly).
    pub fn as_f64(&self) -> f64 {
        // The decimal in a stack buffer, not a String: this runs once per flow, for its label.
        let mut buf = [0u8; 64];
        let mut n = 0;
        let mut put = |bytes: &[u8]| {
            buf[n..n + bytes.len()].copy_from_slice(bytes);
            n += bytes.len();
        };
        let (negative, whole, frac) = self.signed_parts();
        if negative {
            put(b"-");
        }
        let (hi, lo) = (
            (whole / 10_000_000_000_000_000_000) as u64,
            (whole % 10_000_000_000_000_000_000) as u64,
        );
        if hi > 0 {
            let (d, start) = digits(hi, 1);
            put(&d[start..]);
            let (d, start) = digits(lo, 19);
            put(&d[start..]);
        } else {
            let (d, start) = digits(lo, 1);
            put(&d[start..]);
        }
        if self.digits > 0 {
            put(b".");
            let (d, start) = digits(frac, usize::from(self.digits));
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
        Timestamp::from_ns_wide(i128::from(ns), digits)
    }

    /// [`Timestamp::from_ns`] of any count of ns (the difference of two times), truncated to `digits` places
    /// toward the earlier time.
    pub fn from_ns_wide(ns: i128, digits: u8) -> Timestamp {
        let d = digits.min(9);
        let sub = ns.rem_euclid(1_000_000_000) as u64;
        Timestamp::from_secs(
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
        if self.wraps != 0 {
            self.write_decimal(out);
            return;
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
        let (negative, whole, frac) = self.signed_parts();
        if negative {
            out.push(b'-');
        }
        match u64::try_from(whole) {
            Ok(w) => put_digits(out, w, 1),
            Err(_) => out.extend_from_slice(whole.to_string().as_bytes()),
        }
        if self.digits > 0 {
            out.push(b'.');
            put_digits(out, frac, usize::from(self.digits));
        }
    }
}

/// The seconds from `first_ns` to `last_ns` with `digits` places, as listings show a flow's or a connection's
/// duration: exact, negative when a capture's clock went back (`-0.000512`), never wrapped.
pub fn duration_text(first_ns: i64, last_ns: i64, digits: u8) -> String {
    let mut out = Vec::with_capacity(24);
    write_duration(&mut out, first_ns, last_ns, digits);
    String::from_utf8(out).unwrap_or_default()
}

/// [`duration_text`] appended to `out`.
pub fn write_duration(out: &mut Vec<u8>, first_ns: i64, last_ns: i64, digits: u8) {
    let ns = i128::from(last_ns) - i128::from(first_ns);
    // Truncated toward zero, so that going back by a time shows as that time with a minus sign.
    let t = Timestamp::from_ns_wide(ns.abs(), digits);
    if ns < 0 && (t.secs() != 0 || t.frac != 0) {
        out.push(b'-');
    }
    t.write_decimal(out);
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

    #[test]
    fn times_before_the_epoch_count_down_from_it() {
        // sec -1 and frac 5 of one digit is -1 + 0.5: Python's Decimal gives -0.5 (it was -1.5).
        let t = Timestamp::new(-1, 5, 1);
        assert_eq!(t.decimal(), "-0.5");
        assert_eq!(t.as_f64(), -0.5);
        assert_eq!(Timestamp::from_ns(-512_000, 6).decimal(), "-0.000512");
        assert_eq!(Timestamp::from_ns(-2_000_000_000, 6).decimal(), "-2.000000");
        assert_eq!(Timestamp::from_ns(-1, 9).decimal(), "-0.000000001");
        assert_eq!(Timestamp::new(-10, 0, 0).decimal(), "-10");
    }

    #[test]
    fn durations_are_signed_exact_and_never_wrap() {
        // The two of tcpdump's captures: a clock stepped back by 512 µs (it printed -1.999488) and a frame
        // stamped near the epoch after one of 2013 (it printed -1381533735.006935).
        let t = 1_381_533_735_500_000_000i64;
        assert_eq!(duration_text(t, t - 512_000, 6), "-0.000512");
        assert_eq!(
            duration_text(t + 1_000, 506_936_000, 6),
            "-1381533734.993065"
        );
        assert_eq!(duration_text(t, t + 1_250_000_000, 6), "1.250000");
        assert_eq!(duration_text(t, t, 6), "0.000000");
        assert_eq!(duration_text(t, t - 1, 9), "-0.000000001");
        // The widest span: 2^64 - 1 ns, neither wrapped nor saturated.
        assert_eq!(
            duration_text(i64::MIN, i64::MAX, 9),
            "18446744073.709551615"
        );
        assert_eq!(
            duration_text(i64::MAX, i64::MIN, 9),
            "-18446744073.709551615"
        );
        // What the JSON writer appends is the same text.
        let mut out = Vec::new();
        write_duration(&mut out, t, t - 512_000, 6);
        assert_eq!(out, b"-0.000512");
    }

    #[test]
    fn times_past_an_i64_of_seconds_stay_exact() {
        // PyPCAPKit's time_epoch is Decimal(ticks) / resolution + offset: with whole-second ticks of 2^64 - 1
        // its label's time is repr(float(...)) = 1.8446744073709552e+19 (run on such a capture).
        let max = Timestamp::from_secs(i128::from(u64::MAX), 0, 0);
        assert_eq!(max.decimal(), "18446744073709551615");
        assert_eq!(max.as_f64(), 1.8446744073709552e19);
        assert_eq!(max.secs(), i128::from(u64::MAX));
        assert!(!max.fits_ns());
        assert_eq!(max.as_ns(), i64::MAX);
        let half = Timestamp::from_secs(1 << 63, 5, 1);
        assert_eq!(half.decimal(), "9223372036854775808.5");
        assert_eq!(half.rfc3339(), "9223372036854775808.5");
        // The far end: 2^64 - 1 ticks plus the largest if_tsoffset.
        let far = Timestamp::from_secs(i128::from(u64::MAX) + i128::from(i64::MAX), 0, 0);
        assert_eq!(
            far.decimal(),
            (i128::from(u64::MAX) + i128::from(i64::MAX)).to_string()
        );
        // Within i64 nothing changes.
        let now = Timestamp::new(1_700_000_000, 25, 2);
        assert_eq!(
            (now.sec, now.wraps, now.secs()),
            (1_700_000_000, 0, 1_700_000_000)
        );
        assert!(now.fits_ns());
    }
}
