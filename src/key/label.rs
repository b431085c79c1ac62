//! Flow labels exactly as PyPCAPKit's TraceFlow writes them: `{src}_{srcport}-{dst}_{dstport}-{repr(float(ts))}`.

use std::fmt::Write as _;
use std::net::IpAddr;

use super::Timestamp;

/// Python's `repr(float)`: the shortest round-trip digits, fixed notation with at least one decimal place for
/// exponents -4 <= e < 16, scientific (`1e-05`, `1.5e+16`) outside that range.
pub fn py_float_repr(x: f64) -> String {
    let mut out = String::with_capacity(24);
    write_py_float_repr(&mut out, x);
    out
}

/// A fixed buffer that `write!` can fill: the shortest digits of an f64 are at most 17, with sign, point and
/// exponent 24 bytes, so `{:e}` never needs the heap.
struct Stack {
    buf: [u8; 32],
    len: usize,
}

impl std::fmt::Write for Stack {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        let end = self.len + s.len();
        self.buf
            .get_mut(self.len..end)
            .ok_or(std::fmt::Error)?
            .copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

/// Whether two `n`-digit strings can be equally near `x` (decimal exponent `exp`): only when x's exact decimal
/// has `n + 1` significant digits, the last a 5. A double m * 2^e (m odd, e < 0) has exactly -e decimals, the last
/// a 5; one with e >= 0 is an integer, whose digits past the 17th can end in 5 only from 10^16 up.
fn tie_possible(x: f64, n: i32, exp: i32) -> bool {
    let bits = x.abs().to_bits();
    let biased = (bits >> 52) as i32;
    let mut mant = bits & ((1 << 52) - 1);
    let mut e = if biased == 0 { -1074 } else { biased - 1075 };
    if biased != 0 {
        mant |= 1 << 52;
    }
    if mant == 0 {
        return false;
    }
    e += mant.trailing_zeros() as i32;
    if e >= 0 {
        exp >= 16
    } else {
        -e == n - exp
    }
}

/// The mantissa digits (no point) and decimal exponent of |x| as `{:e}` writes it, shortest or with `precision`
/// digits after the point.
fn sci_digits(x: f64, precision: Option<usize>) -> ([u8; 24], usize, i32) {
    let mut stack = Stack {
        buf: [0; 32],
        len: 0,
    };
    let written = match precision {
        None => write!(stack, "{:e}", x.abs()),
        Some(p) => write!(stack, "{:.*e}", p, x.abs()),
    };
    let heap;
    let sci: &[u8] = if written.is_ok() {
        &stack.buf[..stack.len]
    } else {
        // Not reached (see `Stack`); should it ever be, the same digits from the heap.
        heap = match precision {
            None => format!("{:e}", x.abs()),
            Some(p) => format!("{:.*e}", p, x.abs()),
        };
        heap.as_bytes()
    };
    let e_at = sci.iter().position(|&b| b == b'e').unwrap_or(sci.len());
    let exp = std::str::from_utf8(&sci[(e_at + 1).min(sci.len())..])
        .ok()
        .and_then(|e| e.parse().ok())
        .unwrap_or(0);
    let mut digits = [0u8; 24];
    let mut nd = 0;
    for &b in &sci[..e_at] {
        if b != b'.' && nd < digits.len() {
            digits[nd] = b;
            nd += 1;
        }
    }
    (digits, nd, exp)
}

/// [`py_float_repr`] appended to `out`. Every flow's label needs one, and the reader of a SYN scan (a flow per
/// frame) spent a third of its time building labels through four temporary strings; this uses none.
pub fn write_py_float_repr(out: &mut String, x: f64) {
    if x.is_nan() {
        return out.push_str("nan");
    }
    if x.is_infinite() {
        return out.push_str(if x > 0.0 { "inf" } else { "-inf" });
    }
    if x == 0.0 {
        return out.push_str(if x.is_sign_negative() { "-0.0" } else { "0.0" });
    }
    // `{:e}` gives the shortest round-trip mantissa digits, like Python's repr: `1.2345e-7`.
    let (mut digits, mut nd, mut exp) = sci_digits(x, None);
    // Of two shortest strings equally near x, Python takes the one with an even last digit (David Gay's dtoa
    // rounds half to even), and Rust's shortest form may take the other: 0.0008668899536132812 against ...813.
    // Rust's fixed-precision form does round half to even, so in a tie it gives Python's digits.
    if tie_possible(x, nd as i32, exp) {
        let fixed = sci_digits(x, Some(nd.saturating_sub(1)));
        let d = std::str::from_utf8(&fixed.0[..fixed.1]).unwrap_or("0");
        let mut check = Stack {
            buf: [0; 32],
            len: 0,
        };
        let round_trips = write!(
            check,
            "{}.{}e{}",
            d.get(..1).unwrap_or("0"),
            d.get(1..).unwrap_or(""),
            fixed.2
        )
        .is_ok()
            && std::str::from_utf8(&check.buf[..check.len])
                .ok()
                .and_then(|t| t.parse::<f64>().ok())
                == Some(x.abs());
        if round_trips {
            (digits, nd, exp) = fixed;
        }
    }
    let digits = std::str::from_utf8(&digits[..nd]).unwrap_or("0");
    if x < 0.0 {
        out.push('-');
    }
    if !(-4..16).contains(&exp) {
        out.push_str(&digits[..1]);
        if digits.len() > 1 {
            out.push('.');
            out.push_str(&digits[1..]);
        }
        out.push('e');
        out.push(if exp < 0 { '-' } else { '+' });
        let a = exp.unsigned_abs();
        if a < 10 {
            out.push('0');
        }
        let _ = write!(out, "{a}");
    } else if exp < 0 {
        out.push_str("0.");
        for _ in 0..(-exp - 1) {
            out.push('0');
        }
        out.push_str(digits);
    } else {
        let int_len = exp as usize + 1;
        if digits.len() <= int_len {
            out.push_str(digits);
            for _ in digits.len()..int_len {
                out.push('0');
            }
            out.push_str(".0");
        } else {
            out.push_str(&digits[..int_len]);
            out.push('.');
            out.push_str(&digits[int_len..]);
        }
    }
}

/// An address in standard text form (RFC 5952 for IPv6; IPv4-mapped as `::ffff:a.b.c.d`), as pcapkit (via Python's
/// `ipaddress`) and tshark print it. IPv4 is written by hand: through `Display` it was a tenth of the reader thread.
pub fn addr_text(addr: &IpAddr) -> String {
    let mut out = String::with_capacity(15);
    push_addr_text(&mut out, addr);
    out
}

/// [`addr_text`] appended to `out`.
pub fn push_addr_text(out: &mut String, addr: &IpAddr) {
    match addr {
        IpAddr::V4(a) => {
            for (i, o) in a.octets().into_iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                if o >= 100 {
                    out.push(char::from(b'0' + o / 100));
                }
                if o >= 10 {
                    out.push(char::from(b'0' + o / 10 % 10));
                }
                out.push(char::from(b'0' + o % 10));
            }
        }
        IpAddr::V6(a) => {
            let _ = write!(out, "{a}");
        }
    }
}

