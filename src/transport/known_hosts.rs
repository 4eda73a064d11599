//! Host key verification against OpenSSH known_hosts files.
//!
//! Plain lines are matched by russh (exact and hashed `|1|` names, `[host]:port`); the
//! decision what an unmatched key means (unknown vs changed) and when one may be recorded is
//! ours. russh skips marker lines, so `@cert-authority` and `@revoked` are read here, their
//! host fields matched as OpenSSH does (comma lists, `*`/`?`, `!` vetoes, hashed names).
//!
//! Host certificates follow OpenSSH (`sshconnect.c`): a certificate is accepted when a CA
//! listed for this host signed it and it is valid now for the name we connect to; one that
//! fails is judged by its plain key, so a host also known by its key still connects (and a
//! changed key is still refused). When the plain key is not known either, the error says
//! what was wrong with the certificate, which is what the operator needs to fix.
//!
//! A host with keys on record that presents none of them is CHANGED, whether the presented
//! key is of a recorded type or of a type never recorded for it: a man in the middle
//! without the host's Ed25519 key would otherwise offer only an RSA or ECDSA key, be judged
//! unknown, and be recorded under accept-new. This is stricter than OpenSSH's accept-new
//! (which records such a key); the operator who really added a key type adds its line by hand.
//! Key exchange asks first for the types on record (`ssh::connect::client_config`), so an honest
//! host that has one of them presents it.
//! `@revoked` applies to every host whatever its host field (safer than OpenSSH, which scopes
//! it to matching hosts), to the presented key, the certificate's key and its CA alike.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use russh::keys::ssh_key::certificate::CertType;
use russh::keys::ssh_key::public::KeyData;
use russh::keys::{Certificate, HashAlg, PublicKey};

use super::patterns;
use crate::clock::format_unix_time;

/// What the operator allows for a host whose key is not recorded yet. A key that differs
/// from the recorded one is refused under every policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
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
    /// The host has keys on record and presented none of them: a key of a recorded type
    /// that differs, or a key of a type not on record at all.
    Changed {
        expected: Vec<String>,
        /// The key types on record for this host (`ssh-ed25519`, ...), in file order.
        recorded_types: Vec<String>,
        /// The type of the key presented.
        offered_type: String,
        file: PathBuf,
        line: usize,
    },
    FileError {
        file: PathBuf,
        reason: String,
    },
    /// A valid host certificate signed by a CA trusted for this host.
    Certified,
    /// The CA that signed the host certificate is marked `@revoked` in `file`.
    CaRevoked {
        ca: String,
        file: PathBuf,
    },
    /// The host certificate failed, and its plain key is not known either.
    BadCertificate {
        problem: CertProblem,
    },
}

/// Why a host certificate was not accepted, worded to follow "host certificate of HOP".
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum CertProblem {
    /// No `@cert-authority` line for this host lists the key that signed it.
    UntrustedCa {
        ca: String,
    },
    BadSignature {
        ca: String,
    },
    /// Signed with an algorithm `CASignatureAlgorithms` does not allow (by default `ssh-rsa`,
    /// RSA with SHA-1).
    WeakSignature {
        ca: String,
        algorithm: String,
    },
    UserCertificate,
    NoPrincipals,
    WrongPrincipal {
        principals: Vec<String>,
        name: String,
    },
    NotYetValid {
        from: u64,
    },
    Expired {
        at: u64,
    },
    CriticalOptions {
        names: Vec<String>,
    },
}

impl std::fmt::Display for CertProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertProblem::UntrustedCa { ca } => write!(
                f,
                "is signed by CA key {ca}, a CA not trusted for this host \
                 (no matching @cert-authority line in known_hosts)"
            ),
            CertProblem::BadSignature { ca } => {
                write!(
                    f,
                    "has a signature that does not verify with its CA key {ca}"
                )
            }
            CertProblem::WeakSignature { ca, algorithm } => write!(
                f,
                "is signed by CA key {ca} with {algorithm}, an algorithm CASignatureAlgorithms \
                 does not allow (OpenSSH 8.2+ refuses SHA-1 `ssh-rsa` CA signatures too); \
                 re-sign it with `ssh-keygen -s CA_KEY -t rsa-sha2-512 -h ...`, or allow it \
                 in ssh_config with `CASignatureAlgorithms +{algorithm}`"
            ),
            CertProblem::UserCertificate => {
                write!(f, "is a user certificate, not a host certificate")
            }
            CertProblem::NoPrincipals => write!(
                f,
                "lists no principals (OpenSSH refuses such host certificates too)"
            ),
            CertProblem::WrongPrincipal { principals, name } => write!(
                f,
                "is for principals [{}], not `{name}`",
                principals.join(", ")
            ),
            CertProblem::NotYetValid { from } => {
                write!(f, "is not valid before {}", format_unix_time(*from))
            }
            CertProblem::Expired { at } => {
                write!(f, "expired at {}", format_unix_time(*at))
            }
            CertProblem::CriticalOptions { names } => write!(
                f,
                "carries critical options no host certificate may have: {}",
                names.join(", ")
            ),
        }
    }
}

