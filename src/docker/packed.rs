//! The form of the two labels that grow with an environment: the recorded spec
//! ([`super::SPEC_LABEL`]) and the deployment history ([`super::HISTORY_LABEL`]), written as
//! `deflate+base64:` and the raw-deflated JSON in base64.
//!
//! Why: a container list returns every label of every container, and it is what `status` and
//! every `start` ask each ship for. In clear, the recorded spec holds one fingerprinted pair
//! per environment variable, and MaestroNG's auto-configuration gives each container a few
//! variables per instance it links to: 3.4 KB of a 3.8 KB list entry for a container of the
//! 40-instance benchmark, and it grows with the environment. A ship's list of 10 such
//! containers (38 KB) was longer than one 32 KiB read of the ship's sshd, so it always left in
//! several writes, and sshd forwards without TCP_NODELAY: a small write that follows another
//! waits for its acknowledgement, a delayed-ACK time or a round trip (bench/NOTES.md has the
//! whole mechanism; dockerd's last chunk can still lose that race, rarely, in a list of any
//! size). Packed, that spec is 1.6 KB (the names and the JSON repeat; the fingerprints are what
//! remains) and the list 26 KB.
//!
//! A value that packing would not make shorter (an empty history) is written in clear.
//!
//! The deployment record itself ([`super::DEPLOYMENT_LABEL`]) stays in clear: it is one short
//! record, and the one an operator reads with `docker inspect` (who deployed this, when).
//!
//! Reading accepts both forms, so containers created before the packing keep their history
//! and their explanations. Neither label is part of the spec hash, so the change re-creates
//! nothing. Anyone who can use the daemon can write labels, so unpacking is bounded.

use std::io::{Read, Write};

use base64::Engine;

/// How a packed label value starts.
const PREFIX: &str = "deflate+base64:";

/// The most an unpacked label may hold: far above any real spec (a 200-instance environment's
/// is under 64 KiB), small enough that a forged label cannot make a list cost memory.
const MAX_UNPACKED: u64 = 4 << 20;

/// `json`, packed, or as it is when that is shorter.
pub(crate) fn pack(json: &str) -> String {
    let mut deflater =
        flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::default());
    // Writing to a Vec cannot fail; an empty packed value would read as unreadable, not wrong.
    let packed = deflater
        .write_all(json.as_bytes())
        .and_then(|()| deflater.finish())
        .unwrap_or_default();
    let packed = format!(
        "{PREFIX}{}",
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(packed)
    );
    if packed.len() < json.len() {
        packed
    } else {
        json.to_string()
    }
}

/// The JSON a label value holds: unpacked when packed, as it is otherwise (labels written
/// before the packing); `None` when it is packed but unreadable or too large.
pub(crate) fn unpack(value: &str) -> Option<String> {
    let Some(encoded) = value.strip_prefix(PREFIX) else {
        return Some(value.to_string());
    };
    let packed = base64::engine::general_purpose::STANDARD_NO_PAD
        .decode(encoded)
        .ok()?;
    let mut json = String::new();
    flate2::read::DeflateDecoder::new(packed.as_slice())
        .take(MAX_UNPACKED + 1)
        .read_to_string(&mut json)
        .ok()?;
    (json.len() as u64 <= MAX_UNPACKED).then_some(json)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn packed_values_round_trip_and_clear_ones_pass_through() {
        let pairs: Vec<String> = (0..10)
            .map(|n| format!(r#"["WEB_{n}_HOST","sha256:0123456789abcdef"]"#))
            .collect();
        let json = format!(r#"{{"env":[{}],"name":"web-1"}}"#, pairs.join(","));
        let json = json.as_str();
        let packed = pack(json);
        assert!(packed.starts_with(PREFIX), "{packed}");
        assert!(packed.len() < json.len());
        assert_eq!(unpack(&packed).as_deref(), Some(json));
        assert_eq!(unpack(json).as_deref(), Some(json));
        assert_eq!(pack("[]"), "[]");
        assert_eq!(unpack("").as_deref(), Some(""));
    }

    #[test]
    fn a_forged_packed_value_reads_as_unreadable_not_as_memory() {
        assert_eq!(unpack(&format!("{PREFIX}!!not base64")), None);
        assert_eq!(unpack(&format!("{PREFIX}AAAA")), None);
        let bomb = pack(&"0".repeat(MAX_UNPACKED as usize + 1));
        assert!(bomb.len() < 10_000, "{}", bomb.len());
        assert_eq!(unpack(&bomb), None);
        let largest = "0".repeat(MAX_UNPACKED as usize);
        assert_eq!(
            unpack(&pack(&largest)).map(|j| j.len()),
            Some(largest.len())
        );
    }
}
