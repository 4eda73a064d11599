//! The operations orchestrate performs on one ship.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use bollard::Docker;
use bollard::container::LogOutput;
use bollard::exec::{CreateExecOptions, StartExecOptions, StartExecResults};
use bollard::models::{
    ContainerUpdateBody, EndpointSettings, NetworkConnectRequest, NetworkCreateRequest,
    PortSummaryTypeEnum,
};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, KillContainerOptionsBuilder,
    ListContainersOptionsBuilder, ListNetworksOptionsBuilder, RemoveContainerOptionsBuilder,
    RestartContainerOptionsBuilder, StopContainerOptionsBuilder,
};
use futures_util::StreamExt;

use super::credentials::Credentials;
use super::error::{DockerError, ErrorKind};
use super::logs::{LogQuery, LogStream};
use super::progress::{PullProgress, PullTracker};
use super::retry::RetryPolicy;
use super::spec::{
    ContainerSpec, ENVIRONMENT_LABEL, INSTANCE_LABEL, Protocol, RestartPolicy, SERVICE_LABEL,
    SPEC_HASH_LABEL,
};
use super::status::{
    ContainerDetails, ContainerStatus, HealthState, parse_status_age, parse_status_exit_code,
};

/// Time the daemon may take beyond the stop timeout to kill and reap a container.
const STOP_ANSWER_MARGIN: Duration = Duration::from_secs(30);

/// Pause before reading the networks again after creating one (see `ensure_network`).
const NETWORK_SETTLE: Duration = Duration::from_millis(100);
/// Most re-reads of the networks after creating one.
const NETWORK_SETTLE_ROUNDS: usize = 10;

/// One ship's Docker daemon, reached through a handle the transport layer opened.
/// Cheap to clone; clones share the handle.
#[derive(Clone)]
pub struct Ship {
    name: String,
    pub(super) docker: Docker,
    pub(super) retry: RetryPolicy,
    /// Serializes our own network creations so concurrent instances do not race each other.
    network_lock: Arc<tokio::sync::Mutex<()>>,
}

impl std::fmt::Debug for Ship {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ship").field("name", &self.name).finish()
    }
}

/// A container of ours, as one list call reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct ManagedContainer {
    pub name: String,
    pub id: String,
    pub environment: String,
    pub service: String,
    pub instance: String,
    pub state: ContainerStatus,
    /// The daemon's own text, e.g. `Up 3 minutes (healthy)` or `Exited (0) 2 hours ago`.
    pub status: String,
    /// How long it has been up (running) or down (exited), from `status`; Docker rounds it.
    pub age: Option<Duration>,
    pub exit_code: Option<i64>,
    /// Creation time, seconds since the Unix epoch.
    pub created: i64,
    pub image: String,
    pub image_id: String,
    pub spec_hash: Option<String>,
    pub health: Option<HealthState>,
    /// Ports published on the ship (running containers only; the daemon lists none else).
    pub ports: Vec<PublishedPort>,
    pub labels: BTreeMap<String, String>,
}

impl ManagedContainer {
    /// The JSON of the spec it was created from, for [`ContainerSpec::changes_since`]
    /// (unpacked, see [`super::packed`]).
    pub fn recorded_spec(&self) -> Option<String> {
        super::spec::recorded_spec_in(&self.labels)
    }
}

/// A container port published on a ship's address.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
pub struct PublishedPort {
    pub container_port: u16,
    pub protocol: Protocol,
    pub host_ip: String,
    pub host_port: u16,
}

/// What an image is and declares, for `plan`'s decisions and its hints.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ImageFacts {
    pub id: String,
    /// `EXPOSE`, as `80/tcp`.
    pub exposed_ports: Vec<String>,
    /// `VOLUME`, container paths.
    pub volumes: Vec<String>,
}

/// The daemon's version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DockerVersion {
    pub version: String,
    pub api_version: String,
    pub os: String,
    pub arch: String,
}

/// Result of a command run inside a container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecOutcome {
    pub exit_code: i64,
    /// Standard output and error, interleaved as produced.
    pub output: String,
}

