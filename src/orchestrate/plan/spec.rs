//! From the environment's [`Instance`] to the [`ContainerSpec`] the docker layer creates.
//!
//! Everything that defines the container goes into the spec (and so into its hash): a changed
//! port, variable or limit makes `start` re-create the container.

use std::collections::BTreeMap;

use crate::config::{self, CommandSpec, Environment, Instance, Service, VolumeMode};
use crate::docker::{
    BindMount, ContainerSpec, Device, ENVIRONMENT_LABEL, Healthcheck, HostPort, INSTANCE_LABEL,
    Limits, Link, MountMode, NetworkAttachment, PortSpec, Protocol, RestartPolicy,
    RestartPolicyName, SERVICE_LABEL, Ulimit,
};

use crate::orchestrate::plan::autoconf;
use crate::orchestrate::plan::select::{Graph, PlanError};

/// Splits a command line the way Python's `shlex.split` (which MaestroNG's docker-py used)
/// does: whitespace separates words, single quotes are literal, double quotes allow `\"`
/// and `\\`, a backslash outside quotes escapes the next character.
pub fn split_command(line: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                in_word = true;
                for q in chars.by_ref() {
                    if q == '\'' {
                        break;
                    }
                    word.push(q);
                }
            }
            '"' => {
                in_word = true;
                while let Some(q) = chars.next() {
                    match q {
                        '"' => break,
                        '\\' => match chars.next() {
                            Some(e @ ('"' | '\\' | '$' | '`')) => word.push(e),
                            Some(e) => {
                                word.push('\\');
                                word.push(e);
                            }
                            None => word.push('\\'),
                        },
                        other => word.push(other),
                    }
                }
            }
            '\\' => {
                in_word = true;
                if let Some(e) = chars.next() {
                    word.push(e);
                }
            }
            c if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            other => {
                in_word = true;
                word.push(other);
            }
        }
    }
    if in_word {
        words.push(word);
    }
    words
}

fn command_words(command: &CommandSpec) -> Vec<String> {
    match command {
        CommandSpec::Shell(line) => split_command(line),
        CommandSpec::Exec(words) => words.clone(),
    }
}

fn protocol(p: config::Protocol) -> Protocol {
    match p {
        config::Protocol::Tcp => Protocol::Tcp,
        config::Protocol::Udp => Protocol::Udp,
    }
}

fn ports(instance: &Instance) -> Vec<PortSpec> {
    let mut out = Vec::new();
    for port in &instance.ports {
        let exposed = port.exposed;
        let external = port.external;
        let width = exposed.end.saturating_sub(exposed.start);
        if !exposed.is_single() && external.end.saturating_sub(external.start) == width {
            // A range onto a range of the same size maps port by port, as Docker's CLI does.
            for offset in 0..=width {
                out.push(PortSpec {
                    container_port: exposed.start + offset,
                    protocol: protocol(port.protocol),
                    host_ip: port.bind_ip.clone(),
                    host_port: HostPort::Port(external.start + offset),
                });
            }
            continue;
        }
        for container_port in exposed.start..=exposed.end {
            out.push(PortSpec {
                container_port,
                protocol: protocol(port.protocol),
                host_ip: port.bind_ip.clone(),
                host_port: if external.is_single() {
                    HostPort::Port(external.start)
                } else {
                    HostPort::Range(external.start, external.end)
                },
            });
        }
    }
    out
}

fn restart(policy: &config::RestartPolicy) -> RestartPolicy {
    RestartPolicy {
        name: match policy.name {
            config::RestartName::No => RestartPolicyName::No,
            config::RestartName::Always => RestartPolicyName::Always,
            config::RestartName::OnFailure => RestartPolicyName::OnFailure,
            config::RestartName::UnlessStopped => RestartPolicyName::UnlessStopped,
        },
        max_retries: policy.retries.map(i64::from),
    }
}

fn size(bytes: Option<u64>) -> Option<i64> {
    bytes.map(|b| i64::try_from(b).unwrap_or(i64::MAX))
}

/// The labels that identify a container as ours: environment, service, instance (the spec
/// hash is added by the docker layer when it creates the container).
pub fn identity_labels(env: &Environment, instance: &Instance) -> Vec<(String, String)> {
    vec![
        (ENVIRONMENT_LABEL.to_string(), env.name.clone()),
        (SERVICE_LABEL.to_string(), instance.service.clone()),
        (INSTANCE_LABEL.to_string(), instance.name.clone()),
    ]
}

