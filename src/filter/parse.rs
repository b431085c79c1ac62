//! The filter's words and grammar: a recursive-descent parser with `or` below `and` below `not`, and errors that
//! point at the offending word.

use std::net::IpAddr;

use super::{
    time::parse_time_at, Cmp, ConnField, Dir, Expr, Field, FilterError, Flag, CONN_STATES,
};

/// One word of the filter, with its byte offset.
#[derive(Clone, Debug)]
struct Tok {
    text: String,
    at: usize,
}

/// Splits on white space; parentheses and comparison operators are words of their own.
fn lex(s: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let b: Vec<(usize, char)> = s.char_indices().collect();
    let mut i = 0;
    while i < b.len() {
        let (at, c) = b[i];
        if c.is_whitespace() {
            i += 1;
            continue;
        }
        if c == '(' || c == ')' {
            out.push(Tok {
                text: c.to_string(),
                at,
            });
            i += 1;
            continue;
        }
        if "<>=!&|".contains(c) {
            let two = b.get(i + 1).map(|&(_, d)| format!("{c}{d}"));
            let op = match two.as_deref() {
                Some(">=" | "<=" | "==" | "!=" | "&&" | "||") => two.unwrap(),
                _ => c.to_string(),
            };
            i += op.chars().count();
            out.push(Tok { text: op, at });
            continue;
        }
        if c == '"' || c == '\'' {
            // A quoted value ("my capture.pcap"): up to the same quote, which may not be escaped.
            let close = b[i + 1..].iter().position(|&(_, d)| d == c);
            let end = close.map(|k| i + 1 + k);
            let text_end = end.map(|k| b[k].0).unwrap_or(s.len());
            out.push(Tok {
                text: s[at + 1..text_end].to_string(),
                at,
            });
            i = end.map(|k| k + 1).unwrap_or(b.len());
            continue;
        }
        let start = i;
        while i < b.len() && !b[i].1.is_whitespace() && !"()<>=!&|".contains(b[i].1) {
            i += 1;
        }
        let end = b.get(i).map(|&(o, _)| o).unwrap_or(s.len());
        out.push(Tok {
            text: s[b[start].0..end].to_string(),
            at,
        });
    }
    out
}

struct Parser<'a> {
    src: &'a str,
    toks: Vec<Tok>,
    pos: usize,
    now_ns: i64,
    /// The `(` and `not` the parser is inside of.
    depth: usize,
}

/// The most `(` and `not` a filter may nest: far more than any filter written by hand, few enough that the parser,
/// the Rust evaluation and the SQL (SQLite refuses expressions over 1,000 deep) stay within their stacks and limits.
pub const MAX_DEPTH: usize = 256;

/// Parses a filter; the empty filter is [`Expr::All`]. `now_ns` is the time `3h ago` counts from.
///
/// A chain of `and` or `or` becomes a balanced tree of them, so its length does not add to the depth that
/// evaluating or compiling it recurses to; [`MAX_DEPTH`] bounds the rest.
pub fn parse(src: &str, now_ns: i64) -> Result<Expr, FilterError> {
    let mut p = Parser {
        src,
        toks: lex(src),
        pos: 0,
        now_ns,
        depth: 0,
    };
    if p.toks.is_empty() {
        return Ok(Expr::All);
    }
    let e = p.or()?;
    if let Some(t) = p.peek() {
        let t = t.clone();
        return Err(p.err_at(
            &t,
            if t.text == ")" {
                "unbalanced ')': no '(' opens it".to_string()
            } else {
                format!(
                    "expected 'and', 'or' or the end of the filter, found '{}'",
                    t.text
                )
            },
        ));
    }
    super::sql::fits(&e).map_err(|m| FilterError::new(src, 0, src.len(), m))?;
    Ok(e)
}

/// `terms` (at least one) joined by `join` as a balanced tree, in their order: no recursion, and the tree is as
/// deep as the logarithm of their number.
fn balanced(mut terms: Vec<Expr>, join: fn(Box<Expr>, Box<Expr>) -> Expr) -> Expr {
    while terms.len() > 1 {
        let mut next = Vec::with_capacity(terms.len().div_ceil(2));
        let mut it = terms.into_iter();
        while let Some(a) = it.next() {
            next.push(match it.next() {
                Some(b) => join(Box::new(a), Box::new(b)),
                None => a,
            });
        }
        terms = next;
    }
    terms.pop().unwrap_or(Expr::All)
}