pub(crate) fn fingerprint(key: &PublicKey) -> String {
    key.fingerprint(HashAlg::Sha256).to_string()
}

// Recording new keys appends to a shared file, possibly for many ships at once.
static RECORD_LOCK: Mutex<()> = Mutex::new(());

/// Checks `key` presented by `host:port` against `files`. A new key is recorded in
/// `accept_new_into` when there is one: the first user file under
/// [`HostKeyPolicy::AcceptNew`] (see [`accept_new_into`]); without one it is unknown.
pub(crate) fn verify(
    host: &str,
    port: u16,
    key: &PublicKey,
    files: &[PathBuf],
    accept_new_into: Option<&Path>,
) -> Verdict {
    if let Some(line) = marked_lines(files).revoked(key.key_data()) {
        return Verdict::Revoked {
            file: line.file.clone(),
        };
    }
    // Every key on record for this host, whatever its type: a host known by one type and
    // presenting another is as suspect as one presenting another key of the same type.
    let mut on_record: Vec<(PathBuf, usize, PublicKey)> = Vec::new();
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
            on_record.push((file.clone(), line, recorded));
        }
    }
    if let Some(verdict) = changed(key, &on_record) {
        return verdict;
    }
    let Some(file) = accept_new_into else {
        return Verdict::Unknown;
    };
    match record(host, port, key, file) {
        Ok(()) => Verdict::Recorded {
            file: file.to_path_buf(),
        },
        Err(reason) => Verdict::FileError {
            file: file.to_path_buf(),
            reason,
        },
    }
}

/// Where new keys go under `policy`: nowhere when strict, else the first user file (none
/// when ssh_config says `UserKnownHostsFile none`: the host then stays unknown).
pub(crate) fn accept_new_into(policy: HostKeyPolicy, record_file: Option<&Path>) -> Option<&Path> {
    match policy {
        HostKeyPolicy::Strict => None,
        HostKeyPolicy::AcceptNew => record_file,
    }
}

/// The verdict for `key` when `on_record` (the host's keys, none equal to `key`) is not
/// empty. The keys listed as expected are those of the presented type when there are some
/// (that is the entry to replace), else all of them; the file and line are the first such.
fn changed(key: &PublicKey, on_record: &[(PathBuf, usize, PublicKey)]) -> Option<Verdict> {
    let same_type: Vec<_> = on_record
        .iter()
        .filter(|(_, _, recorded)| recorded.algorithm() == key.algorithm())
        .collect();
    let shown: Vec<_> = if same_type.is_empty() {
        on_record.iter().collect()
    } else {
        same_type
    };
    let (file, line, _) = shown.first()?;
    let mut recorded_types: Vec<String> = Vec::new();
    for (_, _, recorded) in on_record {
        let name = recorded.algorithm().as_str().to_string();
        if !recorded_types.contains(&name) {
            recorded_types.push(name);
        }
    }
    Some(Verdict::Changed {
        expected: shown
            .iter()
            .map(|(_, _, recorded)| fingerprint(recorded))
            .collect(),
        recorded_types,
        offered_type: key.algorithm().as_str().to_string(),
        file: file.clone(),
        line: *line,
    })
}

/// Checks a host certificate presented by `host:port` (see the module header for the
/// rules), at `now` (Unix seconds). When the certificate failed but its plain key was
/// accepted, the problem comes back too: OpenSSH prints it, and so should we.
/// `ca_algorithms` is ssh_config's `CASignatureAlgorithms` (`None`: OpenSSH's default).
pub(crate) fn verify_certificate(
    host: &str,
    port: u16,
    cert: &Certificate,
    files: &[PathBuf],
    accept_new_into: Option<&Path>,
    ca_algorithms: Option<&str>,
    now: u64,
) -> (Verdict, Option<CertProblem>) {
    let verdict = certificate_verdict(host, port, cert, files, accept_new_into, ca_algorithms, now);
    match verdict {
        Verdict::Known | Verdict::Recorded { .. } => {
            let marked = marked_lines(files);
            (
                verdict,
                check_certificate(host, port, cert, &marked, ca_algorithms, now).err(),
            )
        }
        other => (other, None),
    }
}

