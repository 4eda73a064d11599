//! Authentication in OpenSSH's order: every key of the ssh-agent (only those of the
//! configured files under `IdentitiesOnly`), then the key files named in the settings or
//! ssh_config, then the default ones, each with its certificate beside it first. An
//! encrypted key's passphrase comes from the command's environment, else from the
//! operator's prompt, asked once per key for the whole run. The prompt is ui's (the
//! terminal is ui's): the command line installs it ([`install_passphrase_prompt`]).

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use russh::client::{AuthResult, Handle};
use russh::keys::agent::AgentIdentity;
use russh::keys::agent::client::AgentClient;
use russh::keys::{Certificate, HashAlg, PrivateKey, PrivateKeyWithHashAlg};

use super::Hop;
use super::connect::{ConnectOptions, ssh_error};
use super::host_key::HostKeyCheck;
use crate::transport::error::TransportErrorKind;
use crate::transport::{known_hosts, ssh_config};

/// Asks the operator for the passphrase of an encrypted key. transport has no terminal: the
/// command line installs ui's ([`install_passphrase_prompt`]); without one, nobody is asked.
pub trait PassphrasePrompt: Send + Sync {
    /// The passphrase of the private key at `key`, or `None` when there is nobody to ask.
    /// Blocking: it is called off the async runtime's threads, one prompt at a time.
    fn ask(&self, key: &Path) -> Option<String>;
}

static PROMPT: OnceLock<Arc<dyn PassphrasePrompt>> = OnceLock::new();

/// Installs the prompt of this process's commands; the first one installed stays.
pub fn install_passphrase_prompt(prompt: Arc<dyn PassphrasePrompt>) {
    let _ = PROMPT.set(prompt);
}

/// The prompt installed for this process, if any.
pub(crate) fn installed_prompt() -> Option<Arc<dyn PassphrasePrompt>> {
    PROMPT.get().cloned()
}

/// The passphrase source: the environment, else the operator's prompt, else none.
pub(super) async fn passphrase_for(path: &Path, options: &ConnectOptions) -> Option<String> {
    if let Some(passphrase) = &options.passphrase {
        return Some(passphrase.clone());
    }
    let prompt = options.prompt.clone().filter(|_| !options.batch_mode)?;
    static ASKED: tokio::sync::Mutex<Vec<(PathBuf, String)>> =
        tokio::sync::Mutex::const_new(Vec::new());
    // Ships connect concurrently: one prompt at a time, and one per key for the whole run.
    let mut asked = ASKED.lock().await;
    if let Some((_, known)) = asked.iter().find(|(p, _)| p == path) {
        return Some(known.clone());
    }
    let key = path.to_path_buf();
    let answer = tokio::task::spawn_blocking(move || prompt.ask(&key))
        .await
        .ok()
        .flatten()?;
    asked.push((path.to_path_buf(), answer.clone()));
    Some(answer)
}

fn default_identity_files() -> Vec<PathBuf> {
    let Some(home) = ssh_config::home_dir() else {
        return Vec::new();
    };
    ["id_ed25519", "id_ecdsa", "id_rsa"]
        .iter()
        .map(|name| home.join(".ssh").join(name))
        .collect()
}

/// OpenSSH refuses private keys that others can read; we use them but say so.
fn permission_warning(path: &Path) -> Option<String> {
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(path).ok()?.permissions().mode();
    (mode & 0o077 != 0).then(|| {
        format!(
            "private key {} is accessible by others (mode {:o}); OpenSSH would refuse it: chmod 600 it",
            path.display(),
            mode & 0o777
        )
    })
}

pub(super) async fn authenticate(
    handle: &mut Handle<HostKeyCheck>,
    hop: &Hop,
    options: &ConnectOptions,
    warnings: &mut Vec<String>,
) -> Result<String, TransportErrorKind> {
    let mut tried: Vec<String> = Vec::new();
    let rsa_hash = handle
        .best_supported_rsa_hash()
        .await
        .ok()
        .flatten()
        .flatten();
    // 1. ssh-agent.
    if options.agent_socket.is_some()
        && let Some(method) = try_agent(handle, hop, options, rsa_hash, &mut tried).await?
    {
        return Ok(method);
    }
    // 2. Key files named in the settings or ssh_config, 3. the defaults.
    let explicit = hop.identity_files.clone();
    let defaults: Vec<PathBuf> = default_identity_files()
        .into_iter()
        .filter(|path| !explicit.contains(path))
        .collect();
    for (path, named) in explicit
        .iter()
        .map(|p| (p, true))
        .chain(defaults.iter().map(|p| (p, false)))
    {
        let key = KeyAttempt {
            path,
            named,
            rsa_hash,
        };
        if let Some(method) = try_key_file(handle, hop, options, key, &mut tried, warnings).await? {
            return Ok(method);
        }
    }
    Err(auth_error(hop, tried))
}

