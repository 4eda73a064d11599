//! The container we want on a ship, independent of the environment file's model, and its
//! translation into the Docker API's create body.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use super::status::ContainerDetails;
use bollard::models::{
    ContainerCreateBody, DeviceMapping, EndpointSettings, HealthConfig, HostConfig,
    HostConfigLogConfig, NetworkingConfig, PortBinding, ResourcesUlimits, RestartPolicyNameEnum,
};
use serde::Serialize;
use sha2::{Digest, Sha256};

/// Label naming the environment a container belongs to.
pub const ENVIRONMENT_LABEL: &str = "io.maestro.environment";
/// Label naming the service a container is an instance of.
pub const SERVICE_LABEL: &str = "io.maestro.service";
/// Label naming the instance a container is.
pub const INSTANCE_LABEL: &str = "io.maestro.instance";
/// Label carrying [`ContainerSpec::hash`] of the spec the container was created from.
pub const SPEC_HASH_LABEL: &str = "io.maestro.spec-hash";
/// Label carrying the spec the container was created from, so that a dry run can say which
/// fields changed (see [`ContainerSpec::changes_since`]), packed (see [`super::packed`]: it
/// is in every container list). What can hold a secret is recorded as
/// a fingerprint, not a value (see [`ContainerSpec::recorded_json`]): labels travel further
/// than a container's config (`docker ps --format`, the events stream, log drivers, monitoring
/// that exports labels).
pub const SPEC_LABEL: &str = "io.maestro.spec";

/// The JSON of the spec a container with these labels was created from (its [`SPEC_LABEL`],
/// unpacked); `None` when it has none. A packed label that cannot be unpacked (forged) is
/// returned as it is, so that [`ContainerSpec::changes_since`] names it unreadable, as it does
/// a broken label in clear.
pub(crate) fn recorded_spec_in(labels: &BTreeMap<String, String>) -> Option<String> {
    let label = labels.get(SPEC_LABEL)?;
    Some(super::packed::unpack(label).unwrap_or_else(|| label.clone()))
}

/// How a fingerprinted value starts in [`SPEC_LABEL`].
const FINGERPRINT_PREFIX: &str = "sha256:";

/// The fields of the spec whose values can hold a secret: every value of these pair lists
/// (`env`, `log_opt`: a log driver's token), and every item of these lists (a command or a
/// health check may carry a password on its command line).
const SECRET_PAIR_LISTS: &[&str] = &["env", "log_opt"];
const SECRET_ITEM_LISTS: &[&str] = &["command", "entrypoint"];

/// Labels this layer writes itself; a spec's own copies of them are ignored.
fn is_own_label(key: &str) -> bool {
    key == SPEC_HASH_LABEL || key == SPEC_LABEL
}

/// Bumped whenever the meaning of a spec field changes, so that old hashes stop matching on
/// purpose rather than by accident.
const HASH_FORMAT: &str = "maestro-container-spec-v1\n";

/// Transport protocol of a published port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Protocol {
    #[default]
    Tcp,
    Udp,
}

impl Protocol {
    /// The suffix Docker uses in port keys (`80/tcp`).
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Tcp => "tcp",
            Protocol::Udp => "udp",
        }
    }
}

/// Which host port a container port is published on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum HostPort {
    /// Let the daemon choose an ephemeral port.
    #[default]
    Any,
    /// Exactly this port.
    Port(u16),
    /// The daemon picks a free one within the inclusive range.
    Range(u16, u16),
}

/// One published port.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct PortSpec {
    pub container_port: u16,
    pub protocol: Protocol,
    /// Address on the ship to bind; `None` binds every address.
    pub host_ip: Option<String>,
    pub host_port: HostPort,
}

/// Read-only or read-write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum MountMode {
    #[default]
    Rw,
    Ro,
}

/// A host path mounted into the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct BindMount {
    pub host_path: String,
    pub container_path: String,
    pub mode: MountMode,
}

/// A legacy link: `name` is the linked container, `alias` the name it has inside this one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Link {
    pub name: String,
    pub alias: String,
}

/// Attachment to a user-defined network.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct NetworkAttachment {
    pub name: String,
    /// DNS names of the container on that network (orchestrate passes the instance name).
    pub aliases: Vec<String>,
}

/// Docker's restart policy names.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum RestartPolicyName {
    #[default]
    No,
    Always,
    UnlessStopped,
    OnFailure,
}

/// Restart policy; `max_retries` only matters for `on-failure`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct RestartPolicy {
    pub name: RestartPolicyName,
    pub max_retries: Option<i64>,
}

impl RestartPolicy {
    /// The policy as the Engine API takes it.
    pub fn to_docker(&self) -> bollard::models::RestartPolicy {
        bollard::models::RestartPolicy {
            name: Some(match self.name {
                RestartPolicyName::No => RestartPolicyNameEnum::NO,
                RestartPolicyName::Always => RestartPolicyNameEnum::ALWAYS,
                RestartPolicyName::UnlessStopped => RestartPolicyNameEnum::UNLESS_STOPPED,
                RestartPolicyName::OnFailure => RestartPolicyNameEnum::ON_FAILURE,
            }),
            maximum_retry_count: match self.name {
                RestartPolicyName::OnFailure => self.max_retries,
                _ => None,
            },
        }
    }