fn certificate_verdict(
    host: &str,
    port: u16,
    cert: &Certificate,
    files: &[PathBuf],
    accept_new_into: Option<&Path>,
    ca_algorithms: Option<&str>,
    now: u64,
) -> Verdict {
    let key = PublicKey::from(cert.public_key().clone());
    let marked = marked_lines(files);
    if let Some(line) = marked.revoked(cert.public_key()) {
        return Verdict::Revoked {
            file: line.file.clone(),
        };
    }
    let ca_key = PublicKey::from(cert.signature_key().clone());
    if let Some(line) = marked.revoked(cert.signature_key()) {
        return Verdict::CaRevoked {
            ca: fingerprint(&ca_key),
            file: line.file.clone(),
        };
    }
    let problem = match check_certificate(host, port, cert, &marked, ca_algorithms, now) {
        Ok(verdict) => return verdict,
        Err(problem) => problem,
    };
    // As OpenSSH: a certificate that fails is retried as the plain key it certifies.
    match verify(host, port, &key, files, accept_new_into) {
        Verdict::Unknown => Verdict::BadCertificate { problem },
        other => other,
    }
}

fn check_certificate(
    host: &str,
    port: u16,
    cert: &Certificate,
    marked: &MarkedLines,
    ca_algorithms: Option<&str>,
    now: u64,
) -> Result<Verdict, CertProblem> {
    let ca_key = PublicKey::from(cert.signature_key().clone());
    let ca = fingerprint(&ca_key);
    if !marked
        .cert_authorities(host, port)
        .any(|line| line.key.key_data() == cert.signature_key())
    {
        return Err(CertProblem::UntrustedCa { ca });
    }
    if cert.cert_type() != CertType::Host {
        return Err(CertProblem::UserCertificate);
    }
    if now < cert.valid_after() {
        return Err(CertProblem::NotYetValid {
            from: cert.valid_after(),
        });
    }
    if now >= cert.valid_before() {
        return Err(CertProblem::Expired {
            at: cert.valid_before(),
        });
    }
    // CA and window are checked above, so what this can still refuse is the signature.
    let ca_fingerprint = ca_key.fingerprint(HashAlg::Sha256);
    if cert.validate_at(now, [&ca_fingerprint]).is_err() {
        return Err(CertProblem::BadSignature { ca });
    }
    let algorithm = cert.signature().algorithm().as_str().to_string();
    if !ca_signature_allowed(&algorithm, ca_algorithms) {
        return Err(CertProblem::WeakSignature { ca, algorithm });
    }
    let principals = cert.valid_principals();
    if principals.is_empty() {
        return Err(CertProblem::NoPrincipals);
    }
    // OpenSSH compares the lower-cased host name, and allows wildcards in host principals.
    let name = host.to_lowercase();
    if !principals
        .iter()
        .any(|principal| patterns::glob_match(&name, principal))
    {
        return Err(CertProblem::WrongPrincipal {
            principals: principals.to_vec(),
            name: host.to_string(),
        });
    }
    // No critical option is defined for host certificates; OpenSSH refuses any.
    let critical: Vec<String> = cert.critical_options().keys().cloned().collect();
    if !critical.is_empty() {
        return Err(CertProblem::CriticalOptions { names: critical });
    }
    Ok(Verdict::Certified)
}

/// OpenSSH's default `CASignatureAlgorithms` (9.x): no `ssh-rsa`, whose signatures are SHA-1.
const DEFAULT_CA_SIGNATURE_ALGORITHMS: &str = "ssh-ed25519,ecdsa-sha2-nistp256,\
     ecdsa-sha2-nistp384,ecdsa-sha2-nistp521,sk-ssh-ed25519@openssh.com,\
     sk-ecdsa-sha2-nistp256@openssh.com,rsa-sha2-512,rsa-sha2-256";

