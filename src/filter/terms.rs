//! The filter language's reference as one table: `flows --help`, `connections --help`, the manual page and the
//! README are all written from it, and tests hold the parser and the README to it, so they cannot drift apart.

/// One line of the reference: what the user types and what it means.
pub struct Term {
    /// The term's forms, `|` between alternatives.
    pub syntax: &'static str,
    /// What it matches; `\n` continues on the next line, under the meaning column.
    pub meaning: &'static str,
    /// Filters that use every form of `syntax`, each of which the parser accepts (a unit test checks).
    pub examples: &'static [&'static str],
}

/// The terms of the language, in the order the reference lists them.
pub const TERMS: &[Term] = &[
    Term {
        syntax: "host A | src host A | dst host A",
        meaning: "IPv4 or IPv6 address; host matches either end\n(IPv4-mapped IPv6 is the same host)",
        examples: &["host 10.0.0.5", "src host 2001:db8::1", "dst host ::ffff:10.0.0.5"],
    },
    Term {
        syntax: "net CIDR | src net CIDR | dst net CIDR",
        meaning: "10.0.0.0/8, 2001:db8::/32; an IPv6 net holds IPv6\naddresses only, as in tcpdump",
        examples: &["net 10.0.0.0/8", "src net 2001:db8::/32", "dst net 192.168.0.0/16"],
    },
    Term {
        syntax: "port N | src port N | dst port N",
        meaning: "also portrange N-M (with src/dst too)",
        examples: &["port 443", "src port 40000", "dst port 80", "dst portrange 8000-8999"],
    },
    Term {
        syntax: "after T | before T",
        meaning: "the flow overlaps the window; T is RFC 3339\n(2024-03-01T10:00:00Z; no zone means UTC), a date\n\
                  (2024-03-01), epoch seconds (1700000000.5) or\nrelative (3h ago, 15m ago)",
        examples: &[
            "after 2024-03-01T10:00:00Z and before 2024-03-01T10:05",
            "after 2024-03-01",
            "before 1700000000.5",
            "after 3h ago",
        ],
    },
    Term {
        syntax: "capture NAME|ID",
        meaning: "a capture by base name or id; quote values with\nspaces (\"my capture.pcap\")",
        examples: &["capture sample.pcap", "capture 1", "capture \"my capture.pcap\""],
    },
    Term {
        syntax: "label LABEL",
        meaning: "the flows of a TraceFlow label (IPv6 with . or :)",
        examples: &["label 192.168.1.10_40000-10.0.0.80_80-1700000000.00125"],
    },
    Term {
        syntax: "community-id 1:BASE64",
        meaning: "Community ID v1 (both directions of a connection\nshare it)",
        examples: &["community-id 1:3NLP40Oh3T9/cqbTfFFTPHMBc88="],
    },
    Term {
        syntax: "syn | fin | rst",
        meaning: "a frame of the flow has that flag",
        examples: &["syn", "fin", "rst"],
    },
    Term {
        syntax: "open | closed",
        meaning: "closed: a FIN closed it; open: none did",
        examples: &["open", "closed"],
    },
    Term {
        syntax: "packets|bytes|payload OP N",
        meaning: "OP is > >= < <= = !=; bytes: frame lengths,\npayload: TCP segment lengths",
        examples: &["packets > 10", "bytes >= 1000", "payload = 0", "packets != 3"],
    },
    Term {
        syntax: "duration OP D",
        meaning: "D: 10s, 1.5s, 250ms, 2m, 1h",
        examples: &["duration > 10s", "duration < 250ms", "duration >= 2m"],
    },
    Term {
        syntax: "conn-state STATES",
        meaning: "the connection's Zeek conn_state is one of STATES\n(S0 S1 SF REJ S2 S3 RSTO RSTR RSTOS0 RSTRH SH SHR\nOTH); for a flow, the connection of its first frame",
        examples: &["conn-state S0 REJ", "conn-state SF"],
    },
    Term {
        syntax: "history LETTERS | history = LETTERS",
        meaning: "its Zeek history holds LETTERS (case counts:\nhistory ShAD), or is exactly LETTERS",
        examples: &["history ShAD", "history = ShADadFf"],
    },
    Term {
        syntax: "orig-bytes|resp-bytes OP N",
        meaning: "Zeek's orig_bytes/resp_bytes: the sequence space\nused (a retransmission counts once)",
        examples: &["orig-bytes > 1000", "resp-bytes = 0"],
    },
    Term {
        syntax: "orig-pkts|resp-pkts OP N",
        meaning: "Zeek's orig_pkts/resp_pkts",
        examples: &["orig-pkts >= 10", "resp-pkts = 0"],
    },
    Term {
        syntax: "conn CAPTURE:N",
        meaning: "connection N (`connections`' conn) of the capture\nnamed (name or id); for a flow, of its first frame",
        examples: &["conn sample.pcap:3", "conn 2:17"],
    },
    Term {
        syntax: "uid CXXXX",
        meaning: "the connection with that conn.log uid (--format zeek)",
        examples: &["uid CHhAvVGS1DHFjwGM9"],
    },
    Term {
        syntax: "and | or | not | ( )",
        meaning: "also && || !; not binds tightest, then and, then or",
        examples: &["(port 80 or port 443) and not host 10.0.0.5", "syn && !fin || rst"],
    },
];