impl Parser<'_> {
    fn peek(&self) -> Option<&Tok> {
        self.toks.get(self.pos)
    }

    fn next(&mut self) -> Option<Tok> {
        let t = self.toks.get(self.pos).cloned();
        self.pos += 1;
        t
    }

    fn err_at(&self, t: &Tok, msg: impl Into<String>) -> FilterError {
        FilterError::new(self.src, t.at, t.text.len(), msg)
    }

    fn err_end(&self, msg: impl Into<String>) -> FilterError {
        FilterError::new(self.src, self.src.len(), 1, msg)
    }

    fn is(&self, words: &[&str]) -> bool {
        self.peek()
            .is_some_and(|t| words.iter().any(|w| t.text.eq_ignore_ascii_case(w)))
    }

    fn or(&mut self) -> Result<Expr, FilterError> {
        let mut terms = vec![self.and()?];
        while self.is(&["or", "||"]) {
            self.pos += 1;
            terms.push(self.and()?);
        }
        Ok(balanced(terms, Expr::Or))
    }

    fn and(&mut self) -> Result<Expr, FilterError> {
        let mut terms = vec![self.unary()?];
        while self.is(&["and", "&&"]) {
            self.pos += 1;
            terms.push(self.unary()?);
        }
        Ok(balanced(terms, Expr::And))
    }

    /// One more level of `(` or `not` at `t`, refused past [`MAX_DEPTH`].
    fn deeper(&mut self, t: &Tok) -> Result<(), FilterError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err_at(
                t,
                format!(
                    "the filter nests too deeply: more than {MAX_DEPTH} levels of '(' and 'not'; \
                     write it with fewer parentheses"
                ),
            ));
        }
        Ok(())
    }

    fn unary(&mut self) -> Result<Expr, FilterError> {
        // A run of `not` is counted, not recursed into.
        let mut nots = 0;
        while self.is(&["not", "!"]) {
            let t = self.next().unwrap();
            self.deeper(&t)?;
            nots += 1;
        }
        let mut e = if self.is(&["("]) {
            let open = self.next().unwrap();
            self.deeper(&open)?;
            let e = self.or()?;
            self.depth -= 1;
            match self.next() {
                Some(t) if t.text == ")" => e,
                Some(t) => return Err(self.err_at(&t, format!("expected ')', found '{}'", t.text))),
                None => return Err(self.err_at(&open, "unbalanced '(': no ')' closes it")),
            }
        } else {
            self.primitive()?
        };
        for _ in 0..nots {
            e = Expr::Not(Box::new(e));
        }
        self.depth -= nots;
        Ok(e)
    }

    /// The value after a keyword, or an error naming what was expected.
    fn value(&mut self, what: &str) -> Result<Tok, FilterError> {
        match self.next() {
            Some(t)
                if !["(", ")", "and", "or", "not", "&&", "||", "!"].contains(&t.text.as_str()) =>
            {
                Ok(t)
            }
            Some(t) => Err(self.err_at(&t, format!("expected {what}, found '{}'", t.text))),
            None => Err(self.err_end(format!("expected {what} at the end of the filter"))),
        }
    }

    fn primitive(&mut self) -> Result<Expr, FilterError> {
        let Some(t) = self.next() else {
            return Err(
                self.err_end("expected a filter term (host, net, port, after, ...) at the end")
            );
        };
        let word = t.text.to_ascii_lowercase();
        let dir = match word.as_str() {
            "src" => Some(Dir::Src),
            "dst" => Some(Dir::Dst),
            _ => None,
        };
        if let Some(d) = dir {
            let Some(k) = self.next() else {
                return Err(self.err_end(format!(
                    "expected host, net, port or portrange after '{word}'"
                )));
            };
            return self.endpoint(d, &k);
        }
        match word.as_str() {
            "host" | "net" | "port" | "portrange" => self.endpoint(Dir::Either, &t),
            "after" | "before" => {
                let v = self.value("a time (RFC 3339, a date, epoch seconds, or '3h ago')")?;
                let mut text = v.text.clone();
                let mut len = v.text.len();
                // `3h ago`: the word "ago" belongs to the time.
                if self.is(&["ago"]) {
                    let ago = self.next().unwrap();
                    text.push_str(" ago");
                    len = ago.at + ago.text.len() - v.at;
                }
                let ns = parse_time_at(&text, self.now_ns)
                    .map_err(|m| FilterError::new(self.src, v.at, len, m))?;
                Ok(if word == "after" {
                    Expr::After(ns)
                } else {
                    Expr::Before(ns)
                })
            }
            "capture" => Ok(Expr::Capture(self.value("a capture name or id")?.text)),
            // A label never holds a colon: TraceFlow writes an IPv6 address's colons as dots, so one typed with
            // its colons (as copied from tshark) names the same label, as `query --flow` takes it.
            "label" => Ok(Expr::Label(
                self.value("a flow label")?.text.replace(':', "."),
            )),
            "community-id" => {
                let v = self.value("a Community ID (1:...)")?;
                let mut text = v.text.clone();
                // Base64 ends in '=', which the lexer splits off as an operator: join it back when it touches.
                while let Some(eq) = self.peek() {
                    if (eq.text == "=" || eq.text == "==") && eq.at == v.at + text.len() {
                        text.push_str(&eq.text);
                        self.pos += 1;
                    } else {
                        break;
                    }
                }
                let b64 = text.strip_prefix("1:").unwrap_or("");
                let ok = b64.len() == 28
                    && b64.ends_with('=')
                    && b64[..27].bytes().all(|c| c.is_ascii_alphanumeric() || c == b'+' || c == b'/');
                if !ok {
                    return Err(FilterError::new(
                        self.src,
                        v.at,
                        text.len(),
                        format!("'{text}' is not a Community ID: it is '1:' and 28 base64 characters, as 1:LQU9qZlK+B5F3KDmev6m5PMibrg="),
                    ));
                }
                Ok(Expr::CommunityId(text))
            }
            "syn" => Ok(Expr::Flag(Flag::Syn)),
            "fin" => Ok(Expr::Flag(Flag::Fin)),
            "rst" => Ok(Expr::Flag(Flag::Rst)),
            "open" => Ok(Expr::Open(true)),
            "closed" => Ok(Expr::Open(false)),
            "packets" | "bytes" | "payload" | "duration" => {
                let field = match word.as_str() {
                    "packets" => Field::Packets,
                    "bytes" => Field::Bytes,
                    "payload" => Field::Payload,
                    _ => Field::Duration,
                };
                let op = self.value("a comparison (> >= < <= = !=)")?;
                let cmp = match op.text.as_str() {
                    ">" => Cmp::Gt,
                    ">=" => Cmp::Ge,
                    "<" => Cmp::Lt,
                    "<=" => Cmp::Le,
                    "=" | "==" => Cmp::Eq,
                    "!=" => Cmp::Ne,
                    other => {
                        return Err(self.err_at(&op, format!("expected a comparison (> >= < <= = !=), found '{other}'")))
                    }
                };
                let v = self.value(if field == Field::Duration {
                    "a duration (10s, 1.5s, 250ms, 2m, 1h)"
                } else {
                    "a whole number"
                })?;
                let n = if field == Field::Duration {
                    parse_duration(&v.text)
                } else {
                    match v.text.parse::<i64>() {
                        Ok(n) if n >= 0 => Ok(n),
                        // Digits only, and too many of them.
                        Err(_) if !v.text.is_empty() && v.text.bytes().all(|b| b.is_ascii_digit()) => {
                            Err(Bad::Range)
                        }
                        _ => Err(Bad::Form),
                    }
                };
                match n {
                    Ok(n) => Ok(Expr::Compare(field, cmp, n)),
                    Err(Bad::Range) if field == Field::Duration => Err(self.err_at(
                        &v,
                        format!(
                            "'{}' is out of range: a duration is at most {MAX_DAYS}d (292 years)",
                            v.text
                        ),
                    )),
                    Err(Bad::Range) => Err(self.err_at(
                        &v,
                        format!("'{}' is out of range: at most {}", v.text, i64::MAX),
                    )),
                    Err(Bad::Form) if field == Field::Duration => Err(self.err_at(
                        &v,
                        format!("'{}' is not a duration: write 10s, 1.5s, 250ms, 2m or 1h", v.text),
                    )),
                    Err(Bad::Form) => Err(self.err_at(&v, format!("'{}' is not a whole number", v.text))),
                }
            }
            "conn-state" => {
                let state = |t: &str| {
                    let up = t.to_ascii_uppercase();
                    CONN_STATES.contains(&up.as_str()).then_some(up)
                };
                let v = self.value("a Zeek conn_state (S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH)")?;
                let Some(first) = state(&v.text) else {
                    return Err(self.err_at(
                        &v,
                        format!(
                            "'{}' is not a Zeek conn_state: one of S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR OTH",
                            v.text
                        ),
                    ));
                };
                let mut states = vec![first];
                while let Some(s) = self.peek().and_then(|t| state(&t.text)) {
                    states.push(s);
                    self.pos += 1;
                }
                Ok(Expr::ConnState(states))
            }
            "history" => {
                let exact = self.peek().is_some_and(|t| t.text == "=" || t.text == "==");
                if exact {
                    self.pos += 1;
                }
                let v = self.value("Zeek history letters (ShADadFf ...)")?;
                if !v.text.bytes().all(|c| c.is_ascii_alphabetic() || c == b'^') {
                    return Err(self.err_at(
                        &v,
                        format!("'{}' is not Zeek history letters (such as ShADadFf, ^ for a flip)", v.text),
                    ));
                }
                Ok(Expr::History(v.text, exact))
            }
            "orig-bytes" | "resp-bytes" | "orig-pkts" | "resp-pkts" => {
                let field = match word.as_str() {
                    "orig-bytes" => ConnField::OrigBytes,
                    "resp-bytes" => ConnField::RespBytes,
                    "orig-pkts" => ConnField::OrigPkts,
                    _ => ConnField::RespPkts,
                };
                let op = self.value("a comparison (> >= < <= = !=)")?;
                let cmp = match op.text.as_str() {
                    ">" => Cmp::Gt,
                    ">=" => Cmp::Ge,
                    "<" => Cmp::Lt,
                    "<=" => Cmp::Le,
                    "=" | "==" => Cmp::Eq,
                    "!=" => Cmp::Ne,
                    other => {
                        return Err(self.err_at(&op, format!("expected a comparison (> >= < <= = !=), found '{other}'")))
                    }
                };
                let v = self.value("a whole number")?;
                match v.text.parse::<i64>().ok().filter(|n| *n >= 0) {
                    Some(n) => Ok(Expr::ConnCompare(field, cmp, n)),
                    None => Err(self.err_at(&v, format!("'{}' is not a whole number", v.text))),
                }
            }
            "conn" => {
                let v = self.value("a connection, CAPTURE:N (as `connections` lists them)")?;
                match v.text.rsplit_once(':') {
                    Some((cap, n)) if !cap.is_empty() => match n.parse::<i64>() {
                        Ok(n) if n >= 1 => Ok(Expr::Conn(cap.to_string(), n)),
                        _ => Err(self.err_at(&v, format!("'{n}' is not a connection number (1, 2, ...)"))),
                    },
                    _ => Err(self.err_at(
                        &v,
                        format!("'{}' is not CAPTURE:N: the capture's name or id, ':', the `conn` number", v.text),
                    )),
                }
            }
            "uid" => {
                let v = self.value("a conn.log uid (C and base62 digits)")?;
                let ok = v.text.len() > 1
                    && v.text.starts_with('C')
                    && v.text.bytes().all(|c| c.is_ascii_alphanumeric());
                if !ok {
                    return Err(self.err_at(&v, format!("'{}' is not a conn.log uid: C and base62 digits", v.text)));
                }
                Ok(Expr::Uid(v.text, Vec::new()))
            }
            "ago" => Err(self.err_at(&t, "'ago' goes after a time: 'after 3h ago'")),
            ")" => Err(self.err_at(&t, "unbalanced ')': no '(' opens it")),
            // tcpdump's protocol keywords: say why there is no such term, not just that it is unknown.
            "tcp" | "proto" | "udp" | "icmp" | "icmp6" | "sctp" | "arp" | "ip" | "ip6" => {
                let next = self.peek().map(|n| n.text.to_ascii_lowercase());
                let (what, tcp) = match next.as_deref() {
                    Some(p) if word == "proto" => (format!("'proto {p}'"), p == "tcp" || p == "6"),
                    _ => (format!("'{}'", t.text), word == "tcp"),
                };
                Err(self.err_at(
                    &t,
                    if tcp {
                        format!("{what}: traceflow indexes TCP flows only, so every flow is TCP: leave it out")
                    } else {
                        format!(
                            "{what}: traceflow indexes TCP flows only (no UDP, ICMP or other protocols); \
                             filter them by host, net, port, time, flags or size"
                        )
                    },
                ))
            }
            _ => Err(self.err_at(
                &t,
                format!(
                    "unknown filter term '{}': expected host, net, port, portrange, src, dst, after, before, \
                     capture, label, community-id, syn, fin, rst, open, closed, packets, bytes, payload, duration, \
                     conn-state, history, orig-bytes, resp-bytes, orig-pkts, resp-pkts, conn, uid, not or '('",
                    t.text
                ),
            )),
        }
    }

    /// `host A`, `net CIDR`, `port N`, `portrange N-M`, after an optional `src`/`dst` (`k` is the keyword).
    fn endpoint(&mut self, d: Dir, k: &Tok) -> Result<Expr, FilterError> {
        match k.text.to_ascii_lowercase().as_str() {
            "host" => {
                let v = self.value("an IPv4 or IPv6 address")?;
                let a: IpAddr = v.text.parse().map_err(|_| {
                    self.err_at(&v, format!("'{}' is not an IPv4 or IPv6 address", v.text))
                })?;
                Ok(Expr::Host(d, a))
            }
            "net" => {
                let v = self.value("a network (10.0.0.0/8, 2001:db8::/32)")?;
                let (addr, bits) = v.text.split_once('/').unwrap_or((&v.text, ""));
                let a: IpAddr = addr.parse().map_err(|_| {
                    self.err_at(
                        &v,
                        format!("'{addr}' is not an IPv4 or IPv6 network address"),
                    )
                })?;
                let max = if a.is_ipv4() { 32 } else { 128 };
                let prefix = if bits.is_empty() {
                    max
                } else {
                    match bits.parse::<u8>() {
                        Ok(b) if b <= max => b,
                        _ => {
                            return Err(self.err_at(
                                &v,
                                format!(
                                "'/{bits}' is not a prefix length: an IPv{} prefix is 0 to {max}",
                                if a.is_ipv4() { 4 } else { 6 }
                            ),
                            ))
                        }
                    }
                };
                Ok(Expr::Net(d, a, prefix))
            }
            "port" => {
                let v = self.value("a port (0 to 65535)")?;
                let p = port(&v.text).ok_or_else(|| {
                    self.err_at(&v, format!("'{}' is not a port (0 to 65535)", v.text))
                })?;
                Ok(Expr::Port(d, p, p))
            }
            "portrange" => {
                let v = self.value("a port range (1024-65535)")?;
                let range = v
                    .text
                    .split_once('-')
                    .and_then(|(a, b)| Some((port(a)?, port(b)?)));
                match range {
                    Some((lo, hi)) if lo <= hi => Ok(Expr::Port(d, lo, hi)),
                    _ => Err(self.err_at(
                        &v,
                        format!("'{}' is not a port range N-M with N <= M <= 65535", v.text),
                    )),
                }
            }
            _ => Err(self.err_at(
                k,
                format!("expected host, net, port or portrange, found '{}'", k.text),
            )),
        }
    }
}

