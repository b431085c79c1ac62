//! Compressed captures: reading gzip or zstd must give exactly the frames of reading the same bytes uncompressed.
//!
//! Input: byte 0 picks the compression (bit 0: gzip or zstd), whether the stream is cut into two members/frames
//! (bit 1, at a point chosen by the other bits: `MultiGzDecoder` and zstd must join them) and the level (bit 2);
//! the rest is the capture.
#![no_main]

use std::io::{Cursor, Write};

use libfuzzer_sys::fuzz_target;
use traceflow::capture::{CaptureReader, Compression, Format, Interface, Truncation};

#[derive(Debug, PartialEq)]
struct Read {
    format: Format,
    frames: Vec<(u64, i64, u32, u32, u32, u32, u64, Vec<u8>)>,
    interfaces: Vec<Interface>,
    truncation: Option<Truncation>,
}

fn read(bytes: Vec<u8>, compression: Compression) -> Result<Read, String> {
    let len = bytes.len() as u64;
    let mut r = CaptureReader::from_reader(Box::new(Cursor::new(bytes))).map_err(|e| e.to_string())?;
    assert_eq!(r.compression, compression, "compression detected by magic");
    let mut frames = Vec::new();
    while let Some(f) = r.next_frame() {
        assert_eq!(f.data.len(), f.caplen as usize);
        frames.push((
            f.number,
            f.ts.as_ns(),
            f.caplen,
            f.origlen,
            f.iface,
            f.linktype,
            f.offset,
            f.data.to_vec(),
        ));
    }
    let out = Read {
        format: r.format,
        frames,
        interfaces: r.interfaces().to_vec(),
        truncation: r.truncation().cloned(),
    };
    r.drain();
    assert_eq!(r.bytes_read(), len, "drain reads the whole file");
    Ok(out)
}

fn gzip(b: &[u8], level: u32) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::new(level));
    e.write_all(b).unwrap();
    e.finish().unwrap()
}

fn zstd(b: &[u8], level: i32) -> Vec<u8> {
    zstd::stream::encode_all(b, level).unwrap()
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, raw)) = data.split_first() else {
        return;
    };
    // Bytes that are themselves compressed would be decompressed on the direct read only.
    if raw.starts_with(&[0x1f, 0x8b]) || raw.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
        return;
    }
    let zst = pick & 1 != 0;
    let cut = if pick & 2 != 0 {
        (pick as usize >> 3) * raw.len() / 31
    } else {
        raw.len()
    };
    let high = pick & 4 != 0;
    let mut packed = Vec::new();
    for part in [&raw[..cut], &raw[cut..]] {
        if part.is_empty() && !packed.is_empty() {
            continue;
        }
        packed.extend(if zst {
            zstd(part, if high { 9 } else { 1 })
        } else {
            gzip(part, if high { 9 } else { 1 })
        });
    }
    let compression = if zst { Compression::Zstd } else { Compression::Gzip };
    let direct = read(raw.to_vec(), Compression::None);
    let unpacked = read(packed, compression);
    assert_eq!(unpacked, direct, "compressed ({compression:?}) and direct reads differ");
});
