//! The auto-configuration environment: the variables MaestroNG gives every container so that
//! it can find its peers and its dependencies without service discovery.
//!
//! Names and values follow MaestroNG 0.8 exactly, because images written for it read them:
//! `MAESTRO_ENVIRONMENT_NAME`, `SERVICE_NAME`, `CONTAINER_NAME`, `CONTAINER_HOST_ADDRESS`,
//! `DOCKER_IMAGE`, `DOCKER_TAG`, and for every instance of its own service and of each
//! dependency (transitive `requires`, direct `wants_info`) `<SVC>_<INST>_HOST`,
//! `<SVC>_<INST>_<PORT>_PORT` (external port), for own-service peers also
//! `<SVC>_<INST>_<PORT>_INTERNAL_PORT`, and `<SVC>_INSTANCES`.

use std::collections::{BTreeMap, BTreeSet};

use crate::config::{Environment, Instance, Service};

/// MaestroNG's `re.sub(r'[^\w]', '_', name).upper()`.
pub fn env_name(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_alphanumeric() || c == '_' {
                c.to_uppercase().collect::<String>()
            } else {
                "_".to_string()
            }
        })
        .collect()
}

/// The services `service` learns about: itself first, then its transitive `requires`, then
/// its direct `wants_info` (in that order; later ones cannot override earlier ones' names
/// since every name carries its service).
fn informed_services<'a>(env: &'a Environment, service: &'a Service) -> Vec<&'a Service> {
    let mut seen: BTreeSet<&str> = BTreeSet::from([service.name.as_str()]);
    let mut out = vec![service];
    let mut todo: Vec<&str> = service.requires.iter().map(String::as_str).collect();
    while let Some(name) = todo.pop() {
        if !seen.insert(name) {
            continue;
        }
        if let Some(dep) = env.service(name) {
            out.push(dep);
            todo.extend(dep.requires.iter().map(String::as_str));
        }
    }
    for name in &service.wants_info {
        if seen.insert(name.as_str())
            && let Some(dep) = env.service(name)
        {
            out.push(dep);
        }
    }
    out
}

/// The variables locating `service`'s instances (MaestroNG's `get_link_variables`).
fn link_variables(
    env: &Environment,
    service: &Service,
    internal: bool,
) -> BTreeMap<String, String> {
    let base = env_name(&service.name);
    let mut vars = BTreeMap::new();
    for inst in &service.instances {
        let prefix = format!("{base}_{}", env_name(&inst.name));
        let ip = env
            .ship(&inst.ship)
            .map(|s| s.ip.clone())
            .unwrap_or_default();
        vars.insert(format!("{prefix}_HOST"), ip);
        for port in &inst.ports {
            let port_name = env_name(&port.name);
            vars.insert(
                format!("{prefix}_{port_name}_PORT"),
                port.external.to_string(),
            );
            if internal {
                vars.insert(
                    format!("{prefix}_{port_name}_INTERNAL_PORT"),
                    port.exposed.to_string(),
                );
            }
        }
    }
    let mut names: Vec<&str> = service.instances.iter().map(|i| i.name.as_str()).collect();
    names.sort_unstable();
    vars.insert(format!("{base}_INSTANCES"), names.join(","));
    vars
}

/// Only the generated variables of `instance` (of `service`).
pub fn generated(
    env: &Environment,
    service: &Service,
    instance: &Instance,
) -> BTreeMap<String, String> {
    let mut vars = BTreeMap::new();
    for (k, other) in informed_services(env, service).into_iter().enumerate() {
        vars.extend(link_variables(env, other, k == 0));
    }
    let (_, tag) = instance.image_repo_tag();
    let ship_ip = env
        .ship(&instance.ship)
        .map(|s| s.ip.clone())
        .unwrap_or_default();
    vars.insert("MAESTRO_ENVIRONMENT_NAME".into(), env.name.clone());
    vars.insert("SERVICE_NAME".into(), service.name.clone());
    vars.insert("CONTAINER_NAME".into(), instance.name.clone());
    vars.insert("CONTAINER_HOST_ADDRESS".into(), ship_ip);
    vars.insert("DOCKER_IMAGE".into(), instance.image.clone());
    vars.insert("DOCKER_TAG".into(), tag.to_string());
    vars
}

