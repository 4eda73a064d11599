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
mod tests {
    use super::*;

    const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";
    const KEY_RSA: &str = "AAAAB3NzaC1yc2EAAAADAQABAAABAQDeIa0K3VWwQBCosKOQC3wIEvaRD4JB3ke3TGOAGenzOA0ELcHXs8fRvLq5b6xZEvciYCqt88iDuzbnPbwPrYbkVeM58opGVe94aCtGIZmIorr6k+62KMzEJUHSJbXg7lVVQoTNEGw+59yYfXwOHHRtGAsaAVxwB9kqdPTNrEuMte9F1Fc6Yzeujie41udyHTYRODQEyvM7gJjnXWtX57FpDy/GkGe6cA1L0kY1KZnaqCOIfVBgU31NmogWj0RXy0L6oTBU2muesSL83skBbDFHDKKPf3oSeHIiXxL1vtuhK9Q4SfoAReytreBXV3qP4Dj54BZwICak7wwOxYZH8KiB";
    const KEY_ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNEZzZpulFw9C7+rCfd0XKDgaeKyoFkkRz9Gi/kQiAMHVh6Vwb4isetsFSeZVrIRENRlvlxEIn9iJmUI72bnf94=";

    /// `verify`, recording into the first file as a user's known_hosts is.
    fn check_key(
        host: &str,
        port: u16,
        key: &PublicKey,
        files: &[PathBuf],
        policy: HostKeyPolicy,
    ) -> Verdict {
        verify(
            host,
            port,
            key,
            files,
            accept_new_into(policy, files.first().map(PathBuf::as_path)),
        )
    }

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
            check_key(
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
            check_key("10.0.0.1", 2222, &key(KEY_A), &files, HostKeyPolicy::Strict),
            Verdict::Known
        ));
        assert!(matches!(
            check_key("10.0.0.2", 22, &key(KEY_A), &files, HostKeyPolicy::Strict),
            Verdict::Unknown
        ));
        match check_key(
            "10.0.0.1",
            2222,
            &key(KEY_B),
            &files,
            HostKeyPolicy::AcceptNew,
        ) {
            Verdict::Changed {
                expected,
                line,
                recorded_types,
                offered_type,
                ..
            } => {
                assert_eq!(expected, vec![fingerprint(&key(KEY_A))]);
                assert_eq!(line, 1);
                assert_eq!(recorded_types, vec!["ssh-ed25519"]);
                assert_eq!(offered_type, "ssh-ed25519");
            }
            other => panic!("expected Changed, got {other:?}"),
        }
        assert!(matches!(
            check_key(
                "10.0.0.2",
                22,
                &key(KEY_B),
                &files,
                HostKeyPolicy::AcceptNew
            ),
            Verdict::Recorded { .. }
        ));
        assert!(matches!(
            check_key("10.0.0.2", 22, &key(KEY_B), &files, HostKeyPolicy::Strict),
            Verdict::Known
        ));
    }

    #[test]
    fn a_key_of_a_type_not_on_record_is_changed_even_with_accept_new() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("known_hosts");
        let text = format!("10.0.0.1 ssh-ed25519 {KEY_A}\n");
        std::fs::write(&file, &text).expect("write");
        let files = vec![file.clone()];
        for (offered, name) in [(KEY_RSA, "ssh-rsa"), (KEY_ECDSA, "ecdsa-sha2-nistp256")] {
            for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
                match check_key("10.0.0.1", 22, &key(offered), &files, policy) {
                    Verdict::Changed {
                        expected,
                        recorded_types,
                        offered_type,
                        line,
                        ..
                    } => {
                        assert_eq!(expected, vec![fingerprint(&key(KEY_A))]);
                        assert_eq!(recorded_types, vec!["ssh-ed25519"]);
                        assert_eq!(offered_type, name);
                        assert_eq!(line, 1);
                    }
                    other => panic!("{name} {policy:?}: expected Changed, got {other:?}"),
                }
            }
        }
        assert_eq!(std::fs::read_to_string(&file).expect("read"), text);
        // A host with both types on record accepts either, and a new key of a recorded type
        // is named against the entry of that type.
        std::fs::write(
            &file,
            format!("10.0.0.1 ssh-ed25519 {KEY_A}\n10.0.0.1 ssh-rsa {KEY_RSA}\n"),
        )
        .expect("write");
        assert!(matches!(
            check_key("10.0.0.1", 22, &key(KEY_RSA), &files, HostKeyPolicy::Strict),
            Verdict::Known
        ));
        match check_key("10.0.0.1", 22, &key(KEY_B), &files, HostKeyPolicy::Strict) {
            Verdict::Changed {
                expected,
                recorded_types,
                ..
            } => {
                assert_eq!(expected, vec![fingerprint(&key(KEY_A))]);
                assert_eq!(recorded_types, vec!["ssh-ed25519", "ssh-rsa"]);
            }
            other => panic!("expected Changed, got {other:?}"),
        }
    }

    mod certificates {
        use super::*;
        use russh::keys::PrivateKey;
        use russh::keys::ssh_key::certificate::Builder;
        use russh::keys::ssh_key::private::Ed25519Keypair;

        const NOW: u64 = 1_800_000_000;

        fn private(seed: u8) -> PrivateKey {
            PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
        }

        fn openssh(key: &PrivateKey) -> String {
            key.public_key().to_openssh().expect("openssh form")
        }

        struct Cert {
            kind: CertType,
            principals: Vec<&'static str>,
            after: u64,
            before: u64,
        }

        impl Default for Cert {
            fn default() -> Self {
                Cert {
                    kind: CertType::Host,
                    principals: vec!["10.0.0.1"],
                    after: NOW - 3600,
                    before: NOW + 3600,
                }
            }
        }

        fn sign(host: &PrivateKey, ca: &PrivateKey, cert: Cert) -> Certificate {
            let mut builder = Builder::new(
                [7u8; 16],
                host.public_key().key_data().clone(),
                cert.after,
                cert.before,
            )
            .expect("builder");
            builder.cert_type(cert.kind).expect("type");
            if cert.principals.is_empty() {
                builder.all_principals_valid().expect("principals");
            }
            for principal in cert.principals {
                builder.valid_principal(principal).expect("principal");
            }
            builder.sign(ca).expect("sign")
        }

        fn check(known_hosts: &str, host: &str, port: u16, cert: &Certificate) -> Verdict {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("known_hosts");
            std::fs::write(&file, known_hosts).expect("write");
            verify_certificate(host, port, cert, &[file], None, None, NOW).0
        }

        fn problem(verdict: Verdict) -> CertProblem {
            match verdict {
                Verdict::BadCertificate { problem } => problem,
                other => panic!("expected BadCertificate, got {other:?}"),
            }
        }

        #[test]
        fn accepted_when_a_trusted_ca_signed_it_for_this_host() {
            let (ca, host) = (private(1), private(2));
            let cert = sign(&host, &ca, Cert::default());
            let line = format!("@cert-authority 10.0.0.* {}\n", openssh(&ca));
            assert!(matches!(
                check(&line, "10.0.0.1", 22, &cert),
                Verdict::Certified
            ));
            let port_line = format!("@cert-authority [10.0.0.?]:2222,other {}\n", openssh(&ca));
            assert!(matches!(
                check(&port_line, "10.0.0.1", 2222, &cert),
                Verdict::Certified
            ));
            // OpenSSH writes `[host]:port` for other ports: a bare pattern does not cover them.
            assert!(matches!(
                problem(check(&line, "10.0.0.1", 2222, &cert)),
                CertProblem::UntrustedCa { .. }
            ));
        }

        #[test]
        fn hashed_host_fields_match() {
            // Written by `ssh-keygen -H` for 10.1.2.3.
            let hashed = "|1|3wbRCE5Sgb3oepQ6EgYROG9RbFQ=|vfhu2Ncz5OCurPcVqWcRsztECqM=";
            assert!(hosts_field_matches("10.1.2.3", 22, hashed));
            assert!(!hosts_field_matches("10.1.2.4", 22, hashed));
            assert!(!hosts_field_matches(
                "10.1.2.3",
                22,
                &format!("*,!{hashed}")
            ));
            use russh::keys::ssh_encoding::base64::{Base64, Encoding};
            let (ca, host) = (private(1), private(2));
            let cert = sign(&host, &ca, Cert::default());
            let salt = [9u8; 20];
            let hash = sha1::hmac(&salt, b"10.0.0.1");
            let field = format!(
                "|1|{}|{}",
                Base64::encode_string(&salt),
                Base64::encode_string(&hash)
            );
            let line = format!("@cert-authority {field} {}\n", openssh(&ca));
            assert!(matches!(
                check(&line, "10.0.0.1", 22, &cert),
                Verdict::Certified
            ));
            assert!(matches!(
                problem(check(
                    &line,
                    "10.0.0.2",
                    22,
                    &sign(
                        &host,
                        &ca,
                        Cert {
                            principals: vec!["10.0.0.2"],
                            ..Cert::default()
                        }
                    )
                )),
                CertProblem::UntrustedCa { .. }
            ));
        }

        #[test]
        fn wrong_principal_is_refused_with_the_principals() {
            let (ca, host) = (private(1), private(2));
            let cert = sign(
                &host,
                &ca,
                Cert {
                    principals: vec!["web1", "web2"],
                    ..Cert::default()
                },
            );
            let line = format!("@cert-authority * {}\n", openssh(&ca));
            let refused = problem(check(&line, "10.0.0.1", 22, &cert));
            assert_eq!(
                refused.to_string(),
                "is for principals [web1, web2], not `10.0.0.1`"
            );
            let wildcard = sign(
                &host,
                &ca,
                Cert {
                    principals: vec!["10.0.0.*"],
                    ..Cert::default()
                },
            );
            assert!(matches!(
                check(&line, "10.0.0.1", 22, &wildcard),
                Verdict::Certified
            ));
            let none = sign(
                &host,
                &ca,
                Cert {
                    principals: vec![],
                    ..Cert::default()
                },
            );
            assert_eq!(
                problem(check(&line, "10.0.0.1", 22, &none)),
                CertProblem::NoPrincipals
            );
        }

        #[test]
        fn expired_and_not_yet_valid_are_refused() {
            let (ca, host) = (private(1), private(2));
            let line = format!("@cert-authority * {}\n", openssh(&ca));
            let expired = sign(
                &host,
                &ca,
                Cert {
                    after: 1_700_000_000 - 60,
                    before: 1_700_000_000,
                    ..Cert::default()
                },
            );
            assert_eq!(
                problem(check(&line, "10.0.0.1", 22, &expired)).to_string(),
                "expired at 2023-11-14 22:13:20 UTC"
            );
            let early = sign(
                &host,
                &ca,
                Cert {
                    after: NOW + 60,
                    before: NOW + 3600,
                    ..Cert::default()
                },
            );
            assert_eq!(
                problem(check(&line, "10.0.0.1", 22, &early)),
                CertProblem::NotYetValid { from: NOW + 60 }
            );
        }

        #[test]
        fn user_certificates_are_not_host_certificates() {
            let (ca, host) = (private(1), private(2));
            let cert = sign(
                &host,
                &ca,
                Cert {
                    kind: CertType::User,
                    ..Cert::default()
                },
            );
            let line = format!("@cert-authority * {}\n", openssh(&ca));
            assert_eq!(
                problem(check(&line, "10.0.0.1", 22, &cert)),
                CertProblem::UserCertificate
            );
        }

        #[test]
        fn revoked_ca_or_host_key_refuses() {
            let (ca, host) = (private(1), private(2));
            let cert = sign(&host, &ca, Cert::default());
            let trusted = format!("@cert-authority * {}\n", openssh(&ca));
            let ca_revoked = format!("{trusted}@revoked * {}\n", openssh(&ca));
            match check(&ca_revoked, "10.0.0.1", 22, &cert) {
                Verdict::CaRevoked { ca: revoked, .. } => {
                    assert_eq!(revoked, fingerprint(ca.public_key()));
                }
                other => panic!("expected CaRevoked, got {other:?}"),
            }
            // Scoped to no host at all, still revoked: revocation is never narrowed.
            let host_revoked = format!("{trusted}@revoked nowhere {}\n", openssh(&host));
            assert!(matches!(
                check(&host_revoked, "10.0.0.1", 22, &cert),
                Verdict::Revoked { .. }
            ));
        }

        #[test]
        fn untrusted_ca_or_other_hosts_ca_falls_back_to_the_plain_key() {
            let (ca, other_ca, host) = (private(1), private(3), private(2));
            let cert = sign(&host, &ca, Cert::default());
            let other = format!("@cert-authority * {}\n", openssh(&other_ca));
            assert!(matches!(
                problem(check(&other, "10.0.0.1", 22, &cert)),
                CertProblem::UntrustedCa { .. }
            ));
            for pattern in ["10.9.*", "10.0.0.*,!10.0.0.1", "!10.0.0.1"] {
                let line = format!("@cert-authority {pattern} {}\n", openssh(&ca));
                assert!(
                    matches!(
                        problem(check(&line, "10.0.0.1", 22, &cert)),
                        CertProblem::UntrustedCa { .. }
                    ),
                    "{pattern}"
                );
                let dir = tempfile::tempdir().expect("tempdir");
                let file = dir.path().join("known_hosts");
                std::fs::write(&file, &line).expect("write");
                assert!(!trusts_cas_for("10.0.0.1", 22, &[file]), "{pattern}");
            }
            // OpenSSH retries a failed certificate as its plain key: known is accepted,
            // changed is still refused.
            let known = format!("{other}10.0.0.1 {}\n", openssh(&host));
            assert!(matches!(
                check(&known, "10.0.0.1", 22, &cert),
                Verdict::Known
            ));
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("known_hosts");
            std::fs::write(&file, &known).expect("write");
            let (_, problem) = verify_certificate("10.0.0.1", 22, &cert, &[file], None, None, NOW);
            assert!(
                matches!(problem, Some(CertProblem::UntrustedCa { .. })),
                "the certificate's problem is kept for a warning: {problem:?}"
            );
            let changed = format!("{other}10.0.0.1 {}\n", openssh(&other_ca));
            assert!(matches!(
                check(&changed, "10.0.0.1", 22, &cert),
                Verdict::Changed { .. }
            ));
        }

        // Made with ssh-keygen: an RSA CA, and one Ed25519 host key signed by it for 10.0.0.1,
        // valid forever, once with `-t ssh-rsa` (SHA-1) and once with `-t rsa-sha2-512`.
        const RSA_CA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC4ys/wA0hXpqbFwVsepLQjsBXJ+Fc9K78s6ruqw0dwk+SpwoRe\
NfF4Kf+I+mjxgeNyTwBvofk6+lWkDM/1RmwqWVfjddh1zFgxCWMrJmvqCG2O4p5lkLTAT0VtPvqEJnBF\
boQCrZvgrvsSW1/rp8vWlS6xkooN12LskbCf3IZNgnoVbTBit7a2VJxCKec0TWfmvdN+wcd2H+Q/cedk\
NuGKxXwqrXCV7Vod9t3psGXzYMak9kciqW2GJvyxpyUbAmT33DeWJtATLusQrkRS1XbkD9YfiCsiAkSC\
GCtIVSgHGUYetEY3PeKHpR2Wav8K4cWNc78/2nGcnb4LAd1cg9ub";
        const SIGNED_SHA1: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIEG/VrluY1cGzYCv2Ifg1/zEaWOG\
t37PiFlxFqdeeusuAAAAINAw8W3lSiNhmEPVPGasd4z1Zyxm3ck8hC8KasAOAbiWAAAAAAAAAAAAAAAC\
AAAAAXQAAAAMAAAACDEwLjAuMC4xAAAAAAAAAAD//////////wAAAAAAAAAAAAAAAAAAARcAAAAHc3No\
LXJzYQAAAAMBAAEAAAEBALjKz/ADSFempsXBWx6ktCOwFcn4Vz0rvyzqu6rDR3CT5KnChF418Xgp/4j6\
aPGB43JPAG+h+Tr6VaQMz/VGbCpZV+N12HXMWDEJYysma+oIbY7inmWQtMBPRW0++oQmcEVuhAKtm+Cu\
+xJbX+uny9aVLrGSig3XYuyRsJ/chk2CehVtMGK3trZUnEIp5zRNZ+a9037Bx3Yf5D9x52Q24YrFfCqt\
cJXtWh323emwZfNgxqT2RyKpbYYm/LGnJRsCZPfcN5Ym0BMu6xCuRFLVduQP1h+IKyICRIIYK0hVKAcZ\
Rh60Rjc94oelHZZq/wrhxY1zvz/acZydvgsB3VyD25sAAAEPAAAAB3NzaC1yc2EAAAEAJBxfKVn/uaF0\
QzN1u0rR/nPnohhsau0+gP/xwHa6nDGwx/6jwj413zI+jwhmb6KawOaSL04R85b199qgk3rbGxPOeHfw\
StU7qXvrwBRL4TQggE116UZBKh1IS38PsJbmwlbCEfMxXRP0eUO+lFsbEqsWObIno4E198v/n8OdBcn+\
65ajNgd0NB4UyFeJXjnRSPZSLZNmW4nilrIaP5jUEO770AAVFnA7Ldbj2MyfIPSl2NhLrQB8x8/S7pLV\
wFvzxGMn1IgmSPL9I/GzG8MH2SkOTzRWrHj0alSB2eYCaxGqFcMcZSQBeI0jZ3oKtAIk0fQL0MS2lisr\
I5sY1CT3BA==";
        const SIGNED_SHA512: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIB2RdrRXHzcJDYuMWlOUX4E9VPy4\
LJnOUH/u7fQXok8JAAAAINAw8W3lSiNhmEPVPGasd4z1Zyxm3ck8hC8KasAOAbiWAAAAAAAAAAAAAAAC\
AAAAAXQAAAAMAAAACDEwLjAuMC4xAAAAAAAAAAD//////////wAAAAAAAAAAAAAAAAAAARcAAAAHc3No\
LXJzYQAAAAMBAAEAAAEBALjKz/ADSFempsXBWx6ktCOwFcn4Vz0rvyzqu6rDR3CT5KnChF418Xgp/4j6\
aPGB43JPAG+h+Tr6VaQMz/VGbCpZV+N12HXMWDEJYysma+oIbY7inmWQtMBPRW0++oQmcEVuhAKtm+Cu\
+xJbX+uny9aVLrGSig3XYuyRsJ/chk2CehVtMGK3trZUnEIp5zRNZ+a9037Bx3Yf5D9x52Q24YrFfCqt\
cJXtWh323emwZfNgxqT2RyKpbYYm/LGnJRsCZPfcN5Ym0BMu6xCuRFLVduQP1h+IKyICRIIYK0hVKAcZ\
Rh60Rjc94oelHZZq/wrhxY1zvz/acZydvgsB3VyD25sAAAEUAAAADHJzYS1zaGEyLTUxMgAAAQA5qxwB\
bEw2/qcjgiKgm7Tpj2R4n1clt4gY2mRQuvTZcCWOYTH+ULjkbZA7FxHTyCLxX9nwbPAZ8UlDXI3IhaX3\
8JuoLGiJJ4g3UCnfItjFGJTrTKfoRIz7roSYE/FbeoUg3aeVGY0qOlJxrIZ7s1jG+7dl5JBZmPFryRWs\
nvH6M3tzgRvIsz7o3JRogP6pvkB6hj11tYH8ixzpU8v/n9x58bfHf0swXbRkCY3eKEf+nU5zyy4X89CR\
RLnaHxbKerJBahDldlI7Dlb82+urdDaVcLS2HLk2JRzN9UXck+KznMBBTUzMPgVBr+NkYHAo/oNn7e63\
uNDlVvzY+6NjHn5b";

        fn verdict_with(cert: &str, ca_algorithms: Option<&str>) -> Verdict {
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("known_hosts");
            std::fs::write(&file, format!("@cert-authority * {RSA_CA}\n")).expect("write");
            let cert = Certificate::from_openssh(cert).expect("certificate");
            verify_certificate("10.0.0.1", 22, &cert, &[file], None, ca_algorithms, NOW).0
        }

        #[test]
        fn sha1_rsa_ca_signatures_are_refused_unless_allowed() {
            match problem(verdict_with(SIGNED_SHA1, None)) {
                CertProblem::WeakSignature { algorithm, .. } => assert_eq!(algorithm, "ssh-rsa"),
                other => panic!("expected WeakSignature, got {other:?}"),
            }
            assert!(matches!(
                verdict_with(SIGNED_SHA512, None),
                Verdict::Certified
            ));
            for allowed in ["+ssh-rsa", "^ssh-rsa", "ssh-rsa,rsa-sha2-512", "*"] {
                assert!(
                    matches!(verdict_with(SIGNED_SHA1, Some(allowed)), Verdict::Certified),
                    "{allowed}"
                );
            }
            for refused in ["ssh-ed25519", "-rsa-sha2-*", "-rsa-sha2-512"] {
                assert!(
                    matches!(
                        problem(verdict_with(SIGNED_SHA512, Some(refused))),
                        CertProblem::WeakSignature { .. }
                    ),
                    "{refused}"
                );
            }
        }

        #[test]
        fn ca_signature_algorithms_follow_openssh_defaults_and_modifiers() {
            for good in [
                "ssh-ed25519",
                "ecdsa-sha2-nistp256",
                "rsa-sha2-256",
                "rsa-sha2-512",
            ] {
                assert!(ca_signature_allowed(good, None), "{good}");
            }
            assert!(!ca_signature_allowed("ssh-rsa", None));
            assert!(!ca_signature_allowed("ssh-rsa", Some("")));
            assert!(ca_signature_allowed("ssh-rsa", Some("+ssh-rsa")));
            assert!(!ca_signature_allowed("ssh-ed25519", Some("-ssh-*")));
            assert!(ca_signature_allowed("rsa-sha2-512", Some("-ssh-*")));
            assert!(!ca_signature_allowed("rsa-sha2-512", Some("ssh-ed25519")));
        }

        #[test]
        fn unix_times_are_formatted_as_utc_dates() {
            assert_eq!(format_unix_time(0), "1970-01-01 00:00:00 UTC");
            assert_eq!(format_unix_time(951_782_400), "2000-02-29 00:00:00 UTC");
            assert_eq!(format_unix_time(u64::MAX), "forever");
        }
    }
}