/// The flow label from the addresses' text (`addr_text`, as stored in `flows.src` and `flows.dst`): `:` is made
/// `.`, as pcapkit does for IPv6 so that the label can name a file.
pub fn label_from_text(src: &str, sport: u16, dst: &str, dport: u16, ts: &Timestamp) -> String {
    let mut s = String::with_capacity(2 * (src.len() + dst.len()) + 32);
    s.push_str(src);
    s.push_str(dst);
    push_label_after_addrs(&mut s, src.len(), sport, dport, ts);
    s.drain(..src.len() + dst.len());
    s
}

/// The label appended to `text`, which holds the source address's text and then, from `dst_at`, the destination's
/// (as a flow record keeps them): the addresses are copied from the string itself. Returns where the time starts.
pub fn push_label_after_addrs(
    text: &mut String,
    dst_at: usize,
    sport: u16,
    dport: u16,
    ts: &Timestamp,
) -> usize {
    push_label_key(text, dst_at, sport, dport);
    let ts_at = text.len();
    match micros_label_time(ts) {
        Some((buf, len)) => push_ascii(text, &buf[..len]),
        None => write_py_float_repr(text, ts.as_f64()),
    }
    ts_at
}

/// `{src}_{sport}-{dst}_{dport}-` (`:` made `.`) appended to `text`, which holds the two addresses (`dst_at`).
fn push_label_key(text: &mut String, dst_at: usize, sport: u16, dport: u16) {
    let dst_end = text.len();
    push_dotted_within(text, 0..dst_at);
    text.push('_');
    push_u16(text, sport);
    text.push('-');
    push_dotted_within(text, dst_at..dst_end);
    text.push('_');
    push_u16(text, dport);
    text.push('-');
}

