//! The client handler of every session ([`HostKeyCheck`]): the server's host key (or host
//! certificate) judged against the hop's known_hosts files, the verdict kept so that a
//! refused handshake can say why ([`host_key_error`]), and the connections sshd opens back
//! to us for a remote forward handed to whoever waits on that port.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use russh::ChannelOpenFailure;
use russh::client;
use russh::keys::PublicKeyOrCertificate;

use super::Hop;
use crate::transport::error::TransportErrorKind;
use crate::transport::known_hosts::{self, HostKeyPolicy, Verdict};

/// Why the host key check refused, kept beside the handler so that the error russh
/// reports can be turned into ours.
#[derive(Debug, Default)]
pub(super) struct HostKeyOutcome {
    fingerprint: Option<String>,
    verdict: Option<Verdict>,
    /// A host certificate that failed while its plain key was accepted.
    certificate_problem: Option<known_hosts::CertProblem>,
}

/// The remote forwards of one session (`tcpip-forward`): where the connections sshd opens
/// back to us are handed, by the port it listens on. A connection to a port nobody waits on
/// (a forward being cancelled) is refused.
pub(crate) type ForwardTable =
    Arc<Mutex<HashMap<u32, tokio::sync::mpsc::UnboundedSender<russh::Channel<client::Msg>>>>>;

pub(crate) struct HostKeyCheck {
    forwards: ForwardTable,
    host: String,
    port: u16,
    files: Vec<PathBuf>,
    record_file: Option<PathBuf>,
    policy: HostKeyPolicy,
    ca_signature_algorithms: Option<String>,
    outcome: Arc<Mutex<HostKeyOutcome>>,
}

impl HostKeyCheck {
    /// The handler of a session to `hop`: its verdict goes to `outcome`, the connections of
    /// its remote forwards to `forwards`.
    pub(super) fn for_hop(
        hop: &Hop,
        forwards: ForwardTable,
        outcome: Arc<Mutex<HostKeyOutcome>>,
    ) -> HostKeyCheck {
        HostKeyCheck {
            forwards,
            host: hop.host.clone(),
            port: hop.port,
            files: hop.known_hosts_files.clone(),
            record_file: hop.record_file.clone(),
            policy: hop.policy,
            ca_signature_algorithms: hop.ca_signature_algorithms.clone(),
            outcome,
        }
    }
}

impl client::Handler for HostKeyCheck {
    type Error = russh::Error;

    async fn check_server_key(
        &mut self,
        server_key: &PublicKeyOrCertificate,
    ) -> Result<bool, Self::Error> {
        let (key, verdict, certificate_problem) = match server_key {
            PublicKeyOrCertificate::PublicKey { key, .. } => {
                let verdict = known_hosts::verify(
                    &self.host,
                    self.port,
                    key,
                    &self.files,
                    known_hosts::accept_new_into(self.policy, self.record_file.as_deref()),
                );
                (key.clone(), verdict, None)
            }
            PublicKeyOrCertificate::Certificate(cert) => {
                let now = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map(|since| since.as_secs())
                    .unwrap_or(0);
                let (verdict, problem) = known_hosts::verify_certificate(
                    &self.host,
                    self.port,
                    cert,
                    &self.files,
                    known_hosts::accept_new_into(self.policy, self.record_file.as_deref()),
                    self.ca_signature_algorithms.as_deref(),
                    now,
                );
                (
                    russh::keys::PublicKey::from(cert.public_key().clone()),
                    verdict,
                    problem,
                )
            }
        };
        let accepted = matches!(
            verdict,
            Verdict::Known | Verdict::Recorded { .. } | Verdict::Certified
        );
        tracing::debug!(
            "{}:{}: host key {} ({}): {verdict:?}{}",
            self.host,
            self.port,
            known_hosts::fingerprint(&key),
            key.algorithm(),
            certificate_problem
                .as_ref()
                .map(|p| format!(" (host certificate {p})"))
                .unwrap_or_default()
        );
        let mut outcome = self.outcome.lock().unwrap_or_else(|p| p.into_inner());
        outcome.fingerprint = Some(known_hosts::fingerprint(&key));
        outcome.verdict = Some(verdict);
        outcome.certificate_problem = certificate_problem;
        Ok(accepted)
    }

    async fn server_channel_open_forwarded_tcpip(
        &mut self,
        channel: russh::Channel<client::Msg>,
        _connected_address: &str,
        connected_port: u32,
        originator_address: &str,
        originator_port: u32,
        reply: client::ChannelOpenHandle,
        _session: &mut client::Session,
    ) -> Result<(), Self::Error> {
        let waiting = self
            .forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&connected_port)
            .cloned();
        tracing::debug!(
            "{}:{}: forwarded connection to port {connected_port} from \
             {originator_address}:{originator_port}{}",
            self.host,
            self.port,
            if waiting.is_some() {
                ""
            } else {
                ": refused (no forward of ours)"
            }
        );
        match waiting {
            Some(sender) => {
                reply.accept().await;
                let _ = sender.send(channel);
            }
            None => {
                reply
                    .reject(ChannelOpenFailure::AdministrativelyProhibited)
                    .await
            }
        }
        Ok(())
    }
}