/// Whole command lines, for the help's examples.
pub const EXAMPLES: &[&str] = &[
    "traceflow flows 'host 10.0.0.5 and port 443 and after 2024-03-01T10:00 and before 2024-03-01T10:05'",
    "traceflow flows 'net 2001:db8::/32 and not port 22' --format csv",
    "traceflow flows 'dst port 445 and syn and not fin' --sort bytes --limit 20",
    "traceflow flows 'capture big.pcap and rst' --count",
    "traceflow flows 'host 10.0.0.5' --group-by dst",
    "traceflow flows 'host 10.0.0.5 and port 443' --pcap out.pcap",
    "traceflow connections 'conn-state REJ S0 and dst port 22' --format zeek",
];

/// Width of the syntax column: the longest syntax and two spaces.
fn column() -> usize {
    TERMS.iter().map(|t| t.syntax.len()).max().unwrap_or(0) + 2
}

/// The table of terms, each line indented by `indent` spaces: the block the README, the help and the manual
/// page show.
pub fn table(indent: usize) -> String {
    let (pad, col) = (" ".repeat(indent), column());
    let mut out = String::new();
    for t in TERMS {
        for (i, line) in t.meaning.lines().enumerate() {
            let first = if i == 0 { t.syntax } else { "" };
            out.push_str(&format!("{pad}{first:<col$}{}\n", line.trim_start()));
        }
    }
    out
}

/// The reference for `flows --help` (and so the manual page): the table and the examples.
pub fn help() -> String {
    let mut out = String::from(
        "Filter language (tcpdump/Stenographer-like; a flow is one direction of a TCP connection):\n",
    );
    out.push_str(&table(2));
    out.push_str("Examples:\n");
    for e in EXAMPLES {
        out.push_str(&format!("  {e}\n"));
    }
    out.truncate(out.trim_end().len());
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_parses() {
        for t in TERMS {
            for e in t.examples {
                if let Err(err) = crate::filter::parse(e, 1_700_000_000_000_000_000) {
                    panic!("{:?}: example {e:?} does not parse: {err}", t.syntax);
                }
            }
        }
        for e in EXAMPLES {
            let filter = e.split('\'').nth(1).expect("a quoted filter");
            crate::filter::parse(filter, 0).unwrap_or_else(|err| panic!("{e}: {err}"));
        }
    }

    /// Every word of a term's syntax that the parser knows appears in one of its examples, so a form listed but
    /// never tried (a typo, a keyword the parser dropped) fails here.
    #[test]
    fn every_keyword_is_exercised() {
        for t in TERMS {
            for word in t.syntax.split(|c: char| c.is_whitespace() || c == '|') {
                if word.is_empty() || word.chars().all(|c| c.is_ascii_uppercase() || c == ':') {
                    continue;
                }
                let word = word.split(':').next().unwrap();
                assert!(
                    t.examples.iter().any(|e| e.contains(word)),
                    "{:?}: no example uses {word:?}",
                    t.syntax
                );
            }
        }
    }

    #[test]
    fn lines_fit_a_terminal() {
        for line in help().lines() {
            assert!(line.chars().count() <= 110, "{line}");
        }
    }
}