/// The container spec of `instance`, with `container_env` as its whole environment
/// (normally [`autoconf::container_env`]).
pub fn container_spec_with_env(
    env: &Environment,
    instance: &Instance,
    container_env: &BTreeMap<String, String>,
) -> ContainerSpec {
    let network_mode = instance.net.clone();
    // Docker refuses a hostname in the host's or another container's network namespace.
    let shares_namespace = network_mode
        .as_deref()
        .is_some_and(|m| m == "host" || m.starts_with("container:"));
    let mut labels: BTreeMap<String, String> = instance.labels.clone();
    for (k, v) in identity_labels(env, instance) {
        labels.insert(k, v);
    }
    ContainerSpec {
        name: instance.name.clone(),
        hostname: (!shares_namespace).then(|| instance.name.clone()),
        image: instance.image.clone(),
        command: instance.command.as_ref().map(command_words),
        entrypoint: instance.entrypoint.as_ref().map(command_words),
        env: container_env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        // A generated variable of the same name wins, as it would in MaestroNG's dict.
        unset_env: instance
            .unset_env
            .iter()
            .filter(|k| !container_env.contains_key(*k))
            .cloned()
            .collect(),
        ports: ports(instance),
        binds: binds(instance),
        volumes: instance.container_volumes.clone(),
        volumes_from: instance.volumes_from.clone(),
        links: instance
            .links
            .iter()
            .map(|l| Link {
                name: l.target.clone(),
                alias: l.alias.clone(),
            })
            .collect(),
        user: instance.username.clone(),
        workdir: instance.workdir.clone(),
        privileged: instance.privileged,
        cap_add: instance.cap_add.clone(),
        cap_drop: instance.cap_drop.clone(),
        extra_hosts: instance
            .extra_hosts
            .iter()
            .map(|h| (h.host.clone(), h.address.clone()))
            .collect(),
        network_mode,
        networks: networks(instance),
        restart: instance.restart.as_ref().map(restart),
        dns: instance.dns.clone(),
        stop_timeout: Some(i64::from(instance.stop_timeout)),
        stop_signal: instance.stop_signal.clone(),
        limits: Limits {
            memory: size(instance.limits.memory),
            cpu_shares: size(instance.limits.cpu),
            memory_swap: size(instance.limits.swap),
        },
        log_driver: instance.log_driver.clone(),
        log_opt: instance
            .log_opt
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        security_opt: instance.security_opt.clone(),
        ulimits: instance
            .ulimits
            .iter()
            .map(|u| Ulimit {
                name: u.name.clone(),
                soft: u.soft,
                hard: u.hard,
            })
            .collect(),
        labels: labels.into_iter().collect(),
        healthcheck: instance.healthcheck.as_ref().map(|h| Healthcheck {
            test: h.test.clone(),
            interval: h.interval,
            timeout: h.timeout,
            retries: h.retries.map(i64::from),
            start_period: h.start_period,
        }),
        devices: devices(instance),
        tmpfs: instance
            .tmpfs
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        init: instance.init,
    }
}

fn binds(instance: &Instance) -> Vec<BindMount> {
    instance
        .volumes
        .iter()
        .map(|v| BindMount {
            host_path: v.host.clone(),
            container_path: v.container.clone(),
            mode: match v.mode {
                VolumeMode::ReadWrite => MountMode::Rw,
                VolumeMode::ReadOnly => MountMode::Ro,
            },
        })
        .collect()
}

/// The instance's networks; peers on each find the container by its instance name.
fn networks(instance: &Instance) -> Vec<NetworkAttachment> {
    instance
        .networks
        .iter()
        .map(|n| {
            let mut aliases = vec![instance.name.clone()];
            aliases.extend(n.aliases.iter().filter(|a| **a != instance.name).cloned());
            NetworkAttachment {
                name: n.name.clone(),
                aliases,
            }
        })
        .collect()
}

fn devices(instance: &Instance) -> Vec<Device> {
    instance
        .devices
        .iter()
        .map(|d| Device {
            host_path: d.host.clone(),
            container_path: d.container.clone(),
            permissions: d.permissions.clone(),
        })
        .collect()
}

/// The full container spec of `instance`: the file's settings and the auto-configuration
/// environment.
pub fn container_spec(env: &Environment, service: &Service, instance: &Instance) -> ContainerSpec {
    let vars = autoconf::container_env(env, service, instance);
    container_spec_with_env(env, instance, &vars)
}

/// One container of [`start_order`]: where it runs and what creating it sends.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedContainer {
    pub service: String,
    pub ship: String,
    pub spec: ContainerSpec,
}

