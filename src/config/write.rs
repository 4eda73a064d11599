//! The resolved [`Environment`] written back as an environment file in MaestroNG's schema 2
//! format: what `maestro dump` prints, like `docker compose config`. The file loads again
//! (through [`super::load_str`]) into the same model, apart from `source`, `base_dir` and
//! `schema` (always 2 here), and so gives the same plan.
//!
//! Decisions, each made so that the output reloads into the same model:
//! - Every service-level setting is already merged into each instance: services keep only
//!   `image`, `requires`, `wants_info` and `omit`; `ship_defaults` is applied to every ship and
//!   not written; envfiles are read and their variables written into `env` (no `envfile`).
//! - Every default is written out (ship timeout, tls flags, ssh port and known_hosts policy,
//!   stop_timeout, privileged, check waits and attempts, auditor level...), except
//!   `docker_port`: the model records whether it was given (`docker_port_given`), which
//!   changes how a ship is reached over SSH (its TCP port instead of its unix socket), so it is
//!   written only when it was given. Absent options (`None`) and empty lists are left out:
//!   absence is their default, and `restart` in particular has no written form for "not set".
//! - A ship's `ssh_tunnel` is written as the model keeps it (as written); its `ssh` block only
//!   when it is not the one the loader derives from the tunnel.
//! - Paths (keys, certificates, known_hosts, CA bundles) were resolved against the file's
//!   directory; one still relative to it is written relative again, so that the output reloads
//!   the same when it sits beside the original (or is loaded with the same base directory).
//! - Durations are seconds (whole seconds as integers, else the exact decimal); sizes are bytes,
//!   or `k`/`m`/`g` when exact; ports `"exposed:external[/udp]"`, or the long form when bound
//!   to an address; volumes `/host: /container`, `{target, mode: ro}` when read-only; a variable
//!   of `unset_env` is `NAME: null`; an extra host from a ship is `{ship: NAME}` again.
//! - Strings are quoted by the YAML serializer whenever they would read back as something else
//!   (numbers, booleans, null, `yes`/`no`...: the loader types plain scalars as PyYAML does).
//!   Multi-line strings are literal blocks, except those with one line of content, which are
//!   double-quoted (the loader would type that line as a plain scalar and drop its break); long
//!   lines are never folded, for the same reason. The output is a template again when reloaded:
//!   every `{{`, `{%` and `{#` of the YAML text becomes an expression printing it
//!   (`{{ '{{' }}`), so that rendering gives the text back exactly. JSON (`dump --json`) is
//!   data for programs and is not escaped.
//! - Masking: with [`Reveal::Masks`] registry passwords (the model's [`Secret`]s) are `***`.
//!   Auditor credentials (Slack and HipChat tokens, HTTP headers, the user and path of an HTTP
//!   endpoint) are `***` too. Environment values whose names are secret are masked by the
//!   caller, which knows the patterns, field by field: see [`Document::mask_fields`].
//! - Order follows the file: ships, services, instances, ports, volumes, auditors in the
//!   model's order; maps the model keeps sorted (env, labels, tmpfs, log_opt) sorted.
//! - What schema 2 cannot say is refused with a [`WriteError`] rather than written wrongly: a
//!   host path bound twice in one container (possible in schema 1, where the container path
//!   is the key).

use std::path::Path;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::model::*;

/// The fields of a written file whose values are names, addresses or paths the operator
/// chose (never masked by [`Document::mask_fields`]).
pub const NAME_KEYS: &[&str] = &[
    "name",
    "ship",
    "image",
    "ip",
    "endpoint",
    "jump",
    "socket_path",
    "key",
    "known_hosts_file",
    "user",
    "requires",
    "wants_info",
    "links",
    "net",
    "network",
    "volumes_from",
    "container_name",
    "hostname",
    "registry",
    "username",
    "channel",
    "room",
    "file",
    "script",
    "volumes",
    "container_volumes",
];

/// Whether secret values (registry passwords) are written or masked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reveal {
    /// `***` in their place.
    Masks,
    /// The values themselves.
    Secrets,
}