/// A command to run in a container with [`Ship::exec_attach`].
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ExecRequest {
    pub command: Vec<String>,
    /// A terminal: output comes as one stream, and the caller sends its size.
    pub tty: bool,
    /// Attach standard input (the session's `input`; shut it down for end of file).
    pub stdin: bool,
    /// `user`, `user:group`, `uid` or `uid:gid`; `None`: the container's.
    pub user: Option<String>,
    pub working_dir: Option<String>,
    /// `NAME=value` entries added to the container's environment.
    pub env: Vec<String>,
}

/// A chunk of an exec's output, as the daemon sent it (not cut at lines).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ExecOutput {
    /// Standard output, or everything with a terminal.
    Stdout(bytes::Bytes),
    Stderr(bytes::Bytes),
}

impl ExecOutput {
    pub fn bytes(&self) -> &[u8] {
        match self {
            ExecOutput::Stdout(b) | ExecOutput::Stderr(b) => b,
        }
    }
}

/// A started exec: its id (for [`Ship::exec_resize`] and [`Ship::exec_exit_code`]), its
/// output until the command ends, and its standard input.
pub struct ExecSession {
    pub id: String,
    pub output:
        std::pin::Pin<Box<dyn futures_util::Stream<Item = Result<ExecOutput, DockerError>> + Send>>,
    pub input: std::pin::Pin<Box<dyn tokio::io::AsyncWrite + Send>>,
}

impl std::fmt::Debug for ExecSession {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ExecSession").field("id", &self.id).finish()
    }
}

/// When a failed pull is tried again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PullRetry {
    /// Total tries, the first included (MaestroNG's `retry.attempts`, default 3).
    pub attempts: u32,
    /// HTTP status codes that warrant another try (MaestroNG's `retry.when`).
    pub on_status: Vec<u16>,
    pub delay: Duration,
}

impl Default for PullRetry {
    fn default() -> Self {
        PullRetry {
            attempts: 3,
            on_status: Vec::new(),
            delay: Duration::from_secs(1),
        }
    }
}

impl PullRetry {
    /// Whether `err` carries one of the configured codes, as the daemon's status or inside its
    /// message (the daemon reports the registry's answer as text: `... HTTP status: 503 ...`).
    fn wants_retry(&self, err: &DockerError) -> bool {
        self.on_status.iter().any(|code| {
            err.status == Some(*code)
                || err
                    .message
                    .split(|c: char| !c.is_ascii_digit())
                    .any(|word| word == code.to_string())
        })
    }
}

fn label_map(labels: Option<HashMap<String, String>>) -> BTreeMap<String, String> {
    labels.unwrap_or_default().into_iter().collect()
}

fn env_pairs(env: Option<Vec<String>>) -> Vec<(String, String)> {
    env.unwrap_or_default()
        .into_iter()
        .map(|entry| match entry.split_once('=') {
            Some((name, value)) => (name.to_string(), value.to_string()),
            None => (entry, String::new()),
        })
        .collect()
}

impl Ship {
    pub fn new(name: impl Into<String>, docker: Docker) -> Self {
        Ship {
            name: name.into(),
            docker,
            retry: RetryPolicy::default(),
            network_lock: Arc::new(tokio::sync::Mutex::new(())),
        }
    }

    /// Replaces the retry policy of idempotent calls.
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub(super) fn err(&self, call: impl Into<String>, err: bollard::errors::Error) -> DockerError {
        DockerError::from_bollard(&self.name, call, err)
    }

    /// The daemon's version.
    pub async fn version(&self) -> Result<DockerVersion, DockerError> {
        let version = self
            .retry
            .run(|| async {
                self.docker
                    .version()
                    .await
                    .map_err(|e| self.err("version", e))
            })
            .await?;
        Ok(DockerVersion {
            version: version.version.unwrap_or_default(),
            api_version: version.api_version.unwrap_or_default(),
            os: version.os.unwrap_or_default(),
            arch: version.arch.unwrap_or_default(),
        })
    }