/// The container's whole environment: the file's (already merged by `config`, lowest first:
/// service envfile, service env, `MAESTRO_ENVIRONMENT_NAME` and `SERVICE_NAME`, instance
/// envfile, instance env) with the other generated variables on top, as MaestroNG does.
pub fn container_env(
    env: &Environment,
    service: &Service,
    instance: &Instance,
) -> BTreeMap<String, String> {
    let mut vars = instance.env.clone();
    for (name, value) in generated(env, service, instance) {
        // config put these two in the file's layers, under the instance's own env, where
        // MaestroNG has them: an instance may override them.
        let service_level = matches!(name.as_str(), "MAESTRO_ENVIRONMENT_NAME" | "SERVICE_NAME");
        if service_level && vars.contains_key(&name) {
            continue;
        }
        vars.insert(name, value);
    }
    vars
}

/// [`container_env`] of an instance found by name.
pub fn container_env_of(env: &Environment, instance: &str) -> Option<BTreeMap<String, String>> {
    let (service, inst) = env.instance(instance)?;
    Some(container_env(env, service, inst))
}

// The golden-file checker the integration tests use too.
#[cfg(test)]
#[path = "../../../tests/common/golden.rs"]
mod golden;

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    const ENV: &str = r#"
name: prod-eu
ships:
  vm1: {ip: 10.0.0.1}
  vm2.dc: {ip: 10.0.0.2}
services:
  zookeeper:
    image: zk:3.4
    env: {SHARED: service, ZOO: x}
    instances:
      zk-1:
        ship: vm1
        ports: {client: 2181, peer: "2888:12888", "leader.election": "3888/udp"}
        env: {SHARED: instance}
      zk-2: {ship: vm2.dc, ports: {client: 2181}}
  kafka:
    image: registry.local:5000/kafka
    requires: [zookeeper]
    instances:
      kafka-1: {ship: vm1, ports: {broker: "9092:19092"}}
  web-app:
    image: web
    requires: [kafka]
    wants_info: [metrics]
    env:
      CONTAINER_NAME: overridden-by-generated
      LIST: [a, b]
    instances:
      web.1: {ship: vm2.dc, ports: {http: 80}}
  metrics:
    image: m
    requires: [other]
    instances:
      metrics-1: {ship: vm1, ports: {api: 9000}}
  other:
    image: o
    instances:
      other-1: {ship: vm1}
"#;

    fn env() -> Environment {
        match crate::config::load_str(ENV, "t.yaml", Path::new(".")) {
            Ok(e) => e,
            Err(e) => panic!("{e}"),
        }
    }

    fn render(vars: &BTreeMap<String, String>) -> String {
        vars.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
    }

    use super::golden;

    #[test]
    fn names_are_upper_cased_with_non_word_characters_as_underscores() {
        assert_eq!(env_name("web.1"), "WEB_1");
        assert_eq!(env_name("leader-election"), "LEADER_ELECTION");
        assert_eq!(env_name("été_x"), "ÉTÉ_X");
    }

    #[test]
    fn golden_own_service_with_peers_and_internal_ports() {
        let env = env();
        let vars = container_env_of(&env, "zk-1").unwrap_or_default();
        assert_eq!(vars["SHARED"], "instance");
        golden::check("autoconf_zk-1.env", &render(&vars));
    }

    #[test]
    fn golden_transitive_requires_and_direct_wants_info() {
        let env = env();
        let vars = container_env_of(&env, "web.1").unwrap_or_default();
        // Transitive requires: zookeeper through kafka.
        assert_eq!(vars["ZOOKEEPER_ZK_2_CLIENT_PORT"], "2181");
        assert!(!vars.contains_key("ZOOKEEPER_ZK_2_CLIENT_INTERNAL_PORT"));
        // wants_info is direct only: metrics, not what metrics requires.
        assert_eq!(vars["METRICS_METRICS_1_API_PORT"], "9000");
        assert!(!vars.contains_key("OTHER_INSTANCES"));
        // Generated variables win over the file's.
        assert_eq!(vars["CONTAINER_NAME"], "web.1");
        golden::check("autoconf_web.1.env", &render(&vars));
    }

    #[test]
    fn image_and_tag() {
        let env = env();
        let vars = container_env_of(&env, "kafka-1").unwrap_or_default();
        assert_eq!(vars["DOCKER_IMAGE"], "registry.local:5000/kafka");
        assert_eq!(vars["DOCKER_TAG"], "latest");
        assert_eq!(vars["KAFKA_KAFKA_1_BROKER_PORT"], "19092");
        assert_eq!(vars["KAFKA_KAFKA_1_BROKER_INTERNAL_PORT"], "9092");
        assert_eq!(vars["ZOOKEEPER_INSTANCES"], "zk-1,zk-2");
    }
}
