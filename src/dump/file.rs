//! Safe creation of dump outputs: a file appears whole or not at all, nothing is written through a symbolic link
//! planted where the user pointed, and nothing this run did not create is ever removed.
//!
//! - `-o FILE` ([`OutputFile`]): a regular file is written to a temporary file in the same folder, then renamed
//!   over FILE; an existing device or FIFO (`-o /dev/null`, `-o fifo`) is written directly and never removed.
//! - `--dump DIR` ([`DumpDir`]): every file and sub-folder is made relative to an open folder handle with
//!   `O_NOFOLLOW`, so a link planted at `DIR/<capture>` or `DIR/<label>.pcap` is refused or replaced, never
//!   followed. When DIR does not exist yet, the dump goes into a temporary sibling folder renamed to DIR at the
//!   end, so a failed dump leaves nothing behind.

use std::fs::File;
use std::io::{self, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{FileTypeExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustix::fs::{AtFlags, Mode, OFlags, RenameFlags};

use super::DumpError;

/// A name for a temporary file or folder next to `name`, unique within this process and across processes.
fn temp_name(name: &str) -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        ".{name}.traceflow-{}-{}.tmp",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn write_err(path: &Path) -> impl Fn(io::Error) -> DumpError + '_ {
    move |source| DumpError::Write {
        path: path.display().to_string(),
        source,
    }
}

/// The file `-o` names.
pub enum OutputFile {
    /// An existing FIFO, device or socket: written in place.
    Direct(File),
    /// A temporary file beside `dest`, renamed over it by `commit`; removed if dropped uncommitted.
    Replace {
        /// The open temporary file, written to.
        file: File,
        /// Path of the temporary file.
        tmp: PathBuf,
        /// The path the file gets on `commit`.
        dest: PathBuf,
        /// Set once `commit` renamed the file: nothing is removed on drop.
        done: bool,
    },
}

impl OutputFile {
    /// Prepares `dest` (`query -o`) for writing. Nothing at `dest` changes until `commit`.
    pub fn create(dest: &Path) -> Result<OutputFile, DumpError> {
        OutputFile::create_for(dest, "-o")
    }

    /// [`OutputFile::create`] for the output given by `option` (`-o`, `--pcap`, `--pcapng`), which messages
    /// name: only `query` has `-o` and `--dump`.
    pub fn create_for(dest: &Path, option: &str) -> Result<OutputFile, DumpError> {
        let werr = write_err(dest);
        match std::fs::metadata(dest) {
            Ok(m) if m.is_dir() => {
                let hint = if option == "-o" {
                    "give a file name (or use --dump DIR for one file per label)".to_string()
                } else {
                    format!("give {option} a file name, or - for stdout")
                };
                return Err(DumpError::Usage(format!(
                    "{option} {} is a folder; {hint}",
                    dest.display()
                )));
            }
            Ok(m)
                if m.file_type().is_fifo()
                    || m.file_type().is_char_device()
                    || m.file_type().is_block_device()
                    || m.file_type().is_socket() =>
            {
                let file = std::fs::OpenOptions::new()
                    .write(true)
                    .open(dest)
                    .map_err(&werr)?;
                return Ok(OutputFile::Direct(file));
            }
            _ => {}
        }
        let name = dest
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .ok_or_else(|| {
                DumpError::Usage(format!("{option} {} names no file", dest.display()))
            })?;
        let parent = match dest.parent() {
            Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
            _ => PathBuf::from("."),
        };
        let tmp = parent.join(temp_name(&name));
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o666)
            .open(&tmp)
            .map_err(werr)?;
        Ok(OutputFile::Replace {
            file,
            tmp,
            dest: dest.to_path_buf(),
            done: false,
        })
    }

    /// The file to write to.
    pub fn file(&mut self) -> &mut File {
        match self {
            OutputFile::Direct(f) => f,
            OutputFile::Replace { file, .. } => file,
        }
    }

    /// Puts the finished output in place (a rename: a link at the destination is replaced, not followed).
    pub fn commit(mut self) -> Result<(), DumpError> {
        if let OutputFile::Replace {
            file,
            tmp,
            dest,
            done,
        } = &mut self
        {
            file.flush().map_err(write_err(dest))?;
            std::fs::rename(&*tmp, &*dest).map_err(write_err(dest))?;
            *done = true;
        }
        Ok(())
    }
}