fn port(s: &str) -> Option<u16> {
    s.parse::<u16>().ok()
}

/// Why a duration or a time is refused: not written as one, or too far for 64-bit nanoseconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Bad {
    /// Not a duration (a time).
    Form,
    /// One, but beyond what ns in an i64 hold (292 years either way of 1970).
    Range,
}

/// The longest duration: i64::MAX ns, in days.
pub(crate) const MAX_DAYS: i64 = i64::MAX / 86_400_000_000_000;

/// `10s`, `1.5s`, `250ms`, `2m`, `1h`, `1d` (or plain seconds) in ns.
pub(crate) fn parse_duration(s: &str) -> Result<i64, Bad> {
    let units: [(&str, f64); 6] = [
        ("ms", 1e6),
        ("us", 1e3),
        ("s", 1e9),
        ("m", 60e9),
        ("h", 3600e9),
        ("d", 86400e9),
    ];
    let (num, scale) = units
        .iter()
        .find_map(|(u, k)| s.strip_suffix(u).map(|n| (n, *k)))
        .unwrap_or((s, 1e9));
    // f64 reads "inf" and "nan" too: not durations. "1e400" is a number, too large.
    if num
        .bytes()
        .any(|b| b.is_ascii_alphabetic() && b != b'e' && b != b'E')
    {
        return Err(Bad::Form);
    }
    let v: f64 = num.parse().map_err(|_| Bad::Form)?;
    if v.is_nan() || v < 0.0 {
        return Err(Bad::Form);
    }
    // 2^63 as f64: anything below rounds to an i64.
    if v * scale >= 9_223_372_036_854_775_808.0 {
        return Err(Bad::Range);
    }
    Ok((v * scale).round() as i64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> Expr {
        parse(s, 0).unwrap()
    }

    #[test]
    fn precedence_and_parentheses() {
        let h = |a: &str| Expr::Host(Dir::Either, a.parse().unwrap());
        assert_eq!(
            p("host 1.1.1.1 or host 2.2.2.2 and not host 3.3.3.3"),
            Expr::Or(
                Box::new(h("1.1.1.1")),
                Box::new(Expr::And(
                    Box::new(h("2.2.2.2")),
                    Box::new(Expr::Not(Box::new(h("3.3.3.3"))))
                ))
            )
        );
        assert_eq!(
            p("(host 1.1.1.1 || host 2.2.2.2) && !syn"),
            Expr::And(
                Box::new(Expr::Or(Box::new(h("1.1.1.1")), Box::new(h("2.2.2.2")))),
                Box::new(Expr::Not(Box::new(Expr::Flag(Flag::Syn))))
            )
        );
        assert_eq!(p(""), Expr::All);
        assert_eq!(
            p("dst portrange 1000-2000"),
            Expr::Port(Dir::Dst, 1000, 2000)
        );
        assert_eq!(p("packets>=3"), Expr::Compare(Field::Packets, Cmp::Ge, 3));
        assert_eq!(
            p("duration > 1.5s"),
            Expr::Compare(Field::Duration, Cmp::Gt, 1_500_000_000)
        );
        assert_eq!(p("after 3h ago"), Expr::After(-3 * 3600 * 1_000_000_000));
        // An IPv6 label typed with the address's colons is the label TraceFlow writes with dots.
        assert_eq!(
            p("label fd01::183_80-fd01::1_443-1.5"),
            Expr::Label("fd01..183_80-fd01..1_443-1.5".into())
        );
    }

    #[test]
    fn errors_point_at_the_word() {
        let e = parse("host 10.0.0.5 and port 99999", 0).unwrap_err();
        assert_eq!(e.at, 23);
        assert_eq!(e.caret, format!("{}^^^^^", " ".repeat(23)));
        assert!(e.message.contains("not a port"), "{e}");
        let e = parse("net 10.0.0.0/33", 0).unwrap_err();
        assert!(e.message.contains("prefix"), "{e}");
        let e = parse("after yesterdayish", 0).unwrap_err();
        assert_eq!(e.at, 6);
        assert!(e.message.contains("time"), "{e}");
        let e = parse("(host 1.1.1.1 or syn", 0).unwrap_err();
        assert_eq!(e.at, 0);
        assert!(e.message.contains("unbalanced"), "{e}");
        let e = parse("syn)", 0).unwrap_err();
        assert!(e.message.contains("unbalanced"), "{e}");
        assert!(parse("hots 1.1.1.1", 0)
            .unwrap_err()
            .message
            .contains("unknown filter term"));
        assert!(parse("host", 0)
            .unwrap_err()
            .message
            .contains("end of the filter"));
    }
}
