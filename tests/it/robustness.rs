//! Hostile and damaged inputs: every one ingests without a panic, keeps what can be kept, and says what went
//! wrong. Also the fuzzers' regression cases and their seed generator (`cargo test --test robustness -- --ignored
//! write_fuzz_seeds`).

use std::path::{Path, PathBuf};
use std::process::Command;

use super::util::{gzip, pcap as pcap_of, pcap_record, run as traceflow, Run, T0};
use rusqlite::Connection;
use traceflow::capture::CaptureReader;
use traceflow::decode::decode;
use traceflow::dump::pcapwrite::{PcapNgWriter, PcapWriter};
use traceflow::synth::{self, Segment};
use traceflow::trace::Tracer;

// ---------------------------------------------------------------------------------------------------------------
// Fixtures

/// A little-endian pcapng block with `blen` as both its length fields (not necessarily the true length).
fn ng_block(btype: u32, body: &[u8], blen: Option<u32>) -> Vec<u8> {
    let padded = body.len().div_ceil(4) * 4;
    let len = blen.unwrap_or((12 + padded) as u32);
    let mut b = Vec::new();
    b.extend_from_slice(&btype.to_le_bytes());
    b.extend_from_slice(&len.to_le_bytes());
    b.extend_from_slice(body);
    b.resize(8 + padded, 0);
    b.extend_from_slice(&len.to_le_bytes());
    b
}

fn ng_shb() -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&0x1A2B_3C4Du32.to_le_bytes());
    body.extend_from_slice(&1u16.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&(-1i64).to_le_bytes());
    ng_block(0x0A0D_0D0A, &body, None)
}

fn ng_idb(linktype: u16) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&linktype.to_le_bytes());
    body.extend_from_slice(&0u16.to_le_bytes());
    body.extend_from_slice(&65535u32.to_le_bytes());
    ng_block(1, &body, None)
}

/// An enhanced packet block (µs ticks) with a caplen that may lie about the data.
fn ng_epb(iface: u32, ts_us: u64, caplen: u32, data: &[u8], blen: Option<u32>) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&iface.to_le_bytes());
    body.extend_from_slice(&((ts_us >> 32) as u32).to_le_bytes());
    body.extend_from_slice(&(ts_us as u32).to_le_bytes());
    body.extend_from_slice(&caplen.to_le_bytes());
    body.extend_from_slice(&(data.len() as u32).to_le_bytes());
    body.extend_from_slice(data);
    ng_block(6, &body, blen)
}

/// `n` frames of HTTP-like conversations (7 frames each).
fn conv_frames(conns: u32) -> Vec<(i64, Vec<u8>)> {
    synth::conversations(conns, T0)
}

fn seg(flags: u8) -> Vec<u8> {
    synth::eth_ipv4_tcp(&Segment {
        src: [10, 0, 0, 1].into(),
        sport: 1234,
        dst: [10, 0, 0, 2].into(),
        dport: 80,
        seq: 1,
        ack: 0,
        flags,
        payload: b"hello",
    })
}

/// Deterministic pseudo-random bytes (xorshift64*).
fn random_bytes(n: usize, mut seed: u64) -> Vec<u8> {
    let mut out = Vec::with_capacity(n + 8);
    while out.len() < n {
        seed ^= seed >> 12;
        seed ^= seed << 25;
        seed ^= seed >> 27;
        out.extend_from_slice(&seed.wrapping_mul(0x2545_F491_4F6C_DD1D).to_le_bytes());
    }
    out.truncate(n);
    out
}

// ---------------------------------------------------------------------------------------------------------------
// Running the binary

fn ingest(db: &Path, inputs: &[&Path]) -> Run {
    let mut args = vec!["ingest".to_string(), "--jobs".into(), "2".into()];
    args.extend(inputs.iter().map(|p| p.to_string_lossy().into_owned()));
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    traceflow(db, &args)
}

/// One indexed capture, as the `captures` table has it.
#[derive(Debug)]
struct Cap {
    name: String,
    frames: i64,
    flows: i64,
    truncated_at: Option<i64>,
    truncated_why: Option<String>,
}

fn captures(db: &Path) -> Vec<Cap> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT name, frames, flows, truncated_at, truncated_why FROM captures ORDER BY id",
        )
        .unwrap();
    let rows = st
        .query_map([], |r| {
            Ok(Cap {
                name: r.get(0)?,
                frames: r.get(1)?,
                flows: r.get(2)?,
                truncated_at: r.get(3)?,
                truncated_why: r.get(4)?,
            })
        })
        .unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

/// The flow number of each stored frame of the only capture, in frame order (None: no flow).
fn frame_flows(db: &Path) -> Vec<Option<i64>> {
    let c = Connection::open(db).unwrap();
    let mut st = c
        .prepare("SELECT flow_no FROM frames ORDER BY capture_id, number")
        .unwrap();
    let rows = st.query_map([], |r| r.get(0)).unwrap();
    rows.collect::<Result<_, _>>().unwrap()
}

struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    fn new() -> Dir {
        Dir {
            tmp: tempfile::tempdir().unwrap(),
        }
    }
    fn db(&self) -> PathBuf {
        self.tmp.path().join("t.db")
    }
    fn file(&self, name: &str, bytes: &[u8]) -> PathBuf {
        let p = self.tmp.path().join(name);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent).unwrap();
        }
        std::fs::write(&p, bytes).unwrap();
        p
    }
}

/// Ingests one file and returns the run and its capture row (if any).
fn ingest_one(name: &str, bytes: &[u8]) -> (Run, Option<Cap>) {
    let d = Dir::new();
    let p = d.file(name, bytes);
    let run = ingest(&d.db(), &[&p]);
    let mut caps = captures(&d.db());
    assert!(caps.len() <= 1);
    (run, caps.pop())
}

