//! Host key verification against OpenSSH known_hosts files.
//!
//! Matching (plain, hashed `|1|` entries, `[host]:port`) is russh's; the decision what an
//! unmatched key means (unknown vs changed) and when one may be recorded is ours.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use russh::keys::{HashAlg, PublicKey};

/// What the operator allows for a host whose key is not recorded yet. A key that differs
/// from the recorded one is refused under every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum HostKeyPolicy {
    /// Unknown hosts are refused (OpenSSH `StrictHostKeyChecking yes`).
    #[default]
    Strict,
    /// Unknown hosts are recorded in the known_hosts file and accepted
    /// (OpenSSH `StrictHostKeyChecking accept-new`).
    AcceptNew,
}

#[derive(Debug, Clone)]
pub(crate) enum Verdict {
    Known,
    Recorded {
        file: PathBuf,
    },
    Unknown,
    Revoked {
        file: PathBuf,
    },
    Changed {
        expected: Vec<String>,
        file: PathBuf,
        line: usize,
    },
    FileError {
        file: PathBuf,
        reason: String,
    },
}

pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

// Recording new keys appends to a shared file, possibly for many ships at once.
static RECORD_LOCK: Mutex<()> = Mutex::new(());

/// Checks `key` presented by `host:port` against `files` (the first one is where new keys
/// are recorded under [`HostKeyPolicy::AcceptNew`]).
pub(crate) fn verify(
    host: &str,
    port: u16,
    key: &PublicKey,
    files: &[PathBuf],
    policy: HostKeyPolicy,
) -> Verdict {
    if let Some(file) = files.iter().find(|file| is_revoked(key, file)) {
        return Verdict::Revoked { file: file.clone() };
    }
    let mut same_algorithm_mismatch: Option<(Vec<String>, PathBuf, usize)> = None;
    for file in files {
        let entries = match russh::keys::known_hosts::known_host_keys_path(host, port, file) {
            Ok(entries) => entries,
            Err(err) => {
                return Verdict::FileError {
                    file: file.clone(),
                    reason: err.to_string(),
                };
            }
        };
        for (line, recorded) in entries {
            if recorded.key_data() == key.key_data() {
                return Verdict::Known;
            }
            if recorded.algorithm() == key.algorithm() {
                let slot =
                    same_algorithm_mismatch.get_or_insert_with(|| (Vec::new(), file.clone(), line));
                slot.0.push(fingerprint(&recorded));
            }
        }
    }
    if let Some((expected, file, line)) = same_algorithm_mismatch {
        return Verdict::Changed {
            expected,
            file,
            line,
        };
    }
    match policy {
        HostKeyPolicy::Strict => Verdict::Unknown,
        HostKeyPolicy::AcceptNew => {
            let Some(file) = files.first() else {
                return Verdict::Unknown;
            };
            match record(host, port, key, file) {
                Ok(()) => Verdict::Recorded { file: file.clone() },
                Err(reason) => Verdict::FileError {
                    file: file.clone(),
                    reason,
                },
            }
        }
    }
}

/// `@revoked` lines (which russh's matcher skips): a revoked key is refused for every host,
/// whatever the line's host patterns, which errs on the safe side.
fn is_revoked(key: &PublicKey, file: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(file) else {
        return false;
    };
    text.lines()
        .filter_map(|line| line.trim_start().strip_prefix("@revoked"))
        .filter_map(|rest| rest.split_whitespace().nth(2))
        .filter_map(|b64| russh::keys::parse_public_key_base64(b64).ok())
        .any(|revoked| revoked.key_data() == key.key_data())
}

fn record(host: &str, port: u16, key: &PublicKey, file: &Path) -> Result<(), String> {
    let _guard = RECORD_LOCK
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    // A concurrent connection may have recorded the same host meanwhile.
    if let Ok(entries) = russh::keys::known_hosts::known_host_keys_path(host, port, file)
        && entries
            .iter()
            .any(|(_, recorded)| recorded.key_data() == key.key_data())
    {
        return Ok(());
    }
    append_entry(host, port, key, file).map_err(|err| err.to_string())
}