    /// Every container of `environment` on this ship, running or not, in one list call.
    pub async fn list_managed(
        &self,
        environment: &str,
    ) -> Result<Vec<ManagedContainer>, DockerError> {
        let filters = HashMap::from([(
            "label".to_string(),
            vec![format!("{ENVIRONMENT_LABEL}={environment}")],
        )]);
        let options = ListContainersOptionsBuilder::new()
            .all(true)
            .filters(&filters)
            .build();
        let summaries = self
            .retry
            .run(|| async {
                self.docker
                    .list_containers(Some(options.clone()))
                    .await
                    .map_err(|e| self.err(format!("list containers of {environment}"), e))
            })
            .await?;
        let mut containers: Vec<ManagedContainer> = summaries
            .into_iter()
            .map(|summary| {
                // Linked containers also appear as /linker/alias; the real name has no inner /.
                let names = summary.names.unwrap_or_default();
                let name = names
                    .iter()
                    .map(|n| n.trim_start_matches('/'))
                    .find(|n| !n.contains('/'))
                    .or_else(|| names.first().map(|n| n.trim_start_matches('/')))
                    .unwrap_or_default()
                    .to_string();
                let mut ports: Vec<PublishedPort> = summary
                    .ports
                    .unwrap_or_default()
                    .into_iter()
                    .filter_map(|port| {
                        Some(PublishedPort {
                            container_port: port.private_port,
                            protocol: match port.typ {
                                Some(PortSummaryTypeEnum::UDP) => Protocol::Udp,
                                _ => Protocol::Tcp,
                            },
                            host_ip: port.ip.unwrap_or_default(),
                            host_port: port.public_port?,
                        })
                    })
                    .collect();
                ports.sort();
                ports.dedup();
                let labels = label_map(summary.labels);
                let label = |key: &str| labels.get(key).cloned().unwrap_or_default();
                let status = summary.status.unwrap_or_default();
                let state = summary
                    .state
                    .map(|s| ContainerStatus::from_docker(s.as_ref()))
                    .unwrap_or(ContainerStatus::Unknown);
                ManagedContainer {
                    id: summary.id.unwrap_or_default(),
                    environment: label(ENVIRONMENT_LABEL),
                    service: label(SERVICE_LABEL),
                    instance: label(INSTANCE_LABEL),
                    spec_hash: labels.get(SPEC_HASH_LABEL).cloned(),
                    state,
                    age: parse_status_age(&status),
                    exit_code: parse_status_exit_code(&status),
                    health: health_from_status(&status),
                    ports,
                    status,
                    created: summary.created.unwrap_or_default(),
                    image: summary.image.unwrap_or_default(),
                    image_id: summary.image_id.unwrap_or_default(),
                    labels,
                    name,
                }
            })
            .collect();
        containers.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(containers)
    }

    /// The container's details, `None` when there is no such container.
    pub async fn inspect(&self, name: &str) -> Result<Option<ContainerDetails>, DockerError> {
        let result = self
            .retry
            .run(|| async {
                self.docker
                    .inspect_container(name, None)
                    .await
                    .map_err(|e| self.err(format!("inspect {name}"), e))
            })
            .await;
        let raw = match result {
            Ok(raw) => raw,
            Err(err) if err.is_not_found() => return Ok(None),
            Err(err) => return Err(err),
        };
        let state = raw.state.clone().unwrap_or_default();
        let config = raw.config.clone().unwrap_or_default();
        let labels = label_map(config.labels);
        let published_ports = raw
            .network_settings
            .as_ref()
            .and_then(|n| n.ports.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|(key, bindings)| {
                let mut ports: Vec<u16> = bindings
                    .unwrap_or_default()
                    .iter()
                    .filter_map(|b| b.host_port.as_deref()?.parse().ok())
                    .collect();
                ports.sort_unstable();
                ports.dedup();
                (key, ports)
            })
            .collect();
        Ok(Some(ContainerDetails {
            id: raw.id.clone().unwrap_or_default(),
            name: raw
                .name
                .as_deref()
                .unwrap_or(name)
                .trim_start_matches('/')
                .to_string(),
            image: config.image.unwrap_or_default(),
            image_id: raw.image.clone().unwrap_or_default(),
            state: state
                .status
                .map(|s| ContainerStatus::from_docker(s.as_ref()))
                .unwrap_or(ContainerStatus::Unknown),
            running: state.running.unwrap_or(false),
            exit_code: state.exit_code,
            started_at: state
                .started_at
                .as_deref()
                .and_then(crate::clock::parse_rfc3339),
            finished_at: state
                .finished_at
                .as_deref()
                .and_then(crate::clock::parse_rfc3339),
            health: state
                .health
                .and_then(|h| h.status)
                .and_then(|s| HealthState::from_docker(s.as_ref())),
            spec_hash: labels.get(SPEC_HASH_LABEL).cloned(),
            labels,
            env: env_pairs(config.env),
            published_ports,
            raw,
        }))
    }

