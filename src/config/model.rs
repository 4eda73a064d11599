//! The resolved environment: what `orchestrate` consumes. Every default is applied, every
//! service-level setting is already merged into its instances, every name is checked.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::path::PathBuf;
use std::time::Duration;

/// The suffixes of the names maestro gives an instance's containers kept for `rollback`
/// (`web-1.replaced`, `web-1.previous`): no instance may be named so, or one instance's
/// deploy would rename another's container.
pub const KEPT_SUFFIXES: [&str; 2] = [".replaced", ".previous"];

/// How the deploy lock's container is named on each ship (`maestro-lock.ENV.SHIP`): no
/// instance may be named so.
pub const LOCK_CONTAINER_PREFIX: &str = "maestro-lock.";

use serde::Serialize;

/// A whole environment file, loaded and validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Environment {
    /// `name:` of the file.
    pub name: String,
    /// `__maestro.schema` (1 or 2).
    pub schema: u32,
    /// The file as the user named it (`<stdin>` for `-`).
    pub source: String,
    /// Directory that relative paths (envfiles, includes, keys) are resolved against.
    pub base_dir: PathBuf,
    pub registries: Vec<Registry>,
    /// `ship_provider:` as written (only the static `ships` provider is implemented).
    pub ship_provider: Option<String>,
    /// Ships in file order.
    pub ships: Vec<Ship>,
    /// Services in file order, instances resolved.
    pub services: Vec<Service>,
    pub audit: Vec<Auditor>,
    /// `secrets.patterns`: globs (case-insensitive) naming environment variables whose values
    /// are masked in output, in addition to the defaults (see `secrets`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub secret_patterns: Vec<String>,
    /// What the file says that it probably did not mean (see [`Warnings`]).
    #[serde(skip)]
    pub warnings: Warnings,
}

/// Warnings about the text of a file that loaded (`validate` prints them): not part of what
/// the environment is, so two environments that deploy the same are equal whatever their
/// warnings.
#[derive(Debug, Clone, Default)]
pub struct Warnings(pub Vec<super::Diagnostic>);

impl PartialEq for Warnings {
    fn eq(&self, _: &Warnings) -> bool {
        true
    }
}

impl Environment {
    pub fn ship(&self, name: &str) -> Option<&Ship> {
        self.ships.iter().find(|s| s.name == name)
    }

    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }

    /// An instance (container) by name, with its service.
    pub fn instance(&self, name: &str) -> Option<(&Service, &Instance)> {
        self.instances().find(|(_, i)| i.name == name)
    }

    /// Every instance in file order, with its service.
    pub fn instances(&self) -> impl Iterator<Item = (&Service, &Instance)> {
        self.services
            .iter()
            .flat_map(|s| s.instances.iter().map(move |i| (s, i)))
    }

    /// Where `instance`'s image comes from: its service's `image_source`, else its ship's,
    /// else a registry.
    pub fn image_source(&self, instance: &Instance) -> ImageSource {
        self.service(&instance.service)
            .and_then(|s| s.image_source.clone())
            .or_else(|| {
                self.ship(&instance.ship)
                    .and_then(|s| s.image_source.clone())
            })
            .unwrap_or(ImageSource::Registry)
    }

    /// The registry that serves `image`: matched by registry name or by the host (with or
    /// without port) of its URL, as MaestroNG does.
    pub fn registry_for_image(&self, image: &str) -> Option<&Registry> {
        let first = image.split('/').next()?;
        if !image.contains('/') || !(first.contains('.') || first.contains(':')) {
            return self.registries.iter().find(|r| r.name == first);
        }
        self.registries.iter().find(|r| {
            r.name == first || r.host_port() == first || Some(r.host()) == first.split(':').next()
        })
    }
}

/// A text that must not be shown: its `Debug` and `Display` print `***`.
#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Secret(value.into())
    }

    /// The secret itself, for the one place that must send it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

/// Dumps show the mask, never the secret.
impl Serialize for Secret {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Registry {
    /// The key under `registries:`.
    pub name: String,
    /// `registry:` URL, e.g. `https://registry.example.com:5000/v1/`.
    pub registry: String,
    pub username: Option<String>,
    pub password: Option<Secret>,
    pub email: Option<String>,
    pub retry: RetryPolicy,
}

impl Registry {
    /// `host[:port]` of the registry URL.
    pub fn host_port(&self) -> &str {
        let without_scheme = self
            .registry
            .split_once("://")
            .map_or(self.registry.as_str(), |(_, rest)| rest);
        without_scheme.split('/').next().unwrap_or(without_scheme)
    }