/// Digits and a point (what the time writers put in their buffers) appended to `out`.
fn push_ascii(out: &mut String, bytes: &[u8]) {
    out.extend(bytes.iter().map(|&b| char::from(b)));
}

/// Python's repr of a time of whole microseconds, from 1 s to 2^33 s (the year 2242), without the float: it is the
/// seconds, a point and the microseconds without trailing zeros ([`view_label_time`]). Why: the double nearest
/// that decimal D is within half an ulp of it, and an ulp is at most 2^-20 s below 2^33, under 1e-6; so no other
/// decimal of at most six places rounds to the same double, and repr, the shortest string that does, is D itself
/// (fixed notation, since 1 <= x < 10^16). The float repr took a third of the reader's label work, and a SYN scan
/// builds a label per frame. `None` for any other time, which goes through [`write_py_float_repr`].
pub fn micros_label_time(ts: &Timestamp) -> Option<([u8; 32], usize)> {
    view_label_time(micros_label_ns(ts)?)
}

/// The time in ns when [`micros_label_time`] writes its label's time (then the `flows` view derives the label):
/// a time of whole microseconds from 1 s to 2^33 s.
pub fn micros_label_ns(ts: &Timestamp) -> Option<i64> {
    if ts.wraps != 0 || !(1..1 << 33).contains(&ts.sec) {
        return None;
    }
    let us = if ts.digits <= 6 {
        ts.frac * 10u64.pow(6 - u32::from(ts.digits))
    } else {
        let unit = 10u64.pow(u32::from(ts.digits) - 6);
        if !ts.frac.is_multiple_of(unit) {
            return None;
        }
        ts.frac / unit
    };
    Some(ts.sec * 1_000_000_000 + us as i64 * 1000)
}

/// The label's time as schema 9's `flows` view derives it from `flows.first_ns` (migrations/0009): the seconds, a
/// point, then the microseconds without trailing zeros (at least one digit). `None` before 1970, where SQLite's
/// integer division would not give it. The ingest stores a label as '' only when this equals its time exactly, so
/// the view (and traceflow's reads, through [`push_view_label_after_addrs`]) give the label back byte for byte.
pub fn view_label_time(first_ns: i64) -> Option<([u8; 32], usize)> {
    if first_ns < 0 {
        return None;
    }
    // Through the listing's digit routine, not `write!`: reads fill in every label of a listing with this.
    let (secs, from) = super::timestamp::digits((first_ns / 1_000_000_000) as u64, 1);
    let (us, us_from) = super::timestamp::digits((first_ns % 1_000_000_000 / 1000) as u64, 6);
    let n = secs.len() - from;
    let mut buf = [0u8; 32];
    buf[..n].copy_from_slice(&secs[from..]);
    buf[n] = b'.';
    buf[n + 1..n + 7].copy_from_slice(&us[us_from..]);
    let mut len = n + 7;
    // Trailing zeros of the microseconds go, down to one digit after the point.
    while len > n + 2 && buf[len - 1] == b'0' {
        len -= 1;
    }
    Some((buf, len))
}