/// The environment cannot be written as a schema 2 file (or the text cannot be produced).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("cannot write the environment as a schema 2 file: {0}")]
pub struct WriteError(String);

/// A YAML (or JSON) value whose mappings keep the order they were built in.
#[derive(Debug, Clone, PartialEq)]
pub enum Document {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    Str(String),
    Seq(Vec<Document>),
    Map(Vec<(String, Document)>),
}

impl Document {
    /// Replaces every string value (not the keys, which are names) with `f` of it: how the
    /// CLI masks secret values before the text is produced, whatever their YAML spelling.
    pub fn mask_strings(&mut self, f: &dyn Fn(&str) -> String) {
        match self {
            Document::Str(s) => *s = f(s),
            Document::Seq(items) => items.iter_mut().for_each(|d| d.mask_strings(f)),
            Document::Map(entries) => entries.iter_mut().for_each(|(_, d)| d.mask_strings(f)),
            Document::Null | Document::Bool(_) | Document::Int(_) | Document::Float(_) => {}
        }
    }

    /// Masks the document field by field, as `dump` prints it: the value of every variable of
    /// an `env` mapping whose name `secret_name` says is secret becomes `***`; the fields that
    /// hold names, addresses and paths ([`NAME_KEYS`]) stay as written, so that the dump
    /// reloads and a service named like a password keeps its name; every other string (a
    /// variable's value, a command, a label) goes through `mask_text`, since a secret can be
    /// part of it (`postgres://app:hunter2@db`). Keys are names and stay.
    pub fn mask_fields(
        &mut self,
        secret_name: &dyn Fn(&str) -> bool,
        mask_text: &dyn Fn(&str) -> String,
    ) {
        self.mask_under(None, false, secret_name, mask_text);
    }

    /// `names`: under a name field (a `volumes` mapping's paths are all names).
    fn mask_under(
        &mut self,
        key: Option<&str>,
        names: bool,
        secret_name: &dyn Fn(&str) -> bool,
        mask_text: &dyn Fn(&str) -> String,
    ) {
        let names = names || key.is_some_and(|k| NAME_KEYS.contains(&k));
        match self {
            Document::Str(s) if !names => *s = mask_text(s),
            Document::Seq(items) => items
                .iter_mut()
                .for_each(|d| d.mask_under(key, names, secret_name, mask_text)),
            Document::Map(entries) => {
                let env = key == Some("env");
                for (name, value) in entries.iter_mut() {
                    if env && secret_name(name) && !matches!(value, Document::Null) {
                        *value = Document::Str("***".to_owned());
                    } else {
                        value.mask_under(Some(name), names, secret_name, mask_text);
                    }
                }
            }
            _ => {}
        }
    }