    pub fn host(&self) -> &str {
        let hp = self.host_port();
        hp.split(':').next().unwrap_or(hp)
    }

    /// An `http://` URL means an insecure registry.
    pub fn insecure(&self) -> bool {
        self.registry.starts_with("http://")
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RetryPolicy {
    /// Default 3.
    pub attempts: u32,
    /// HTTP status codes that deserve another attempt; empty means any failure.
    pub when: Vec<u16>,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            attempts: 3,
            when: Vec::new(),
        }
    }
}

/// A host running dockerd.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Ship {
    pub name: String,
    /// The address containers and lifecycle checks use.
    pub ip: String,
    /// The address used to reach the ship (Docker API or SSH); defaults to `ip`.
    pub endpoint: String,
    /// Default 2375, 2376 with `tls`.
    pub docker_port: u16,
    /// `docker_port` was written in the file (or its ship_defaults): over SSH, the daemon's
    /// TCP port is then used instead of its unix socket.
    pub docker_port_given: bool,
    pub socket_path: Option<String>,
    pub api_version: Option<String>,
    /// Default 5 s.
    pub timeout: Duration,
    pub ssh_timeout: Option<Duration>,
    pub tls: bool,
    pub tls_verify: bool,
    pub tls_ca_cert: Option<PathBuf>,
    pub tls_cert: Option<PathBuf>,
    pub tls_key: Option<PathBuf>,
    /// MaestroNG's `ssh_tunnel`, as written.
    pub ssh_tunnel: Option<SshTunnel>,
    /// How to reach the ship over SSH: our `ssh:` block, or the one derived from `ssh_tunnel`
    /// (user, port, key). `None` means no SSH (TCP/TLS or local socket).
    pub ssh: Option<SshSettings>,
    /// Most operations run at once on this ship (our addition); `None` = the global `-c`.
    pub max_concurrency: Option<usize>,
    /// Where the images of the instances on this ship come from, for services that do not
    /// say (our addition; `None`: a registry, as in MaestroNG).
    pub image_source: Option<ImageSource>,
}

/// Where an image comes from (our addition, key `image_source`): a registry the ship pulls
/// from (MaestroNG's only way), or this machine, sent through the ship's SSH session
/// (`maestro push`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ImageSource {
    Registry,
    /// The local Docker daemon (`DOCKER_HOST`, else the default socket).
    Local,
    /// An archive made by `docker save` (Docker or OCI layout).
    Archive(std::path::PathBuf),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshTunnel {
    pub user: String,
    pub key: PathBuf,
    /// Default 22.
    pub port: u16,
}

