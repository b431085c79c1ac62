//! Messages for people on stderr: one line each, with control characters escaped, and never a panic.
//!
//! `eprintln!` panics when stderr is a closed pipe (`traceflow ingest dir/ 2>&1 | head -2`), which stopped an
//! ingest with nothing indexed. Here a failed write only means nobody is reading any more: messages stop, the
//! work goes on. File names reach these lines and the tables raw, so a name holding an escape sequence could
//! drive the user's terminal; every control character is shown escaped instead.

use std::borrow::Cow;
use std::io::Write;
use std::sync::atomic::{AtomicBool, Ordering};

/// Set once a write to stderr failed: later messages are dropped without trying.
static STDERR_GONE: AtomicBool = AtomicBool::new(false);

/// `s` with every control character (C0, DEL, C1) written as an escape: `\n`, `\t`, `\r`, `\e` or `\xNN`
/// (`\u{NN}` above 0xff is never needed: Unicode has no control characters there).
pub fn escape_controls(s: &str) -> Cow<'_, str> {
    if !s.chars().any(char::is_control) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            '\u{1b}' => out.push_str("\\e"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// Writes `traceflow: {line}` to stderr, escaped; silently does nothing once stderr is gone.
pub fn say(line: &str) {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return;
    }
    let text = format!("traceflow: {}\n", escape_controls(line));
    let mut err = std::io::stderr().lock();
    if err.write_all(text.as_bytes()).is_err() || err.flush().is_err() {
        STDERR_GONE.store(true, Ordering::Relaxed);
    }
}

/// Writes a message of several lines (a filter error with its caret line): the first prefixed `traceflow: `,
/// each escaped on its own.
pub fn say_lines(text: &str) {
    if STDERR_GONE.load(Ordering::Relaxed) {
        return;
    }
    let mut out = String::new();
    for (i, l) in text.lines().enumerate() {
        out.push_str(if i == 0 { "traceflow: " } else { "" });
        out.push_str(&escape_controls(l));
        out.push('\n');
    }
    let mut err = std::io::stderr().lock();
    if err.write_all(out.as_bytes()).is_err() || err.flush().is_err() {
        STDERR_GONE.store(true, Ordering::Relaxed);
    }
}

/// One line for an error and its causes: each cause whose text the line already holds is left out, so that
/// `database x: disk full` is not followed by `: disk full` again.
pub fn error_line(top: &str, causes: impl IntoIterator<Item = String>) -> String {
    let mut line = top.to_string();
    for c in causes {
        // SQLite's generic text for its code ("Error code 14: Unable to open the database file") only repeats
        // in other words the message rusqlite gave above it.
        if c.starts_with("Error code ") && line.contains(':') {
            continue;
        }
        if !c.is_empty() && !line.contains(&c) {
            line.push_str(": ");
            line.push_str(&c);
        }
    }
    // One line, whatever a cause's text holds (SQLite and OS messages are single lines; be sure).
    line.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// `1 file`, `2 files`: a count with its noun, in the singular only for one.
pub fn count(n: u64, noun: &str) -> String {
    if n == 1 {
        format!("1 {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

/// A duration as people read it: `10 ms` below a second, `1.2 s` below a minute, `2 min 5 s` below an hour,
/// `3 h 20 min` above.
pub fn duration(d: std::time::Duration) -> String {
    let ms = d.as_millis();
    // Whole seconds, rounded: 59.97 s is `1 min 0 s`, not `0 min 59 s`.
    let s = (ms + 500) / 1000;
    if ms < 1000 {
        format!("{ms} ms")
    } else if ms < 59_950 {
        format!("{:.1} s", d.as_secs_f64())
    } else if s < 3600 {
        format!("{} min {} s", s / 60, s % 60)
    } else {
        format!("{} h {} min", s / 3600, s % 3600 / 60)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_and_durations_read_as_words() {
        assert_eq!(count(1, "file"), "1 file");
        assert_eq!(count(0, "file"), "0 files");
        assert_eq!(count(205, "file"), "205 files");
        let ms = std::time::Duration::from_millis;
        assert_eq!(duration(ms(10)), "10 ms");
        assert_eq!(duration(ms(999)), "999 ms");
        assert_eq!(duration(ms(1234)), "1.2 s");
        assert_eq!(duration(ms(125_000)), "2 min 5 s");
        assert_eq!(duration(ms(59_990)), "1 min 0 s");
        assert_eq!(duration(ms(12_000_000)), "3 h 20 min");
    }

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(escape_controls("plain.pcap"), "plain.pcap");
        assert_eq!(
            escape_controls("a\u{1b}[2Jb\nc\u{7}\u{9b}d"),
            "a\\e[2Jb\\nc\\x07\\x9bd"
        );
        assert_eq!(escape_controls("naïve €"), "naïve €");
    }

    #[test]
    fn causes_already_said_are_left_out() {
        assert_eq!(
            error_line(
                "database /x: disk I/O error",
                ["disk I/O error".to_string(), "os error 5".to_string()]
            ),
            "database /x: disk I/O error: os error 5"
        );
        assert_eq!(
            error_line(
                "Is a directory (os error 21)",
                ["Is a directory (os error 21)".into()]
            ),
            "Is a directory (os error 21)"
        );
        assert_eq!(error_line("two\nlines", []), "two lines");
        assert_eq!(
            error_line(
                "database /x: unable to open database file: /x",
                ["Error code 14: Unable to open the database file".into()]
            ),
            "database /x: unable to open database file: /x"
        );
    }
}