    /// The id of `image` on the ship, None when the ship does not have it.
    pub async fn image_id(&self, image: &str) -> Result<Option<String>, DockerError> {
        Ok(self.image(image).await?.map(|facts| facts.id))
    }

    /// What the ship's `image` is and declares, None when the ship does not have it.
    pub async fn image(&self, image: &str) -> Result<Option<ImageFacts>, DockerError> {
        let result = self
            .retry
            .run(|| async {
                self.docker
                    .inspect_image(image)
                    .await
                    .map_err(|e| self.err(format!("inspect image {image}"), e))
            })
            .await;
        match result {
            Ok(found) => Ok(found.id.map(|id| {
                let config = found.config.unwrap_or_default();
                ImageFacts {
                    id,
                    exposed_ports: config.exposed_ports.unwrap_or_default(),
                    volumes: config.volumes.unwrap_or_default(),
                }
            })),
            Err(err) if err.is_not_found() => Ok(None),
            Err(err) => Err(err),
        }
    }

    /// Pulls `image` (with `:latest` when it has no tag), reporting one summed progress. A
    /// failure with one of `retry.on_status` is tried again; a broken connection is tried
    /// again only after checking the image did not arrive meanwhile. Returns the image id.
    pub async fn pull(
        &self,
        image: &str,
        auth: Option<Credentials>,
        retry: &PullRetry,
        mut progress: impl FnMut(PullProgress),
    ) -> Result<String, DockerError> {
        let (repository, tag) = split_image_tag(image);
        let reference = if tag.is_empty() {
            repository.to_string()
        } else {
            format!("{repository}:{tag}")
        };
        let call = format!("pull {reference}");
        let attempts = retry.attempts.max(1);
        let mut attempt = 1;
        loop {
            let mut options = CreateImageOptionsBuilder::new().from_image(repository);
            if !tag.is_empty() {
                options = options.tag(tag);
            }
            let options = options.build();
            let mut stream = self.docker.create_image(
                Some(options),
                None,
                auth.as_ref().map(Credentials::to_bollard),
            );
            let mut tracker = PullTracker::new();
            let mut failure = None;
            while let Some(message) = stream.next().await {
                match message {
                    Ok(info) => progress(tracker.update(&info)),
                    Err(err) => {
                        failure = Some(self.err(call.clone(), err));
                        break;
                    }
                }
            }
            let Some(err) = failure else {
                return self.image_id(&reference).await?.ok_or_else(|| {
                    DockerError::new(
                        &self.name,
                        call.clone(),
                        ErrorKind::Other,
                        "pull finished but the image is not there",
                    )
                });
            };
            if attempt >= attempts {
                return Err(err);
            }
            if err.is_transient() {
                // The pull may have completed before the link broke.
                if let Ok(Some(id)) = self.image_id(&reference).await {
                    return Ok(id);
                }
            } else if !retry.wants_retry(&err) {
                return Err(err);
            }
            attempt += 1;
            tokio::time::sleep(retry.delay).await;
        }
    }

    /// Gives the image `id` the name `image` (`repo[:tag]`, `:latest` when it has none).
    pub async fn tag(&self, id: &str, image: &str) -> Result<(), DockerError> {
        let (repository, tag) = split_image_tag(image);
        let options = bollard::query_parameters::TagImageOptionsBuilder::new()
            .repo(repository)
            .tag(tag)
            .build();
        self.docker
            .tag_image(id, Some(options))
            .await
            .map_err(|e| self.err(format!("tag {id} as {image}"), e))
    }

    /// The `repo@digest` references of image `id`.
    pub async fn repo_digests(&self, id: &str) -> Result<Vec<String>, DockerError> {
        let found = self
            .docker
            .inspect_image(id)
            .await
            .map_err(|e| self.err(format!("inspect image {id}"), e))?;
        Ok(found.repo_digests.unwrap_or_default())
    }