    /// The policy recorded in a container's spec label (`None` when it had none, or the
    /// label is not one of ours).
    pub fn recorded_in(spec_label: &str) -> Option<RestartPolicy> {
        #[derive(serde::Deserialize)]
        struct Recorded {
            restart: Option<RestartPolicy>,
        }
        serde_json::from_str::<Recorded>(spec_label)
            .ok()
            .and_then(|r| r.restart)
    }
}

/// Resource limits.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Limits {
    /// Memory limit in bytes.
    pub memory: Option<i64>,
    /// Relative CPU weight.
    pub cpu_shares: Option<i64>,
    /// Memory plus swap in bytes; -1 for unlimited swap.
    pub memory_swap: Option<i64>,
}

/// One ulimit.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Ulimit {
    pub name: String,
    pub soft: i64,
    pub hard: i64,
}

/// The container's own health check (Docker HEALTHCHECK).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Healthcheck {
    /// Docker's form: `["CMD", ...]`, `["CMD-SHELL", "..."]` or `["NONE"]`.
    pub test: Vec<String>,
    pub interval: Option<Duration>,
    pub timeout: Option<Duration>,
    pub retries: Option<i64>,
    pub start_period: Option<Duration>,
}

/// A host device made available to the container.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Device {
    pub host_path: String,
    pub container_path: String,
    /// cgroup permissions, e.g. `rwm`.
    pub permissions: String,
}

/// Everything that defines a container we create. Every collection is ordered so that the
/// serialized form, and therefore [`ContainerSpec::hash`], is deterministic.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ContainerSpec {
    pub name: String,
    pub hostname: Option<String>,
    pub image: String,
    /// `None` keeps the image's command.
    pub command: Option<Vec<String>>,
    /// `None` keeps the image's entrypoint.
    pub entrypoint: Option<Vec<String>>,
    pub env: Vec<(String, String)>,
    /// Variables passed bare (`K`, not `K=`), which Docker removes from the image's
    /// environment: MaestroNG's `K: null`. Left out of the serialized form when empty, so
    /// that the spec hash of every other container is unchanged.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub unset_env: Vec<String>,
    pub ports: Vec<PortSpec>,
    pub binds: Vec<BindMount>,
    /// Anonymous volumes, by container path.
    pub volumes: Vec<String>,
    /// Containers whose volumes this one mounts.
    pub volumes_from: Vec<String>,
    pub links: Vec<Link>,
    pub user: Option<String>,
    pub workdir: Option<String>,
    pub privileged: bool,
    pub cap_add: Vec<String>,
    pub cap_drop: Vec<String>,
    /// `(host, ip)` pairs added to /etc/hosts.
    pub extra_hosts: Vec<(String, String)>,
    /// Docker's network mode (`bridge`, `host`, `none`, `container:<name>`); MaestroNG's `net`.
    pub network_mode: Option<String>,
    pub networks: Vec<NetworkAttachment>,
    pub restart: Option<RestartPolicy>,
    pub dns: Vec<String>,
    /// Seconds the daemon waits after the stop signal before killing.
    pub stop_timeout: Option<i64>,
    pub stop_signal: Option<String>,
    pub limits: Limits,
    pub log_driver: Option<String>,
    pub log_opt: Vec<(String, String)>,
    pub security_opt: Vec<String>,
    pub ulimits: Vec<Ulimit>,
    pub labels: Vec<(String, String)>,
    pub healthcheck: Option<Healthcheck>,
    pub devices: Vec<Device>,
    /// `(container path, mount options)`.
    pub tmpfs: Vec<(String, String)>,
    pub init: Option<bool>,
}

/// One field that differs between two specs; `None` is absent.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SpecChange {
    /// Dotted path, e.g. `env.DB_HOST`, `limits.memory`, `ports[0].host_port`.
    pub field: String,
    pub old: Option<String>,
    pub new: Option<String>,
}

impl SpecChange {
    /// Whether the old value is only the fingerprint the label recorded, not the value itself
    /// (see [`ContainerSpec::changes_since`]: the container's own config can tell it).
    pub fn old_is_fingerprint(&self) -> bool {
        self.old
            .as_deref()
            .is_some_and(|old| old.contains(FINGERPRINT_PREFIX))
    }
}