/// Every identity of the ssh-agent (those of `IdentitiesOnly`'s files only, when set): the
/// method that worked, or None with what was tried added to `tried`.
async fn try_agent(
    handle: &mut Handle<HostKeyCheck>,
    hop: &Hop,
    options: &ConnectOptions,
    rsa_hash: Option<HashAlg>,
    tried: &mut Vec<String>,
) -> Result<Option<String>, TransportErrorKind> {
    let connected = match &options.agent_socket {
        Some(path) => AgentClient::connect_uds(path).await,
        None => AgentClient::connect_env().await,
    };
    match connected {
        Ok(mut agent) => {
            let mut identities = agent.request_identities().await.unwrap_or_default();
            if identities.is_empty() {
                tried.push("ssh-agent (no keys)".into());
            } else if hop.identities_only {
                let allowed = public_keys_beside(&hop.identity_files);
                identities.retain(|identity| match identity {
                    AgentIdentity::PublicKey { key, .. } => allowed
                        .iter()
                        .any(|allowed| allowed.key_data() == key.key_data()),
                    AgentIdentity::Certificate { .. } => false,
                });
                if identities.is_empty() {
                    tried.push(
                        "ssh-agent (IdentitiesOnly: none of its keys is a configured key file)"
                            .into(),
                    );
                }
            }
            for identity in identities {
                let (described, result) = match &identity {
                    AgentIdentity::PublicKey { key, comment } => {
                        let hash = if key.algorithm().is_rsa() {
                            rsa_hash
                        } else {
                            None
                        };
                        (
                            format!("ssh-agent key {} {comment}", known_hosts::fingerprint(key)),
                            tokio::time::timeout(
                                options.timeout,
                                handle.authenticate_publickey_with(
                                    &hop.user,
                                    key.clone(),
                                    hash,
                                    &mut agent,
                                ),
                            )
                            .await,
                        )
                    }
                    AgentIdentity::Certificate {
                        certificate,
                        comment,
                    } => (
                        format!("ssh-agent certificate {comment}"),
                        tokio::time::timeout(
                            options.timeout,
                            handle.authenticate_certificate_with(
                                &hop.user,
                                certificate.clone(),
                                rsa_hash,
                                &mut agent,
                            ),
                        )
                        .await,
                    ),
                };
                let answer = match &result {
                    Err(_) => "no answer".to_string(),
                    Ok(Ok(AuthResult::Success)) => "accepted".to_string(),
                    Ok(Ok(_)) => "rejected".to_string(),
                    Ok(Err(err)) => err.to_string(),
                };
                tracing::debug!(
                    "{}: login as {}: {described}: {answer}",
                    hop.label,
                    hop.user
                );
                match result {
                    Err(_) => return Err(timeout_err(hop, options)),
                    Ok(Ok(AuthResult::Success)) => return Ok(Some(described)),
                    Ok(Ok(_)) => tried.push(format!("{described}: rejected")),
                    Ok(Err(err)) => tried.push(format!("{described}: {err}")),
                }
                if handle.is_closed() {
                    return Err(auth_error(hop, std::mem::take(tried)));
                }
            }
        }
        Err(err) => {
            tracing::debug!("{}: ssh-agent: {err}", hop.label);
            tried.push(format!("ssh-agent: {err}"));
        }
    }
    Ok(None)
}

/// What the server said to one login attempt, for the diagnostic log.
fn answer_text(result: &Result<AuthResult, russh::Error>) -> String {
    match result {
        Ok(result) if result.success() => "accepted".to_string(),
        Ok(_) => "rejected".to_string(),
        Err(err) => err.to_string(),
    }
}

/// One key file to log in with.
struct KeyAttempt<'a> {
    path: &'a PathBuf,
    /// Named in the settings or ssh_config (a missing default file is not worth a word).
    named: bool,
    rsa_hash: Option<HashAlg>,
}