impl Drop for OutputFile {
    fn drop(&mut self) {
        if let OutputFile::Replace { tmp, done, .. } = self {
            if !*done {
                // Only the temporary file this run created; the destination was never touched.
                let _ = std::fs::remove_file(&*tmp);
            }
        }
    }
}

/// A folder the dump writes into, held open so every name is resolved inside it.
pub struct Folder {
    fd: OwnedFd,
    /// Where it will be once the dump is done, for messages and `fpout`.
    shown: PathBuf,
}

/// `--dump DIR`: the folder, the sub-folders and the files this run made in it.
pub struct DumpDir {
    root: Folder,
    /// The temporary sibling being filled when DIR did not exist, and DIR's parent and name.
    staged: Option<(OwnedFd, String, String)>,
    /// Every file written (folder index, name) and every sub-folder made, for cleaning up after a failure.
    made_files: Vec<(usize, String)>,
    made_dirs: Vec<String>,
    subs: Vec<Folder>,
    force: bool,
}

fn sys(path: &Path) -> impl Fn(rustix::io::Errno) -> DumpError + '_ {
    move |e| DumpError::Write {
        path: path.display().to_string(),
        source: io::Error::from(e),
    }
}

const DIR_FLAGS: OFlags = OFlags::DIRECTORY
    .union(OFlags::NOFOLLOW)
    .union(OFlags::CLOEXEC)
    .union(OFlags::RDONLY);