/// The same path in the library: reader -> decoder -> tracer. Returns (frames, truncation offset).
fn read_all(bytes: &[u8]) -> Option<(u64, Option<u64>)> {
    let mut r = CaptureReader::from_reader(Box::new(std::io::Cursor::new(bytes.to_vec()))).ok()?;
    let mut tracer = Tracer::new();
    let mut n = 0;
    while let Some(f) = r.next_frame() {
        n = f.number;
        if let Some(t) = decode(f.linktype, f.data).tcp {
            tracer.observe(f.number, &f.ts, f.origlen, &t, &mut |_| {});
        }
    }
    tracer.finish(&mut |_| {}).ok()?;
    r.drain();
    Some((n, r.truncation().map(|t| t.offset)))
}

// ---------------------------------------------------------------------------------------------------------------
// Empty, header-only and random files

#[test]
fn empty_file_is_skipped_as_not_a_capture() {
    let (run, cap) = ingest_one("empty.pcap", b"");
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(cap.is_none());
    let line = run
        .stderr
        .lines()
        .find(|l| l.contains("empty.pcap"))
        .unwrap_or_else(|| panic!("no line names the file:\n{}", run.stderr));
    assert!(line.contains("not a capture"), "{line}");
}

#[test]
fn header_only_pcap_is_an_empty_capture() {
    let (run, cap) = ingest_one("hdr.pcap", &pcap_of(1, 65535, &[]));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cap = cap.unwrap();
    assert_eq!((cap.frames, cap.flows, cap.truncated_at), (0, 0, None));
}

