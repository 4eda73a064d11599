//! A ship's route resolved into hops: ssh_config looked up for the ship and each jump host
//! (explicit jumps, else ProxyJump), the known_hosts files of each hop, and ProxyCommand:
//! its `%` tokens, refused when they would smuggle shell syntax, and the running command
//! whose pipes carry the first hop's session.

use std::path::{Path, PathBuf};

use super::Hop;
use crate::transport::error::{TransportError, TransportErrorKind};
use crate::transport::known_hosts::HostKeyPolicy;
use crate::transport::ssh_config::{self, HostSettings, valid_hostname, valid_user};
use crate::transport::{JumpSpec, SshRoute};

/// Resolves the chain of hops for `route` (explicit jumps win over ProxyJump; settings of
/// the environment win over ssh_config).
pub(crate) fn resolve_hops(ship: &str, route: &SshRoute) -> Result<Vec<Hop>, TransportError> {
    let settings_err = |message: String| TransportErrorKind::Settings { message }.for_ship(ship);
    let config_path = ssh_config::config_path(route.ssh_config_file.as_deref());
    let target_settings = ssh_config::lookup(
        config_path.as_deref(),
        &route.host,
        ssh_config::Given {
            user: route.user.as_deref(),
            port: route.port,
        },
    )
    .map_err(settings_err)?;

    let jumps: Vec<JumpSpec> = if !route.jumps.is_empty() {
        route.jumps.clone()
    } else if let Some(proxy_jump) = &target_settings.proxy_jump {
        proxy_jump
            .split(',')
            .map(|spec| spec.trim().parse::<JumpSpec>())
            .collect::<Result<_, _>>()
            .map_err(|err| settings_err(format!("ProxyJump in ssh config: {err}")))?
    } else {
        Vec::new()
    };

    let mut hops = Vec::with_capacity(jumps.len() + 1);
    for jump in &jumps {
        let settings = ssh_config::lookup(
            config_path.as_deref(),
            &jump.host,
            ssh_config::Given {
                user: jump.user.as_deref(),
                port: jump.port,
            },
        )
        .map_err(settings_err)?;
        hops.push(
            make_hop(route, &jump.host, jump.user.clone(), jump.port, &settings)
                .map_err(settings_err)?,
        );
    }
    hops.push(
        make_hop(
            route,
            &route.host,
            route.user.clone(),
            route.port,
            &target_settings,
        )
        .map_err(settings_err)?,
    );
    Ok(hops)
}

fn make_hop(
    route: &SshRoute,
    alias: &str,
    user: Option<String>,
    port: Option<u16>,
    settings: &HostSettings,
) -> Result<Hop, String> {
    let host = settings
        .host_name
        .clone()
        .unwrap_or_else(|| alias.to_string());
    let port = port.or(settings.port).unwrap_or(22);
    let user = user
        .or_else(|| settings.user.clone())
        .or_else(|| std::env::var("USER").ok())
        .unwrap_or_else(|| "root".to_string());

    let mut identity_files: Vec<PathBuf> = route
        .identity_files
        .iter()
        .map(|p| ssh_config::expand_home(p))
        .collect();
    identity_files.extend(settings.identity_files.iter().cloned());

    let local_user = std::env::var("USER").unwrap_or_default();
    let home = ssh_config::home_dir();
    let tokens = ssh_config::FileTokens {
        home: home.as_deref(),
        local_user: &local_user,
        host: &host,
        original_host: alias,
        port,
        remote_user: &user,
    };
    let (known_hosts_files, record_file) = known_hosts_files(
        route.known_hosts_file.as_deref(),
        settings,
        &tokens,
        GLOBAL_KNOWN_HOSTS,
    )?;
    let policy = match (route.host_key_policy, settings.strict_host_key_checking) {
        (Some(policy), _) => policy,
        (None, Some(false)) => HostKeyPolicy::AcceptNew,
        (None, _) => HostKeyPolicy::Strict,
    };
    // OpenSSH: a route's explicit jumps or ProxyJump win over ProxyCommand.
    let proxy_command = settings
        .proxy_command
        .as_ref()
        .filter(|_| route.jumps.is_empty() && settings.proxy_jump.is_none())
        .map(|command| expand_proxy_tokens(command, &host, port, &user, alias))
        .transpose()?;
    Ok(Hop {
        label: format!("{user}@{host}:{port}"),
        host,
        port,
        user,
        identity_files,
        identities_only: settings.identities_only,
        proxy_command,
        known_hosts_files,
        record_file,
        policy,
        ca_signature_algorithms: settings.ca_signature_algorithms.clone(),
    })
}

/// OpenSSH's default `GlobalKnownHostsFile`.
const GLOBAL_KNOWN_HOSTS: &str = "/etc/ssh/ssh_known_hosts /etc/ssh/ssh_known_hosts2";
/// OpenSSH's default `UserKnownHostsFile`.
const USER_KNOWN_HOSTS: &str = "~/.ssh/known_hosts ~/.ssh/known_hosts2";