/// Leaves of a JSON value by dotted path. Lists of `[key, value]` pairs become keyed fields.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, String>) {
    use serde_json::Value;
    let join = |key: &str| {
        if prefix.is_empty() {
            key.to_string()
        } else {
            format!("{prefix}.{key}")
        }
    };
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                flatten(&join(key), inner, out);
            }
        }
        Value::Array(items) if !items.is_empty() && items.iter().all(is_string_pair) => {
            for item in items {
                if let Value::Array(pair) = item
                    && let (Some(Value::String(key)), Some(inner)) = (pair.first(), pair.get(1))
                {
                    flatten(&join(key), inner, out);
                }
            }
        }
        Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {
            for (index, inner) in items.iter().enumerate() {
                flatten(&format!("{prefix}[{index}]"), inner, out);
            }
        }
        Value::Null => {}
        Value::Array(items) if items.is_empty() => {}
        Value::String(text) => {
            out.insert(prefix.to_string(), text.clone());
        }
        other => {
            out.insert(prefix.to_string(), other.to_string());
        }
    }
}

/// The fingerprint [`SPEC_LABEL`] records instead of `value`: enough to tell that it changed,
/// too short to be worth reversing for a strong secret. The field name is mixed in, so that
/// one value used in two places does not show as the same fingerprint.
fn fingerprint(field: &str, value: &str) -> String {
    let mut hasher = Sha256::new();
    hasher.update(b"maestro-recorded-value-v1\0");
    hasher.update(field.as_bytes());
    hasher.update(b"\0");
    hasher.update(value.as_bytes());
    let digest = hex::encode(hasher.finalize());
    format!("{FINGERPRINT_PREFIX}{}", &digest[..16])
}

/// Replaces, in a spec's JSON, every value of [`SECRET_PAIR_LISTS`] and every item of
/// [`SECRET_ITEM_LISTS`] and of the health check's `test` by its fingerprint (values already
/// fingerprinted are kept).
fn fingerprint_secrets(spec: &mut serde_json::Value) {
    use serde_json::Value;
    let keep_or_fingerprint = |field: &str, value: &mut Value| {
        if let Value::String(text) = value
            && !text.starts_with(FINGERPRINT_PREFIX)
        {
            *text = fingerprint(field, text);
        }
    };
    for list in SECRET_PAIR_LISTS {
        if let Some(Value::Array(pairs)) = spec.get_mut(*list) {
            for pair in pairs {
                if let Value::Array(pair) = pair
                    && let [Value::String(key), value] = pair.as_mut_slice()
                {
                    keep_or_fingerprint(&format!("{list}.{key}"), value);
                }
            }
        }
    }
    for list in SECRET_ITEM_LISTS {
        if let Some(Value::Array(items)) = spec.get_mut(*list) {
            for item in items.iter_mut() {
                keep_or_fingerprint(list, item);
            }
        }
    }
    if let Some(Value::Array(items)) = spec.get_mut("healthcheck").and_then(|h| h.get_mut("test")) {
        for item in items.iter_mut() {
            keep_or_fingerprint("healthcheck.test", item);
        }
    }
}

/// The flattened field a fingerprint stands for, fingerprinted again from a value seen in the
/// container's own config (see [`deployed_fields`]); None for fields not fingerprinted.
fn fingerprint_of_field(field: &str, seen: &str) -> Option<String> {
    if let Some((list, key)) = field.split_once('.')
        && SECRET_PAIR_LISTS.contains(&list)
    {
        return Some(fingerprint(&format!("{list}.{key}"), seen));
    }
    // Item lists flatten to one field holding the JSON array.
    let list = if SECRET_ITEM_LISTS.contains(&field) {
        field
    } else if field == "healthcheck.test" {
        "healthcheck.test"
    } else {
        return None;
    };
    let items: Vec<String> = serde_json::from_str(seen).ok()?;
    let fingerprinted: Vec<String> = items.iter().map(|i| fingerprint(list, i)).collect();
    serde_json::to_string(&fingerprinted).ok()
}

/// What the container's own config says of the fields [`SPEC_LABEL`] fingerprints, flattened
/// as the spec is: `env.NAME`, `command`, `entrypoint`, `log_opt.KEY`, `healthcheck.test`.
fn deployed_fields(details: &ContainerDetails) -> BTreeMap<String, String> {
    let mut fields = BTreeMap::new();
    for (name, value) in &details.env {
        fields.insert(format!("env.{name}"), value.clone());
    }
    let config = details.raw.config.as_ref();
    let as_json =
        |items: &Option<Vec<String>>| items.as_ref().and_then(|i| serde_json::to_string(i).ok());
    if let Some(command) = config.and_then(|c| as_json(&c.cmd)) {
        fields.insert("command".to_string(), command);
    }
    if let Some(entrypoint) = config.and_then(|c| as_json(&c.entrypoint)) {
        fields.insert("entrypoint".to_string(), entrypoint);
    }
    if let Some(test) = config
        .and_then(|c| c.healthcheck.as_ref())
        .and_then(|h| as_json(&h.test))
    {
        fields.insert("healthcheck.test".to_string(), test);
    }
    let log_config = details
        .raw
        .host_config
        .as_ref()
        .and_then(|h| h.log_config.as_ref())
        .and_then(|l| l.config.as_ref());
    for (key, value) in log_config.into_iter().flatten() {
        fields.insert(format!("log_opt.{key}"), value.clone());
    }
    fields
}