/// Whether a CA may sign host certificates with `algorithm` under ssh_config's
/// `CASignatureAlgorithms` `setting`: a list replaces the default, `+list` and `^list` add to
/// it (order does not matter for a yes/no), `-list` removes from it; entries are OpenSSH
/// patterns (`*`, `?`).
fn ca_signature_allowed(algorithm: &str, setting: Option<&str>) -> bool {
    let default = || {
        DEFAULT_CA_SIGNATURE_ALGORITHMS
            .split(',')
            .map(str::trim)
            .collect::<Vec<_>>()
    };
    let listed = |list: &str| {
        list.split(',')
            .map(str::trim)
            .any(|pattern| !pattern.is_empty() && patterns::glob_match(algorithm, pattern))
    };
    let setting = setting.map(str::trim).filter(|s| !s.is_empty());
    match setting {
        None => default().contains(&algorithm),
        Some(setting) => {
            if let Some(extra) = setting.strip_prefix('+').or(setting.strip_prefix('^')) {
                default().contains(&algorithm) || listed(extra)
            } else if let Some(removed) = setting.strip_prefix('-') {
                default().contains(&algorithm) && !listed(removed)
            } else {
                listed(setting)
            }
        }
    }
}

/// Whether some `@cert-authority` line applies to `host:port`: only then is the server
/// asked for a certificate, since without a CA one could only be judged by its key.
pub(crate) fn trusts_cas_for(host: &str, port: u16, files: &[PathBuf]) -> bool {
    marked_lines(files)
        .cert_authorities(host, port)
        .next()
        .is_some()
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Marker {
    CertAuthority,
    Revoked,
}

/// One `@cert-authority` or `@revoked` line.
#[derive(Debug)]
struct MarkedLine {
    marker: Marker,
    hosts: String,
    key: PublicKey,
    file: PathBuf,
}

struct MarkedLines(Vec<MarkedLine>);

impl MarkedLines {
    fn revoked(&self, key: &KeyData) -> Option<&MarkedLine> {
        self.0
            .iter()
            .find(|line| line.marker == Marker::Revoked && line.key.key_data() == key)
    }

    fn cert_authorities<'a>(
        &'a self,
        host: &'a str,
        port: u16,
    ) -> impl Iterator<Item = &'a MarkedLine> + 'a {
        self.0.iter().filter(move |line| {
            line.marker == Marker::CertAuthority && hosts_field_matches(host, port, &line.hosts)
        })
    }
}

/// The marker lines of `files`. Unreadable files and lines that do not parse are skipped, as
/// OpenSSH skips them (russh reports a broken file when it reads the plain lines).
fn marked_lines(files: &[PathBuf]) -> MarkedLines {
    let mut found = Vec::new();
    for file in files {
        let Ok(text) = std::fs::read_to_string(file) else {
            continue;
        };
        marked_lines_of(&text, file, &mut found);
    }
    MarkedLines(found)
}

