//! SSH sessions: through zero or more jump hosts (each hop a `direct-tcpip` channel of the
//! previous session carrying the next session), with host key verification and the
//! authentication order of OpenSSH.
//!
//! Sessions are shared through a [`SessionPool`]: ships whose routes begin with the same
//! logins (same host, port, user, identities, host-key rules and the same hops before) ride
//! the same sessions, so 100 ships behind one bastion log in to it once. A stock sshd drops
//! new connections past `MaxStartups` (10 unauthenticated at once); each sshd we dial is
//! therefore behind a gate that bounds the logins in flight toward it, shrinks when the
//! server drops one anyway, and a dropped login is retried with jittered backoff.
//!
//! A login fails with a cause alone ([`TransportErrorKind`](crate::transport::TransportErrorKind)):
//! the pool keeps it so, and [`connect_chain`] tells it in the name of each ship that meets
//! it.
//!
//! The parts, each behind its own seam:
//! - `route`: a ship's route resolved through ssh_config into [`Hop`]s (jump chains,
//!   ProxyCommand and its process, known_hosts files);
//! - `pool`: the sessions shared between ships and the pacing of logins ([`connect_chain`]);
//! - `connect`: one login toward one hop: the link (TCP, ProxyCommand or a channel of the
//!   hop before), the handshake and why it failed;
//! - `auth`: the authentication order (agent, key files and their certificates, passphrase);
//! - `host_key`: the client handler: the host key check and the remote forwards' arrivals.
//!
//! This file holds what callers use: the [`Hop`], the established [`SshChain`] and its
//! channels.

mod auth;
mod connect;
mod host_key;
mod pool;
mod route;
#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::time::Instant;

use russh::ChannelMsg;
use russh::client::{self, Handle};
use tokio::io::{AsyncRead, AsyncWrite};

use super::HopInfo;
use super::known_hosts::HostKeyPolicy;

pub(crate) use auth::installed_prompt;
pub use auth::{PassphrasePrompt, install_passphrase_prompt};
pub(crate) use connect::ConnectOptions;
pub(crate) use host_key::ForwardTable;
use host_key::HostKeyCheck;
pub use pool::SessionPool;
pub(crate) use pool::connect_chain;
pub(crate) use route::resolve_hops;

/// One hop after resolution through ssh_config: where we connect and as whom. Serialized
/// for the persist daemon (see `warm`): the client resolves, the daemon logs in.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub(crate) struct Hop {
    pub label: String,
    pub host: String,
    pub port: u16,
    pub user: String,
    pub identity_files: Vec<PathBuf>,
    /// `IdentitiesOnly yes`: agent keys are offered only when they are one of
    /// `identity_files` (by the public key beside the file).
    pub identities_only: bool,
    /// ssh_config's `ProxyCommand`, tokens expanded: its stdin/stdout carry the session
    /// instead of a TCP connection (first hop only; later hops ride the previous session).
    pub proxy_command: Option<String>,
    /// Every known_hosts file read, the user's first, then the global ones.
    pub known_hosts_files: Vec<PathBuf>,
    /// Where a new key is recorded under accept-new: the first user file, if any.
    pub record_file: Option<PathBuf>,
    pub policy: HostKeyPolicy,
    /// ssh_config's `CASignatureAlgorithms` (`None`: OpenSSH's default, without `ssh-rsa`).
    pub ca_signature_algorithms: Option<String>,
}

/// The established chain; the last session is the ship's own. Each session keeps the one
/// it travels through alive, and the pool keeps all of them until it is closed.
pub(crate) struct SshChain {
    sessions: Vec<Arc<Session>>,
    pub hops: Vec<HopInfo>,
    pub warnings: Vec<String>,
    pub channels_opened: AtomicU64,
    ship_label: String,
    closed: AtomicBool,
}

impl SshChain {
    fn ship_session(&self) -> Option<&Handle<HostKeyCheck>> {
        self.sessions.last().map(|s| &s.handle)
    }

    pub fn ship_label(&self) -> &str {
        &self.ship_label
    }

    /// Every session of the chain is still up (as far as we know without asking).
    pub fn is_alive(&self) -> bool {
        !self.sessions.is_empty() && self.sessions.iter().all(|s| !s.handle.is_closed())
    }

    pub fn session_count(&self) -> usize {
        self.sessions
            .iter()
            .filter(|s| !s.handle.is_closed())
            .count()
    }

    pub async fn open_streamlocal(
        &self,
        path: &str,
    ) -> Result<russh::ChannelStream<client::Msg>, russh::Error> {
        let session = self.ship_session().ok_or(russh::Error::Disconnect)?;
        self.opened(path, session.channel_open_direct_streamlocal(path))
            .await
    }

    pub async fn open_tcpip(
        &self,
        host: &str,
        port: u16,
    ) -> Result<russh::ChannelStream<client::Msg>, russh::Error> {
        let session = self.ship_session().ok_or(russh::Error::Disconnect)?;
        let target = format!("{host}:{port}");
        self.opened(
            &target,
            session.channel_open_direct_tcpip(host, u32::from(port), "127.0.0.1", 0),
        )
        .await
    }

    /// A channel being opened to `target`, counted and logged (`-v`) with its time.
    async fn opened(
        &self,
        target: &str,
        open: impl std::future::Future<Output = Result<russh::Channel<client::Msg>, russh::Error>>,
    ) -> Result<russh::ChannelStream<client::Msg>, russh::Error> {
        let started = Instant::now();
        let channel = open.await.inspect_err(|err| {
            tracing::debug!("{}: channel to {target}: {err}", self.ship_label);
        })?;
        tracing::debug!(
            "{}: channel to {target} opened in {} ms",
            self.ship_label,
            started.elapsed().as_millis()
        );
        self.channels_opened.fetch_add(1, Ordering::Relaxed);
        Ok(channel.into_stream())
    }