/// The known_hosts files of a hop, and the one new keys go to. The ship's
/// `known_hosts_file` is then the only file read (the operator named it for this ship;
/// tests and CI rely on nothing else being trusted). Otherwise OpenSSH's rule: every file of
/// `UserKnownHostsFile` (default `~/.ssh/known_hosts ~/.ssh/known_hosts2`), then every file
/// of `GlobalKnownHostsFile` (default `global_default`, injected so that tests never read
/// this machine's /etc/ssh), new keys recorded in the first user file.
pub(super) fn known_hosts_files(
    explicit: Option<&Path>,
    settings: &HostSettings,
    tokens: &ssh_config::FileTokens,
    global_default: &str,
) -> Result<(Vec<PathBuf>, Option<PathBuf>), String> {
    if let Some(explicit) = explicit {
        let file = ssh_config::expand_home(explicit);
        return Ok((vec![file.clone()], Some(file)));
    }
    let expand_all = |value: &str, keyword: &str| {
        ssh_config::split_file_list(value)
            .iter()
            .map(|word| ssh_config::expand_file(word, keyword, tokens))
            .collect::<Result<Vec<_>, _>>()
    };
    let user = match (&settings.user_known_hosts_files, tokens.home) {
        (Some(value), _) => expand_all(value, "UserKnownHostsFile")?,
        (None, Some(_)) => expand_all(USER_KNOWN_HOSTS, "UserKnownHostsFile")?,
        // No home and nothing configured: no user file, as before; nothing to record into.
        (None, None) => Vec::new(),
    };
    let global = expand_all(
        settings
            .global_known_hosts_files
            .as_deref()
            .unwrap_or(global_default),
        "GlobalKnownHostsFile",
    )?;
    let record_file = user.first().cloned();
    let mut files = user;
    for file in global {
        if !files.contains(&file) {
            files.push(file);
        }
    }
    Ok((files, record_file))
}

/// ssh_config's `%` tokens of a ProxyCommand: `%h` host, `%p` port, `%r` user, `%n` the
/// name as given, `%%` a percent sign. The command runs through `sh -c`, so a value holding
/// shell metacharacters is refused, as OpenSSH 9.6 refuses it (CVE-2023-51385): host names
/// and user names may come from templates, inventories or ssh_config's `HostName`.
pub(super) fn expand_proxy_tokens(
    command: &str,
    host: &str,
    port: u16,
    user: &str,
    alias: &str,
) -> Result<String, String> {
    let mut out = String::with_capacity(command.len());
    let mut chars = command.chars();
    let checked = |token: char, value: &str, valid: fn(&str) -> bool| {
        if valid(value) {
            Ok(value.to_string())
        } else {
            Err(format!(
                "refusing to run the ProxyCommand `{command}`: %{token} would be `{value}`, \
                 which holds characters a shell interprets (OpenSSH refuses it too)"
            ))
        }
    };
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('h') => out.push_str(&checked('h', host, valid_hostname)?),
            Some('p') => out.push_str(&port.to_string()),
            Some('r') => out.push_str(&checked('r', user, valid_user)?),
            Some('n') => out.push_str(&checked('n', alias, valid_hostname)?),
            Some('%') => out.push('%'),
            Some(other) => {
                out.push('%');
                out.push(other);
            }
            None => out.push('%'),
        }
    }
    Ok(out)
}

/// A running ProxyCommand: its stdout and stdin joined into the stream the session runs
/// over, and the tail of what it writes on stderr (ready when the pipe closes) for the error
/// message.
pub(super) struct ProxyCommand {
    pub(super) child: tokio::process::Child,
    pub(super) stream: tokio::io::Join<tokio::process::ChildStdout, tokio::process::ChildStdin>,
    pub(super) stderr: tokio::task::JoinHandle<String>,
}

impl ProxyCommand {
    /// Runs `command` with `sh -c`, as OpenSSH runs it with the user's shell.
    pub(super) fn spawn(command: &str) -> std::io::Result<Self> {
        use tokio::io::AsyncReadExt;
        let mut child = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!("exec {command}"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()?;
        let missing = || std::io::Error::other("the command's pipes are missing");
        let stdout = child.stdout.take().ok_or_else(missing)?;
        let stdin = child.stdin.take().ok_or_else(missing)?;
        let mut pipe = child.stderr.take().ok_or_else(missing)?;
        let stderr = tokio::spawn(async move {
            const KEPT: usize = 16 * 1024;
            let mut tail: Vec<u8> = Vec::new();
            let mut buf = [0u8; 4096];
            while let Ok(n) = pipe.read(&mut buf).await {
                if n == 0 {
                    break;
                }
                tail.extend_from_slice(&buf[..n]);
                // Bounded, keeping the end: only the last lines are ever shown.
                if tail.len() > 2 * KEPT {
                    tail.drain(..tail.len() - KEPT);
                }
            }
            String::from_utf8_lossy(&tail).into_owned()
        });
        Ok(ProxyCommand {
            child,
            stream: tokio::io::join(stdout, stdin),
            stderr,
        })
    }
}

/// The last three non-empty lines of `text`, joined; `None` when there are none.
pub(super) fn last_lines(text: &str) -> Option<String> {
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let start = lines.len().saturating_sub(3);
    (!lines.is_empty()).then(|| lines[start..].join(" / "))
}