#[test]
fn header_only_pcapng_is_an_empty_capture() {
    // Section header alone, then section header and interface.
    for (name, bytes) in [
        ("shb.pcapng", ng_shb()),
        ("shb-idb.pcapng", [ng_shb(), ng_idb(1)].concat()),
    ] {
        let (run, cap) = ingest_one(name, &bytes);
        assert_eq!(run.code, 0, "{name}: {}", run.stderr);
        let cap = cap.unwrap();
        assert_eq!((cap.frames, cap.truncated_at), (0, None), "{name}");
    }
    // A pcapng magic and nothing else: the section header is cut off.
    let (run, cap) = ingest_one("magic.pcapng", &0x0A0D_0D0Au32.to_le_bytes());
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(cap.unwrap().truncated_at, Some(0));
    // A pcap header cut off.
    let (run, cap) = ingest_one("short.pcap", &pcap_of(1, 65535, &[])[..10]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(cap.is_none());
    assert!(run.stderr.contains("short.pcap"), "{}", run.stderr);
}

#[test]
fn a_mebibyte_of_random_bytes() {
    let junk = random_bytes(1 << 20, 0x9E37_79B9_7F4A_7C15);
    let (run, cap) = ingest_one("random.bin", &junk);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(cap.is_none());
    assert!(run.stderr.contains("random.bin"), "{}", run.stderr);

    // The same junk behind valid pcap, pcapng, gzip and zstd headers.
    let mut pcap = pcap_of(1, 65535, &conv_frames(1));
    pcap.extend_from_slice(&junk);
    let mut ng = [ng_shb(), ng_idb(1)].concat();
    ng.extend_from_slice(&junk);
    let gz = gzip(&pcap);
    let zst = zstd::encode_all(&pcap[..], 3).unwrap();
    let mut gz_junk = gzip(&pcap_of(1, 65535, &[]));
    gz_junk.extend_from_slice(&junk);
    for (name, bytes) in [
        ("junk.pcap", pcap),
        ("junk.pcapng", ng),
        ("junk.pcap.gz", gz),
        ("junk.pcap.zst", zst),
        ("junk-after.pcap.gz", gz_junk),
    ] {
        let (run, _) = ingest_one(name, &bytes);
        assert!(run.code <= 1, "{name}: {}", run.stderr);
    }
}

// ---------------------------------------------------------------------------------------------------------------
// pcap lengths

#[test]
fn pcap_snaplen_zero_or_huge_does_not_matter() {
    let frames = conv_frames(2);
    for snaplen in [0, 0xFFFF_FFFF] {
        let (run, cap) = ingest_one("snap.pcap", &pcap_of(1, snaplen, &frames));
        assert_eq!(run.code, 0, "snaplen {snaplen}: {}", run.stderr);
        let cap = cap.unwrap();
        assert_eq!(cap.frames, frames.len() as i64, "snaplen {snaplen}");
        assert_eq!(
            (cap.flows, cap.truncated_at),
            (4, None),
            "snaplen {snaplen}"
        );
    }
}

#[test]
fn impossible_record_length_ends_the_capture_there() {
    let frames = conv_frames(1);
    for snaplen in [65535, 0, 0xFFFF_FFFF] {
        let mut bytes = pcap_of(1, snaplen, &frames);
        let cut = bytes.len() as i64;
        // 256 MiB + 1, with a few bytes of "data" and then more valid records that must not be read.
        bytes.extend(pcap_record(1, (256 << 20) + 1, 60, &[0u8; 64]));
        bytes.extend(pcap_record(2, 59, 59, &seg(0x10)));
        let (run, cap) = ingest_one("huge.pcap", &bytes);
        assert_eq!(run.code, 1, "snaplen {snaplen}: {}", run.stderr);
        let cap = cap.unwrap();
        assert_eq!(cap.frames, frames.len() as i64, "snaplen {snaplen}");
        assert_eq!(cap.truncated_at, Some(cut), "snaplen {snaplen}");
        assert!(
            run.stderr
                .contains(&format!("truncated at byte offset {cut}")),
            "{}",
            run.stderr
        );
    }
}

#[test]
fn a_cut_off_record_claiming_a_large_length_costs_no_memory_and_keeps_the_rest() {
    // 200 MiB claimed (possible), 100 bytes present: the reader must not reserve 200 MiB up front.
    let frames = conv_frames(1);
    let mut bytes = pcap_of(1, 0xFFFF_FFFF, &frames);
    let cut = bytes.len() as u64;
    bytes.extend(pcap_record(1, 200 << 20, 200 << 20, &[0u8; 100]));
    assert_eq!(read_all(&bytes), Some((frames.len() as u64, Some(cut))));
}

#[test]
fn pcap_cut_at_every_offset_keeps_every_complete_record() {
    let frames = conv_frames(2);
    let bytes = pcap_of(1, 65535, &frames);
    // Record boundaries.
    let mut ends = vec![24u64];
    for (_, f) in &frames {
        ends.push(ends.last().unwrap() + 16 + f.len() as u64);
    }
    for cut in 24..=bytes.len() {
        let complete = ends.iter().filter(|&&e| e <= cut as u64).count() as u64 - 1;
        let at_boundary = ends.contains(&(cut as u64));
        let want_trunc = (!at_boundary).then_some(ends[complete as usize]);
        assert_eq!(
            read_all(&bytes[..cut]),
            Some((complete, want_trunc)),
            "cut at {cut}"
        );
    }
}

// ---------------------------------------------------------------------------------------------------------------
// pcapng structure

#[test]
fn pcapng_block_length_shorter_than_its_contents() {
    let f = seg(0x10);
    let good = ng_epb(0, 1, f.len() as u32, &f, None);
    let head = [ng_shb(), ng_idb(1), good.clone()].concat();
    let at = head.len() as i64;
    let cases: Vec<(&str, Vec<u8>)> = vec![
        // caplen says 100 bytes, the block holds 20 + 40.
        ("caplen-past-block", ng_epb(0, 2, 100, &f[..40], None)),
        // The block length leaves no room for the fixed fields.
        ("block-too-short", ng_block(6, &[0u8; 8], None)),
        // Lengths below 12, unaligned, and a trailer that disagrees.
        ("length-8", ng_block(6, &[], Some(8))),
        ("length-unaligned", ng_block(6, &[0u8; 20], Some(33))),
        ("trailer-mismatch", {
            let mut b = ng_epb(0, 2, f.len() as u32, &f, None);
            let n = b.len();
            b[n - 4..].copy_from_slice(&7u32.to_le_bytes());
            b
        }),
        (
            "interface-block-too-short",
            ng_block(1, &[1, 0, 0, 0], None),
        ),
        ("length-past-eof", ng_block(6, &[0u8; 20], Some(4096))),
    ];
    for (name, bad) in cases {
        let bytes = [head.clone(), bad, good.clone()].concat();
        let (run, cap) = ingest_one(&format!("{name}.pcapng"), &bytes);
        assert_eq!(run.code, 1, "{name}: {}", run.stderr);
        let cap = cap.unwrap_or_else(|| panic!("{name}: not indexed: {}", run.stderr));
        assert_eq!(
            cap.frames, 1,
            "{name}: the frame before the bad block stays"
        );
        assert_eq!(
            cap.truncated_at,
            Some(at),
            "{name}: {:?}",
            cap.truncated_why
        );
    }
}

#[test]
fn pcapng_section_without_interface_blocks() {
    let f = seg(0x10);
    // A section with no interface at all: its first packet ends the capture.
    let bytes = [ng_shb(), ng_epb(0, 1, f.len() as u32, &f, None)].concat();
    let (run, cap) = ingest_one("noif.pcapng", &bytes);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let cap = cap.unwrap();
    assert_eq!((cap.frames, cap.truncated_at), (0, Some(28)));
    // A second section without interfaces: interface ids restart per section, so its packet has none.
    let first = [ng_shb(), ng_idb(1), ng_epb(0, 1, f.len() as u32, &f, None)].concat();
    let bytes = [
        first.clone(),
        ng_shb(),
        ng_epb(0, 2, f.len() as u32, &f, None),
    ]
    .concat();
    let (run, cap) = ingest_one("noif2.pcapng", &bytes);
    assert_eq!(run.code, 1, "{}", run.stderr);
    let cap = cap.unwrap();
    assert_eq!(cap.frames, 1);
    assert_eq!(cap.truncated_at, Some(first.len() as i64 + 28));
    // Simple packet blocks need an interface too.
    let spb = {
        let mut body = (f.len() as u32).to_le_bytes().to_vec();
        body.extend_from_slice(&f);
        ng_block(3, &body, None)
    };
    let (run, cap) = ingest_one("noif3.pcapng", &[ng_shb(), spb].concat());
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert_eq!(cap.unwrap().frames, 0);
}

#[test]
fn pcapng_packet_referring_to_a_missing_interface() {
    let f = seg(0x10);
    let head = [ng_shb(), ng_idb(1), ng_epb(0, 1, f.len() as u32, &f, None)].concat();
    for bad_if in [1, 3, u32::MAX] {
        let bytes = [
            head.clone(),
            ng_epb(bad_if, 2, f.len() as u32, &f, None),
            ng_epb(0, 3, f.len() as u32, &f, None),
        ]
        .concat();
        let (run, cap) = ingest_one("missing-if.pcapng", &bytes);
        assert_eq!(run.code, 1, "{}", run.stderr);
        let cap = cap.unwrap();
        assert_eq!(cap.frames, 1, "interface {bad_if}");
        assert_eq!(cap.truncated_at, Some(head.len() as i64));
        assert!(
            cap.truncated_why
                .as_deref()
                .unwrap_or("")
                .contains("interface"),
            "{:?}",
            cap.truncated_why
        );
    }
}

#[test]
fn pcapng_cut_at_every_offset_never_panics_and_keeps_whole_blocks() {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let a = w.add_interface(1, 65535, 6).unwrap();
    let b = w.add_interface(1, 65535, 9).unwrap();
    let frames = conv_frames(1);
    for (i, (ts, f)) in frames.iter().enumerate() {
        w.write(if i % 2 == 0 { a } else { b }, *ts, f.len() as u32, f)
            .unwrap();
    }
    let bytes = w.into_inner();
    let whole = read_all(&bytes).unwrap();
    assert_eq!(whole, (frames.len() as u64, None));
    let mut last = 0;
    for cut in 4..bytes.len() {
        let (n, _) = read_all(&bytes[..cut]).unwrap();
        assert!(n >= last && n <= frames.len() as u64, "cut at {cut}");
        last = n;
    }
}

// ---------------------------------------------------------------------------------------------------------------
// Compressed streams cut early

fn cut_compressed(name: &str, compressed: &[u8], total_frames: usize) {
    let cut = &compressed[..compressed.len() * 6 / 10];
    let (run, cap) = ingest_one(name, cut);
    assert_eq!(run.code, 1, "{name}: {}", run.stderr);
    let cap = cap.unwrap_or_else(|| panic!("{name} not indexed: {}", run.stderr));
    assert!(
        cap.frames > 0 && (cap.frames as usize) < total_frames,
        "{name}: kept {} of {total_frames} frames",
        cap.frames
    );
    assert!(cap.truncated_at.is_some(), "{name}: not marked truncated");
    assert!(
        run.stderr.contains("warning") && run.stderr.contains(name),
        "{}",
        run.stderr
    );
}

#[test]
fn gzip_stream_cut_early_keeps_the_frames_before_the_cut() {
    let frames = conv_frames(3000);
    cut_compressed(
        "cut.pcap.gz",
        &gzip(&pcap_of(1, 65535, &frames)),
        frames.len(),
    );
}

#[test]
fn zstd_stream_cut_early_keeps_the_frames_before_the_cut() {
    let frames = conv_frames(3000);
    let zst = zstd::encode_all(&pcap_of(1, 65535, &frames)[..], 3).unwrap();
    cut_compressed("cut.pcap.zst", &zst, frames.len());
}

#[test]
fn content_hash_covers_the_whole_file_even_after_a_decompression_error() {
    // Two files that share their first 2 MiB: a gzip capture followed by junk that differs only at the end.
    // They are different contents, so both are indexed; neither is "already indexed".
    let d = Dir::new();
    let mut a = gzip(&pcap_of(1, 65535, &conv_frames(2)));
    a.extend(random_bytes(3 << 20, 7));
    let mut b = a.clone();
    *b.last_mut().unwrap() ^= 0xff;
    let pa = d.file("a.pcap.gz", &a);
    let pb = d.file("b.pcap.gz", &b);
    let run = ingest(&d.db(), &[&pa, &pb]);
    assert!(!run.stderr.contains("already indexed"), "{}", run.stderr);
    let caps = captures(&d.db());
    assert_eq!(caps.len(), 2, "{}", run.stderr);
    assert!(caps.iter().all(|c| c.frames == 14), "{caps:?}");
}

// ---------------------------------------------------------------------------------------------------------------
// Paths

#[test]
fn a_folder_is_walked_recursively_in_sorted_order() {
    let d = Dir::new();
    let root = d.tmp.path().join("archive");
    d.file("archive/b/2.pcap", &pcap_of(1, 65535, &conv_frames(2)));
    d.file("archive/a.pcap", &pcap_of(1, 65535, &conv_frames(1)));
    d.file("archive/b/1/x.pcap", &pcap_of(1, 65535, &conv_frames(3)));
    d.file("archive/c.pcap", &pcap_of(1, 65535, &[]));
    let run = ingest(&d.db(), &[&root]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let names: Vec<String> = captures(&d.db()).into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["a.pcap", "x.pcap", "2.pcap", "c.pcap"]);
}

#[test]
fn symbolic_link_loops_in_a_folder_end() {
    let d = Dir::new();
    let dir = d.tmp.path().join("loops");
    d.file("loops/d/a.pcap", &pcap_of(1, 65535, &conv_frames(2)));
    std::os::unix::fs::symlink("..", dir.join("d/up")).unwrap();
    std::os::unix::fs::symlink(".", dir.join("d/self")).unwrap();
    std::os::unix::fs::symlink("../d", dir.join("d/again")).unwrap();
    let out = assert_cmd::Command::cargo_bin("traceflow")
        .unwrap()
        .arg("--db")
        .arg(d.db())
        .args(["ingest", "--jobs", "1"])
        .arg(&dir)
        .timeout(std::time::Duration::from_secs(30))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "hung or failed: {stderr}");
    assert_eq!(captures(&d.db()).len(), 1);
    assert!(stderr.contains("1 file:"), "each file once: {stderr}");
}