    /// A `session` channel on the ship's own session, for a login shell or a command.
    pub async fn open_session(&self) -> Result<russh::Channel<client::Msg>, russh::Error> {
        let session = self.ship_session().ok_or(russh::Error::Disconnect)?;
        let channel = session.channel_open_session().await?;
        self.channels_opened.fetch_add(1, Ordering::Relaxed);
        Ok(channel)
    }

    /// Runs a shell command on the ship and returns its standard output. Used only to tell
    /// a missing Docker socket from an inaccessible one after sshd refused the channel.
    pub async fn run(&self, command: &str) -> Option<String> {
        let session = self.ship_session()?;
        let mut channel = session.channel_open_session().await.ok()?;
        channel.exec(true, command).await.ok()?;
        let mut out = Vec::new();
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.extend_from_slice(&data),
                ChannelMsg::Eof | ChannelMsg::Close => break,
                _ => {}
            }
        }
        String::from_utf8(out).ok()
    }

    /// Runs a shell command on the ship to its end: its exit status (`None` when sshd sent
    /// none, e.g. the command was killed by a signal), standard output and standard error.
    pub async fn exec(
        &self,
        command: &str,
    ) -> Result<(Option<u32>, Vec<u8>, Vec<u8>), russh::Error> {
        let session = self.ship_session().ok_or(russh::Error::Disconnect)?;
        let mut channel = session.channel_open_session().await?;
        self.channels_opened.fetch_add(1, Ordering::Relaxed);
        channel.exec(true, command).await?;
        let (mut out, mut err, mut status) = (Vec::new(), Vec::new(), None);
        // The exit status may come after EOF: read until the channel closes.
        while let Some(msg) = channel.wait().await {
            match msg {
                ChannelMsg::Data { data } => out.extend_from_slice(&data),
                ChannelMsg::ExtendedData { data, ext: 1 } => err.extend_from_slice(&data),
                ChannelMsg::ExitStatus { exit_status } => status = Some(exit_status),
                ChannelMsg::Close => break,
                _ => {}
            }
        }
        Ok((status, out, err))
    }

    /// Asks the ship's sshd to listen on its loopback at a port of its choosing and to send
    /// each connection there back to us (`tcpip-forward`). The connections arrive on the
    /// receiver; [`SshChain::cancel_forward`] ends the listener.
    pub async fn remote_forward(
        &self,
    ) -> Result<
        (
            u16,
            tokio::sync::mpsc::UnboundedReceiver<russh::Channel<client::Msg>>,
        ),
        russh::Error,
    > {
        let session = self.sessions.last().ok_or(russh::Error::Disconnect)?;
        let port = session.handle.tcpip_forward("127.0.0.1", 0).await?;
        let (sender, receiver) = tokio::sync::mpsc::unbounded_channel();
        session
            .forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(port, sender);
        tracing::debug!(
            "{}: listening on its 127.0.0.1:{port} for us",
            self.ship_label
        );
        let port = u16::try_from(port).map_err(|_| russh::Error::RequestDenied)?;
        Ok((port, receiver))
    }

    /// Ends a forward of [`SshChain::remote_forward`]: sshd closes the listener, and a
    /// connection still arriving is refused.
    pub async fn cancel_forward(&self, port: u16) -> Result<(), russh::Error> {
        let session = self.sessions.last().ok_or(russh::Error::Disconnect)?;
        session
            .forwards
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&u32::from(port));
        let cancelled = session
            .handle
            .cancel_tcpip_forward("127.0.0.1", u32::from(port))
            .await;
        tracing::debug!(
            "{}: forward of 127.0.0.1:{port} cancelled: {cancelled:?}",
            self.ship_label
        );
        cancelled
    }

    /// Closes the sessions that no other chain still uses (a shared jump host stays up
    /// for the ships behind it; the pool closes it at the end of the run).
    pub async fn disconnect(&self) {
        if self.closed.swap(true, Ordering::SeqCst) {
            return;
        }
        for session in self.sessions.iter().rev() {
            if session.users.fetch_sub(1, Ordering::SeqCst) == 1 {
                session.disconnect().await;
            }
        }
    }
}

/// One logged-in SSH session, possibly shared by several chains.
pub(crate) struct Session {
    handle: Handle<HostKeyCheck>,
    info: HopInfo,
    /// Said once per session, reported by every chain that uses it.
    warnings: Vec<String>,
    /// The ProxyCommand carrying it, killed when the session goes.
    _proxy: Option<tokio::process::Child>,
    /// The session this one's bytes travel through: it must live as long as this one.
    _via: Option<Arc<Session>>,
    /// Chains that use it and have not closed.
    users: AtomicUsize,
    /// Its remote forwards (see [`SshChain::remote_forward`]).
    forwards: ForwardTable,
}

impl Session {
    async fn disconnect(&self) {
        let _ = self
            .handle
            .disconnect(russh::Disconnect::ByApplication, "", "en")
            .await;
    }
}

/// A boxed bidirectional byte stream.
pub(crate) trait Duplex: AsyncRead + AsyncWrite + Send + Unpin {}
impl<T: AsyncRead + AsyncWrite + Send + Unpin> Duplex for T {}
