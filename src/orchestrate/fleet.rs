//! The ships of one run: how each ship of the environment file is reached (the mapping from
//! its settings to a transport [`Endpoint`]) and connecting to all of them at once.
//!
//! One connection per ship per run: every operation on a ship shares its SSH session.

use std::collections::BTreeMap;

use futures_util::future::join_all;

use crate::config::{Environment, JumpHost, KnownHostsPolicy, Ship};
use crate::transport::{
    self, Connection, DockerTarget, Endpoint, HostKeyPolicy, JumpSpec, Route, SshRoute, TlsFiles,
    TransportError,
};

/// Choices the operator makes on the command line that apply to every ship.
#[derive(Debug, Clone, Copy, Default)]
pub struct ConnectOptions {
    /// `--accept-new-host-keys`: record unknown host keys (changed keys are still refused).
    pub accept_new_host_keys: bool,
}

/// The transport endpoint of `ship`, from its settings in `env`.
///
/// A ship with `ssh` (or MaestroNG's `ssh_tunnel`) is reached over SSH at its `endpoint`;
/// one whose endpoint is a path (`unix:///...` or `/...`) is a local socket; otherwise its
/// daemon's TCP port is reached directly, with TLS when asked.
pub fn endpoint(env: &Environment, ship: &Ship, options: ConnectOptions) -> Endpoint {
    let route = if let Some(ssh) = &ship.ssh {
        let policy = match (options.accept_new_host_keys, ssh.known_hosts) {
            (true, _) | (_, KnownHostsPolicy::AcceptNew) => Some(HostKeyPolicy::AcceptNew),
            // Left to ssh_config's StrictHostKeyChecking, which defaults to strict.
            (false, KnownHostsPolicy::Strict) => None,
        };
        Route::Ssh(SshRoute {
            host: ship.endpoint.clone(),
            // 22 is the model's default: leave it to ~/.ssh/config, which may say otherwise.
            port: (ssh.port != 22).then_some(ssh.port),
            user: ssh.user.clone(),
            identity_files: ssh.identity_files.clone(),
            jumps: ssh.jump.iter().map(|j| jump_spec(env, j)).collect(),
            host_key_policy: policy,
            known_hosts_file: ssh.known_hosts_file.clone(),
            ..SshRoute::default()
        })
    } else if let Some(path) = local_socket(&ship.endpoint) {
        Route::Local {
            socket: path.into(),
        }
    } else {
        Route::Tcp {
            host: ship.endpoint.clone(),
            port: ship.docker_port,
            tls: ship.tls.then(|| TlsFiles {
                ca: ship.tls_ca_cert.clone(),
                cert: ship.tls_cert.clone(),
                key: ship.tls_key.clone(),
                verify: ship.tls_verify,
            }),
        }
    };
    let docker = match &ship.socket_path {
        Some(path) => DockerTarget::Socket(path.clone()),
        // MaestroNG's ssh_tunnel only ever forwarded the daemon's TCP port: keep that meaning.
        None if ship.docker_port_given || ship.ssh_tunnel.is_some() => {
            DockerTarget::Tcp(ship.docker_port)
        }
        None => DockerTarget::default(),
    };
    Endpoint {
        ship: ship.name.clone(),
        route,
        docker,
        api_version: ship.api_version.clone(),
        api_version_cache: crate::transport::default_cache_dir(),
        connect_timeout: ship.ssh_timeout.unwrap_or(ship.timeout),
    }
}

fn local_socket(endpoint: &str) -> Option<&str> {
    endpoint
        .strip_prefix("unix://")
        .or_else(|| endpoint.starts_with('/').then_some(endpoint))
}

/// A jump host named as another ship is reached the way that ship is reached over SSH.
fn jump_spec(env: &Environment, jump: &JumpHost) -> JumpSpec {
    match jump {
        JumpHost::Address { user, host, port } => JumpSpec {
            host: host.clone(),
            port: *port,
            user: user.clone(),
        },
        JumpHost::Ship(name) => {
            let ship = env.ships.iter().find(|s| &s.name == name);
            let ssh = ship.and_then(|s| s.ssh.as_ref());
            JumpSpec {
                host: ship.map_or_else(|| name.clone(), |s| s.endpoint.clone()),
                port: ssh.and_then(|s| (s.port != 22).then_some(s.port)),
                user: ssh.and_then(|s| s.user.clone()),
            }
        }
    }
}

/// Connects to the named ships (all of them when `names` is empty) at the same time.
/// Each ship succeeds or fails on its own; the map is keyed by ship name.
pub async fn connect_all(
    env: &Environment,
    names: &[&str],
    options: ConnectOptions,
) -> BTreeMap<String, Result<Connection, TransportError>> {
    let ships = env
        .ships
        .iter()
        .filter(|s| names.is_empty() || names.contains(&s.name.as_str()));
    let attempts = ships.map(|ship| {
        let endpoint = endpoint(env, ship, options);
        async move { (endpoint.ship.clone(), transport::connect(&endpoint).await) }
    });
    join_all(attempts).await.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::Path;

    fn env(text: &str) -> Environment {
        crate::config::load_str(text, "test.yaml", Path::new(".")).expect("valid environment")
    }

    #[test]
    fn our_ssh_block_forwards_the_socket_and_maestrong_tunnel_the_tcp_port() {
        let e = env(r#"
name: t
ships:
  a: {ip: 10.0.0.1, ssh: {user: root, jump: [bastion.example:2222]}}
  b: {ip: 10.0.0.2, ssh_tunnel: {user: deploy, key: /k}}
  c: {ip: 10.0.0.3, docker_port: 4243, ssh: {user: root}}
  d: {ip: 10.0.0.4}
  e: {ip: 10.0.0.5, endpoint: "unix:///var/run/docker.sock"}
services: {}
"#);
        let ep = |name: &str| {
            let ship = e.ships.iter().find(|s| s.name == name).expect("ship");
            endpoint(&e, ship, ConnectOptions::default())
        };
        let a = ep("a");
        assert_eq!(
            a.docker,
            DockerTarget::Socket("/var/run/docker.sock".into())
        );
        match &a.route {
            Route::Ssh(r) => {
                assert_eq!(r.host, "10.0.0.1");
                assert_eq!(r.jumps[0].host, "bastion.example");
                assert_eq!(r.jumps[0].port, Some(2222));
                assert_eq!(r.host_key_policy, None);
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(ep("b").docker, DockerTarget::Tcp(2375));
        assert_eq!(ep("c").docker, DockerTarget::Tcp(4243));
        assert!(matches!(
            ep("d").route,
            Route::Tcp {
                port: 2375,
                tls: None,
                ..
            }
        ));
        assert!(matches!(ep("e").route, Route::Local { .. }));
    }

    #[test]
    fn the_flag_accepts_new_host_keys_on_every_ssh_ship() {
        let e = env("name: t\nships:\n  a: {ip: 10.0.0.1, ssh: {user: root}}\nservices: {}\n");
        let options = ConnectOptions {
            accept_new_host_keys: true,
        };
        match endpoint(&e, &e.ships[0], options).route {
            Route::Ssh(r) => assert_eq!(r.host_key_policy, Some(HostKeyPolicy::AcceptNew)),
            other => panic!("{other:?}"),
        }
    }
}
