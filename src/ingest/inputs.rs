//! The inputs of an ingest: files and folders named on the command line, walked in sorted order (links followed
//! only inside the folder), and what is recorded of each file read.

use std::path::{Path, PathBuf};

use crate::capture::FileStat;
use crate::store::CaptureSource;

/// One input: a file path, or standard input.
#[derive(Clone, Debug)]
pub enum Input {
    /// A capture file: a path given, or a file found in a folder given.
    File(PathBuf),
    /// Standard input (`-`), read as a stream.
    Stdin,
}

/// The inputs found by `expand_inputs`, and the paths that failed or were skipped on the way.
#[derive(Debug, Default)]
pub struct Expanded {
    /// The captures to read, in the order given, each folder's files in sorted order.
    pub inputs: Vec<Input>,
    /// For each input, whether it was found in a folder (rather than named): a file there that is not a
    /// capture (a README, a checksum) is skipped; one named on the command line is an error.
    pub in_folder: Vec<bool>,
    /// Paths that could not be read or listed.
    pub failed: u64,
    /// Entries of folders that are not regular files (FIFOs, sockets, devices).
    pub skipped: u64,
}

/// Expands folders recursively in sorted order; a path that cannot be listed is reported and counted as failed.
pub fn expand_inputs(args: &[PathBuf], warn: &mut dyn FnMut(String)) -> Expanded {
    let mut x = Expanded::default();
    let mut seen = std::collections::HashSet::new();
    for a in args {
        if a.as_os_str() == "-" {
            x.inputs.push(Input::Stdin);
            x.in_folder.push(false);
            continue;
        }
        match std::fs::metadata(a) {
            Ok(m) if m.is_dir() => {
                // Symbolic links are followed only into this folder, so it is resolved once, here.
                let root = std::fs::canonicalize(a).unwrap_or_else(|_| a.clone());
                walk(a, &root, &mut x, warn, &mut seen)
            }
            // Named on the command line, anything readable is read, a FIFO included: the user asked for it.
            Ok(_) => {
                x.inputs.push(Input::File(a.clone()));
                x.in_folder.push(false);
            }
            Err(e) => {
                warn(format!("{}: {e}", a.display()));
                x.failed += 1;
            }
        }
    }
    x
}

/// What kind of thing that is neither a file nor a folder `t` is, for the message that skips it.
fn special_kind(t: std::fs::FileType) -> &'static str {
    use std::os::unix::fs::FileTypeExt;
    if t.is_fifo() {
        "FIFO"
    } else if t.is_socket() {
        "socket"
    } else if t.is_block_device() {
        "block device"
    } else if t.is_char_device() {
        "character device"
    } else {
        "special file"
    }
}

/// `seen` holds the folders already walked (resolved), so symbolic-link loops end instead of recursing forever.
/// A link to a folder is followed only when it resolves inside `root` (the resolved folder the walk started
/// from): a link to `/etc` or `/` must not turn an archive walk into a walk of the system.
fn walk(
    dir: &Path,
    root: &Path,
    x: &mut Expanded,
    warn: &mut dyn FnMut(String),
    seen: &mut std::collections::HashSet<PathBuf>,
) {
    if !seen.insert(std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf())) {
        return;
    }
    let mut entries: Vec<PathBuf> = match std::fs::read_dir(dir) {
        Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
        Err(e) => {
            warn(format!("{}: {e}", dir.display()));
            x.failed += 1;
            return;
        }
    };
    entries.sort();
    for p in entries {
        let is_link = std::fs::symlink_metadata(&p).is_ok_and(|m| m.file_type().is_symlink());
        match std::fs::metadata(&p) {
            Ok(m) if m.is_dir() => {
                if is_link {
                    let inside = std::fs::canonicalize(&p).is_ok_and(|t| t.starts_with(root));
                    if !inside {
                        warn(format!(
                            "{}: symlink to a folder outside {}, not followed",
                            p.display(),
                            root.display()
                        ));
                        continue;
                    }
                }
                walk(&p, root, x, warn, seen)
            }
            Ok(m) if m.is_file() => {
                x.inputs.push(Input::File(p));
                x.in_folder.push(true);
            }
            Ok(m) => {
                // Opening a FIFO would wait for a writer, and a device could be endless: not a capture in a folder.
                warn(format!(
                    "{}: not a regular file ({}), skipped",
                    p.display(),
                    special_kind(m.file_type())
                ));
                x.skipped += 1;
            }
            Err(_) if is_link => {
                // A dangling link inside a folder: not a capture, and no capture failed; counted as skipped, so a
                // stale link in an archive does not fail every cron run.
                warn(format!("{}: dangling symbolic link, skipped", p.display()));
                x.skipped += 1;
            }
            Err(e) => {
                warn(format!("{}: {e}", p.display()));
                x.failed += 1;
            }
        }
    }
}

/// What to record of a file read in full: the bytes read and the mtime at the end of the read, and whether the
/// file changed meanwhile (its size at open or at the end is not what was read, or its mtime moved). `listed` is
/// the stat from before the read, `at_open` and `at_end` fstats of the open file.
pub(super) fn as_read(
    listed: FileStat,
    at_open: Option<FileStat>,
    read: u64,
    at_end: Option<FileStat>,
) -> (FileStat, bool) {
    let Some(end) = at_end else {
        // No fstat (a stream): only the bytes read are known.
        return ((read, None), false);
    };
    let open = at_open.unwrap_or(listed);
    let changed =
        listed.0 != read || open.0 != read || end.0 != read || listed.1 != end.1 || open.1 != end.1;
    ((read, end.1), changed)
}

/// What the database records of an input: its name, absolute path, size and mtime (none for a stream).
pub(super) fn source_of(input: &Input, stdin_name: Option<&str>) -> CaptureSource {
    match input {
        Input::Stdin => CaptureSource {
            name: stdin_name.unwrap_or("stdin").into(),
            path: "-".into(),
            size: 0,
            mtime_ns: None,
        },
        Input::File(p) => {
            let abs = std::path::absolute(p).unwrap_or_else(|_| p.clone());
            let meta = std::fs::metadata(p).ok();
            CaptureSource {
                name: p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default(),
                path: abs.to_string_lossy().into_owned(),
                size: meta.as_ref().map(|m| m.len()).unwrap_or(0),
                mtime_ns: meta.and_then(|m| m.modified().ok()).and_then(|t| {
                    t.duration_since(std::time::UNIX_EPOCH)
                        .ok()
                        .map(|d| d.as_nanos() as i64)
                }),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_size_recorded_is_the_size_read_and_a_change_is_noticed() {
        let t = Some(5);
        // Unchanged: listed, opened and ended at the size read.
        assert_eq!(
            as_read((100, t), Some((100, t)), 100, Some((100, t))),
            ((100, t), false)
        );
        // Grew between its listing and its open, then read to the end: the bytes read are recorded.
        assert_eq!(
            as_read((60, t), Some((100, Some(6))), 100, Some((100, Some(6)))),
            ((100, Some(6)), true)
        );
        // Grew while read (after the reader reached the end): what was read, and the mtime after the read.
        assert_eq!(
            as_read((100, t), Some((100, t)), 100, Some((140, Some(7)))),
            ((100, Some(7)), true)
        );
        // Rewritten in place at the same size: only the mtime tells.
        assert_eq!(
            as_read((100, t), Some((100, t)), 100, Some((100, Some(9)))),
            ((100, Some(9)), true)
        );
        // A stream: no fstat, only the bytes read.
        assert_eq!(as_read((0, None), None, 42, None), ((42, None), false));
    }
}