/// Every container of the environment (`omit`-ted services included) in the order `start`
/// with every name creates them, each with its full spec: the offline view of a deployment.
pub fn start_order(env: &Environment) -> Result<Vec<PlannedContainer>, PlanError> {
    let graph = Graph::new(env);
    let order = graph.topological_order()?;
    let mut containers = Vec::with_capacity(order.len());
    for index in order {
        let node = &graph.nodes[index];
        if let Some((service, instance)) = env.instance(&node.instance) {
            containers.push(PlannedContainer {
                service: service.name.clone(),
                ship: instance.ship.clone(),
                spec: container_spec(env, service, instance),
            });
        }
    }
    Ok(containers)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const ENV: &str = r#"
__maestro: {schema: 2}
name: t
ships:
  a: {ip: 10.0.0.1}
  b: {ip: 10.0.0.2}
services:
  db:
    image: db:9
    instances:
      db-1:
        ship: a
        ports: {sql: 5432, range: "7000-7001:17000-17001", dns: "53/udp"}
        volumes: {/srv/db: /data, /etc/x: {target: /x, mode: ro}}
        restart: "on-failure:3"
        limits: {memory: 1g, cpu: 2}
        ulimits: {nofile: {soft: 1024, hard: 2048}}
        stop_timeout: 3
  web:
    image: web
    requires: [db]
    instances:
      web-1:
        ship: a
        command: "httpd -f -p '80 80' \"a\\\"b\""
        links: {db-1: database}
        volumes_from: [db-1]
        extra_hosts: {dbhost: {ship: b}}
        networks: [front]
        labels: {team: x}
"#;

    fn env() -> Environment {
        match crate::config::load_str(ENV, "t.yaml", Path::new(".")) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    fn spec(name: &str) -> ContainerSpec {
        let env = env();
        let Some((service, inst)) = env.instance(name) else {
            panic!("no {name}")
        };
        container_spec(&env, service, inst)
    }

    #[test]
    fn shlex_like_splitting() {
        assert_eq!(
            split_command(r#"sh -c 'echo "$X"' a\ b "c\"d" e''"#),
            vec!["sh", "-c", "echo \"$X\"", "a b", "c\"d", "e"]
        );
        assert!(split_command("   ").is_empty());
    }

    #[test]
    fn ports_volumes_restart_limits() {
        let s = spec("db-1");
        assert_eq!(s.hostname.as_deref(), Some("db-1"));
        assert!(s.ports.contains(&PortSpec {
            container_port: 5432,
            protocol: Protocol::Tcp,
            host_ip: None,
            host_port: HostPort::Port(5432),
        }));
        assert!(
            s.ports
                .iter()
                .any(|p| p.container_port == 7001 && p.host_port == HostPort::Port(17001))
        );
        assert!(
            s.ports
                .iter()
                .any(|p| p.container_port == 53 && p.protocol == Protocol::Udp)
        );
        assert!(s.binds.contains(&BindMount {
            host_path: "/srv/db".into(),
            container_path: "/data".into(),
            mode: MountMode::Rw,
        }));
        assert_eq!(
            s.restart,
            Some(RestartPolicy {
                name: RestartPolicyName::OnFailure,
                max_retries: Some(3)
            })
        );
        assert_eq!(s.limits.memory, Some(1 << 30));
        assert_eq!(s.ulimits[0].hard, 2048);
        assert_eq!(s.stop_timeout, Some(3));
        assert!(
            s.labels
                .contains(&(INSTANCE_LABEL.to_string(), "db-1".to_string()))
        );
        assert!(
            s.labels
                .contains(&(ENVIRONMENT_LABEL.to_string(), "t".to_string()))
        );
        assert!(
            s.labels
                .contains(&(SERVICE_LABEL.to_string(), "db".to_string()))
        );
    }

    #[test]
    fn command_links_networks_extra_hosts_env() {
        let s = spec("web-1");
        assert_eq!(
            s.command,
            Some(vec![
                "httpd".to_string(),
                "-f".into(),
                "-p".into(),
                "80 80".into(),
                "a\"b".into()
            ])
        );
        assert_eq!(s.links[0].name, "db-1");
        assert_eq!(s.links[0].alias, "database");
        assert_eq!(s.volumes_from, vec!["db-1"]);
        assert_eq!(s.extra_hosts, vec![("dbhost".into(), "10.0.0.2".into())]);
        assert_eq!(s.networks[0].name, "front");
        assert_eq!(s.networks[0].aliases, vec!["web-1"]);
        assert!(s.labels.contains(&("team".to_string(), "x".to_string())));
        assert!(
            s.env
                .contains(&("DB_DB_1_SQL_PORT".to_string(), "5432".to_string()))
        );
    }

    #[test]
    fn the_hash_follows_the_environment() {
        let env = env();
        let Some((service, inst)) = env.instance("web-1") else {
            panic!()
        };
        let one = container_spec(&env, service, inst);
        let mut changed = inst.clone();
        changed.env.insert("NEW".into(), "1".into());
        let two = container_spec(&env, service, &changed);
        assert_ne!(one.hash(), two.hash());
        assert_eq!(one.hash(), container_spec(&env, service, inst).hash());
    }
}