    /// Removes the name `reference` only: the image stays while another name has it, and its
    /// layers are never pruned here.
    pub async fn untag(&self, reference: &str) -> Result<(), DockerError> {
        let options = bollard::query_parameters::RemoveImageOptionsBuilder::new()
            .noprune(true)
            .build();
        match self
            .docker
            .remove_image(reference, Some(options), None)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) => {
                let err = self.err(format!("untag {reference}"), e);
                if err.is_not_found() { Ok(()) } else { Err(err) }
            }
        }
    }

    /// Creates the container (never removing an existing one) and connects it to the spec's
    /// further networks. Returns its id.
    pub async fn create(&self, spec: &ContainerSpec) -> Result<String, DockerError> {
        self.create_recorded(spec, &[]).await
    }

    /// [`Ship::create`], with `record` added to the container's labels: labels that are not
    /// part of the spec (and so not of its hash), such as its deployment record.
    pub async fn create_recorded(
        &self,
        spec: &ContainerSpec,
        record: &[(String, String)],
    ) -> Result<String, DockerError> {
        let options = CreateContainerOptionsBuilder::new()
            .name(&spec.name)
            .build();
        let mut body = spec.to_create_body();
        body.labels
            .get_or_insert_with(HashMap::new)
            .extend(record.iter().cloned());
        let created = self
            .docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| self.err(format!("create {}", spec.name), e))?;
        for network in spec.secondary_networks() {
            let request = NetworkConnectRequest {
                container: created.id.clone(),
                endpoint_config: Some(EndpointSettings {
                    aliases: if network.aliases.is_empty() {
                        None
                    } else {
                        Some(network.aliases.clone())
                    },
                    ..Default::default()
                }),
            };
            self.docker
                .connect_network(&network.name, request)
                .await
                .map_err(|e| {
                    self.err(
                        format!("connect {} to network {}", spec.name, network.name),
                        e,
                    )
                })?;
        }
        Ok(created.id)
    }

    /// Starts an existing container; starting a running one is not an error.
    pub async fn start(&self, name: &str) -> Result<(), DockerError> {
        self.retry
            .run(|| async {
                self.docker
                    .start_container(name, None)
                    .await
                    .map_err(|e| self.err(format!("start {name}"), e))
            })
            .await
    }

    /// Waits until the container runs, and returns its details as they were then. Fails
    /// with [`ErrorKind::Exited`] (and its exit code) when it stopped instead, or
    /// [`ErrorKind::TimedOut`].
    pub async fn wait_running(
        &self,
        name: &str,
        timeout: Duration,
    ) -> Result<ContainerDetails, DockerError> {
        let call = format!("wait for {name} to run");
        let deadline = Instant::now() + timeout;
        loop {
            let details = self.inspect(name).await?.ok_or_else(|| {
                DockerError::new(
                    &self.name,
                    call.clone(),
                    ErrorKind::NotFound,
                    "no such container",
                )
            })?;
            match details.state {
                ContainerStatus::Running => return Ok(details),
                ContainerStatus::Exited | ContainerStatus::Dead => {
                    let code = details.exit_code.unwrap_or(-1);
                    let reason = details
                        .raw
                        .state
                        .and_then(|s| s.error)
                        .filter(|e| !e.is_empty())
                        .unwrap_or_else(|| "the container stopped".to_string());
                    return Err(DockerError::new(
                        &self.name,
                        call,
                        ErrorKind::Exited { code },
                        reason,
                    ));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                return Err(DockerError::new(
                    &self.name,
                    call,
                    ErrorKind::TimedOut,
                    format!("still {:?} after {:?}", details.state, timeout),
                ));
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }

    /// Stops the container, killing it after `timeout`; stopping a stopped one is not an error.
    pub async fn stop(&self, name: &str, timeout: Duration) -> Result<(), DockerError> {
        let seconds = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        let options = StopContainerOptionsBuilder::new().t(seconds).build();
        // The daemon answers only once the container is down, which may be after the
        // handle's request timeout.
        let needed = timeout.saturating_add(STOP_ANSWER_MARGIN);
        let docker = if needed > self.docker.timeout() {
            self.docker.clone().with_timeout(needed)
        } else {
            self.docker.clone()
        };
        self.retry
            .run(|| async {
                docker
                    .stop_container(name, Some(options.clone()))
                    .await
                    .map_err(|e| self.err(format!("stop {name}"), e))
            })
            .await
    }

    /// Restarts the container in one request: the daemon stops it (killing it after
    /// `timeout`) and starts it again, keeping the container.
    pub async fn restart(&self, name: &str, timeout: Duration) -> Result<(), DockerError> {
        let seconds = i32::try_from(timeout.as_secs()).unwrap_or(i32::MAX);
        let options = RestartContainerOptionsBuilder::new().t(seconds).build();
        let needed = timeout.saturating_add(STOP_ANSWER_MARGIN);
        let docker = if needed > self.docker.timeout() {
            self.docker.clone().with_timeout(needed)
        } else {
            self.docker.clone()
        };
        docker
            .restart_container(name, Some(options))
            .await
            .map_err(|e| self.err(format!("restart {name}"), e))
    }

    /// Sends `signal` (e.g. `SIGKILL`, `SIGTERM`); a container that is not running is a
    /// conflict.
    pub async fn kill(&self, name: &str, signal: &str) -> Result<(), DockerError> {
        let options = KillContainerOptionsBuilder::new().signal(signal).build();
        self.docker
            .kill_container(name, Some(options))
            .await
            .map_err(|e| self.err(format!("kill {name} with {signal}"), e))
    }

    /// Sets the container's restart policy (`None`: `no`), which Docker applies from its
    /// next start on, the daemon's own restarts included.
    pub async fn set_restart_policy(
        &self,
        name: &str,
        policy: Option<&RestartPolicy>,
    ) -> Result<(), DockerError> {
        let body = ContainerUpdateBody {
            restart_policy: Some(
                policy
                    .map(RestartPolicy::to_docker)
                    .unwrap_or_else(|| RestartPolicy::default().to_docker()),
            ),
            ..Default::default()
        };
        self.docker
            .update_container(name, body)
            .await
            .map_err(|e| self.err(format!("set the restart policy of {name}"), e))
    }

    /// Renames the container `name` to `to`.
    pub async fn rename(&self, name: &str, to: &str) -> Result<(), DockerError> {
        let options = bollard::query_parameters::RenameContainerOptions {
            name: to.to_string(),
        };
        self.docker
            .rename_container(name, options)
            .await
            .map_err(|e| self.err(format!("rename {name} to {to}"), e))
    }

    /// Removes the container; `force` also removes a running one. Its anonymous volumes are
    /// kept: data is never destroyed as a side effect.
    pub async fn remove(&self, name: &str, force: bool) -> Result<(), DockerError> {
        let options = RemoveContainerOptionsBuilder::new().force(force).build();
        self.docker
            .remove_container(name, Some(options))
            .await
            .map_err(|e| self.err(format!("remove {name}"), e))
    }

    /// Makes sure a user-defined bridge network named `name` exists; returns its id. Safe to
    /// call concurrently, also from several processes: old daemons accept duplicate names,
    /// so after creating we keep the oldest network of that name and remove ours if it lost.
    pub async fn ensure_network(&self, name: &str) -> Result<String, DockerError> {
        let _guard = self.network_lock.lock().await;
        if let Some(id) = self.network_ids(name).await?.into_iter().next() {
            return Ok(id);
        }
        let request = NetworkCreateRequest {
            name: name.to_string(),
            driver: Some("bridge".to_string()),
            ..Default::default()
        };
        let created = match self.docker.create_network(request).await {
            Ok(created) => Some(created.id),
            Err(err) => {
                let err = self.err(format!("create network {name}"), err);
                if !err.is_conflict() {
                    return Err(err);
                }
                None
            }
        };
        // The API has no atomic create-if-absent for networks: racing creators (other
        // maestro processes) each make one, and a network may show in the list only some
        // time after its creation time. Every creator keeps the oldest and removes its own;
        // the list is read until it holds one network twice in a row, so a network that
        // became visible late is still seen.
        let mut ours = created;
        let mut previous: Option<String> = None;
        for _ in 0..NETWORK_SETTLE_ROUNDS {
            tokio::time::sleep(NETWORK_SETTLE).await;
            let ids = self.network_ids(name).await?;
            let Some(winner) = ids.first().cloned() else {
                return Err(DockerError::new(
                    &self.name,
                    format!("create network {name}"),
                    ErrorKind::Other,
                    "the network vanished right after creation",
                ));
            };
            if let Some(mine) = ours.take_if(|mine| *mine != winner) {
                // A failure to remove ours only leaves a harmless duplicate.
                let _ = self.docker.remove_network(&mine).await;
            }
            if ids.len() == 1 && previous.as_ref() == Some(&winner) {
                break;
            }
            previous = Some(winner);
        }
        previous.ok_or_else(|| {
            DockerError::new(
                &self.name,
                format!("create network {name}"),
                ErrorKind::Other,
                "the network vanished right after creation",
            )
        })
    }

    /// Ids of networks named exactly `name`, oldest first.
    async fn network_ids(&self, name: &str) -> Result<Vec<String>, DockerError> {
        let filters = HashMap::from([("name".to_string(), vec![name.to_string()])]);
        let options = ListNetworksOptionsBuilder::new().filters(&filters).build();
        let networks = self
            .retry
            .run(|| async {
                self.docker
                    .list_networks(Some(options.clone()))
                    .await
                    .map_err(|e| self.err(format!("list networks named {name}"), e))
            })
            .await?;
        // The name filter matches substrings.
        let mut exact: Vec<(Option<SystemTime>, String)> = networks
            .into_iter()
            .filter(|n| n.name.as_deref() == Some(name))
            .map(|n| {
                (
                    n.created.as_deref().and_then(crate::clock::parse_rfc3339),
                    n.id.unwrap_or_default(),
                )
            })
            .collect();
        // Parsed, not compared as text: the daemon trims trailing zeros of the nanoseconds.
        // The id breaks ties the same way for every caller.
        exact.sort();
        Ok(exact.into_iter().map(|(_, id)| id).collect())
    }

    /// The last `lines` lines of the container's log (stdout and stderr).
    pub async fn logs_tail(&self, name: &str, lines: usize) -> Result<Vec<String>, DockerError> {
        let query = LogQuery {
            tail: Some(lines),
            ..LogQuery::default()
        };
        let mut stream = self.logs(name, query);
        let mut out = Vec::new();
        while let Some(line) = stream.next().await {
            out.push(line?.text);
        }
        Ok(out)
    }

    /// The container's log as lines, as `query` says (see [`super::logs`]).
    pub fn logs(&self, name: &str, query: LogQuery) -> LogStream {
        let ship = self.name.clone();
        let call = format!("logs of {name}");
        let raw = self.docker.logs(name, Some(query.options()));
        super::logs::lines(raw, query.timestamps, move |e| {
            DockerError::from_bollard(&ship, call.clone(), e)
        })
    }

    /// Runs `command` inside the running container, with extra `env`, and waits for it.
    pub async fn exec(
        &self,
        name: &str,
        command: &[String],
        env: &[(String, String)],
    ) -> Result<ExecOutcome, DockerError> {
        let request = ExecRequest {
            command: command.to_vec(),
            env: env.iter().map(|(k, v)| format!("{k}={v}")).collect(),
            ..ExecRequest::default()
        };
        let mut session = self.exec_attach(name, &request).await?;
        let mut output = String::new();
        while let Some(chunk) = session.output.next().await {
            output.push_str(&String::from_utf8_lossy(chunk?.bytes()));
        }
        let exit_code = self.exec_exit_code(name, &session.id).await?;
        Ok(ExecOutcome { exit_code, output })
    }

    /// Creates and starts `request` in the running container `name`, attached: its output
    /// as it comes, and its standard input (when `request.stdin`).
    // The output stream's items are `Result<_, DockerError>` as every stream of this module.
    #[allow(clippy::result_large_err)]
    pub async fn exec_attach(
        &self,
        name: &str,
        request: &ExecRequest,
    ) -> Result<ExecSession, DockerError> {
        let call = format!("exec in {name}");
        let some = |text: &Option<String>| text.clone().filter(|t| !t.is_empty());
        let options = CreateExecOptions::<String> {
            attach_stdin: Some(request.stdin),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(request.tty),
            cmd: Some(request.command.clone()),
            env: (!request.env.is_empty()).then(|| request.env.clone()),
            user: some(&request.user),
            working_dir: some(&request.working_dir),
            ..Default::default()
        };
        let exec = self
            .docker
            .create_exec(name, options)
            .await
            .map_err(|e| self.err(call.clone(), e))?;
        let started = self
            .docker
            .start_exec(
                &exec.id,
                Some(StartExecOptions {
                    detach: false,
                    tty: request.tty,
                    output_capacity: None,
                }),
            )
            .await
            .map_err(|e| self.err(call.clone(), e))?;
        let StartExecResults::Attached { output, input } = started else {
            return Err(DockerError::new(
                &self.name,
                call,
                ErrorKind::Other,
                "the daemon started the command detached",
            ));
        };
        let ship = self.name.clone();
        let output = output.map(move |chunk| match chunk {
            Ok(LogOutput::StdErr { message }) => Ok(ExecOutput::Stderr(message)),
            Ok(
                LogOutput::StdOut { message }
                | LogOutput::Console { message }
                | LogOutput::StdIn { message },
            ) => Ok(ExecOutput::Stdout(message)),
            Err(e) => Err(DockerError::from_bollard(&ship, call.clone(), e)),
        });
        Ok(ExecSession {
            id: exec.id,
            output: Box::pin(output),
            input,
        })
    }

    /// Tells the exec's terminal its new size (`tty` execs only).
    pub async fn exec_resize(&self, id: &str, rows: u16, cols: u16) -> Result<(), DockerError> {
        let options = bollard::query_parameters::ResizeExecOptionsBuilder::new()
            .h(i32::from(rows))
            .w(i32::from(cols))
            .build();
        self.docker
            .resize_exec(id, options)
            .await
            .map_err(|e| self.err("resize of an exec's terminal", e))
    }

    /// The exit code of the exec `id` (in container `name`), once its output has ended.
    pub async fn exec_exit_code(&self, name: &str, id: &str) -> Result<i64, DockerError> {
        let call = format!("exec in {name}");
        // The exit code is recorded a moment after the output ends.
        for _ in 0..50 {
            let inspected = self
                .docker
                .inspect_exec(id)
                .await
                .map_err(|e| self.err(call.clone(), e))?;
            if inspected.running != Some(true)
                && let Some(exit_code) = inspected.exit_code
            {
                return Ok(exit_code);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        Err(DockerError::new(
            &self.name,
            call,
            ErrorKind::TimedOut,
            "the command's output ended but it did not exit",
        ))
    }

    /// The container's own HEALTHCHECK status; `None` when it has no health check.
    pub async fn health(&self, name: &str) -> Result<Option<HealthState>, DockerError> {
        let details = self.inspect(name).await?.ok_or_else(|| {
            DockerError::new(
                &self.name,
                format!("health of {name}"),
                ErrorKind::NotFound,
                "no such container",
            )
        })?;
        Ok(details.health)
    }
}

fn health_from_status(status: &str) -> Option<HealthState> {
    if status.contains("(healthy)") {
        Some(HealthState::Healthy)
    } else if status.contains("(unhealthy)") {
        Some(HealthState::Unhealthy)
    } else if status.contains("(health: starting)") {
        Some(HealthState::Starting)
    } else {
        None
    }
}

/// `repo:tag` split; `latest` when there is no tag. A colon in a registry's port is not a tag.
fn split_image_tag(image: &str) -> (&str, &str) {
    if image.contains('@') {
        // Digest references are pulled as they are.
        return (image, "");
    }
    let last_slash = image.rfind('/').map_or(0, |i| i + 1);
    match image[last_slash..].rfind(':') {
        Some(i) => (&image[..last_slash + i], &image[last_slash + i + 1..]),
        None => (image, "latest"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_image_tags() {
        assert_eq!(split_image_tag("busybox"), ("busybox", "latest"));
        assert_eq!(split_image_tag("app@sha256:abc"), ("app@sha256:abc", ""));
        assert_eq!(split_image_tag("app:1.2"), ("app", "1.2"));
        assert_eq!(
            split_image_tag("reg.example.com:5000/app"),
            ("reg.example.com:5000/app", "latest")
        );
        assert_eq!(
            split_image_tag("reg.example.com:5000/team/app:2"),
            ("reg.example.com:5000/team/app", "2")
        );
    }

    #[test]
    fn pull_retry_matches_codes_in_messages() {
        let retry = PullRetry {
            on_status: vec![503],
            ..Default::default()
        };
        let err = DockerError::new(
            "s",
            "pull",
            ErrorKind::Other,
            "received unexpected HTTP status: 503 Service Unavailable",
        );
        assert!(retry.wants_retry(&err));
        let err = DockerError::new("s", "pull", ErrorKind::Other, "manifest unknown 5030");
        assert!(!retry.wants_retry(&err));
    }
}