    /// The value at `key` of a mapping.
    pub fn get(&self, key: &str) -> Option<&Document> {
        match self {
            Document::Map(entries) => entries.iter().find(|(k, _)| k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    /// The YAML text, ready to be loaded again (template syntax escaped).
    pub fn to_yaml(&self) -> Result<String, WriteError> {
        // No folding of long lines: a folded scalar that cannot be wrapped stays on one line,
        // where the loader would type it as a plain scalar.
        let options = serde_saphyr::ser_options! {
            folded_wrap_chars: usize::MAX,
        };
        let text = serde_saphyr::to_string_with_options(self, options)
            .map_err(|e| WriteError(e.to_string()))?;
        Ok(escape_template(&text))
    }

    /// The same document as pretty JSON.
    pub fn to_json(&self) -> Result<String, WriteError> {
        serde_json::to_string_pretty(self).map_err(|e| WriteError(e.to_string()))
    }
}

impl Serialize for Document {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match self {
            Document::Null => serializer.serialize_unit(),
            Document::Bool(b) => serializer.serialize_bool(*b),
            Document::Int(i) => serializer.serialize_i64(*i),
            Document::Float(f) => serializer.serialize_f64(*f),
            // A block scalar whose content is one line would be read back as a plain
            // scalar (the loader types those as PyYAML does, and loses the line break):
            // such a string is double-quoted instead.
            Document::Str(s) if s.contains('\n') && !s.trim().contains('\n') => {
                serde_saphyr::DoubleQuoted(s.as_str()).serialize(serializer)
            }
            Document::Str(s) => serializer.serialize_str(s),
            Document::Seq(items) => {
                let mut seq = serializer.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Document::Map(entries) => {
                let mut map = serializer.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

impl From<&str> for Document {
    fn from(s: &str) -> Self {
        Document::Str(s.to_owned())
    }
}

impl From<&String> for Document {
    fn from(s: &String) -> Self {
        Document::Str(s.clone())
    }
}

impl From<String> for Document {
    fn from(s: String) -> Self {
        Document::Str(s)
    }
}

impl From<bool> for Document {
    fn from(b: bool) -> Self {
        Document::Bool(b)
    }
}

impl From<u16> for Document {
    fn from(n: u16) -> Self {
        Document::Int(i64::from(n))
    }
}

impl From<u32> for Document {
    fn from(n: u32) -> Self {
        Document::Int(i64::from(n))
    }
}

impl From<i64> for Document {
    fn from(n: i64) -> Self {
        Document::Int(n)
    }
}

/// Larger than YAML integers go: the loader reads such a number written as text.
impl From<u64> for Document {
    fn from(n: u64) -> Self {
        i64::try_from(n).map_or_else(|_| Document::Str(n.to_string()), Document::Int)
    }
}

impl From<usize> for Document {
    fn from(n: usize) -> Self {
        Document::from(n as u64)
    }
}

impl From<Vec<Document>> for Document {
    fn from(items: Vec<Document>) -> Self {
        Document::Seq(items)
    }
}

/// A mapping being built, key by key, in the order it is written.
#[derive(Default)]
struct Fields(Vec<(String, Document)>);

impl Fields {
    fn put(&mut self, key: impl Into<String>, value: impl Into<Document>) {
        self.0.push((key.into(), value.into()));
    }

    /// Written only when set.
    fn opt<T: Into<Document>>(&mut self, key: &str, value: Option<T>) {
        if let Some(v) = value {
            self.put(key, v);
        }
    }

    /// Written only when not empty.
    fn strings(&mut self, key: &str, items: &[String]) {
        if !items.is_empty() {
            self.put(key, strings(items));
        }
    }

    /// Written only when not empty.
    fn map(&mut self, key: &str, fields: Fields) {
        if !fields.0.is_empty() {
            self.put(key, fields.done());
        }
    }

    fn done(self) -> Document {
        Document::Map(self.0)
    }
}

fn strings(items: &[String]) -> Document {
    Document::Seq(items.iter().map(Document::from).collect())
}

fn string_map<'a>(pairs: impl IntoIterator<Item = (&'a String, &'a String)>) -> Fields {
    let mut f = Fields::default();
    for (k, v) in pairs {
        f.put(k, v);
    }
    f
}

/// `env` as a schema 2 document.
pub fn to_schema2(env: &Environment, reveal: Reveal) -> Result<Document, WriteError> {
    let w = Writer { env, reveal };
    let mut top = Fields::default();
    let mut meta = Fields::default();
    meta.put("schema", 2u32);
    top.put("__maestro", meta.done());
    top.put("name", &env.name);
    let mut registries = Fields::default();
    for r in &env.registries {
        registries.put(&r.name, w.registry(r));
    }
    top.map("registries", registries);
    top.opt("ship_provider", env.ship_provider.as_ref());
    let mut ships = Fields::default();
    for s in &env.ships {
        ships.put(&s.name, w.ship(s));
    }
    // `ships` is required by the loader, even empty.
    top.put("ships", ships.done());
    let mut services = Fields::default();
    for s in &env.services {
        services.put(&s.name, w.service(s)?);
    }
    top.map("services", services);
    if !env.audit.is_empty() {
        top.put(
            "audit",
            Document::Seq(env.audit.iter().map(|a| auditor(a, reveal)).collect()),
        );
    }
    if !env.secret_patterns.is_empty() {
        let mut secrets = Fields::default();
        secrets.put("patterns", strings(&env.secret_patterns));
        top.put("secrets", secrets.done());
    }
    Ok(top.done())
}

/// `env` as the text of a schema 2 environment file.
pub fn to_schema2_yaml(env: &Environment, reveal: Reveal) -> Result<String, WriteError> {
    to_schema2(env, reveal)?.to_yaml()
}

/// `env` as the same document in JSON.
pub fn to_schema2_json(env: &Environment, reveal: Reveal) -> Result<String, WriteError> {
    to_schema2(env, reveal)?.to_json()
}

struct Writer<'a> {
    env: &'a Environment,
    reveal: Reveal,
}

impl Writer<'_> {
    fn registry(&self, r: &Registry) -> Document {
        let mut f = Fields::default();
        f.put("registry", &r.registry);
        f.opt("username", r.username.as_ref());
        f.opt(
            "password",
            r.password.as_ref().map(|p| match self.reveal {
                Reveal::Secrets => p.expose().to_owned(),
                Reveal::Masks => "***".to_owned(),
            }),
        );
        f.opt("email", r.email.as_ref());
        let mut retry = Fields::default();
        retry.put("attempts", r.retry.attempts);
        if !r.retry.when.is_empty() {
            let when = r.retry.when.iter().map(|c| Document::from(*c)).collect();
            retry.put("when", Document::Seq(when));
        }
        f.put("retry", retry.done());
        f.done()
    }

    /// A path as the file would give it: relative to the file's directory when it was.
    fn path(&self, p: &Path) -> Document {
        let base = &self.env.base_dir;
        let shown = match p.strip_prefix(base) {
            Ok(rest) if p.is_relative() && !rest.as_os_str().is_empty() => rest,
            _ => p,
        };
        Document::Str(shown.to_string_lossy().into_owned())
    }

    fn ship(&self, s: &Ship) -> Document {
        let mut f = Fields::default();
        f.put("ip", &s.ip);
        f.put("endpoint", &s.endpoint);
        if s.docker_port_given {
            f.put("docker_port", s.docker_port);
        }
        f.opt("socket_path", s.socket_path.as_ref());
        f.opt("api_version", s.api_version.as_ref());
        f.put("timeout", duration(s.timeout));
        f.opt("ssh_timeout", s.ssh_timeout.map(duration));
        f.put("tls", s.tls);
        f.put("tls_verify", s.tls_verify);
        f.opt(
            "tls_ca_cert",
            s.tls_ca_cert.as_deref().map(|p| self.path(p)),
        );
        f.opt("tls_cert", s.tls_cert.as_deref().map(|p| self.path(p)));
        f.opt("tls_key", s.tls_key.as_deref().map(|p| self.path(p)));
        if let Some(t) = &s.ssh_tunnel {
            let mut tunnel = Fields::default();
            tunnel.put("user", &t.user);
            tunnel.put("key", self.path(&t.key));
            tunnel.put("port", t.port);
            f.put("ssh_tunnel", tunnel.done());
        }
        // The loader derives `ssh` from `ssh_tunnel` when no `ssh` block is given.
        let derived = s.ssh_tunnel.as_ref().map(SshTunnel::as_ssh);
        if let Some(ssh) = s.ssh.as_ref().filter(|ssh| Some(*ssh) != derived.as_ref()) {
            f.put("ssh", self.ssh(ssh));
        }
        f.opt("max_concurrency", s.max_concurrency);
        f.opt(
            "image_source",
            s.image_source.as_ref().map(|i| self.image_source(i)),
        );
        f.done()
    }

    fn image_source(&self, source: &ImageSource) -> Document {
        match source {
            ImageSource::Registry => "registry".into(),
            ImageSource::Local => "local".into(),
            ImageSource::Archive(path) => {
                let mut f = Fields::default();
                f.put("archive", self.path(path));
                f.done()
            }
        }
    }

    fn ssh(&self, ssh: &SshSettings) -> Document {
        let mut f = Fields::default();
        f.opt("user", ssh.user.as_ref());
        f.put("port", ssh.port);
        if !ssh.identity_files.is_empty() {
            let files = ssh.identity_files.iter().map(|p| self.path(p)).collect();
            f.put("identity_files", Document::Seq(files));
        }
        if !ssh.jump.is_empty() {
            f.put(
                "jump",
                Document::Seq(ssh.jump.iter().map(jump_host).collect()),
            );
        }
        let policy = match ssh.known_hosts {
            KnownHostsPolicy::Strict => "strict",
            KnownHostsPolicy::AcceptNew => "accept-new",
        };
        f.put("known_hosts", policy);
        f.opt(
            "known_hosts_file",
            ssh.known_hosts_file.as_deref().map(|p| self.path(p)),
        );
        f.opt("persist", ssh.persist.map(duration));
        f.done()
    }

    fn service(&self, s: &Service) -> Result<Document, WriteError> {
        let mut f = Fields::default();
        f.put("image", &s.image);
        f.strings("requires", &s.requires);
        f.strings("wants_info", &s.wants_info);
        f.put("omit", s.omit);
        f.opt(
            "image_source",
            s.image_source.as_ref().map(|i| self.image_source(i)),
        );
        let mut instances = Fields::default();
        for i in &s.instances {
            instances.put(&i.name, self.instance(i)?);
        }
        // `instances` is required by the loader, even empty.
        f.put("instances", instances.done());
        Ok(f.done())
    }

    /// Every setting of an instance, in the loader's order of keys.
    fn instance(&self, i: &Instance) -> Result<Document, WriteError> {
        let mut f = Fields::default();
        f.put("ship", &i.ship);
        f.put("image", &i.image);
        f.opt("command", i.command.as_ref().map(command));
        f.opt("entrypoint", i.entrypoint.as_ref().map(command));
        let mut ports = Fields::default();
        for p in &i.ports {
            ports.put(&p.name, port(p));
        }
        f.map("ports", ports);
        f.map("env", env(i));
        f.map("volumes", volumes(i)?);
        f.strings("container_volumes", &i.container_volumes);
        f.strings("volumes_from", &i.volumes_from);
        if !i.links.is_empty() {
            f.put("links", Document::Seq(i.links.iter().map(link).collect()));
        }
        f.opt("username", i.username.as_ref());
        f.opt("workdir", i.workdir.as_ref());
        f.put("privileged", i.privileged);
        f.strings("cap_add", &i.cap_add);
        f.strings("cap_drop", &i.cap_drop);
        f.map("extra_hosts", extra_hosts(i));
        f.opt("net", i.net.as_ref());
        f.opt("restart", i.restart.map(restart));
        f.strings("dns", &i.dns);
        f.put("stop_timeout", i.stop_timeout);
        f.map("limits", limits(&i.limits));
        f.opt("log_driver", i.log_driver.as_ref());
        f.map("log_opt", string_map(&i.log_opt));
        f.strings("security_opt", &i.security_opt);
        f.map("ulimits", ulimits(i));
        f.map("labels", string_map(&i.labels));
        f.map("lifecycle", self.lifecycle(&i.lifecycle));
        if !i.networks.is_empty() {
            f.put("networks", networks(&i.networks));
        }
        f.opt("healthcheck", i.healthcheck.as_ref().map(healthcheck));
        if !i.devices.is_empty() {
            f.put(
                "devices",
                Document::Seq(i.devices.iter().map(device).collect()),
            );
        }
        f.map("tmpfs", string_map(&i.tmpfs));
        f.opt("init", i.init);
        f.opt("stop_signal", i.stop_signal.as_ref());
        Ok(f.done())
    }

    fn lifecycle(&self, lc: &Lifecycle) -> Fields {
        let mut f = Fields::default();
        for (state, checks) in [
            ("pre-start", &lc.pre_start),
            ("running", &lc.running),
            ("pre-stop", &lc.pre_stop),
            ("stopped", &lc.stopped),
        ] {
            if !checks.is_empty() {
                f.put(
                    state,
                    Document::Seq(checks.iter().map(|c| self.check(c)).collect()),
                );
            }
        }
        f
    }

    fn check(&self, check: &Check) -> Document {
        let mut f = Fields::default();
        match check {
            Check::Tcp { port, max_wait } => {
                f.put("type", "tcp");
                f.put("port", port);
                f.put("max_wait", *max_wait);
            }
            Check::Http {
                port,
                host,
                path,
                scheme,
                method,
                match_regex,
                max_wait,
                verify,
            } => {
                f.put("type", "http");
                f.put("port", port);
                f.opt("host", host.as_ref());
                f.put("path", path);
                f.put("scheme", scheme);
                f.put("method", method);
                f.opt("match_regex", match_regex.as_ref());
                f.put("max_wait", *max_wait);
                let mut options = Fields::default();
                options.put(
                    "verify",
                    match verify {
                        TlsVerify::SystemRoots => Document::Bool(true),
                        TlsVerify::Off => Document::Bool(false),
                        TlsVerify::CaFile(p) => self.path(p),
                    },
                );
                f.put("requests_options", options.done());
            }
            Check::Exec {
                command,
                attempts,
                envfrom,
            } => {
                f.put("type", "exec");
                f.put("command", command);
                f.put("attempts", *attempts);
                let envfrom = match envfrom {
                    EnvFrom::Env => "env",
                    EnvFrom::Stdin => "stdin",
                };
                f.put("envfrom", envfrom);
            }
            Check::Rexec { command, attempts } => {
                f.put("type", "rexec");
                f.put("command", command);
                f.put("attempts", *attempts);
            }
            Check::Sleep { wait } => {
                f.put("type", "sleep");
                f.put("wait", Document::Float(*wait));
            }
        }
        f.done()
    }
}

/// Whole seconds as an integer; otherwise the exact decimal of the nanoseconds, which the
/// loader reads back to the same duration (a float has nanosecond precision well beyond any
/// timeout).
fn duration(d: Duration) -> Document {
    if d.subsec_nanos() == 0 {
        return Document::from(d.as_secs());
    }
    let text = format!("{}.{:09}", d.as_secs(), d.subsec_nanos());
    match text.trim_end_matches('0').parse::<f64>() {
        Ok(secs) => Document::Float(secs),
        Err(_) => Document::Float(d.as_secs_f64()),
    }
}

fn jump_host(hop: &JumpHost) -> Document {
    match hop {
        JumpHost::Ship(name) => Document::from(name),
        JumpHost::Address { user, host, port } => {
            let mut text = String::new();
            if let Some(u) = user {
                text.push_str(u);
                text.push('@');
            }
            text.push_str(host);
            if let Some(p) = port {
                text.push_str(&format!(":{p}"));
            }
            Document::Str(text)
        }
    }
}

/// A string stays a string (Docker splits it); a list stays an argv.
fn command(c: &CommandSpec) -> Document {
    match c {
        CommandSpec::Shell(s) => Document::from(s),
        CommandSpec::Exec(argv) => strings(argv),
    }
}

/// `"exposed:external"` with `/udp` when needed (one side's protocol is both sides'); the long
/// form only when bound to an address.
fn port(p: &Port) -> Document {
    let udp = if p.protocol == Protocol::Udp {
        "/udp"
    } else {
        ""
    };
    match &p.bind_ip {
        None => Document::Str(format!("{}:{}{udp}", p.exposed, p.external)),
        Some(ip) => {
            let mut f = Fields::default();
            f.put("exposed", format!("{}{udp}", p.exposed));
            let external = vec![Document::from(ip), Document::Str(p.external.to_string())];
            f.put("external", Document::Seq(external));
            f.done()
        }
    }
}

/// Set variables, and `NAME: null` for those the instance must not have, in name order.
fn env(i: &Instance) -> Fields {
    let mut all: Vec<(&String, Document)> = i
        .env
        .iter()
        .map(|(k, v)| (k, Document::from(v)))
        .chain(i.unset_env.iter().map(|k| (k, Document::Null)))
        .collect();
    all.sort_by(|a, b| a.0.cmp(b.0));
    let mut f = Fields::default();
    for (k, v) in all {
        f.put(k, v);
    }
    f
}

/// Schema 2 direction, host first; read-only binds in the long form.
fn volumes(i: &Instance) -> Result<Fields, WriteError> {
    let mut f = Fields::default();
    for v in &i.volumes {
        if f.0.iter().any(|(host, _)| *host == v.host) {
            return Err(WriteError(format!(
                "instance `{}` binds `{}` more than once, which schema 2 (host path as the \
                 key) cannot say",
                i.name, v.host
            )));
        }
        let target = match v.mode {
            VolumeMode::ReadWrite => Document::from(&v.container),
            VolumeMode::ReadOnly => {
                let mut t = Fields::default();
                t.put("target", &v.container);
                t.put("mode", "ro");
                t.done()
            }
        };
        f.put(&v.host, target);
    }
    Ok(f)
}

/// The list form, which (unlike the mapping) can link one instance under two aliases.
fn link(l: &Link) -> Document {
    if l.alias == l.target {
        Document::from(&l.target)
    } else {
        Document::Str(format!("{}:{}", l.target, l.alias))
    }
}

fn extra_hosts(i: &Instance) -> Fields {
    let mut f = Fields::default();
    for h in &i.extra_hosts {
        match &h.from_ship {
            Some(ship) => {
                let mut s = Fields::default();
                s.put("ship", ship);
                f.put(&h.host, s.done());
            }
            None => f.put(&h.host, &h.address),
        }
    }
    f
}

fn restart(r: RestartPolicy) -> Document {
    match r.retries {
        Some(n) => Document::Str(format!("{}:{n}", r.name.as_str())),
        None => Document::from(r.name.as_str()),
    }
}

/// Sizes in the largest unit that says them exactly.
fn size(bytes: u64) -> Document {
    for (shift, unit) in [(30, "g"), (20, "m"), (10, "k")] {
        if bytes != 0 && bytes.trailing_zeros() >= shift {
            return Document::Str(format!("{}{unit}", bytes >> shift));
        }
    }
    Document::from(bytes)
}

fn limits(l: &Limits) -> Fields {
    let mut f = Fields::default();
    f.opt("memory", l.memory.map(size));
    f.opt("cpu", l.cpu);
    f.opt("swap", l.swap.map(size));
    f
}

fn ulimits(i: &Instance) -> Fields {
    let mut f = Fields::default();
    for u in &i.ulimits {
        if u.soft == u.hard {
            f.put(&u.name, u.soft);
        } else {
            let mut l = Fields::default();
            l.put("soft", u.soft);
            l.put("hard", u.hard);
            f.put(&u.name, l.done());
        }
    }
    f
}

/// A list of names when no network has aliases or an address (a list may name one twice);
/// otherwise the mapping.
fn networks(networks: &[NetworkAttachment]) -> Document {
    let plain = networks
        .iter()
        .all(|n| n.aliases.is_empty() && n.ipv4_address.is_none());
    if plain {
        return Document::Seq(networks.iter().map(|n| Document::from(&n.name)).collect());
    }
    let mut f = Fields::default();
    for n in networks {
        let mut a = Fields::default();
        a.strings("aliases", &n.aliases);
        a.opt("ipv4_address", n.ipv4_address.as_ref());
        if a.0.is_empty() {
            f.put(&n.name, Document::Null);
        } else {
            f.put(&n.name, a.done());
        }
    }
    f.done()
}

fn healthcheck(h: &Healthcheck) -> Document {
    let mut f = Fields::default();
    f.put("test", strings(&h.test));
    f.opt("interval", h.interval.map(duration));
    f.opt("timeout", h.timeout.map(duration));
    f.opt("retries", h.retries);
    f.opt("start_period", h.start_period.map(duration));
    f.done()
}

fn device(d: &Device) -> Document {
    Document::Str(format!("{}:{}:{}", d.host, d.container, d.permissions))
}

/// A credential of an auditor as `reveal` says.
fn credential(value: &str, reveal: Reveal) -> String {
    match reveal {
        Reveal::Secrets => value.to_owned(),
        Reveal::Masks => "***".to_owned(),
    }
}

/// A URL with its credentials masked: the user information and everything after the host
/// (a webhook's path is its key: `https://hooks.example.com/services/T0/B0/XYZ`).
fn masked_url(url: &str, reveal: Reveal) -> String {
    if reveal == Reveal::Secrets {
        return url.to_owned();
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        return "***".to_owned();
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let host = match authority.rsplit_once('@') {
        Some((_, host)) => format!("***@{host}"),
        None => authority.to_owned(),
    };
    let tail = if tail.is_empty() || tail == "/" {
        tail.to_owned()
    } else {
        "/***".to_owned()
    };
    format!("{scheme}://{host}{tail}")
}

fn auditor(a: &Auditor, reveal: Reveal) -> Document {
    let mut f = Fields::default();
    f.put("type", a.kind());
    match &a.target {
        AuditTarget::Log { file } => f.put("file", file),
        AuditTarget::Http {
            endpoint,
            payload,
            headers,
            method,
            timeout,
        } => {
            f.put("endpoint", masked_url(endpoint, reveal));
            f.put("payload", json(payload));
            let mut masked = Fields::default();
            for (name, value) in headers {
                masked.put(name, credential(value, reveal));
            }
            f.put("headers", masked.done());
            f.put("method", method);
            f.put("timeout", duration(*timeout));
        }
        AuditTarget::Slack {
            channel,
            token,
            name,
            icon,
        } => {
            f.put("channel", channel);
            f.put("token", credential(token, reveal));
            f.opt("name", name.as_ref());
            f.opt("icon", icon.as_ref());
        }
        AuditTarget::HipChat { room, token, name } => {
            f.put("room", room);
            f.put("token", credential(token, reveal));
            f.opt("name", name.as_ref());
        }
        AuditTarget::Exec { script, args } => {
            f.put("script", script);
            f.put("args", args);
        }
    }
    let level = match a.level {
        AuditLevel::Info => "info",
        AuditLevel::Debug => "debug",
    };
    f.put("level", level);
    f.put("ignore_errors", a.ignore_errors);
    f.done()
}

/// An http auditor's payload, as the loader read it.
fn json(value: &serde_json::Value) -> Document {
    use serde_json::Value as Json;
    match value {
        Json::Null => Document::Null,
        Json::Bool(b) => Document::Bool(*b),
        Json::Number(n) => match (n.as_i64(), n.as_u64(), n.as_f64()) {
            (Some(i), _, _) => Document::Int(i),
            (None, Some(u), _) => Document::from(u),
            (None, None, Some(f)) => Document::Float(f),
            _ => Document::Str(n.to_string()),
        },
        Json::String(s) => Document::from(s),
        Json::Array(items) => Document::Seq(items.iter().map(json).collect()),
        Json::Object(map) => string_keyed(map.iter().map(|(k, v)| (k, json(v)))),
    }
}

fn string_keyed<'a>(pairs: impl Iterator<Item = (&'a String, Document)>) -> Document {
    let mut f = Fields::default();
    for (k, v) in pairs {
        f.put(k, v);
    }
    f.done()
}

/// Every `{{`, `{%` and `{#` replaced by an expression that prints it, so that rendering the
/// text as a template (as the loader does) gives it back exactly. A text without them is
/// not rendered at all by the loader, and is returned as it is.
fn escape_template(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let from = &rest[i..];
        match from.as_bytes().get(1) {
            Some(b'{' | b'%' | b'#') => {
                out.push_str("{{ '");
                out.push_str(&from[..2]);
                out.push_str("' }}");
                rest = &from[2..];
            }
            _ => {
                out.push('{');
                rest = &from[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests;