impl SshTunnel {
    /// The `ssh` settings a ship with this tunnel and no `ssh:` block is reached with: the
    /// loader derives them, and `dump` leaves out an `ssh:` block equal to them.
    pub fn as_ssh(&self) -> SshSettings {
        SshSettings {
            user: Some(self.user.clone()),
            port: self.port,
            identity_files: vec![self.key.clone()],
            jump: Vec::new(),
            known_hosts: KnownHostsPolicy::Strict,
            known_hosts_file: None,
            persist: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SshSettings {
    /// `None` = the current user / ssh config.
    pub user: Option<String>,
    /// Default 22.
    pub port: u16,
    /// Keys to offer, `~` expanded and relative paths resolved against the file.
    pub identity_files: Vec<PathBuf>,
    /// Jump hosts in order, first hop first.
    pub jump: Vec<JumpHost>,
    pub known_hosts: KnownHostsPolicy,
    pub known_hosts_file: Option<PathBuf>,
    /// Keep the SSH session between commands, in the persist daemon, for this long after
    /// its last use (maestro's own key; see docs/commands.md `persist`).
    pub persist: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum JumpHost {
    /// `[user@]host[:port]`.
    Address {
        user: Option<String>,
        host: String,
        port: Option<u16>,
    },
    /// Another ship of the file, reached with its own SSH settings.
    Ship(String),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub enum KnownHostsPolicy {
    /// Unknown or changed host keys are refused (the default).
    #[default]
    Strict,
    /// Unknown host keys are recorded and accepted; changed keys are still refused.
    AcceptNew,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Service {
    pub name: String,
    /// Service-level image (instances may override it).
    pub image: String,
    /// Services whose instances must be up before this one's start.
    pub requires: Vec<String>,
    /// Services whose addresses and ports this one is told about, without ordering.
    pub wants_info: Vec<String>,
    /// Left out of commands given no names.
    pub omit: bool,
    /// Where the service's image comes from; `None`: as its ship says.
    pub image_source: Option<ImageSource>,
    pub instances: Vec<Instance>,
}

/// A container: one instance of a service on one ship, with everything inherited from the
/// service already merged in.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Instance {
    pub name: String,
    pub service: String,
    pub ship: String,
    pub image: String,
    pub command: Option<CommandSpec>,
    pub entrypoint: Option<CommandSpec>,
    /// Named ports in file order (service ports first, instance ports override by name).
    pub ports: Vec<Port>,
    /// Merged, lowest precedence first: service envfile, service env, instance envfile,
    /// instance env. Generated variables are added by orchestrate.
    pub env: BTreeMap<String, String>,
    /// Names given no value (`K: null` or `K:`) by the last layer that names them: passed
    /// bare, so that the container does not have them (MaestroNG's behaviour).
    pub unset_env: BTreeSet<String>,
    pub volumes: Vec<VolumeBind>,
    pub container_volumes: Vec<String>,
    pub volumes_from: Vec<String>,
    pub links: Vec<Link>,
    /// Container user.
    pub username: Option<String>,
    pub workdir: Option<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    pub extra_hosts: Vec<ExtraHost>,
    /// Network mode (`bridge`, `host`, `container:NAME`, `none`, ...).
    pub net: Option<String>,
    pub restart: Option<RestartPolicy>,
    pub dns: Vec<String>,
    /// Seconds between SIGTERM and SIGKILL; default 10.
    pub stop_timeout: u32,
    pub limits: Limits,
    pub log_driver: Option<String>,
    pub log_opt: BTreeMap<String, String>,
    pub security_opt: Vec<String>,
    pub ulimits: Vec<Ulimit>,
    pub labels: BTreeMap<String, String>,
    pub lifecycle: Lifecycle,
    pub networks: Vec<NetworkAttachment>,
    pub healthcheck: Option<Healthcheck>,
    pub devices: Vec<Device>,
    /// Container path -> mount options (may be empty).
    pub tmpfs: BTreeMap<String, String>,
    pub init: Option<bool>,
    pub stop_signal: Option<String>,
}

impl Instance {
    pub fn port(&self, name: &str) -> Option<&Port> {
        self.ports.iter().find(|p| p.name == name)
    }

    /// Image repository and tag (`latest` when none is given).
    pub fn image_repo_tag(&self) -> (&str, &str) {
        split_image(&self.image)
    }
}

/// `repo[:tag][@digest]` into repository and tag; a port in the registry host is not a tag.
pub fn split_image(image: &str) -> (&str, &str) {
    let image = image.split('@').next().unwrap_or(image);
    match image.rsplit_once(':') {
        Some((repo, tag)) if !tag.contains('/') => (repo, tag),
        _ => (image, "latest"),
    }
}

/// A command as written: a string (split by Docker's rules downstream) or an argv list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub enum CommandSpec {
    Shell(String),
    Exec(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub enum Protocol {
    Tcp,
    Udp,
}

impl Protocol {
    pub fn as_str(&self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// An inclusive range of port numbers; a single port has `start == end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub struct PortRange {
    pub start: u16,
    pub end: u16,
}

impl PortRange {
    pub fn single(port: u16) -> Self {
        PortRange {
            start: port,
            end: port,
        }
    }

    pub fn is_single(&self) -> bool {
        self.start == self.end
    }
}

impl fmt::Display for PortRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

/// A named port: `exposed` inside the container, published as `external` on the ship.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Port {
    pub name: String,
    pub exposed: PortRange,
    /// When it is a range and `exposed` a single port, Docker picks one port of the range.
    pub external: PortRange,
    pub protocol: Protocol,
    /// Host address to bind (long form only); `None` = all addresses.
    pub bind_ip: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum VolumeMode {
    ReadWrite,
    ReadOnly,
}

/// A bind mount (or named volume) in Docker's direction: host (source) -> container.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct VolumeBind {
    /// Absolute host path or a named volume.
    pub host: String,
    pub container: String,
    pub mode: VolumeMode,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Link {
    /// The linked instance (container) name.
    pub target: String,
    pub alias: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ExtraHost {
    pub host: String,
    /// The address written, or the `ip` of the ship named.
    pub address: String,
    /// Set when the address came from `{ship: name}`.
    pub from_ship: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum RestartName {
    No,
    Always,
    OnFailure,
    UnlessStopped,
}

impl RestartName {
    pub fn as_str(&self) -> &'static str {
        match self {
            RestartName::No => "no",
            RestartName::Always => "always",
            RestartName::OnFailure => "on-failure",
            RestartName::UnlessStopped => "unless-stopped",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RestartPolicy {
    pub name: RestartName,
    /// Only with `on-failure`.
    pub retries: Option<u32>,
}

/// Resource limits; sizes in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
pub struct Limits {
    pub memory: Option<u64>,
    /// CPU shares (relative weight).
    pub cpu: Option<u64>,
    pub swap: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// Lifecycle checks per state; all checks of a state must pass.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct Lifecycle {
    pub pre_start: Vec<Check>,
    pub running: Vec<Check>,
    pub pre_stop: Vec<Check>,
    pub stopped: Vec<Check>,
}

impl Lifecycle {
    pub fn is_empty(&self) -> bool {
        self.pre_start.is_empty()
            && self.running.is_empty()
            && self.pre_stop.is_empty()
            && self.stopped.is_empty()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum EnvFrom {
    /// The container's environment merged into the command's.
    Env,
    /// The container's environment as JSON on the command's stdin.
    Stdin,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Check {
    /// Connect to a named port; one attempt a second, `max_wait` attempts (default 180).
    Tcp { port: String, max_wait: u32 },
    /// HTTP request to a named port; status 200 expected unless `match_regex` is given.
    Http {
        port: String,
        /// Default: the ship's ip.
        host: Option<String>,
        path: String,
        scheme: String,
        method: String,
        match_regex: Option<String>,
        /// Seconds, default 300.
        max_wait: u32,
        /// How an `https` check verifies the server's certificate (`requests_options.verify`).
        verify: TlsVerify,
    },
    /// A command on the operator's machine; exit code 0 passes; `attempts` default 180.
    Exec {
        command: String,
        attempts: u32,
        envfrom: EnvFrom,
    },
    /// A command inside the container through the exec API; `attempts` default 180.
    Rexec { command: String, attempts: u32 },
    /// Wait `wait` seconds.
    Sleep { wait: f64 },
}

/// How an `https` check verifies the server's certificate: MaestroNG hands its
/// `requests_options` to python-requests, whose `verify` is `true` (the default), `false`, or
/// the path of a CA bundle.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub enum TlsVerify {
    /// Against the system's trusted roots.
    #[default]
    SystemRoots,
    /// Against the certificates of this PEM file only (resolved against the environment file).
    CaFile(PathBuf),
    /// Not at all: any certificate for any name is accepted.
    Off,
}

/// A user-defined network to attach the container to (our addition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NetworkAttachment {
    pub name: String,
    pub aliases: Vec<String>,
    pub ipv4_address: Option<String>,
}

/// Docker health check (our addition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// Docker's form: `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<u32>,
    pub start_period: Option<Duration>,
}

/// A host device exposed to the container (our addition).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Device {
    pub host: String,
    pub container: String,
    /// Default `rwm`.
    pub permissions: String,
}

/// An `audit:` entry, with MaestroNG 0.8.3's types and keys: parsed and validated here;
/// `orchestrate::deploy::audit` acts on it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Auditor {
    pub target: AuditTarget,
    pub level: AuditLevel,
    /// A failing auditor is reported and otherwise ignored.
    pub ignore_errors: bool,
}

impl Auditor {
    /// The `type` as written in the file.
    pub fn kind(&self) -> &'static str {
        match self.target {
            AuditTarget::Log { .. } => "log",
            AuditTarget::Http { .. } => "http",
            AuditTarget::Slack { .. } => "slack",
            AuditTarget::HipChat { .. } => "hipchat",
            AuditTarget::Exec { .. } => "exec",
        }
    }
}

/// MaestroNG's two audit levels: `info` (the default) hears the commands; `debug` also each
/// container acted on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AuditLevel {
    Info,
    Debug,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AuditTarget {
    /// Lines appended to a file.
    Log { file: String },
    /// A JSON request per event; `payload` strings may hold `{what}`, `{action}`, `{who}` and
    /// `{message}`.
    Http {
        endpoint: String,
        payload: serde_json::Value,
        headers: BTreeMap<String, String>,
        /// `GET` or `POST` (the default).
        method: String,
        timeout: Duration,
    },
    Slack {
        channel: String,
        token: String,
        name: Option<String>,
        icon: Option<String>,
    },
    /// HipChat no longer exists as a service; the section still loads.
    #[serde(rename = "hipchat")]
    HipChat {
        room: String,
        token: String,
        name: Option<String>,
    },
    /// `script` run with `args` (which may hold `{action}`), the containers as JSON on stdin.
    Exec { script: String, args: String },
}