#[test]
fn dangling_symlinks() {
    let d = Dir::new();
    let link = d.tmp.path().join("gone.pcap");
    std::os::unix::fs::symlink(d.tmp.path().join("nowhere.pcap"), &link).unwrap();
    let good = d.file("good.pcap", &pcap_of(1, 65535, &conv_frames(1)));
    // Named on the command line: that input failed, the others are indexed.
    let run = ingest(&d.db(), &[&link, &good]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("gone.pcap"), "{}", run.stderr);
    assert_eq!(captures(&d.db()).len(), 1);
    // Inside a folder: named in a warning, and the rest of the folder is indexed.
    let dir = d.tmp.path().join("dir");
    d.file("dir/ok.pcap", &pcap_of(1, 65535, &conv_frames(2)));
    std::os::unix::fs::symlink(d.tmp.path().join("nowhere"), dir.join("dangling.pcap")).unwrap();
    let run = ingest(&d.db(), &[&dir]);
    assert!(run.code <= 1, "{}", run.stderr);
    assert!(run.stderr.contains("dangling.pcap"), "{}", run.stderr);
    assert_eq!(captures(&d.db()).len(), 2);
}

#[test]
fn a_path_through_a_file_and_a_missing_path_fail_alone() {
    let d = Dir::new();
    let good = d.file("good.pcap", &pcap_of(1, 65535, &conv_frames(1)));
    let through = good.join("inside.pcap"); // ENOTDIR
    let missing = d.tmp.path().join("missing.pcap");
    let run = ingest(&d.db(), &[&through, &missing, &good]);
    assert_eq!(run.code, 1, "{}", run.stderr);
    assert!(run.stderr.contains("inside.pcap"), "{}", run.stderr);
    assert!(run.stderr.contains("missing.pcap"), "{}", run.stderr);
    assert_eq!(captures(&d.db()).len(), 1);
}