/// The label of a `flows` row that stores it as '' ([`view_label_time`]); `None` for a row that cannot have one
/// (a time before 1970): such a row stores its label.
pub fn view_label(src: &str, sport: u16, dst: &str, dport: u16, first_ns: i64) -> Option<String> {
    let mut s = String::with_capacity(2 * (src.len() + dst.len()) + 40);
    s.push_str(src);
    s.push_str(dst);
    if !push_view_label_after_addrs(&mut s, src.len(), sport, dport, first_ns) {
        return None;
    }
    s.drain(..src.len() + dst.len());
    Some(s)
}

/// [`view_label`] appended to `text`, which holds the source address's text and then, from `dst_at`, the
/// destination's (as [`push_label_after_addrs`] takes them); false, and nothing appended, before 1970.
pub fn push_view_label_after_addrs(
    text: &mut String,
    dst_at: usize,
    sport: u16,
    dport: u16,
    first_ns: i64,
) -> bool {
    let Some((buf, len)) = view_label_time(first_ns) else {
        return false;
    };
    push_label_key(text, dst_at, sport, dport);
    push_ascii(text, &buf[..len]);
    true
}

/// The range of `flows.first_ns` a label can come from: its last part is `repr(float(first frame time))`.
///
/// Labels are `{src}_{sport}-{dst}_{dport}-{ts}`; neither address part holds a `-`, so the time follows the second
/// `-` (and may itself hold one: `1e-05`, `-1.5`). The range allows for the float's rounding.
pub fn label_time_range(label: &str) -> Option<(i64, i64)> {
    let (_, rest) = label.split_once('-')?;
    let (_, ts) = rest.split_once('-')?;
    let secs: f64 = ts.parse().ok()?;
    let ns = secs * 1e9;
    if !ns.is_finite() {
        return None;
    }
    // Half an ulp of the f64 seconds, in ns, plus slack for sub-ns resolutions truncated to ns.
    let slack = (secs.abs() * f64::EPSILON * 1e9).max(1.0) + 2.0;
    Some(((ns - slack).floor() as i64, (ns + slack).ceil() as i64))
}

/// `text[from]` appended to `text` with `:` made `.` (IPv4 text, most labels, has none: copied whole).
fn push_dotted_within(text: &mut String, from: std::ops::Range<usize>) {
    match text.get(from.clone()) {
        Some(part) if part.contains(':') => {
            let part = part.replace(':', ".");
            text.push_str(&part);
        }
        Some(_) => text.extend_from_within(from),
        None => {}
    }
}

/// A port in decimal, without the formatting machinery.
fn push_u16(out: &mut String, v: u16) {
    let mut buf = [0u8; 5];
    let mut i = buf.len();
    let mut v = v;
    loop {
        i -= 1;
        buf[i] = b'0' + (v % 10) as u8;
        v /= 10;
        if v == 0 {
            break;
        }
    }
    out.push_str(std::str::from_utf8(&buf[i..]).unwrap_or("0"));
}