/// Appends `host key` in OpenSSH's form (russh's own writer starts an empty file with a
/// blank line).
fn append_entry(host: &str, port: u16, key: &PublicKey, file: &Path) -> std::io::Result<()> {
    use std::io::{Read, Seek, SeekFrom, Write};
    if let Some(parent) = file.parent()
        && !parent.as_os_str().is_empty()
    {
        std::fs::create_dir_all(parent)?;
    }
    let mut handle = std::fs::OpenOptions::new()
        .read(true)
        .append(true)
        .create(true)
        .open(file)?;
    let mut needs_newline = false;
    if handle.seek(SeekFrom::End(-1)).is_ok() {
        let mut last = [0u8; 1];
        handle.read_exact(&mut last)?;
        needs_newline = last[0] != b'\n';
    }
    let key_text = key
        .to_openssh()
        .map_err(|err| std::io::Error::other(err.to_string()))?;
    let host_text = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    let mut line = String::new();
    if needs_newline {
        line.push('\n');
    }
    line.push_str(&format!("{host_text} {key_text}\n"));
    handle.write_all(line.as_bytes())
}

/// The host key algorithms recorded for `host:port`, so that key exchange asks the server
/// for a key we can verify rather than one of a type we have never seen.
pub(crate) fn recorded_algorithms(
    host: &str,
    port: u16,
    files: &[PathBuf],
) -> Vec<russh::keys::Algorithm> {
    let mut algorithms = Vec::new();
    for file in files {
        if let Ok(entries) = russh::keys::known_hosts::known_host_keys_path(host, port, file) {
            for (_, key) in entries {
                let algorithm = key.algorithm();
                if !algorithms.contains(&algorithm) {
                    algorithms.push(algorithm);
                }
            }
        }
    }
    algorithms
}

#[cfg(test)]
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";

    fn key(b64: &str) -> PublicKey {
        russh::keys::parse_public_key_base64(b64).expect("test key")
    }

    #[test]
    fn revoked_keys_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("known_hosts");
        std::fs::write(
            &file,
            format!("10.0.0.1 ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_A}\n"),
        )
        .expect("write");
        assert!(matches!(
            verify(
                "10.0.0.1",
                22,
                &key(KEY_A),
                &[file],
                HostKeyPolicy::AcceptNew
            ),
            Verdict::Revoked { .. }
        ));
    }

    #[test]
    fn known_unknown_changed_and_recorded() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, format!("[10.0.0.1]:2222 ssh-ed25519 {KEY_A}\n")).expect("write");
        let files = vec![file.clone()];

        assert!(matches!(
            verify("10.0.0.1", 2222, &key(KEY_A), &files, HostKeyPolicy::Strict),
            Verdict::Known
        ));
        assert!(matches!(
            verify("10.0.0.2", 22, &key(KEY_A), &files, HostKeyPolicy::Strict),
            Verdict::Unknown
        ));
        match verify(
            "10.0.0.1",
            2222,
            &key(KEY_B),
            &files,
            HostKeyPolicy::AcceptNew,
        ) {
            Verdict::Changed { expected, line, .. } => {
                assert_eq!(expected, vec![fingerprint(&key(KEY_A))]);
                assert_eq!(line, 1);
            }
            other => panic!("expected Changed, got {other:?}"),
        }
        assert!(matches!(
            verify(
                "10.0.0.2",
                22,
                &key(KEY_B),
                &files,
                HostKeyPolicy::AcceptNew
            ),
            Verdict::Recorded { .. }
        ));
        assert!(matches!(
            verify("10.0.0.2", 22, &key(KEY_B), &files, HostKeyPolicy::Strict),
            Verdict::Known
        ));
    }
}