/// Permission denied. Root reads a chmod 000 file anyway (CAP_DAC_OVERRIDE), so as root the binary is run as
/// `nobody` through `setpriv`; the test says so and passes when neither way is possible (e.g. no setpriv, or a
/// sandbox that forbids changing user).
#[test]
fn an_unreadable_file_fails_alone() {
    use std::os::unix::fs::PermissionsExt;
    let d = Dir::new();
    std::fs::set_permissions(d.tmp.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
    let secret = d.file("secret.pcap", &pcap_of(1, 65535, &conv_frames(1)));
    let good = d.file("good.pcap", &pcap_of(1, 65535, &conv_frames(2)));
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o000)).unwrap();
    let closed = d.tmp.path().join("closed");
    std::fs::create_dir(&closed).unwrap();
    d.file("closed/hidden.pcap", &pcap_of(1, 65535, &conv_frames(3)));
    std::fs::set_permissions(&closed, std::fs::Permissions::from_mode(0o000)).unwrap();
    let bin = assert_cmd::cargo::cargo_bin("traceflow");
    let is_root = std::fs::read(&secret).is_ok();
    const NOBODY: [&str; 4] = ["--reuid=65534", "--regid=65534", "--clear-groups", "--"];
    if is_root {
        let probe = Command::new("setpriv").args(NOBODY).arg("true").status();
        if !probe.as_ref().is_ok_and(|s| s.success()) {
            eprintln!(
                "skipped: running as root, and setpriv cannot drop to nobody here ({probe:?})"
            );
            return;
        }
    }
    let mut cmd = if is_root {
        let mut c = Command::new("setpriv");
        c.args(NOBODY).arg(&bin);
        c
    } else {
        Command::new(&bin)
    };
    let out = cmd
        .arg("--db")
        .arg(d.db())
        .args(["ingest", "--jobs", "1"])
        .args([&secret, &closed, &good])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let secret_line = stderr.lines().find(|l| l.contains("secret.pcap"));
    assert!(
        secret_line.is_some_and(|l| l.contains("ermission denied")),
        "{stderr}"
    );
    assert!(stderr.contains("closed"), "{stderr}");
    let names: Vec<String> = captures(&d.db()).into_iter().map(|c| c.name).collect();
    assert_eq!(names, ["good.pcap"]);
}

// ---------------------------------------------------------------------------------------------------------------
// Malformed headers: stored as frames, no flow, the capture goes on

#[test]
fn malformed_headers_are_frames_without_a_flow() {
    let good = seg(0x18);
    let with = |edit: &dyn Fn(&mut Vec<u8>)| {
        let mut f = good.clone();
        edit(&mut f);
        f
    };
    let malformed: Vec<(&str, Vec<u8>)> = vec![
        ("IHL 4", with(&|f| f[14] = 0x44)),
        ("IHL 0", with(&|f| f[14] = 0x40)),
        // IHL 15 says 60 bytes of IP header; only 20 + 25 are there after Ethernet... cut to 14 + 50.
        (
            "IHL past captured bytes",
            with(&|f| {
                f[14] = 0x4F;
                f.truncate(14 + 50);
            }),
        ),
        ("IPv4 header cut", with(&|f| f.truncate(14 + 12))),
        (
            "TCP header cut before flags",
            with(&|f| f.truncate(14 + 20 + 12)),
        ),
        (
            "IPv4 total length under IHL",
            with(&|f| {
                f[16] = 0;
                f[17] = 10;
            }),
        ),
        ("IPv6 header cut", {
            let mut f = good[..14].to_vec();
            f[12..14].copy_from_slice(&[0x86, 0xdd]);
            f.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, 6, 64]);
            f
        }),
        ("Ethernet header cut", good[..10].to_vec()),
        ("empty frame", Vec::new()),
    ];
    let mut frames = vec![(T0, good.clone())];
    frames.extend(malformed.iter().map(|(_, f)| (T0, f.clone())));
    frames.push((T0 + 1, good.clone()));
    let (run, cap) = ingest_one("malformed.pcap", &pcap_of(1, 65535, &frames));
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cap = cap.unwrap();
    assert_eq!(cap.frames, frames.len() as i64);
    assert_eq!(cap.truncated_at, None);
    let d = Dir::new();
    let p = d.file("malformed.pcap", &pcap_of(1, 65535, &frames));
    ingest(&d.db(), &[&p]);
    let flows = frame_flows(&d.db());
    assert_eq!(flows.len(), frames.len());
    assert_eq!(flows[0], Some(1));
    assert_eq!(*flows.last().unwrap(), Some(1), "the capture goes on");
    for (i, (what, _)) in malformed.iter().enumerate() {
        assert_eq!(flows[i + 1], None, "{what} must have no flow");
    }
}