/// The flow label for a directed key and the timestamp of the flow's first frame.
pub fn flow_label(src: &IpAddr, sport: u16, dst: &IpAddr, dport: u16, ts: &Timestamp) -> String {
    label_from_text(&addr_text(src), sport, &addr_text(dst), dport, ts)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repr_matches_python() {
        assert_eq!(py_float_repr(1385391358.387631), "1385391358.387631");
        assert_eq!(py_float_repr(1737752403.0), "1737752403.0");
        assert_eq!(py_float_repr(0.0), "0.0");
        assert_eq!(py_float_repr(0.0001), "0.0001");
        assert_eq!(py_float_repr(0.00001), "1e-05");
        assert_eq!(py_float_repr(1.5e-7), "1.5e-07");
        assert_eq!(py_float_repr(1e16), "1e+16");
        assert_eq!(py_float_repr(1234567890123456.0), "1234567890123456.0");
        assert_eq!(py_float_repr(12345678901234567.0), "1.2345678901234568e+16");
        assert_eq!(py_float_repr(-2.5), "-2.5");
        assert_eq!(py_float_repr(100.0), "100.0");
        // Ties between two shortest strings go to the even digit, as in Python.
        assert_eq!(py_float_repr(8.668899536132813e-4), "0.0008668899536132812");
        assert_eq!(
            py_float_repr(1_700_000_000.0 + 1.0 / 256.0),
            "1700000000.0039062"
        );
        assert_eq!(
            py_float_repr(1_700_000_000.0 + 3.0 / 256.0),
            "1700000000.0117188"
        );
    }

    #[test]
    fn labels_round_decimal_ns_timestamps() {
        // 9 significant fractional digits do not fit an f64 near 1.5e9: Python prints the nearest double.
        let ts = Timestamp::new(1516186805, 600950123, 9);
        assert_eq!(py_float_repr(ts.as_f64()), "1516186805.6009502");
        // A tie-ish ns value must round from the exact decimal, not from a sum of two floats.
        let ts = Timestamp::new(1385391358, 387631499, 9);
        assert_eq!(py_float_repr(ts.as_f64()), "1385391358.3876314");
        // An ns time exactly between two 17-digit strings: PyPCAPKit's label has the even one.
        let ts = Timestamp::new(1700000000, 3906250, 9);
        assert_eq!(py_float_repr(ts.as_f64()), "1700000000.0039062");
        let ts = Timestamp::new(1516186805, 600950000, 9);
        assert_eq!(py_float_repr(ts.as_f64()), "1516186805.60095");
        // Trailing zeros of µs vanish, a whole second keeps `.0`.
        assert_eq!(
            py_float_repr(Timestamp::new(1737752403, 0, 6).as_f64()),
            "1737752403.0"
        );
        assert_eq!(py_float_repr(Timestamp::new(0, 0, 6).as_f64()), "0.0");
        // A µs field past 10^6 carries into the seconds.
        assert_eq!(
            Timestamp::new(10, 1_500_000, 6),
            Timestamp::new(11, 500_000, 6)
        );
    }

    #[test]
    fn ipv6_and_mapped_labels() {
        let ts = Timestamp::new(1, 5, 1);
        let a: IpAddr = "2001:db8:0:0:0:0:0:1".parse().unwrap();
        let b: IpAddr = "::ffff:192.0.2.1".parse().unwrap();
        assert_eq!(
            flow_label(&a, 80, &b, 443, &ts),
            "2001.db8..1_80-..ffff.192.0.2.1_443-1.5"
        );
        let v4: IpAddr = "10.0.0.1".parse().unwrap();
        assert_eq!(flow_label(&v4, 1, &v4, 2, &ts), "10.0.0.1_1-10.0.0.1_2-1.5");
    }

    /// What `python3 -c script` prints with `input` on its standard input: the oracle of the repr tests.
    fn python(script: &str, input: String) -> String {
        let mut child = std::process::Command::new("python3")
            .args(["-c", script])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("this test needs python3 on PATH as its oracle: {e}"));
        let mut stdin = child.stdin.take().unwrap();
        let writer = std::thread::spawn(move || {
            use std::io::Write as _;
            stdin.write_all(input.as_bytes()).unwrap();
        });
        let out = child.wait_with_output().unwrap();
        writer.join().unwrap();
        String::from_utf8(out.stdout).unwrap()
    }

    /// The shortcut for whole microseconds is Python's repr: `python3` as the oracle, over times at the ends of its
    /// range (1 s, 2^33 - 1 s), round and odd microseconds, at µs and at ns resolution; and a time past the range,
    /// with ns digits or before 1 s, takes the float path.
    #[test]
    fn whole_microsecond_labels_are_pythons_repr() {
        let mut state = 0x2545_f491_4f6c_dd1du64;
        let mut times = Vec::new();
        for sec in [1i64, 2, 9, 10, 999_999_999, 1_700_000_000, (1 << 33) - 1] {
            for us in [0u64, 1, 10, 100_000, 500_000, 999_999, 123_456, 100_001] {
                times.push((sec, us));
            }
        }
        while times.len() < 3000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            times.push((
                1 + (state >> 20) as i64 % ((1 << 33) - 1),
                state % 1_000_000,
            ));
        }
        let input: String = times.iter().map(|(s, u)| format!("{s}.{u:06}\n")).collect();
        let text = python(
            "import sys\nfor l in sys.stdin: print(repr(float(l)))",
            input,
        );
        let want: Vec<&str> = text.lines().collect();
        assert_eq!(want.len(), times.len());
        for (&(sec, us), w) in times.iter().zip(want) {
            for ts in [
                Timestamp::new(sec, us, 6),
                Timestamp::new(sec, us * 1000, 9),
            ] {
                let (buf, len) = micros_label_time(&ts).unwrap();
                assert_eq!(
                    std::str::from_utf8(&buf[..len]).unwrap(),
                    w,
                    "{sec}.{us:06}"
                );
            }
        }
        for ts in [
            Timestamp::new(1 << 33, 0, 6),
            Timestamp::new(1_700_000_000, 123_456_789, 9),
            Timestamp::new(0, 500_000, 6),
            Timestamp::new(-1, 0, 6),
        ] {
            assert!(micros_label_time(&ts).is_none(), "{ts:?}");
        }
    }

    /// Python itself is the oracle: one `python3` run prints `repr` of every value (bit patterns from a fixed
    /// generator, so that every exponent range and sign is met), and ours must match each.
    #[test]
    fn repr_matches_python_on_many_values() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut values = Vec::new();
        while values.len() < 4000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let x = match values.len() % 4 {
                // Any finite double.
                0 => f64::from_bits(state),
                // Times around now, at µs and ns, and whole seconds.
                1 => 1.7e9 + (state % 1_000_000_000) as f64 / 1e9,
                2 => (state % 2_000_000_000) as f64 + (state % 1_000_000) as f64 / 1e6,
                _ => ((state % 40) as f64 - 20.0).exp2() * ((state >> 8) % 1000) as f64,
            };
            if x.is_finite() {
                values.push(x);
            }
        }
        let input: String = values
            .iter()
            .map(|x| format!("{}\n", x.to_bits()))
            .collect();
        let text = python(
            "import sys,struct\nfor l in sys.stdin: print(repr(struct.unpack('<d', int(l).to_bytes(8,'little'))[0]))",
            input,
        );
        let want: Vec<&str> = text.lines().collect();
        assert_eq!(want.len(), values.len());
        for (x, w) in values.iter().zip(want) {
            assert_eq!(py_float_repr(*x), w, "{x:e}");
        }
    }

    proptest::proptest! {
        #[test]
        fn ipv4_text_is_displays_text(a in proptest::prelude::any::<u32>()) {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(a));
            proptest::prop_assert_eq!(addr_text(&ip), ip.to_string());
        }

        /// The stack-buffer `as_f64` parses the same decimal the text form shows.
        #[test]
        fn as_f64_parses_the_decimal(sec in -3_000_000_000i64..4_000_000_000_000, frac in proptest::prelude::any::<u64>(), digits in 0u8..=19) {
            let ts = Timestamp::new(sec, frac % 10u64.pow(u32::from(digits)), digits);
            proptest::prop_assert_eq!(ts.as_f64(), ts.decimal().parse::<f64>().unwrap());
        }

        /// Port text is Display's.
        #[test]
        fn labels_write_ports_as_display(sport in proptest::prelude::any::<u16>(), dport in proptest::prelude::any::<u16>()) {
            let ts = Timestamp::new(1, 0, 6);
            proptest::prop_assert_eq!(
                label_from_text("a", sport, "b:c", dport, &ts),
                format!("a_{sport}-b.c_{dport}-1.0")
            );
        }
    }
}