impl DumpDir {
    /// Opens DIR (the user named it, so a link there is followed), or prepares a temporary sibling when it does
    /// not exist.
    pub fn open(dir: &Path, force: bool) -> Result<DumpDir, DumpError> {
        match std::fs::metadata(dir) {
            Ok(m) if m.is_dir() => {
                let fd =
                    rustix::fs::open(dir, DIR_FLAGS.difference(OFlags::NOFOLLOW), Mode::empty())
                        .map_err(sys(dir))?;
                Ok(DumpDir::new(fd, dir, None, force))
            }
            Ok(_) => Err(DumpError::Usage(format!(
                "--dump {} is not a folder",
                dir.display()
            ))),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .ok_or_else(|| {
                        DumpError::Usage(format!("--dump {} names no folder", dir.display()))
                    })?;
                let parent = match dir.parent() {
                    Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
                    _ => PathBuf::from("."),
                };
                // Missing ancestors are made as `mkdir -p` would (they stay, empty, if the dump then fails).
                std::fs::create_dir_all(&parent).map_err(write_err(&parent))?;
                let pfd = rustix::fs::open(
                    &parent,
                    DIR_FLAGS.difference(OFlags::NOFOLLOW),
                    Mode::empty(),
                )
                .map_err(sys(&parent))?;
                let tmp = temp_name(&name);
                rustix::fs::mkdirat(&pfd, tmp.as_str(), Mode::from_raw_mode(0o777))
                    .map_err(sys(dir))?;
                let fd = rustix::fs::openat(&pfd, tmp.as_str(), DIR_FLAGS, Mode::empty())
                    .map_err(sys(dir))?;
                Ok(DumpDir::new(fd, dir, Some((pfd, tmp, name)), force))
            }
            Err(source) => Err(DumpError::Write {
                path: dir.display().to_string(),
                source,
            }),
        }
    }

    fn new(
        fd: OwnedFd,
        dir: &Path,
        staged: Option<(OwnedFd, String, String)>,
        force: bool,
    ) -> DumpDir {
        DumpDir {
            root: Folder {
                fd,
                shown: dir.to_path_buf(),
            },
            staged,
            made_files: Vec::new(),
            made_dirs: Vec::new(),
            subs: Vec::new(),
            force,
        }
    }

    /// DIR itself is folder 0; `sub` makes (or opens) `DIR/name` and returns its number. A sub-folder that is a
    /// symbolic link is refused.
    pub fn sub(&mut self, name: &str) -> Result<usize, DumpError> {
        let shown = self.root.shown.join(name);
        match rustix::fs::mkdirat(&self.root.fd, name, Mode::from_raw_mode(0o777)) {
            Ok(()) => self.made_dirs.push(name.to_string()),
            Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(sys(&shown)(e)),
        }
        let fd = rustix::fs::openat(&self.root.fd, name, DIR_FLAGS, Mode::empty()).map_err(|e| {
            if e == rustix::io::Errno::LOOP || e == rustix::io::Errno::NOTDIR {
                DumpError::Usage(format!(
                    "{} is a symbolic link or not a folder; refusing to write through it (remove it, or dump \
                     one capture with --capture)",
                    shown.display()
                ))
            } else {
                sys(&shown)(e)
            }
        })?;
        self.subs.push(Folder { fd, shown });
        Ok(self.subs.len())
    }

    fn folder(&self, k: usize) -> &Folder {
        if k == 0 {
            &self.root
        } else {
            &self.subs[k - 1]
        }
    }

    /// The path `name` in folder `k` will have once the dump is done.
    pub fn shown(&self, k: usize, name: &str) -> PathBuf {
        self.folder(k).shown.join(name)
    }

    /// Whether something is already at `name` in folder `k` (a link counts, and is not followed).
    pub fn exists(&self, k: usize, name: &str) -> bool {
        rustix::fs::statat(&self.folder(k).fd, name, AtFlags::SYMLINK_NOFOLLOW).is_ok()
    }

    /// Writes `name` in folder `k`: `fill` writes the contents to a temporary file, which is then renamed to
    /// `name` (without --force, only if nothing is there: no race can make it overwrite).
    pub fn write(
        &mut self,
        k: usize,
        name: &str,
        fill: &mut dyn FnMut(&mut dyn Write) -> Result<(), DumpError>,
    ) -> Result<(), DumpError> {
        let shown = self.shown(k, name);
        let dfd = &self.folder(k).fd;
        if let Ok(st) = rustix::fs::statat(dfd, name, AtFlags::SYMLINK_NOFOLLOW) {
            if !self.force {
                return Err(DumpError::Exists {
                    path: shown.display().to_string(),
                });
            }
            if rustix::fs::FileType::from_raw_mode(st.st_mode) == rustix::fs::FileType::Directory {
                return Err(DumpError::Usage(format!(
                    "{} is a folder; --force replaces files only",
                    shown.display()
                )));
            }
        }
        let tmp = temp_name(name);
        let fd = rustix::fs::openat(
            dfd,
            tmp.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o666),
        )
        .map_err(sys(&shown))?;
        let mut w = io::BufWriter::new(File::from(fd));
        let filled = fill(&mut w).and_then(|()| w.flush().map_err(write_err(&shown)));
        drop(w);
        let placed = filled.and_then(|()| {
            let flags = if self.force {
                RenameFlags::empty()
            } else {
                RenameFlags::NOREPLACE
            };
            rustix::fs::renameat_with(dfd, tmp.as_str(), dfd, name, flags).map_err(|e| {
                if e == rustix::io::Errno::EXIST {
                    DumpError::Exists {
                        path: shown.display().to_string(),
                    }
                } else {
                    sys(&shown)(e)
                }
            })
        });
        if let Err(e) = placed {
            let _ = rustix::fs::unlinkat(dfd, tmp.as_str(), AtFlags::empty());
            return Err(e);
        }
        self.made_files.push((k, name.to_string()));
        Ok(())
    }

    /// Files written so far.
    pub fn written(&self) -> usize {
        self.made_files.len()
    }

    /// Moves a staged folder to DIR. After this the dump is in place.
    pub fn finish(mut self) -> Result<(), DumpError> {
        if let Some((pfd, tmp, name)) = &self.staged {
            if let Err(e) = rustix::fs::renameat_with(
                pfd,
                tmp.as_str(),
                pfd,
                name.as_str(),
                RenameFlags::NOREPLACE,
            ) {
                let err = sys(&self.root.shown)(e);
                return Err(self.abandon(err));
            }
            self.staged = None;
        }
        Ok(())
    }

    /// After a failure: a staged folder is removed with everything in it (this run made all of it). In a folder
    /// that existed, the files already written stay, and the error says how many and where.
    pub fn abandon(mut self, err: DumpError) -> DumpError {
        let Some((pfd, tmp, _)) = self.staged.take() else {
            let n = self.written();
            return if n == 0 {
                err
            } else {
                DumpError::Partial {
                    written: n,
                    dir: self.root.shown.display().to_string(),
                    source: Box::new(err),
                }
            };
        };
        for (k, name) in &self.made_files {
            let _ = rustix::fs::unlinkat(&self.folder(*k).fd, name.as_str(), AtFlags::empty());
        }
        for d in &self.made_dirs {
            let _ = rustix::fs::unlinkat(&self.root.fd, d.as_str(), AtFlags::REMOVEDIR);
        }
        let _ = rustix::fs::unlinkat(&pfd, tmp.as_str(), AtFlags::REMOVEDIR);
        err
    }
}