/// A TCP data offset under 5 leaves a frame that still holds the 14 bytes up to the flags. The decoder follows
/// tshark (and the conformance reference) and keeps it as a TCP packet with no flags; what matters here is that
/// it is stored and never aborts the capture.
#[test]
fn tcp_data_offset_under_five_never_aborts_the_capture() {
    let good = seg(0x18);
    let mut bad = good.clone();
    bad[14 + 20 + 12] = 0x20; // data offset 2
    let mut zero = good.clone();
    zero[14 + 20 + 12] = 0x00;
    let frames = vec![(T0, good.clone()), (T0, bad), (T0, zero), (T0, good)];
    let d = Dir::new();
    let path = d.file("doff.pcap", &pcap_of(1, 65535, &frames));
    let run = ingest(&d.db(), &[&path]);
    assert_eq!(run.code, 0, "{}", run.stderr);
    let cap = captures(&d.db()).pop().unwrap();
    assert_eq!((cap.frames, cap.truncated_at), (4, None));
    // The malformed segments are stored, but belong to no flow; the good ones around them share one flow.
    assert_eq!(frame_flows(&d.db()), vec![Some(1), None, None, Some(1)]);
}

// ---------------------------------------------------------------------------------------------------------------
// Fuzz seeds

/// Writes the fuzzers' seeds: small captures into `fuzz/seeds/ingest_bytes` (committed), link-type-tagged frames
/// into `fuzz/seeds/decode_linktype`, and every frame of the conformance captures under a supported link type into
/// `fuzz/corpus/decode_linktype` (git-ignored).
#[test]
#[ignore]
fn write_fuzz_seeds() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz");
    let ingest_dir = root.join("seeds/ingest_bytes");
    let decode_dir = root.join("seeds/decode_linktype");
    std::fs::create_dir_all(&ingest_dir).unwrap();
    std::fs::create_dir_all(&decode_dir).unwrap();
    let put = |dir: &Path, name: &str, bytes: &[u8]| std::fs::write(dir.join(name), bytes).unwrap();

    let frames = conv_frames(1);
    let mut few = frames[..4].to_vec();
    few[3].1.truncate(60);
    put(&ingest_dir, "le-us.pcap", &pcap_of(1, 65535, &few));
    let mut w = PcapWriter::new(Vec::new(), 1, 0, true, true).unwrap();
    for (ts, f) in &frames {
        w.write(*ts, f.len() as u32, f).unwrap();
    }
    let be_ns = w.into_inner();
    put(&ingest_dir, "be-ns.pcap", &be_ns);
    let raw: Vec<(i64, Vec<u8>)> = few.iter().map(|(t, f)| (*t, f[14..].to_vec())).collect();
    put(&ingest_dir, "raw.pcap", &pcap_of(101, 65535, &raw));
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    let a = w.add_interface(1, 65535, 6).unwrap();
    let b = w.add_interface(101, 65535, 9).unwrap();
    for (i, (ts, f)) in few.iter().enumerate() {
        if i % 2 == 0 {
            w.write(a, *ts, f.len() as u32, f).unwrap();
        } else {
            w.write(b, *ts, f.len() as u32, &f[14..]).unwrap();
        }
    }
    let ng = w.into_inner();
    put(&ingest_dir, "two-if.pcapng", &ng);
    let f = seg(0x11);
    let spb = {
        let mut body = (f.len() as u32).to_le_bytes().to_vec();
        body.extend_from_slice(&f);
        ng_block(3, &body, None)
    };
    let opb = {
        let mut body = vec![0, 0, 0, 0];
        body.extend_from_slice(&0u32.to_le_bytes());
        body.extend_from_slice(&5u32.to_le_bytes());
        body.extend_from_slice(&(f.len() as u32).to_le_bytes());
        body.extend_from_slice(&(f.len() as u32).to_le_bytes());
        body.extend_from_slice(&f);
        ng_block(2, &body, None)
    };
    put(
        &ingest_dir,
        "sections.pcapng",
        &[
            ng_shb(),
            ng_idb(1),
            spb,
            ng_block(5, &[0u8; 8], None),
            ng_shb(),
            ng_idb(1),
            opb,
        ]
        .concat(),
    );
    put(&ingest_dir, "two-if.pcapng.gz", &gzip(&ng));
    put(
        &ingest_dir,
        "le-us.pcap.zst",
        &zstd::encode_all(&pcap_of(1, 65535, &few)[..], 3).unwrap(),
    );

    // decode_linktype: first byte = index into the fuzz target's link type list.
    const LINKTYPES: [u32; 16] = [
        0, 1, 9, 12, 14, 50, 101, 104, 105, 108, 113, 127, 228, 229, 239, 276,
    ];
    let tagged = |lt: u32, f: &[u8]| {
        let i = LINKTYPES.iter().position(|&l| l == lt).unwrap() as u8;
        [&[i][..], f].concat()
    };
    let eth = seg(0x18);
    put(&decode_dir, "ether", &tagged(1, &eth));
    put(&decode_dir, "raw", &tagged(101, &eth[14..]));
    put(
        &decode_dir,
        "null",
        &tagged(0, &[&[2, 0, 0, 0][..], &eth[14..]].concat()),
    );
    let mut sll = vec![0, 0, 0, 1, 0, 6, 2, 0, 0, 0, 0, 1, 0, 0, 0x08, 0x00];
    sll.extend_from_slice(&eth[14..]);
    put(&decode_dir, "sll", &tagged(113, &sll));
    let mut vlan = eth[..12].to_vec();
    vlan.extend_from_slice(&[0x81, 0x00, 0, 5, 0x08, 0x00]);
    vlan.extend_from_slice(&eth[14..]);
    put(&decode_dir, "vlan", &tagged(1, &vlan));

    let corpus = root.join("corpus/decode_linktype");
    std::fs::create_dir_all(&corpus).unwrap();
    let captures = Path::new("/work/shared/conformance/captures");
    let Ok(dir) = std::fs::read_dir(captures) else {
        return;
    };
    let mut n = 0;
    for e in dir.flatten() {
        let Ok(mut r) = CaptureReader::open(&e.path()) else {
            continue;
        };
        let mut k = 0;
        while let Some(f) = r.next_frame() {
            if LINKTYPES.contains(&f.linktype) && k < 40 {
                let name = format!("{}-{}", e.file_name().to_string_lossy(), f.number);
                std::fs::write(corpus.join(name), tagged(f.linktype, f.data)).unwrap();
                k += 1;
                n += 1;
            }
        }
    }
    eprintln!("wrote {n} conformance frames into {}", corpus.display());
}

