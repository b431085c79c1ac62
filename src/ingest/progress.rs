//! The progress bar on stderr: bytes done of the run's total, the time left, frames and flows written so far.

use std::io::IsTerminal;
use std::time::Duration;

/// Bytes, frames and flows written so far, across writers (the progress line).
#[derive(Default)]
pub(super) struct Progress {
    pub(super) done_bytes: u64,
    pub(super) frames: u64,
    pub(super) flows: u64,
}

/// `9999`, `287k`, `1.28M`, `128M`: counts of at most 5 characters, for a progress line at 80 columns.
fn short_count(n: u64) -> String {
    let f = n as f64;
    if n < 10_000 {
        n.to_string()
    } else if n < 999_500 {
        format!("{:.0}k", f / 1e3)
    } else if n < 9_995_000 {
        format!("{:.2}M", f / 1e6)
    } else if n < 999_500_000 {
        format!("{:.0}M", f / 1e6)
    } else {
        format!("{:.1}G", f / 1e9)
    }
}

/// The progress line after the bar: the time left from the bytes done so far over the time they took (the
/// whole run's rate, not the last second's, which a run of small files makes jump), counts, the file's name.
/// The name goes last: a narrow terminal cuts it, not a number.
pub(super) fn progress_message(
    done: u64,
    total: u64,
    spent: Duration,
    frames: u64,
    flows: u64,
    name: &str,
) -> String {
    let eta = if done == 0 || spent < Duration::from_millis(500) {
        "eta -".to_string()
    } else {
        let left = spent.as_secs_f64() * (total.saturating_sub(done) as f64) / done as f64;
        if left >= 99.0 * 3600.0 {
            "eta >99 h".to_string()
        } else {
            format!(
                "eta {}",
                crate::msg::duration(Duration::from_secs_f64(left))
            )
        }
    };
    format!(
        "{eta}  {} frames  {} flows  {name}",
        short_count(frames),
        short_count(flows)
    )
}

/// The bar on stderr, when it is a terminal and the run is not `--quiet`.
pub(super) fn progress_bar(total: u64, quiet: bool) -> Option<indicatif::ProgressBar> {
    if quiet || !std::io::stderr().is_terminal() {
        return None;
    }
    let bar = indicatif::ProgressBar::with_draw_target(
        Some(total),
        indicatif::ProgressDrawTarget::stderr(),
    );
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{bar:10} {binary_bytes}/{binary_total_bytes} {wide_msg}",
        )
        .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
    );
    Some(bar)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_progress_line_has_a_sane_eta_and_its_numbers_fit_80_columns() {
        let s = Duration::from_secs;
        // Half the bytes in 7 s: 7 s left, whatever the last file's rate was.
        let m = progress_message(50, 100, s(7), 1_283_262, 287_402, "big.pcap");
        assert_eq!(m, "eta 7.0 s  1.28M frames  287k flows  big.pcap");
        assert_eq!(
            progress_message(0, 100, s(0), 0, 0, "a"),
            "eta -  0 frames  0 flows  a"
        );
        assert_eq!(
            progress_message(1, 1 << 40, s(100), 0, 0, "a"),
            "eta >99 h  0 frames  0 flows  a"
        );
        // The bar (10), the bytes and the numbers fit in 80 columns at their widest: only the name is cut.
        let bytes = "1023.99 GiB/1023.99 GiB";
        for (done, spent, n) in [
            (1, 3599, 9_994_999),
            (1, 3600 * 98, 999_499),
            (1, 59, 9_999_999_999),
        ] {
            let worst = progress_message(done, 3600, s(spent), n, n, "");
            assert!(10 + 1 + bytes.len() + 1 + worst.len() <= 80, "{worst}");
        }
        for (n, want) in [
            (9999, "9999"),
            (10_000, "10k"),
            (999_499, "999k"),
            (999_500, "1.00M"),
            (9_994_999, "9.99M"),
            (9_995_000, "10M"),
            (999_499_999, "999M"),
            (999_500_000, "1.0G"),
        ] {
            assert_eq!(short_count(n), want);
        }
    }
}
