//! What the test modules share: the conformance corpus, running the binary, measuring a child's peak memory,
//! and writing captures.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use assert_cmd::prelude::*;
use rusqlite::Connection;
use traceflow::dump::pcapwrite::PcapWriter;
use traceflow::synth;

/// A time for synthetic frames: 2023-11-14T22:13:20Z, in ns.
pub const T0: i64 = 1_700_000_000_000_000_000;

/// `../shared/conformance`, beside the repository.
pub fn conformance() -> PathBuf {
    let p = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../shared/conformance"
    ));
    assert!(
        p.join("captures").is_dir(),
        "{} is missing: these tests need the shared conformance corpus",
        p.display()
    );
    p
}

/// The conformance captures' folder.
pub fn corpus() -> PathBuf {
    conformance().join("captures")
}

/// What a run of the binary gave.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

/// The binary with `--db db`, and without the user's TRACEFLOW_DB.
pub fn tf(db: &Path) -> Command {
    let mut c = Command::cargo_bin("traceflow").unwrap();
    c.arg("--db").arg(db).env_remove("TRACEFLOW_DB");
    c
}

/// Checks a finished run: never a panic, and an exit status of the documented ones.
pub fn finish(what: &str, out: Output) -> Run {
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        !stderr.contains("panicked"),
        "traceflow {what} panicked:\n{stderr}"
    );
    let code = out.status.code().unwrap_or(-1);
    assert!(
        [0, 1, 2, 130].contains(&code),
        "traceflow {what}: {:?}\n{stderr}",
        out.status
    );
    Run {
        code,
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr,
    }
}

/// Waits for `child` at most `limit`; a child still running then is killed and the test fails. Its stdout and
/// stderr (when piped) are read meanwhile, so a child writing more than a pipe holds never blocks.
pub fn wait_bounded(mut child: Child, limit: Duration, what: &str) -> Run {
    fn drain(
        pipe: Option<impl std::io::Read + Send + 'static>,
    ) -> std::thread::JoinHandle<Vec<u8>> {
        std::thread::spawn(move || {
            let mut buf = Vec::new();
            if let Some(mut p) = pipe {
                let _ = p.read_to_end(&mut buf);
            }
            buf
        })
    }
    let (out, err) = (drain(child.stdout.take()), drain(child.stderr.take()));
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{what}: still running after {limit:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let output = Output {
        status,
        stdout: out.join().unwrap(),
        stderr: err.join().unwrap(),
    };
    finish(what, output)
}

/// `traceflow --db db ARGS...`, with no stdin, bounded to a minute.
pub fn run(db: &Path, args: &[&str]) -> Run {
    let child = tf(db)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    wait_bounded(child, Duration::from_secs(60), &format!("{args:?}"))
}

/// `traceflow ingest EXTRA... INPUTS...`.
pub fn ingest(db: &Path, extra: &[&str], inputs: &[&Path]) -> Run {
    let mut args: Vec<String> = vec!["ingest".into()];
    args.extend(extra.iter().map(|s| s.to_string()));
    args.extend(inputs.iter().map(|p| p.to_string_lossy().into_owned()));
    let out = tf(db).args(&args).stdin(Stdio::null()).output().unwrap();
    finish(&format!("{args:?}"), out)
}

/// One integer from SQL over the database.
pub fn count(db: &Path, sql: &str) -> i64 {
    Connection::open(db)
        .unwrap()
        .query_row(sql, [], |r| r.get(0))
        .unwrap()
}

/// Runs `c` and returns its exit status, its peak RSS in MiB and its stderr.
///
/// The peak is the kernel's count for that process (wait4's ru_maxrss), taken by a small python3 parent:
/// Linux carries the peak RSS of the address space a process had before exec into its own figure, and a child
/// spawned straight from this test binary (vfork) would inherit the test process's peak. python3's is ~10 MiB.
pub fn peak_rss(c: Command) -> (i32, f64, String) {
    const WAIT4: &str = "import os, subprocess, sys\n\
p = subprocess.Popen(sys.argv[2:])\n\
_, status, usage = os.wait4(p.pid, 0)\n\
open(sys.argv[1], 'w').write('%d %d' % (os.waitstatus_to_exitcode(status), usage.ru_maxrss))\n";
    let report = tempfile::NamedTempFile::new().unwrap();
    let mut py = Command::new("python3");
    py.arg("-c")
        .arg(WAIT4)
        .arg(report.path())
        .arg(c.get_program())
        .args(c.get_args());
    for (k, v) in c.get_envs() {
        match v {
            Some(v) => py.env(k, v),
            None => py.env_remove(k),
        };
    }
    let out = py
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .unwrap();
    let text = std::fs::read_to_string(report.path()).unwrap();
    let mut parts = text.split(' ').map(|p| p.parse::<i64>().unwrap());
    let (code, kib) = (parts.next().unwrap(), parts.next().unwrap());
    (
        code as i32,
        kib as f64 / 1024.0,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A pcap of `frames` (time in ns, bytes) with the repo's own writer.
pub fn pcap(linktype: u32, snaplen: u32, frames: &[(i64, Vec<u8>)]) -> Vec<u8> {
    let mut w = PcapWriter::new(Vec::new(), linktype, snaplen, false, false).unwrap();
    for (ts, f) in frames {
        w.write(*ts, f.len() as u32, f).unwrap();
    }
    w.into_inner()
}

/// An Ethernet pcap of `conns` synthetic HTTP-like conversations from `start_ns`.
pub fn pcap_conversations(conns: u32, start_ns: i64) -> Vec<u8> {
    pcap(1, 65535, &synth::conversations(conns, start_ns))
}

/// A little-endian µs pcap record with its header as written: lengths need not match the data.
pub fn pcap_record(ts_sec: u32, caplen: u32, origlen: u32, data: &[u8]) -> Vec<u8> {
    let mut r = Vec::with_capacity(16 + data.len());
    r.extend_from_slice(&ts_sec.to_le_bytes());
    r.extend_from_slice(&0u32.to_le_bytes());
    r.extend_from_slice(&caplen.to_le_bytes());
    r.extend_from_slice(&origlen.to_le_bytes());
    r.extend_from_slice(data);
    r
}

/// `data` as one gzip member.
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

/// The index tuple as `query --format json` prints it: (label, frame numbers) per entry.
pub fn index_of(v: &serde_json::Value) -> Vec<(String, Vec<u64>)> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|f| {
            (
                f["label"].as_str().unwrap().to_string(),
                f["index"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|n| n.as_u64().unwrap())
                    .collect(),
            )
        })
        .collect()
}

/// tshark's `-T fields` rows for every frame of `path` (one value per field, lists as tshark prints them,
/// comma-separated), without IP defragmentation, so that each frame stands for itself.
pub fn tshark_fields(path: &Path, fields: &[&str]) -> Vec<Vec<String>> {
    let mut c = Command::new("/usr/bin/tshark");
    c.args(["-o", "ip.defragment:FALSE", "-o", "ipv6.defragment:FALSE"])
        .arg("-r")
        .arg(path)
        .args(["-T", "fields"]);
    for f in fields {
        c.args(["-e", f]);
    }
    let out = c
        .output()
        .expect("tshark runs (scripts/test.sh installs it)");
    assert!(
        out.status.success(),
        "tshark: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| l.split('\t').map(str::to_owned).collect())
        .collect()
}