/// The host key's fingerprint, and the warnings its check left: a broken host certificate
/// accepted as a plain key, or a new key recorded (accept-new).
pub(super) fn host_key_notes(hop: &Hop, outcome: &Mutex<HostKeyOutcome>) -> (String, Vec<String>) {
    let outcome = outcome.lock().unwrap_or_else(|p| p.into_inner());
    let fingerprint = outcome.fingerprint.clone().unwrap_or_default();
    let mut warnings = Vec::new();
    if let Some(problem) = &outcome.certificate_problem {
        // OpenSSH says so too: the CA setup is broken even though this connection is fine.
        warnings.push(format!(
            "host certificate of {} {problem}; accepted its key {fingerprint} as a plain host key",
            hop.label
        ));
    }
    if let Some(Verdict::Recorded { file }) = &outcome.verdict {
        warnings.push(format!(
            "host key of {} ({fingerprint}) was not known; recorded it in {} (accept-new)",
            hop.label,
            file.display()
        ));
    }
    (fingerprint, warnings)
}

pub(super) fn host_key_error(hop: &Hop, outcome: &HostKeyOutcome) -> Option<TransportErrorKind> {
    let fingerprint = outcome.fingerprint.clone().unwrap_or_default();
    match outcome.verdict.as_ref()? {
        Verdict::Unknown => Some(TransportErrorKind::HostKeyUnknown {
            hop: hop.label.clone(),
            hint: match &hop.record_file {
                Some(file) => format!(
                    "If {fingerprint} is the right key for {}:{}, accept it with \
                     --accept-new-host-keys or the ship setting `ssh: {{known_hosts: accept-new}}` \
                     (it is then recorded in {}), or add it with `ssh-keyscan -p {} {} >> {}`",
                    hop.host,
                    hop.port,
                    file.display(),
                    hop.port,
                    hop.host,
                    shell_word(&file.display().to_string()),
                ),
                // `UserKnownHostsFile none`: accept-new has nowhere to record it.
                None => format!(
                    "If {fingerprint} is the right key for {}:{}, add it to a known_hosts file \
                     with `ssh-keyscan -p {} {}` (ssh_config's UserKnownHostsFile is none, so \
                     --accept-new-host-keys has nowhere to record it), or name one with the \
                     ship setting `ssh: {{known_hosts_file: FILE}}`",
                    hop.host, hop.port, hop.port, hop.host,
                ),
            },
            fingerprint,
        }),
        Verdict::Changed {
            expected,
            recorded_types,
            offered_type,
            file,
            line,
        } => Some(TransportErrorKind::HostKeyChanged {
            hop: hop.label.clone(),
            found: fingerprint,
            expected: expected.clone().into(),
            record: Box::new(crate::transport::error::ChangedKeyRecord {
                at: format!("{}:{line}", file.display()),
                // known_hosts names a host on another port than 22 `[host]:port`.
                forget: format!(
                    "ssh-keygen -f {} -R {}",
                    shell_word(&file.display().to_string()),
                    if hop.port == 22 {
                        hop.host.clone()
                    } else {
                        format!("'[{}]:{}'", hop.host, hop.port)
                    }
                ),
                offered_type: offered_type.clone(),
                types_on_record: recorded_types.clone(),
            }),
        }),
        Verdict::Revoked { file } => Some(TransportErrorKind::HostKeyRevoked {
            hop: hop.label.clone(),
            fingerprint,
            file: file.clone(),
        }),
        Verdict::FileError { file, reason } => Some(TransportErrorKind::KnownHosts {
            path: file.clone(),
            reason: reason.clone(),
        }),
        Verdict::CaRevoked { ca, file } => Some(TransportErrorKind::HostCaRevoked {
            hop: hop.label.clone(),
            ca: ca.clone(),
            file: file.clone(),
        }),
        Verdict::BadCertificate { problem } => Some(TransportErrorKind::HostCertificate {
            hop: hop.label.clone(),
            problem: problem.to_string(),
            fingerprint,
        }),
        Verdict::Known | Verdict::Recorded { .. } | Verdict::Certified => None,
    }
}

/// `text` as one word of a shell command the operator may paste: as is when it is plain,
/// else in single quotes (a known_hosts path may hold blanks, e.g. from UserKnownHostsFile).
pub(super) fn shell_word(text: &str) -> String {
    let plain = !text.is_empty()
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "/._-+:@%,=~".contains(c));
    if plain {
        text.to_string()
    } else {
        format!("'{}'", text.replace('\'', "'\\''"))
    }
}