/// One key file: its certificate beside it first, if any, then the key itself. The method
/// that worked, or None with what was tried added to `tried`.
async fn try_key_file(
    handle: &mut Handle<HostKeyCheck>,
    hop: &Hop,
    options: &ConnectOptions,
    key: KeyAttempt<'_>,
    tried: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Result<Option<String>, TransportErrorKind> {
    let KeyAttempt {
        path,
        named,
        rsa_hash,
    } = key;
    let network = |err: russh::Error| ssh_error(&hop.label, options.timeout, err);
    if !path.exists() {
        if named {
            tried.push(format!("key {}: no such file", path.display()));
        }
        return Ok(None);
    }
    let key = match load_key(path, options).await {
        Ok(key) => key,
        Err(reason) => {
            tracing::debug!("{}: key {}: {reason}", hop.label, path.display());
            tried.push(format!("key {}: {reason}", path.display()));
            return Ok(None);
        }
    };
    if let Some(warning) = permission_warning(path)
        && !warnings.contains(&warning)
    {
        warnings.push(warning);
    }
    let key = Arc::new(key);
    if let Some(cert) = certificate_beside(path) {
        let result = tokio::time::timeout(
            options.timeout,
            handle.authenticate_openssh_cert(&hop.user, key.clone(), cert),
        )
        .await
        .map_err(|_| timeout_err(hop, options))?;
        tracing::debug!(
            "{}: login as {}: certificate {}-cert.pub: {}",
            hop.label,
            hop.user,
            path.display(),
            answer_text(&result)
        );
        match result {
            Ok(result) if result.success() => {
                return Ok(Some(format!("certificate {}-cert.pub", path.display())));
            }
            Ok(_) => tried.push(format!("certificate {}-cert.pub: rejected", path.display())),
            Err(err) => {
                give_up_if_closed(handle, hop, tried, err, &network)?;
            }
        }
    }
    let hash = if key.algorithm().is_rsa() {
        rsa_hash
    } else {
        None
    };
    let result = tokio::time::timeout(
        options.timeout,
        handle.authenticate_publickey(&hop.user, PrivateKeyWithHashAlg::new(key, hash)),
    )
    .await
    .map_err(|_| timeout_err(hop, options))?;
    tracing::debug!(
        "{}: login as {}: key {}: {}",
        hop.label,
        hop.user,
        path.display(),
        answer_text(&result)
    );
    match result {
        Ok(result) if result.success() => return Ok(Some(format!("key {}", path.display()))),
        Ok(_) => tried.push(format!("key {}: rejected", path.display())),
        Err(err) => give_up_if_closed(handle, hop, tried, err, &network)?,
    }
    Ok(None)
}

/// The public keys of `files`, read from the `.pub` beside each (the private key may be
/// encrypted); files without one are left out.
fn public_keys_beside(files: &[PathBuf]) -> Vec<russh::keys::PublicKey> {
    files
        .iter()
        .filter_map(|path| {
            let mut public = path.clone().into_os_string();
            public.push(".pub");
            let text = std::fs::read_to_string(public).ok()?;
            russh::keys::PublicKey::from_openssh(text.trim()).ok()
        })
        .collect()
}

/// sshd drops the connection after `MaxAuthTries` failures: that is an authentication
/// failure (with the list of what was tried), not a network one.
fn give_up_if_closed(
    handle: &Handle<HostKeyCheck>,
    hop: &Hop,
    tried: &mut Vec<String>,
    err: russh::Error,
    network: &dyn Fn(russh::Error) -> TransportErrorKind,
) -> Result<(), TransportErrorKind> {
    if handle.is_closed() || matches!(err, russh::Error::Disconnect) {
        tried.push(format!(
            "the server closed the connection ({err}; too many attempts for its MaxAuthTries?)"
        ));
        return Err(auth_error(hop, std::mem::take(tried)));
    }
    Err(network(err))
}

fn timeout_err(hop: &Hop, options: &ConnectOptions) -> TransportErrorKind {
    TransportErrorKind::Timeout {
        hop: hop.label.clone(),
        after: options.timeout,
    }
}

fn auth_error(hop: &Hop, tried: Vec<String>) -> TransportErrorKind {
    TransportErrorKind::Auth {
        hop: hop.label.clone(),
        user: hop.user.clone(),
        tried,
    }
}

async fn load_key(path: &Path, options: &ConnectOptions) -> Result<PrivateKey, String> {
    match russh::keys::load_secret_key(path, None) {
        Ok(key) => Ok(key),
        Err(russh::keys::Error::KeyIsEncrypted) => {
            let Some(passphrase) = passphrase_for(path, options).await else {
                return Err(
                    "encrypted, and no passphrase: set MAESTRO_SSH_PASSPHRASE or run \
                            from a terminal to be asked"
                        .into(),
                );
            };
            russh::keys::load_secret_key(path, Some(&passphrase))
                .map_err(|err| format!("cannot decrypt it (wrong passphrase?): {err}"))
        }
        Err(err) => Err(format!("unreadable: {err}")),
    }
}

fn certificate_beside(path: &Path) -> Option<Certificate> {
    let mut cert_path = path.as_os_str().to_owned();
    cert_path.push("-cert.pub");
    russh::keys::load_openssh_certificate(PathBuf::from(cert_path)).ok()
}
