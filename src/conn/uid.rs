//! A connection's conn.log uid: Zeek's shape (`C` and base62 digits, `UID::Base62`, 96 bits), here of the
//! SHA-1 of what names the connection in its capture, so the same capture gives the same uids in any database.

use sha1::{Digest, Sha1};

/// The uid of the connection numbered `conn_no` in its capture, with this Community ID and first frame time.
pub fn uid(community_id: &str, first_ns: i64, conn_no: i64) -> String {
    let mut h = Sha1::new();
    h.update(community_id.as_bytes());
    h.update(first_ns.to_be_bytes());
    h.update(conn_no.to_be_bytes());
    let d: [u8; 20] = h.finalize().into();
    let hi = u64::from_be_bytes(d[0..8].try_into().expect("8 bytes"));
    let lo = u64::from(u32::from_be_bytes(d[8..12].try_into().expect("4 bytes")));
    let mut s = String::from("C");
    base62(hi, &mut s);
    base62(lo, &mut s);
    s
}

/// Zeek's `util::uitoa_n` in base 62: least significant digit first.
fn base62(mut v: u64, out: &mut String) {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    loop {
        out.push(char::from(DIGITS[(v % 62) as usize]));
        v /= 62;
        if v == 0 {
            break;
        }
    }
}