fn is_string_pair(value: &serde_json::Value) -> bool {
    matches!(value, serde_json::Value::Array(pair) if pair.len() == 2 && pair[0].is_string())
}

fn non_empty<T: Clone>(items: &[T]) -> Option<Vec<T>> {
    if items.is_empty() {
        None
    } else {
        Some(items.to_vec())
    }
}

fn nanos(duration: Option<Duration>) -> Option<i64> {
    duration.map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

impl ContainerSpec {
    /// Sha256 (lower-case hex) of the canonical serialization of this spec, without any
    /// spec-hash label it may carry, so that the label can hold the hash of the rest.
    pub fn hash(&self) -> String {
        let mut hasher = Sha256::new();
        hasher.update(HASH_FORMAT.as_bytes());
        hasher.update(self.canonical_json().as_bytes());
        hex::encode(hasher.finalize())
    }

    /// The spec as compact JSON, fields in declaration order, without the labels this layer
    /// writes itself.
    pub fn canonical_json(&self) -> String {
        let mut canonical = self.clone();
        canonical.labels.retain(|(key, _)| !is_own_label(key));
        // Serializing plain structs, strings and integers cannot fail; an empty body would
        // still hash deterministically if it somehow did.
        serde_json::to_string(&canonical).unwrap_or_default()
    }

    /// The spec as [`SPEC_LABEL`] records it: [`ContainerSpec::canonical_json`] with every
    /// value that can hold a secret replaced by its fingerprint.
    pub fn recorded_json(&self) -> String {
        let mut value: serde_json::Value =
            serde_json::from_str(&self.canonical_json()).unwrap_or(serde_json::Value::Null);
        fingerprint_secrets(&mut value);
        value.to_string()
    }

    /// What differs between the spec a container was created from (the JSON of its
    /// [`SPEC_LABEL`]) and this one, field by field; environment variables, labels and other
    /// pair lists are compared by key. Unparsable old JSON gives one change naming it.
    ///
    /// Fields the label records as fingerprints are compared by fingerprint; their old value
    /// is read from `actual` (the container's own config, from an inspect) when it still has
    /// the value the fingerprint was made of, else shown as the fingerprint.
    pub fn changes_since(
        &self,
        recorded: &str,
        actual: Option<&ContainerDetails>,
    ) -> Vec<SpecChange> {
        let mut old: serde_json::Value = match serde_json::from_str(recorded) {
            Ok(value) => value,
            Err(_) => {
                return vec![SpecChange {
                    field: "spec".to_string(),
                    old: Some("(unreadable)".to_string()),
                    new: None,
                }];
            }
        };
        // A label written before fingerprints holds values in clear: compare like with like,
        // and show what it held.
        let mut recorded_fields = BTreeMap::new();
        flatten("", &old, &mut recorded_fields);
        fingerprint_secrets(&mut old);
        let clear: serde_json::Value =
            serde_json::from_str(&self.canonical_json()).unwrap_or(serde_json::Value::Null);
        let mut new = clear.clone();
        fingerprint_secrets(&mut new);
        let mut old_fields = BTreeMap::new();
        let mut new_fields = BTreeMap::new();
        let mut clear_fields = BTreeMap::new();
        flatten("", &old, &mut old_fields);
        flatten("", &new, &mut new_fields);
        flatten("", &clear, &mut clear_fields);
        let deployed = actual.map(deployed_fields).unwrap_or_default();
        let old_text = |field: &String, value: &String| -> String {
            match (deployed.get(field), recorded_fields.get(field)) {
                (Some(seen), _) if fingerprint_of_field(field, seen).as_deref() == Some(value) => {
                    seen.clone()
                }
                (_, Some(recorded)) if !recorded.contains(FINGERPRINT_PREFIX) => recorded.clone(),
                _ => value.clone(),
            }
        };
        let mut changes = Vec::new();
        for (field, old_value) in &old_fields {
            let new_value = new_fields.get(field);
            if new_value != Some(old_value) {
                changes.push(SpecChange {
                    field: field.clone(),
                    old: Some(old_text(field, old_value)),
                    new: new_value.and(clear_fields.get(field)).cloned(),
                });
            }
        }
        for (field, new_value) in &new_fields {
            if !old_fields.contains_key(field) {
                changes.push(SpecChange {
                    field: field.clone(),
                    old: None,
                    new: clear_fields.get(field).cloned().or(Some(new_value.clone())),
                });
            }
        }
        changes.sort_by(|a, b| a.field.cmp(&b.field));
        changes
    }

    /// The user-defined network the container is created on. Daemons before API 1.44 accept
    /// only one endpoint at create time, so the others are connected after creation.
    pub fn primary_network(&self) -> Option<&NetworkAttachment> {
        if self.network_mode.is_some() {
            return None;
        }
        self.networks.first()
    }

    /// Networks to connect after creation (see [`ContainerSpec::primary_network`]).
    pub fn secondary_networks(&self) -> &[NetworkAttachment] {
        if self.network_mode.is_some() || self.networks.is_empty() {
            &[]
        } else {
            &self.networks[1..]
        }
    }

    /// The labels the container is created with: the spec's, plus the spec hash.
    pub fn effective_labels(&self) -> Vec<(String, String)> {
        let mut labels: Vec<(String, String)> = self
            .labels
            .iter()
            .filter(|(key, _)| !is_own_label(key))
            .cloned()
            .collect();
        labels.push((SPEC_HASH_LABEL.to_string(), self.hash()));
        labels.push((
            SPEC_LABEL.to_string(),
            super::packed::pack(&self.recorded_json()),
        ));
        labels
    }

    /// The create-container request body (the container name goes in the query, see
    /// [`crate::docker::Ship::create`]).
    pub fn to_create_body(&self) -> ContainerCreateBody {
        let (exposed, port_bindings) = self.ports_exposed_and_bound();
        let (host_config, networking_config) = self.host_and_network_config(port_bindings);
        let healthcheck = self.healthcheck.as_ref().map(|h| HealthConfig {
            test: non_empty(&h.test),
            interval: nanos(h.interval),
            timeout: nanos(h.timeout),
            retries: h.retries,
            start_period: nanos(h.start_period),
            start_interval: None,
        });

        ContainerCreateBody {
            hostname: self.hostname.clone(),
            user: self.user.clone(),
            exposed_ports: non_empty(&exposed),
            env: non_empty(
                &self
                    .env
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .chain(self.unset_env.iter().cloned())
                    .collect::<Vec<_>>(),
            ),
            cmd: self.command.clone(),
            entrypoint: self.entrypoint.clone(),
            healthcheck,
            image: Some(self.image.clone()),
            volumes: non_empty(&self.volumes),
            working_dir: self.workdir.clone(),
            labels: Some(self.effective_labels().into_iter().collect()),
            stop_signal: self.stop_signal.clone(),
            stop_timeout: self.stop_timeout,
            host_config: Some(host_config),
            networking_config,
            ..Default::default()
        }
    }

    /// The exposed `port/protocol` keys, in order, and the host bindings of each.
    fn ports_exposed_and_bound(&self) -> (Vec<String>, HashMap<String, Option<Vec<PortBinding>>>) {
        let mut exposed: Vec<String> = Vec::new();
        let mut port_bindings: HashMap<String, Option<Vec<PortBinding>>> = HashMap::new();
        for port in &self.ports {
            let key = format!("{}/{}", port.container_port, port.protocol.as_str());
            if !exposed.contains(&key) {
                exposed.push(key.clone());
            }
            let host_port = match port.host_port {
                HostPort::Any => None,
                HostPort::Port(p) => Some(p.to_string()),
                HostPort::Range(low, high) => Some(format!("{low}-{high}")),
            };
            port_bindings
                .entry(key)
                .or_insert_with(|| Some(Vec::new()))
                .get_or_insert_with(Vec::new)
                .push(PortBinding {
                    host_ip: port.host_ip.clone(),
                    host_port,
                });
        }
        (exposed, port_bindings)
    }

    /// The host config, and the endpoint of the primary network when there is one.
    fn host_and_network_config(
        &self,
        port_bindings: HashMap<String, Option<Vec<PortBinding>>>,
    ) -> (HostConfig, Option<NetworkingConfig>) {
        let (host_links, network_mode, networking_config) = self.network_config();
        let host_config = HostConfig {
            binds: non_empty(&self.docker_binds()),
            port_bindings: if port_bindings.is_empty() {
                None
            } else {
                Some(port_bindings)
            },
            volumes_from: non_empty(&self.volumes_from),
            links: host_links,
            privileged: self.privileged.then_some(true),
            cap_add: non_empty(&self.cap_add),
            cap_drop: non_empty(&self.cap_drop),
            extra_hosts: non_empty(
                &self
                    .extra_hosts
                    .iter()
                    .map(|(host, ip)| format!("{host}:{ip}"))
                    .collect::<Vec<_>>(),
            ),
            network_mode,
            restart_policy: self.restart_policy(),
            dns: non_empty(&self.dns),
            memory: self.limits.memory,
            cpu_shares: self.limits.cpu_shares,
            memory_swap: self.limits.memory_swap,
            log_config: self.log_config(),
            security_opt: non_empty(&self.security_opt),
            ulimits: non_empty(&self.docker_ulimits()),
            devices: non_empty(&self.docker_devices()),
            tmpfs: if self.tmpfs.is_empty() {
                None
            } else {
                Some(self.tmpfs.iter().cloned().collect())
            },
            init: self.init,
            ..Default::default()
        };
        (host_config, networking_config)
    }

    /// Where the container's links go, its network mode, and the endpoint of the primary
    /// network when there is one.
    fn network_config(
        &self,
    ) -> (
        Option<Vec<String>>,
        Option<String>,
        Option<NetworkingConfig>,
    ) {
        let links: Vec<String> = self
            .links
            .iter()
            .map(|l| format!("{}:{}", l.name, l.alias))
            .collect();
        let primary = self.primary_network();
        // Legacy links live in the host config on the default bridge, and in the endpoint
        // settings on a user-defined network (as the docker CLI does).
        let (host_links, endpoint_links) = if primary.is_some() {
            (None, non_empty(&links))
        } else {
            (non_empty(&links), None)
        };
        let network_mode = match (&self.network_mode, primary) {
            (Some(mode), _) => Some(mode.clone()),
            (None, Some(network)) => Some(network.name.clone()),
            (None, None) => None,
        };
        let networking_config = primary.map(|network| NetworkingConfig {
            endpoints_config: Some(HashMap::from([(
                network.name.clone(),
                EndpointSettings {
                    aliases: non_empty(&network.aliases),
                    links: endpoint_links,
                    ..Default::default()
                },
            )])),
        });
        (host_links, network_mode, networking_config)
    }

    /// Binds as the daemon takes them: `host:container:mode`.
    fn docker_binds(&self) -> Vec<String> {
        self.binds
            .iter()
            .map(|b| {
                let mode = match b.mode {
                    MountMode::Rw => "rw",
                    MountMode::Ro => "ro",
                };
                format!("{}:{}:{}", b.host_path, b.container_path, mode)
            })
            .collect()
    }

    fn docker_ulimits(&self) -> Vec<ResourcesUlimits> {
        self.ulimits
            .iter()
            .map(|u| ResourcesUlimits {
                name: Some(u.name.clone()),
                soft: Some(u.soft),
                hard: Some(u.hard),
            })
            .collect()
    }

    fn docker_devices(&self) -> Vec<DeviceMapping> {
        self.devices
            .iter()
            .map(|d| DeviceMapping {
                path_on_host: Some(d.host_path.clone()),
                path_in_container: Some(d.container_path.clone()),
                cgroup_permissions: Some(d.permissions.clone()),
            })
            .collect()
    }

    fn restart_policy(&self) -> Option<bollard::models::RestartPolicy> {
        self.restart.as_ref().map(RestartPolicy::to_docker)
    }

    fn log_config(&self) -> Option<HostConfigLogConfig> {
        if self.log_driver.is_none() && self.log_opt.is_empty() {
            return None;
        }
        Some(HostConfigLogConfig {
            typ: self.log_driver.clone(),
            config: if self.log_opt.is_empty() {
                None
            } else {
                Some(self.log_opt.iter().cloned().collect())
            },
        })
    }
}

impl ContainerDetails {
    /// The JSON of the spec it was created from, for [`ContainerSpec::changes_since`]
    /// (unpacked, see [`super::packed`]).
    pub fn recorded_spec(&self) -> Option<String> {
        recorded_spec_in(&self.labels)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> ContainerSpec {
        ContainerSpec {
            name: "web-1".into(),
            image: "maestro-test:latest".into(),
            env: vec![("A".into(), "1".into()), ("B".into(), "x=y".into())],
            ports: vec![
                PortSpec {
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_ip: None,
                    host_port: HostPort::Port(8080),
                },
                PortSpec {
                    container_port: 80,
                    protocol: Protocol::Tcp,
                    host_ip: Some("127.0.0.1".into()),
                    host_port: HostPort::Range(9000, 9010),
                },
                PortSpec {
                    container_port: 53,
                    protocol: Protocol::Udp,
                    host_ip: None,
                    host_port: HostPort::Any,
                },
            ],
            links: vec![Link {
                name: "db-1".into(),
                alias: "db".into(),
            }],
            labels: vec![(ENVIRONMENT_LABEL.into(), "test".into())],
            ..Default::default()
        }
    }

    #[test]
    fn unset_variables_go_bare_and_only_they_change_the_hash() {
        let plain = sample();
        let mut unset = sample();
        unset.unset_env = vec!["LANG".into()];
        let env = unset.to_create_body().env.unwrap_or_default();
        assert_eq!(env, ["A=1", "B=x=y", "LANG"]);
        assert!(!plain.canonical_json().contains("unset_env"));
        assert_ne!(plain.hash(), unset.hash());
    }

    #[test]
    fn hash_is_stable_and_hex() {
        let spec = sample();
        assert_eq!(spec.hash(), sample().hash());
        assert_eq!(spec.hash().len(), 64);
        assert!(spec.hash().chars().all(|c| c.is_ascii_hexdigit()));
    }

    #[test]
    fn hash_changes_with_any_field() {
        let base = sample().hash();
        let mut changed = sample();
        changed.env.push(("C".into(), "2".into()));
        assert_ne!(changed.hash(), base);
        let mut changed = sample();
        changed.limits.memory = Some(1);
        assert_ne!(changed.hash(), base);
        let mut changed = sample();
        changed.env.reverse();
        assert_ne!(changed.hash(), base, "env order is significant");
    }

    #[test]
    fn hash_ignores_its_own_label() {
        let base = sample().hash();
        let mut labelled = sample();
        labelled
            .labels
            .push((SPEC_HASH_LABEL.into(), "stale".into()));
        assert_eq!(labelled.hash(), base);
        let body = labelled.to_create_body();
        let labels = body.labels.unwrap_or_default();
        assert_eq!(labels.get(SPEC_HASH_LABEL), Some(&base));
    }

    #[test]
    fn changes_name_the_fields_that_differ() {
        let old = sample();
        let mut new = sample();
        new.env[0].1 = "2".into();
        new.env.push(("C".into(), "3".into()));
        new.limits.memory = Some(1024);
        new.ports[0].host_port = HostPort::Port(8081);
        new.links.clear();
        // A label written before fingerprints (values in clear) still compares.
        let changes = new.changes_since(&old.canonical_json(), None);
        let fingerprinted = new.changes_since(&old.recorded_json(), None);
        let fields: Vec<&str> = changes.iter().map(|c| c.field.as_str()).collect();
        assert_eq!(
            fields,
            vec![
                "env.A",
                "env.C",
                "limits.memory",
                "links[0].alias",
                "links[0].name",
                "ports[0].host_port.port"
            ]
        );
        assert_eq!(changes[0].old.as_deref(), Some("1"));
        assert!(
            fingerprinted[0]
                .old
                .as_deref()
                .is_some_and(|o| o.starts_with(FINGERPRINT_PREFIX))
        );
        assert_eq!(changes[0].new.as_deref(), Some("2"));
        assert_eq!(changes[1].old, None);
        assert_eq!(changes[1].new.as_deref(), Some("3"));
        assert_eq!(changes[3].new, None);
        assert!(
            sample()
                .changes_since(&sample().canonical_json(), None)
                .is_empty()
        );
        assert!(
            sample()
                .changes_since(&sample().recorded_json(), None)
                .is_empty()
        );
        assert_eq!(sample().changes_since("not json", None).len(), 1);
    }

    #[test]
    fn the_label_records_fingerprints_of_what_can_hold_a_secret() {
        let mut spec = sample();
        spec.env.push(("DB_PASSWORD".into(), "hunter2-long".into()));
        spec.command = Some(vec!["server".into(), "--token=tok-9876".into()]);
        spec.log_opt = vec![("splunk-token".into(), "splunk-555".into())];
        spec.healthcheck = Some(Healthcheck {
            test: vec!["CMD-SHELL".into(), "curl -u a:pw-4321 x".into()],
            ..Default::default()
        });
        let recorded = spec.recorded_json();
        for secret in ["hunter2-long", "tok-9876", "splunk-555", "pw-4321", "x=y"] {
            assert!(!recorded.contains(secret), "{secret} in {recorded}");
        }
        assert!(recorded.contains("DB_PASSWORD") && recorded.contains("maestro-test:latest"));
        assert!(spec.changes_since(&recorded, None).is_empty());
        // The old value comes from the container's own config, when it is what was recorded.
        let mut changed = spec.clone();
        changed.env.retain(|(k, _)| k != "DB_PASSWORD");
        changed
            .env
            .push(("DB_PASSWORD".into(), "new-secret-1".into()));
        changed.command = Some(vec!["server".into()]);
        let details = ContainerDetails {
            id: "1".into(),
            name: "web-1".into(),
            image: String::new(),
            image_id: String::new(),
            state: super::super::ContainerStatus::Running,
            running: true,
            exit_code: None,
            started_at: None,
            finished_at: None,
            health: None,
            labels: BTreeMap::new(),
            env: vec![
                ("DB_PASSWORD".into(), "hunter2-long".into()),
                ("PATH".into(), "/bin".into()),
            ],
            published_ports: BTreeMap::new(),
            spec_hash: None,
            raw: bollard::models::ContainerInspectResponse {
                config: Some(bollard::models::ContainerConfig {
                    cmd: Some(vec!["server".into(), "--token=tok-9876".into()]),
                    ..Default::default()
                }),
                ..Default::default()
            },
        };
        let changes = changed.changes_since(&recorded, Some(&details));
        let by_field = |f: &str| changes.iter().find(|c| c.field == f).cloned();
        let password = by_field("env.DB_PASSWORD");
        assert_eq!(
            password.as_ref().and_then(|c| c.old.as_deref()),
            Some("hunter2-long")
        );
        assert_eq!(
            password.as_ref().and_then(|c| c.new.as_deref()),
            Some("new-secret-1")
        );
        let command = by_field("command");
        assert_eq!(
            command.and_then(|c| c.old),
            Some(r#"["server","--token=tok-9876"]"#.to_string())
        );
        assert!(
            by_field("env.PATH").is_none(),
            "the image's own variables are not changes"
        );
    }

    /// The spec label is in every container list: with MaestroNG's auto-configuration
    /// variables (a few per linked instance, as in the benchmark's 40-instance file), packed
    /// it takes about half the clear JSON (what remains is mostly the fingerprints).
    #[test]
    fn the_spec_label_of_an_auto_configured_container_is_packed_small() {
        let mut spec = sample();
        for service in ["APP", "DB", "QUEUE", "WEB"] {
            for n in 1..=10 {
                let name = format!("{service}_{}_{n:03}_HOST", service);
                spec.env.push((name, format!("10.0.0.{n}")));
            }
        }
        let labels = spec.effective_labels();
        let label = &labels
            .iter()
            .find(|(k, _)| k == SPEC_LABEL)
            .expect("label")
            .1;
        let clear = spec.recorded_json();
        assert!(clear.len() > 2500, "{}", clear.len());
        assert!(
            label.len() < clear.len() * 55 / 100,
            "{} of {}",
            label.len(),
            clear.len()
        );
        let read = BTreeMap::from([(SPEC_LABEL.to_string(), label.clone())]);
        assert_eq!(recorded_spec_in(&read), Some(clear));
        // A forged packed label is named unreadable, as a broken clear one is.
        let forged = BTreeMap::from([(SPEC_LABEL.to_string(), "deflate+base64:!!".to_string())]);
        let forged = recorded_spec_in(&forged).expect("label");
        let changes = spec.changes_since(&forged, None);
        assert_eq!(changes.len(), 1, "{changes:?}");
        assert_eq!(changes[0].field, "spec");
        assert_eq!(changes[0].old.as_deref(), Some("(unreadable)"));
    }

    #[test]
    fn recorded_spec_label_round_trips() {
        let spec = sample();
        let labels = spec.to_create_body().labels.unwrap_or_default();
        let recorded = recorded_spec_in(&labels.into_iter().collect()).unwrap_or_default();
        assert!(spec.changes_since(&recorded, None).is_empty());
        assert_eq!(recorded, spec.recorded_json());
        let mut relabelled = sample();
        relabelled.labels.push((SPEC_LABEL.into(), "junk".into()));
        assert_eq!(relabelled.hash(), spec.hash());
    }

    #[test]
    fn ports_group_by_container_port() {
        let body = sample().to_create_body();
        let exposed = body.exposed_ports.unwrap_or_default();
        assert_eq!(exposed, vec!["80/tcp".to_string(), "53/udp".to_string()]);
        let bindings = body
            .host_config
            .and_then(|h| h.port_bindings)
            .unwrap_or_default();
        let web = bindings
            .get("80/tcp")
            .cloned()
            .flatten()
            .unwrap_or_default();
        assert_eq!(web.len(), 2);
        assert_eq!(web[0].host_port.as_deref(), Some("8080"));
        assert_eq!(web[1].host_port.as_deref(), Some("9000-9010"));
        assert_eq!(web[1].host_ip.as_deref(), Some("127.0.0.1"));
        let dns = bindings
            .get("53/udp")
            .cloned()
            .flatten()
            .unwrap_or_default();
        assert_eq!(dns[0].host_port, None);
    }

    #[test]
    fn links_follow_the_network() {
        let body = sample().to_create_body();
        let host = body.host_config.unwrap_or_default();
        assert_eq!(host.links, Some(vec!["db-1:db".to_string()]));
        assert!(body.networking_config.is_none());

        let mut on_network = sample();
        on_network.networks = vec![
            NetworkAttachment {
                name: "front".into(),
                aliases: vec!["web-1".into()],
            },
            NetworkAttachment {
                name: "back".into(),
                aliases: vec![],
            },
        ];
        let body = on_network.to_create_body();
        let host = body.host_config.unwrap_or_default();
        assert_eq!(host.links, None);
        assert_eq!(host.network_mode.as_deref(), Some("front"));
        let endpoints = body
            .networking_config
            .and_then(|n| n.endpoints_config)
            .unwrap_or_default();
        assert_eq!(endpoints.len(), 1);
        let front = endpoints.get("front").cloned().unwrap_or_default();
        assert_eq!(front.aliases, Some(vec!["web-1".to_string()]));
        assert_eq!(front.links, Some(vec!["db-1:db".to_string()]));
        assert_eq!(on_network.secondary_networks().len(), 1);
    }

    #[test]
    fn restart_retries_only_for_on_failure() {
        let mut spec = sample();
        spec.restart = Some(RestartPolicy {
            name: RestartPolicyName::Always,
            max_retries: Some(3),
        });
        let policy = spec
            .to_create_body()
            .host_config
            .and_then(|h| h.restart_policy)
            .unwrap_or_default();
        assert_eq!(policy.maximum_retry_count, None);
        spec.restart = Some(RestartPolicy {
            name: RestartPolicyName::OnFailure,
            max_retries: Some(3),
        });
        let policy = spec
            .to_create_body()
            .host_config
            .and_then(|h| h.restart_policy)
            .unwrap_or_default();
        assert_eq!(policy.maximum_retry_count, Some(3));
    }
}