fn marked_lines_of(text: &str, file: &Path, found: &mut Vec<MarkedLine>) {
    for line in text.lines() {
        let mut fields = line.split_whitespace();
        let marker = match fields.next() {
            Some(m) if m.eq_ignore_ascii_case("@cert-authority") => Marker::CertAuthority,
            Some(m) if m.eq_ignore_ascii_case("@revoked") => Marker::Revoked,
            _ => continue,
        };
        let (Some(hosts), Some(_algorithm), Some(b64)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        let Ok(key) = russh::keys::parse_public_key_base64(b64) else {
            continue;
        };
        found.push(MarkedLine {
            marker,
            hosts: hosts.to_string(),
            key,
            file: file.to_path_buf(),
        });
    }
}

/// Our known_hosts readers on `text`, for the fuzz target (`transport::fuzzing`): marker
/// lines, host fields (plain, patterns, hashed) against fixed hosts, keys, the verdict for a
/// key against the others, and a `CASignatureAlgorithms` value. The plain lines' own
/// matching is russh's and reads files, so it is not driven from here.
pub(crate) fn fuzz_text(text: &str) {
    let source = Path::new("(fuzz input)");
    let mut found = Vec::new();
    marked_lines_of(text, source, &mut found);
    let marked = MarkedLines(found);
    let hosts = [("10.0.0.1", 22), ("web", 2222), ("", 0)];
    let mut on_record = Vec::new();
    for (number, line) in text.lines().enumerate() {
        let mut fields = line.split_whitespace();
        let (Some(field), Some(_algorithm), Some(b64)) =
            (fields.next(), fields.next(), fields.next())
        else {
            continue;
        };
        for (host, port) in hosts {
            let _ = hosts_field_matches(host, port, field);
        }
        if let Ok(key) = russh::keys::parse_public_key_base64(b64) {
            on_record.push((source.to_path_buf(), number + 1, key));
        }
    }
    for (host, port) in hosts {
        let _ = marked.cert_authorities(host, port).count();
    }
    if let Some(((_, _, key), rest)) = on_record.split_first() {
        let _ = marked.revoked(key.key_data());
        let _ = changed(key, rest);
    }
    let _ = ca_signature_allowed("rsa-sha2-512", text.lines().next());
}

/// Whether a known_hosts host field names `host:port`, which OpenSSH writes `[host]:port`
/// unless the port is 22.
fn hosts_field_matches(host: &str, port: u16, field: &str) -> bool {
    let name = if port == 22 {
        host.to_string()
    } else {
        format!("[{host}]:{port}")
    };
    patterns::list_matches_with(&name, field, true, |name, entry| {
        match entry.strip_prefix("|1|") {
            Some(hashed) => hashed_name_matches(name, hashed),
            None => patterns::glob_match(name, entry),
        }
    })
}

/// `|1|salt|hash`: HMAC-SHA1 of the name keyed with the salt, both base64.
fn hashed_name_matches(name: &str, salt_and_hash: &str) -> bool {
    use russh::keys::ssh_encoding::base64::{Base64, Encoding};
    let Some((salt, hash)) = salt_and_hash.split_once('|') else {
        return false;
    };
    let (Ok(salt), Ok(hash)) = (Base64::decode_vec(salt), Base64::decode_vec(hash)) else {
        return false;
    };
    sha1::hmac(&salt, name.as_bytes()).as_slice() == hash.as_slice()
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

/// SHA-1 and HMAC-SHA1, only to test hashed known_hosts names against a host (OpenSSH's
/// format fixes the algorithm; no SHA-1 crate is a direct dependency, and this is no place
/// where SHA-1's collision weakness matters: the salt is chosen by the file's owner).
mod sha1 {
    fn digest(message: &[u8]) -> [u8; 20] {
        let mut h: [u32; 5] = [
            0x6745_2301,
            0xEFCD_AB89,
            0x98BA_DCFE,
            0x1032_5476,
            0xC3D2_E1F0,
        ];
        let mut padded = message.to_vec();
        padded.push(0x80);
        while padded.len() % 64 != 56 {
            padded.push(0);
        }
        padded.extend_from_slice(&((message.len() as u64).wrapping_mul(8)).to_be_bytes());
        for block in padded.chunks_exact(64) {
            let mut w = [0u32; 80];
            for (i, word) in block.chunks_exact(4).enumerate() {
                w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for i in 16..80 {
                w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
            }
            let [mut a, mut b, mut c, mut d, mut e] = h;
            for (i, wi) in w.iter().enumerate() {
                let (f, k) = match i {
                    0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                    20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                    40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                    _ => (b ^ c ^ d, 0xCA62_C1D6),
                };
                let temp = a
                    .rotate_left(5)
                    .wrapping_add(f)
                    .wrapping_add(e)
                    .wrapping_add(k)
                    .wrapping_add(*wi);
                e = d;
                d = c;
                c = b.rotate_left(30);
                b = a;
                a = temp;
            }
            for (state, value) in h.iter_mut().zip([a, b, c, d, e]) {
                *state = state.wrapping_add(value);
            }
        }
        let mut out = [0u8; 20];
        for (chunk, word) in out.chunks_exact_mut(4).zip(h) {
            chunk.copy_from_slice(&word.to_be_bytes());
        }
        out
    }

    pub(super) fn hmac(key: &[u8], message: &[u8]) -> [u8; 20] {
        let mut block = [0u8; 64];
        if key.len() > 64 {
            block[..20].copy_from_slice(&digest(key));
        } else {
            block[..key.len()].copy_from_slice(key);
        }
        let mut inner: Vec<u8> = block.iter().map(|b| b ^ 0x36).collect();
        inner.extend_from_slice(message);
        let mut outer: Vec<u8> = block.iter().map(|b| b ^ 0x5c).collect();
        outer.extend_from_slice(&digest(&inner));
        digest(&outer)
    }

    #[cfg(test)]
    #[test]
    fn known_answers() {
        let hex = |bytes: &[u8]| bytes.iter().map(|b| format!("{b:02x}")).collect::<String>();
        assert_eq!(
            hex(&digest(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        // RFC 2202 test case 2.
        assert_eq!(
            hex(&hmac(b"Jefe", b"what do ya want for nothing?")),
            "effcdf6ae5eb2fa2d27416d5f184df9c259a7c79"
        );
    }
}

#[cfg(test)]
mod tests;