// ---------------------------------------------------------------------------------------------------------------
// Clocks that go back, and times far from now

/// A SYN of 192.168.1.10:`sport` to 10.0.0.80:80 (one directed flow per port).
fn syn_from(sport: u16) -> Vec<u8> {
    synth::eth_ipv4_tcp(&Segment {
        src: std::net::Ipv4Addr::new(192, 168, 1, 10),
        sport,
        dst: std::net::Ipv4Addr::new(10, 0, 0, 80),
        dport: 80,
        seq: 1000,
        ack: 0,
        flags: 0x02,
        payload: b"",
    })
}

/// The one line of `r`'s stdout as JSON, or each line (JSON lines), or the list.
fn json_rows(r: &Run, what: &str) -> Vec<serde_json::Value> {
    assert_eq!(r.code, 0, "{what}: {}", r.stderr);
    if let Ok(serde_json::Value::Array(rows)) = serde_json::from_str(&r.stdout) {
        return rows;
    }
    r.stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: {e}: {l}")))
        .collect()
}

#[test]
fn a_clock_that_goes_back_gives_a_negative_duration_in_every_listing() {
    // Two flows whose second frame is earlier than their first: by 512 µs (a clock stepped back), and by
    // 1381533734.993065 s (a frame stamped near the epoch, as in tcpdump's kday4.pcap). The durations are the
    // differences of the frames' decimal times, worked out here by hand: -0.000512 and -1381533734.993065, with
    // the nine places every listing gives.
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("back.pcap");
    let t = 1_381_533_735_500_000_000i64;
    let frames = vec![
        (t, syn_from(40000)),
        (t - 512_000, syn_from(40000)),
        (t + 1_000, syn_from(40001)),
        (506_935_000 + 1_000, syn_from(40001)),
    ];
    std::fs::write(&cap, pcap_of(1, 65535, &frames)).unwrap();
    let db = tmp.path().join("t.db");
    let r = traceflow(
        &db,
        &["ingest", "-q", "--connections", cap.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let want = ["-0.000512000", "-1381533734.993065000"];
    for cmd in ["flows", "connections"] {
        for format in ["json", "jsonl"] {
            let rows = json_rows(
                &traceflow(&db, &[cmd, "duration < 0s", "--format", format]),
                &format!("{cmd} {format}"),
            );
            let got: Vec<&str> = rows
                .iter()
                .map(|r| r["duration"].as_str().unwrap())
                .collect();
            assert_eq!(got, want, "{cmd} --format {format}");
        }
        let csv = traceflow(&db, &[cmd, "duration < 0s", "--format", "csv"]);
        assert_eq!(csv.code, 0, "{}", csv.stderr);
        let mut lines = csv.stdout.lines();
        let col = lines
            .next()
            .unwrap()
            .split(',')
            .position(|c| c == "duration")
            .unwrap();
        let got: Vec<&str> = lines.map(|l| l.split(',').nth(col).unwrap()).collect();
        assert_eq!(got, want, "{cmd} --format csv");
        let table = traceflow(&db, &[cmd, "duration < 0s", "--format", "table"]);
        assert_eq!(table.code, 0, "{}", table.stderr);
        let rows: Vec<&str> = table.stdout.lines().skip(1).collect();
        assert_eq!(rows.len(), 2, "{}", table.stdout);
        for (row, w) in rows.iter().zip(want) {
            assert!(
                row.split_whitespace().any(|c| c == w),
                "{cmd} table: {w} not in {row}"
            );
        }
    }
}

/// A pcapng of one Ethernet interface (`tsresol`, `tsoffset`) with a SYN from port 40000 + i at each of `ticks`.
fn pcapng_ticks(tsresol: u8, tsoffset: i64, ticks: &[u64]) -> Vec<u8> {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    w.add_interface_offset(1, 65535, tsresol, tsoffset).unwrap();
    for (i, &t) in ticks.iter().enumerate() {
        let f = syn_from(40000 + i as u16);
        w.write_ticks(0, t, f.len() as u32, &f).unwrap();
    }
    w.into_inner()
}

/// Labels in frame order of the flows of `db` (a capture of one SYN per flow).
fn labels(db: &Path) -> Vec<String> {
    let rows = json_rows(&traceflow(db, &["query", "--format", "json"]), "query");
    let mut v: Vec<(u64, String)> = rows
        .iter()
        .map(|r| {
            (
                r["index"][0].as_u64().unwrap(),
                r["label"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    v.sort();
    v.into_iter().map(|(_, l)| l).collect()
}

#[test]
fn pcapng_times_past_2_63_seconds_keep_pypcapkits_labels() {
    // if_tsresol 0 (whole seconds): ticks of 2^64 - 1, 2^63 and 2^63 + 1 s. The labels are PyPCAPKit 1.4.1's,
    // `repr(float(Decimal(ticks) / 10**0 + 0))` as its _read_timestamp defines time_epoch (run on this capture;
    // PyPCAPKit itself stops on the first of them, as datetime cannot hold it). The first was `-1.0`.
    let tmp = tempfile::tempdir().unwrap();
    let cap = tmp.path().join("far.pcapng");
    std::fs::write(
        &cap,
        pcapng_ticks(0, 0, &[u64::MAX, 1 << 63, (1 << 63) + 1]),
    )
    .unwrap();
    let db = tmp.path().join("t.db");
    let r = traceflow(&db, &["ingest", "-q", cap.to_str().unwrap()]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    let key = |p: u16| format!("192.168.1.10_{p}-10.0.0.80_80-");
    assert_eq!(
        labels(&db),
        [
            format!("{}1.8446744073709552e+19", key(40000)),
            format!("{}9.223372036854776e+18", key(40001)),
            format!("{}9.223372036854776e+18", key(40002)),
        ]
    );
}

#[test]
fn a_dump_warns_once_per_capture_of_times_its_format_cannot_hold() {
    let tmp = tempfile::tempdir().unwrap();
    let db = tmp.path().join("t.db");
    // ns ticks of 2^63 and 2^63 + 1 (the year 2262): distinct times the index's ns in 64 bits cannot hold; and a
    // capture in 2200 (past pcap's 32-bit seconds) with a frame before 1970 (past pcapng's unsigned ticks).
    let past = tmp.path().join("past-2262.pcapng");
    std::fs::write(&past, pcapng_ticks(9, 0, &[1 << 63, (1 << 63) + 1])).unwrap();
    let y2200 = 7_258_118_400u64;
    let odd = tmp.path().join("odd.pcapng");
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    w.add_interface_offset(1, 65535, 6, -10).unwrap();
    w.add_interface_offset(1, 65535, 6, 0).unwrap();
    let (a, b) = (syn_from(41000), syn_from(41001));
    w.write_ticks(0, 500_000, a.len() as u32, &a).unwrap();
    w.write_ticks(1, y2200 * 1_000_000, b.len() as u32, &b)
        .unwrap();
    std::fs::write(&odd, w.into_inner()).unwrap();
    let r = traceflow(
        &db,
        &[
            "ingest",
            "-q",
            past.to_str().unwrap(),
            odd.to_str().unwrap(),
        ],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let warnings = |r: &Run| -> Vec<String> {
        r.stderr
            .lines()
            .filter(|l| l.contains("out of range"))
            .map(String::from)
            .collect()
    };
    let out = tmp.path().join("out");
    // Each format in turn, for each capture: one line naming the capture, whatever the number of frames.
    for (format, capture, why) in [
        ("pcap", "past-2262.pcapng", "1677 to 2262"),
        ("pcapng", "past-2262.pcapng", "1677 to 2262"),
        ("json", "past-2262.pcapng", "1677 to 2262"),
        ("plist", "past-2262.pcapng", "1677 to 2262"),
        ("text", "past-2262.pcapng", "1677 to 2262"),
        ("pcap", "odd.pcapng", "1970 to 2106"),
        ("pcapng", "odd.pcapng", "before 1970"),
    ] {
        if format == "pcap" || format == "pcapng" {
            let r = traceflow(
                &db,
                &[
                    "flows",
                    &format!("capture {capture}"),
                    &format!("--{format}"),
                    out.to_str().unwrap(),
                ],
            );
            assert_eq!(r.code, 0, "{}", r.stderr);
            let w = warnings(&r);
            assert_eq!(w.len(), 1, "flows --{format} of {capture}: {}", r.stderr);
            assert!(w[0].contains(capture) && w[0].contains(why), "{}", w[0]);
        }
        let r = traceflow(
            &db,
            &[
                "query",
                "--capture",
                capture,
                "--dump",
                tmp.path()
                    .join(format!("d-{format}-{capture}"))
                    .to_str()
                    .unwrap(),
                "--format",
                format,
            ],
        );
        assert_eq!(r.code, 0, "{}", r.stderr);
        let w = warnings(&r);
        assert_eq!(
            w.len(),
            1,
            "query --dump --format {format} of {capture}: {}",
            r.stderr
        );
        assert!(w[0].contains(capture) && w[0].contains(why), "{}", w[0]);
    }
    // JSON holds a time before 1970: no warning, and the time as PyPCAPKit's block2frame gives it
    // (time_epoch 0.5 - 10 = -9.5; ts_sec and ts_usec truncated toward zero, as int() does). They were
    // 18446744073709551606 and 500000 (ts_sec wrapped) with a time_epoch of -10.5.
    let label = labels(&db)
        .into_iter()
        .find(|l| l.ends_with("-9.5"))
        .expect("the label of the frame before 1970");
    let r = traceflow(&db, &["query", "--flow", &label, "--format", "json"]);
    assert_eq!(r.code, 0, "{}", r.stderr);
    assert!(warnings(&r).is_empty(), "{}", r.stderr);
    let doc: serde_json::Value = serde_json::from_str(&r.stdout).unwrap();
    let frame = doc.as_object().unwrap().values().next().unwrap();
    assert_eq!(frame["time_epoch"], "-9.500000");
    assert_eq!(frame["frame_info"]["ts_sec"], -9);
    assert_eq!(frame["frame_info"]["ts_usec"], -500_000);
    // A pcap dump of the 2200 frame is written as the last second pcap holds, not wrapped to 1973.
    let late = labels(&db)
        .into_iter()
        .find(|l| l.ends_with(&format!("-{y2200}.0")))
        .expect("the label of the frame in 2200");
    let file = tmp.path().join("late.pcap");
    let r = traceflow(
        &db,
        &["query", "--flow", &late, "-o", file.to_str().unwrap()],
    );
    assert_eq!(r.code, 0, "{}", r.stderr);
    let bytes = std::fs::read(&file).unwrap();
    let sec = u32::from_le_bytes(bytes[24..28].try_into().unwrap());
    assert_eq!(sec, u32::MAX);
}
