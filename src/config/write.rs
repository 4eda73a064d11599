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
//!   Environment values whose names are secret are masked by the caller, which knows the
//!   patterns (orchestrate's business, not config's): see [`Document::mask_strings`].
//! - Order follows the file: ships, services, instances, ports, volumes, auditors in the
//!   model's order; maps the model keeps sorted (env, labels, tmpfs, log_opt) sorted.
//! - What schema 2 cannot say is refused with a [`WriteError`] rather than written wrongly: a
//!   host path bound twice in one container (possible in schema 1, where the container path
//!   is the key).

use std::path::Path;
use std::time::Duration;

use serde::ser::{Serialize, SerializeMap, SerializeSeq, Serializer};

use super::model::*;

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
            Document::Seq(env.audit.iter().map(auditor).collect()),
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

fn auditor(a: &Auditor) -> Document {
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
            f.put("endpoint", endpoint);
            f.put("payload", json(payload));
            f.put("headers", string_map(headers).done());
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
            f.put("token", token);
            f.opt("name", name.as_ref());
            f.opt("icon", icon.as_ref());
        }
        AuditTarget::HipChat { room, token, name } => {
            f.put("room", room);
            f.put("token", token);
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
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([("HOME".to_owned(), "/home/op".to_owned())])
    }

    fn load_in(text: &str, base: &str) -> Environment {
        match crate::config::load_str_with_vars(text, "t.yaml", Path::new(base), &vars()) {
            Ok(env) => env,
            Err(e) => panic!("{e}\n{text}"),
        }
    }

    /// Writes `original` with the secrets and loads the output back: the same environment
    /// (apart from its source and schema). Returns the written text.
    fn reload(original: &Environment, base: &str) -> String {
        let written = match to_schema2_yaml(original, Reveal::Secrets) {
            Ok(w) => w,
            Err(e) => panic!("{e}"),
        };
        let mut reloaded = load_in(&written, base);
        reloaded.source = original.source.clone();
        reloaded.schema = original.schema;
        assert_eq!(&reloaded, original, "reloads differently:\n{written}");
        written
    }

    /// Loads `text` and [`reload`]s it; returns the environment and the written text.
    fn round_trip_in(text: &str, base: &str) -> (Environment, String) {
        let original = load_in(text, base);
        let written = reload(&original, base);
        (original, written)
    }

    fn round_trip(text: &str) -> (Environment, String) {
        round_trip_in(text, "/cfg")
    }

    const SHIPS: &str = "name: t\nships:\n  s1: {ip: 10.0.0.1}\n  s2: {ip: 10.0.0.2}\n";

    /// An environment of one instance `a1` on `s1` with the given instance settings (flow
    /// mapping entries).
    fn one_instance(settings: &str) -> String {
        format!(
            "__maestro: {{schema: 2}}\n{SHIPS}services:\n  a:\n    image: a\n    instances:\n      \
             a1: {{ship: s1, {settings}}}\n      b1: {{ship: s1}}\n"
        )
    }

    #[test]
    fn ports_keep_protocol_bind_address_and_ranges() {
        let (_, written) = round_trip(&one_instance(
            "ports: {web: \"80:8080\", dns: 53/udp, same: 9000, range: \"7000-7002:17000-17002/udp\", \
             pick: \"6000:16000-16010\", \
             bound: {exposed: 5432/udp, external: [127.0.0.1, 15432]}, \
             both: {exposed: 4000, external: [\"::1\", \"14000-14000\"]}}",
        ));
        for form in [
            "web: 80:8080",
            "dns: 53:53/udp",
            "same: 9000:9000",
            "range: 7000-7002:17000-17002/udp",
            "pick: 6000:16000-16010",
            "exposed: 5432/udp",
            "- \"127.0.0.1\"\n",
            "- \"::1\"\n",
        ] {
            assert!(written.contains(form), "{form}:\n{written}");
        }
    }

    #[test]
    fn volumes_are_host_first_and_read_only_in_the_long_form() {
        let (_, written) = round_trip(&one_instance(
            "volumes: {/srv/data: /data, named-vol: {target: /cache, mode: ro}, \
             /etc/conf: {target: /conf, mode: rw}}",
        ));
        assert!(written.contains("/srv/data: /data"), "{written}");
        assert!(
            written.contains("named-vol:\n            target: /cache\n            mode: ro"),
            "{written}"
        );
        assert!(written.contains("/etc/conf: /conf"), "{written}");

        // Schema 1 (container path first) comes out host first.
        let schema1 =
            one_instance("volumes: {/data: /srv/data}").replace("__maestro: {schema: 2}\n", "");
        let (env, written) = round_trip(&schema1);
        assert_eq!(env.schema, 1);
        assert!(written.contains("/srv/data: /data"), "{written}");
    }

    #[test]
    fn a_host_path_bound_twice_cannot_be_written_in_schema_2() {
        let schema1 = one_instance("volumes: {/a: /srv/x, /b: /srv/x}")
            .replace("__maestro: {schema: 2}\n", "");
        let env = load_in(&schema1, "/cfg");
        let err = to_schema2(&env, Reveal::Secrets)
            .err()
            .map(|e| e.to_string());
        assert!(
            err.as_deref()
                .is_some_and(|e| e.contains("`a1` binds `/srv/x` more than once")),
            "{err:?}"
        );
    }

    #[test]
    fn unset_variables_are_null_among_the_set_ones() {
        let text = format!(
            "{SHIPS}services:\n  a:\n    image: a\n    env: {{GONE: x, KEEP: 1, EMPTY: ''}}\n    \
             instances:\n      a1: {{ship: s1, env: {{GONE: null, ALSO: ~}}}}\n"
        );
        let (env, written) = round_trip(&text);
        let (_, a1) = env.instance("a1").unwrap_or_else(|| panic!("a1"));
        assert_eq!(a1.unset_env.len(), 2);
        assert!(
            written.contains(
                "ALSO: null\n          EMPTY: \"\"\n          GONE: null\n          KEEP: \"1\""
            ),
            "{written}"
        );
    }

    #[test]
    fn jump_hosts_keep_addresses_and_ship_references() {
        let text = "name: t\nships:\n  gw: {ip: 10.0.0.1, ssh: {user: ops}}\n  \
                    inner: {ip: 10.0.1.1, ssh: {user: root, port: 2222, key: [keys/a, ~/b], \
                    jump: [gw, \"ops@bastion:2200\", bastion2, \"fe80::1\", \"u@h\"], \
                    known_hosts: accept_new, known_hosts_file: kh}}\n";
        let (_, written) = round_trip(text);
        for form in [
            "- gw\n",
            "- ops@bastion:2200\n",
            "- bastion2\n",
            "- fe80::1\n",
            "- u@h\n",
            "known_hosts: accept-new",
            "known_hosts_file: /cfg/kh",
            "- /cfg/keys/a\n",
            "- /home/op/b\n",
            "port: 2222",
        ] {
            assert!(written.contains(form), "{form}:\n{written}");
        }
    }

    #[test]
    fn ssh_tunnel_is_kept_and_an_ssh_block_written_only_when_it_says_more() {
        let text = "name: t\nships:\n  \
                    a: {ip: 10.0.0.1, ssh_tunnel: {user: ops, key: id}}\n  \
                    b: {ip: 10.0.0.2, ssh_tunnel: {user: ops, key: id, port: 2200}, \
                    ssh: {user: other, jump: a}}\n  \
                    c: {ip: 10.0.0.3, docker_port: 2375}\n  \
                    d: {ip: 10.0.0.4, tls: true}\n";
        let (env, written) = round_trip(text);
        assert_eq!(written.matches("ssh_tunnel:").count(), 2, "{written}");
        assert_eq!(written.matches("ssh:").count(), 1, "{written}");
        // Given, written; not given, left to its default (see the module header).
        assert_eq!(written.matches("docker_port:").count(), 1, "{written}");
        assert_eq!(env.ship("d").map(|s| s.docker_port), Some(2376));
    }

    #[test]
    fn relative_paths_stay_relative_to_the_file() {
        let text = "name: t\nships:\n  a: {ip: 10.0.0.1, tls_cert: certs/c.pem, tls_key: /abs/k.pem, \
                    ssh_tunnel: {user: ops, key: ../keys/id}}\n";
        let (env, written) = round_trip_in(text, "deploy");
        assert!(written.contains("tls_cert: certs/c.pem"), "{written}");
        assert!(written.contains("tls_key: /abs/k.pem"), "{written}");
        assert!(written.contains("key: ../keys/id"), "{written}");
        let key = env
            .ship("a")
            .and_then(|s| s.ssh_tunnel.clone())
            .map(|t| t.key);
        assert_eq!(key.as_deref(), Some(Path::new("deploy/../keys/id")));
        round_trip_in(text, ".");
    }

    #[test]
    fn template_syntax_in_values_survives_the_render_of_the_reload() {
        // Set in the model: written in a file they would be rendered on the first load.
        let mut env = load_in(&one_instance("image: x"), "/cfg");
        let values = [
            "{{ not_a_var }}",
            "{% raw %}x{% endraw %}",
            "{#c#}",
            "{{{x}}}",
            "{-{ ok",
            "{%- if x %}",
            "end {{",
            "}}{{",
            "'{{'",
        ];
        let Some(a1) = env.services[0].instances.first_mut() else {
            panic!("a1");
        };
        for (i, v) in values.iter().enumerate() {
            a1.env.insert(format!("V{i}"), (*v).to_owned());
        }
        a1.labels.insert("k{{".into(), "{%-".into());
        a1.command = Some(CommandSpec::Shell("echo '{{'".into()));
        env.name = "{# name #}".into();
        let written = reload(&env, "/cfg");
        assert!(written.contains("{{ '{{' }} not_a_var }}"), "{written}");
        // JSON is not a template: the values as they are.
        let json = to_schema2_json(&env, Reveal::Secrets).unwrap_or_default();
        assert!(json.contains("\"V0\": \"{{ not_a_var }}\""), "{json}");
    }

    #[test]
    fn strings_that_look_like_other_things_stay_strings() {
        let tricky = [
            "1",
            "1.0",
            "0755",
            "1e3",
            "0x1F",
            "0o17",
            "1_000",
            "12:30",
            ".inf",
            "-.5",
            "yes",
            "no",
            "on",
            "off",
            "y",
            "n",
            "true",
            "False",
            "null",
            "~",
            "",
            " lead",
            "trail ",
            "a: b",
            "- x",
            "#x",
            "x #y",
            "multi\nline",
            "ends\n",
            "two\n\n",
            "\ttab",
            "it's",
            "\"dq\"",
            "é ü",
            "[x]",
            "{x}",
            "*star",
            "&amp",
            "!bang",
            "%pct",
            "@at",
            "`tick",
            "<<",
            "back\\slash",
            "2001-01-01",
            "a  b   c  d e f g h i j k l m n o p q r s t u v w x y z \
             aa bb cc dd ee ff gg hh ii jj kk ll mm nn",
            "\u{7}bell",
            "cr\r\nlf",
            "\n",
            "\nlead",
            "123\n",
            "true\n\n",
            " x \n ",
            "multi\n\nlines\n  indented\n",
            "a234567890123456789012345678901234567890123456789012345678901234567890123456789012345",
            "12345678901234567890123456789012345678901234567890123456789012345678901234567890123",
            "80:50",
            "1:30.5",
            "0b101",
            "010",
            "+1",
            "-1",
            "1.2.3",
            "-",
            "?",
            "? x",
            ": x",
            "x:",
            "'",
            "\"",
            "1e+3",
            "1.0e+3",
            ".5",
            "0.",
            ".NaN",
            "Yes",
            "ON",
            "=",
            "1_0.5",
        ];
        let env_entries: Vec<String> = tricky
            .iter()
            .enumerate()
            .map(|(i, v)| format!("V{i}: {}", serde_json::to_string(v).unwrap_or_default()))
            .collect();
        let (env, _) = round_trip(&one_instance(&format!(
            "env: {{{}}}, workdir: \"0\", username: \"1000\", stop_signal: \"9\"",
            env_entries.join(", ")
        )));
        let (_, a1) = env.instance("a1").unwrap_or_else(|| panic!("a1"));
        for (i, v) in tricky.iter().enumerate() {
            assert_eq!(a1.env.get(&format!("V{i}")).map(String::as_str), Some(*v));
        }
    }

    #[test]
    fn keys_that_look_like_other_things_stay_names() {
        let text = "name: \"1.0\"\nships:\n  \"yes\": {ip: 10.0.0.1}\n  \"010\": {ip: 10.0.0.2}\n\
                    services:\n  \"on\":\n    image: a\n    instances:\n      \"1\":\n        \
                    ship: \"yes\"\n        ports: {\"no\": 80}\n        \
                    env: {\"off\": \"y\", \"null\": \"~\", \"12:30\": x}\n        \
                    labels: {\"true\": \"false\", \"<<\": m}\n        extra_hosts: {\"0x10\": {ship: \"010\"}}\n";
        let (env, _) = round_trip(text);
        assert_eq!(env.ships[1].name, "010");
        assert_eq!(env.services[0].instances[0].name, "1");
        let labels = &env.services[0].instances[0].labels;
        assert_eq!(
            labels.get("<<").map(String::as_str),
            Some("m"),
            "not a merge key"
        );
    }

    #[test]
    fn registry_passwords_are_masked_unless_revealed() {
        let text = format!(
            "registries:\n  r: {{registry: \"https://r.example.com/\", username: u, password: \
             \"hunter2-pass\", email: a@b.c, retry: {{attempts: 2, when: [502]}}}}\n{SHIPS}"
        );
        let env = load_in(&text, "/cfg");
        let masked = to_schema2_yaml(&env, Reveal::Masks).unwrap_or_default();
        assert!(masked.contains("password: \"***\""), "{masked}");
        assert!(!masked.contains("hunter2"), "{masked}");
        let json = to_schema2_json(&env, Reveal::Masks).unwrap_or_default();
        assert!(!json.contains("hunter2") && json.contains("\"password\": \"***\""));
        let (_, shown) = round_trip(&text);
        assert!(shown.contains("password: hunter2-pass"), "{shown}");
    }

    #[test]
    fn mask_strings_masks_values_not_keys() {
        let mut doc = Document::Map(vec![
            ("SECRET".into(), Document::from("s3cret-value")),
            (
                "list".into(),
                Document::Seq(vec![Document::from("a s3cret-value b")]),
            ),
            ("n".into(), Document::Int(1)),
        ]);
        doc.mask_strings(&|s| s.replace("s3cret-value", "***"));
        assert_eq!(doc.get("SECRET"), Some(&Document::from("***")));
        assert_eq!(
            doc.get("list"),
            Some(&Document::Seq(vec![Document::from("a *** b")]))
        );
    }

    #[test]
    fn durations_sizes_and_defaults_are_explicit() {
        let text = "name: t\nships:\n  a: {ip: 10.0.0.1, timeout: 1500ms, ssh_timeout: 0.1}\n  \
                    b: {ip: 10.0.0.2, timeout: 1h, ssh_timeout: \"123.456789s\"}\n  \
                    c: {ip: 10.0.0.3, timeout: 2.5}\n\
                    services:\n  x:\n    image: x\n    instances:\n      x1:\n        ship: a\n        \
                    limits: {memory: 1536m, swap: 1000, cpu: 512}\n        \
                    healthcheck: {test: \"true\", interval: 250ms, start_period: 1m}\n";
        let (_, written) = round_trip(text);
        for form in [
            "timeout: 1.5\n",
            "ssh_timeout: 0.1\n",
            "timeout: 3600\n",
            "ssh_timeout: 123.456789\n",
            "timeout: 2.5\n",
            "memory: 1536m",
            "swap: 1000",
            "cpu: 512",
            "interval: 0.25",
            "start_period: 60",
            "- CMD-SHELL\n",
            "stop_timeout: 10",
            "privileged: false",
            "tls: false",
            "omit: false",
        ] {
            assert!(written.contains(form), "{form}:\n{written}");
        }
    }

    #[test]
    fn every_instance_setting_round_trips() {
        let (_, written) = round_trip(&one_instance(
            "image: other:1, command: [run, \"--x\", \"\"], entrypoint: /bin/sh -c, \
             container_volumes: [/cache], volumes_from: b1, links: [b1, \"b1:alias\"], \
             username: app, workdir: /w, privileged: true, cap_add: NET_ADMIN, cap_drop: [ALL], \
             extra_hosts: {db: {ship: s2}, fixed: 10.9.9.9}, net: bridge, restart: no, \
             dns: [1.1.1.1], stop_timeout: 0, log_driver: json-file, log_opt: {max-size: 10m}, \
             security_opt: [no-new-privileges], ulimits: {nofile: {soft: 1024, hard: 4096}, core: -1}, \
             labels: [a=1, b], networks: {front: {aliases: [w]}, back: null, ip: {ipv4_address: 10.1.1.1}}, \
             healthcheck: {test: [NONE]}, devices: [/dev/fuse, \"/dev/a:/dev/b:r\"], \
             tmpfs: [/run, \"/tmp:size=64m\"], init: false, stop_signal: SIGINT, \
             lifecycle: {pre-start: [{type: exec, command: [true, x], envfrom: stdin}], \
             running: [{type: http, port: 80, host: h, match_regex: ok, requests_options: {verify: false}}, \
             {type: rexec, command: ls, attempts: 3}], pre-stop: [{type: sleep, wait: 0.5}], \
             stopped: [{type: tcp, port: \"80\", max_wait: 5}]}",
        ));
        for form in [
            "db:\n            ship: s2",
            "fixed: \"10.9.9.9\"",
            "- b1:alias",
            "restart: \"no\"",
            "core: -1",
            "entrypoint: /bin/sh -c",
            "back: null",
            "verify: false",
            "- /dev/fuse:/dev/fuse:rwm",
        ] {
            assert!(written.contains(form), "{form}:\n{written}");
        }
        round_trip(&one_instance(
            "networks: [x, x], restart: \"on-failure:4\", ulimits: {nproc: 7}",
        ));
    }

    #[test]
    fn auditors_secrets_and_the_provider_round_trip() {
        let text = format!(
            "{SHIPS}ship_provider: static\nsecrets: {{patterns: [\"*_CRED\"]}}\naudit:\n  \
             - {{type: log, file: /var/log/m.log, level: debug}}\n  \
             - {{type: http, endpoint: \"http://h/\", payload: {{t: \"{{what}}\", n: [1, 2.5, null, true]}}, \
             headers: {{X: y}}, method: get, timeout: 0.5}}\n  \
             - {{type: slack, channel: c, token: t, icon: i, ignore_errors: true}}\n  \
             - {{type: hipchat, room: r, token: t, name: n}}\n  \
             - {{type: exec, script: /s}}\n"
        );
        let (env, written) = round_trip(&text);
        assert_eq!(env.audit.len(), 5);
        assert!(written.contains("ship_provider: static"), "{written}");
        assert!(written.contains("- \"*_CRED\""), "{written}");
        assert!(written.contains("method: GET"), "{written}");
    }

    #[test]
    fn an_https_check_keeps_its_ca_bundle() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ca = dir.path().join("ca.pem");
        std::fs::write(&ca, "-----BEGIN CERTIFICATE-----\n").unwrap_or_else(|e| panic!("{e}"));
        let base = dir.path().display().to_string();
        let (_, written) = round_trip_in(
            &one_instance(
                "ports: {s: 443}, lifecycle: {running: [{type: http, port: s, scheme: https, \
                 requests_options: {verify: ca.pem}}]}",
            ),
            &base,
        );
        assert!(
            written.contains(&format!("verify: {}", ca.display())),
            "{written}"
        );
    }

    #[test]
    fn tiny_and_huge_numbers_keep_their_value() {
        let text = "name: t\nships:\n  a: {ip: 10.0.0.1, timeout: 0.000000001, ssh_timeout: 0.000123}\n  \
                    b: {ip: 10.0.0.2, timeout: 123456.5, ssh_timeout: 1.000000001}\n\
                    services:\n  x:\n    image: x\n    instances:\n      x1:\n        ship: a\n        \
                    limits: {memory: 18446744073709551615}\n        \
                    lifecycle: {running: [{type: sleep, wait: 0.0000001}, {type: sleep, wait: 100000000000000000000.0}, \
                    {type: sleep, wait: 0.1}, {type: sleep, wait: 3}]}\n";
        round_trip(text);
    }

    #[test]
    fn escaping_template_syntax() {
        assert_eq!(escape_template("a { b }"), "a { b }");
        assert_eq!(escape_template("{{x}}"), "{{ '{{' }}x}}");
        assert_eq!(escape_template("{%{#{"), "{{ '{%' }}{{ '{#' }}{");
        assert_eq!(escape_template("{{{"), "{{ '{{' }}{");
    }

    #[test]
    fn an_empty_environment_is_still_a_file() {
        let (_, written) =
            round_trip("name: t\nships: {}\nservices:\n  a: {image: a, instances: {}}\n");
        assert!(written.contains("ships: {}"), "{written}");
        assert!(written.contains("instances: {}"), "{written}");
    }
}
