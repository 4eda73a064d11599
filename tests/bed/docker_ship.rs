//! The docker layer against a real dockerd: one test bed ship per test, reached over its
//! local socket (the ship's socket is on this filesystem).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bollard::{API_DEFAULT_VERSION, Docker};
use futures_util::StreamExt;
use maestro::docker::*;

type TestResult = Result<(), Box<dyn std::error::Error>>;

use crate::common;

/// A one-ship test bed of its own per test (so tests run in parallel), torn down on drop.
struct Bed {
    _bed: common::TestBed,
    socket: String,
    netns: String,
    image: String,
}

impl Bed {
    fn up(name: &str) -> Result<Bed, Box<dyn std::error::Error>> {
        let bed = common::TestBed::up(name, 1, 0);
        let ship = bed.ships.first().ok_or("the bed has no ship")?;
        Ok(Bed {
            socket: ship.docker_socket.to_string_lossy().to_string(),
            netns: ship.netns.clone(),
            image: bed.image.clone(),
            _bed: bed,
        })
    }

    async fn ship(&self) -> Result<Ship, Box<dyn std::error::Error>> {
        let docker = Docker::connect_with_unix(&self.socket, 60, API_DEFAULT_VERSION)?
            .negotiate_version()
            .await?;
        Ok(Ship::new("ship1", docker))
    }

    /// The docker CLI against the ship's daemon, with its own client config when given (the
    /// registry test logs in).
    fn docker_cli(&self, args: &[&str], config: Option<&Path>) -> Result<String, String> {
        let mut command = Command::new("docker");
        command
            .arg("-H")
            .arg(format!("unix://{}", self.socket))
            .env_remove("DOCKER_HOST")
            .env_remove("DOCKER_CONTEXT");
        if let Some(config) = config {
            command.env("DOCKER_CONFIG", config);
        }
        let output = command.args(args).output().map_err(|e| e.to_string())?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).to_string())
        } else {
            Err(String::from_utf8_lossy(&output.stderr).to_string())
        }
    }
}

fn labels(environment: &str, service: &str, instance: &str) -> Vec<(String, String)> {
    vec![
        (ENVIRONMENT_LABEL.to_string(), environment.to_string()),
        (SERVICE_LABEL.to_string(), service.to_string()),
        (INSTANCE_LABEL.to_string(), instance.to_string()),
    ]
}

fn sh(script: &str) -> Option<Vec<String>> {
    Some(vec!["sh".into(), "-c".into(), script.into()])
}

fn simple(bed: &Bed, name: &str, script: &str) -> ContainerSpec {
    ContainerSpec {
        name: name.to_string(),
        hostname: Some(name.to_string()),
        image: bed.image.clone(),
        command: sh(script),
        labels: labels("dk", "svc", name),
        ..Default::default()
    }
}

#[tokio::test]
async fn full_spec_lands_in_inspect() -> TestResult {
    let bed = Bed::up("dk-spec")?;
    let ship = bed.ship().await?;
    let version = ship.version().await?;
    assert!(!version.version.is_empty());

    ship.ensure_network("dk-front").await?;
    ship.ensure_network("dk-back").await?;

    let front = |alias: &str| NetworkAttachment {
        name: "dk-front".into(),
        aliases: vec![alias.to_string()],
    };
    let mut db = simple(&bed, "dk-db", "sleep 300");
    db.networks = vec![front("db-1")];
    ship.create(&db).await?;
    ship.start("dk-db").await?;

    let mut data = simple(&bed, "dk-data", "true");
    data.volumes = vec!["/data".into()];
    ship.create(&data).await?;

    let host_dir = tempfile::tempdir()?;
    std::fs::write(host_dir.path().join("hello"), "from the host\n")?;
    let host_path = host_dir.path().to_string_lossy().to_string();

    let web = ContainerSpec {
        name: "dk-web".into(),
        hostname: Some("dk-web".into()),
        image: bed.image.clone(),
        command: sh("sleep 300"),
        entrypoint: None,
        env: vec![
            ("GREETING".into(), "hello world".into()),
            ("EMPTY".into(), String::new()),
        ],
        unset_env: Vec::new(),
        ports: vec![
            PortSpec {
                container_port: 80,
                protocol: Protocol::Tcp,
                host_ip: None,
                host_port: HostPort::Port(18080),
            },
            PortSpec {
                container_port: 53,
                protocol: Protocol::Udp,
                host_ip: None,
                host_port: HostPort::Any,
            },
            PortSpec {
                container_port: 81,
                protocol: Protocol::Tcp,
                host_ip: Some("127.0.0.1".into()),
                host_port: HostPort::Range(19000, 19010),
            },
        ],
        binds: vec![BindMount {
            host_path: host_path.clone(),
            container_path: "/mnt/host".into(),
            mode: MountMode::Ro,
        }],
        volumes: vec!["/cache".into()],
        volumes_from: vec!["dk-data".into()],
        links: vec![Link {
            name: "dk-db".into(),
            alias: "database".into(),
        }],
        user: Some("0:0".into()),
        workdir: Some("/tmp".into()),
        privileged: false,
        cap_add: vec!["NET_ADMIN".into()],
        cap_drop: vec!["MKNOD".into()],
        extra_hosts: vec![("outside".into(), "10.9.8.7".into())],
        network_mode: None,
        networks: vec![
            front("web-1"),
            NetworkAttachment {
                name: "dk-back".into(),
                aliases: vec!["web-1".into()],
            },
        ],
        restart: Some(RestartPolicy {
            name: RestartPolicyName::OnFailure,
            max_retries: Some(3),
        }),
        dns: vec!["10.9.8.53".into()],
        stop_timeout: Some(7),
        stop_signal: Some("SIGINT".into()),
        limits: Limits {
            memory: Some(64 * 1024 * 1024),
            cpu_shares: Some(512),
            memory_swap: Some(128 * 1024 * 1024),
        },
        log_driver: Some("json-file".into()),
        log_opt: vec![("max-size".into(), "1m".into())],
        security_opt: vec!["no-new-privileges".into()],
        ulimits: vec![Ulimit {
            name: "nofile".into(),
            soft: 1024,
            hard: 2048,
        }],
        labels: labels("dk", "web", "web-1"),
        healthcheck: Some(Healthcheck {
            test: vec!["CMD-SHELL".into(), "test -f /mnt/host/hello".into()],
            interval: Some(Duration::from_secs(1)),
            timeout: Some(Duration::from_secs(2)),
            retries: Some(3),
            start_period: Some(Duration::from_millis(500)),
        }),
        devices: vec![Device {
            host_path: "/dev/null".into(),
            container_path: "/dev/mynull".into(),
            permissions: "rwm".into(),
        }],
        tmpfs: vec![("/run/scratch".into(), "size=1m".into())],
        init: Some(true),
    };
    let id = ship.create(&web).await?;
    assert!(!id.is_empty());

    let created = ship.inspect("dk-web").await?.ok_or("dk-web missing")?;
    assert_eq!(created.state, ContainerStatus::Created);
    assert_eq!(created.spec_hash.as_deref(), Some(web.hash().as_str()));

    ship.start("dk-web").await?;
    ship.wait_running("dk-web", Duration::from_secs(20)).await?;

    let details = ship.inspect("dk-web").await?.ok_or("dk-web missing")?;
    assert!(details.running);
    assert!(details.started_at.is_some());
    let raw = &details.raw;
    let config = raw.config.clone().ok_or("no config")?;
    let host = raw.host_config.clone().ok_or("no host config")?;

    assert_eq!(config.hostname.as_deref(), Some("dk-web"));
    assert_eq!(config.user.as_deref(), Some("0:0"));
    assert_eq!(config.working_dir.as_deref(), Some("/tmp"));
    assert_eq!(config.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(config.stop_timeout, Some(7));
    assert_eq!(config.cmd, sh("sleep 300"));
    let env: HashMap<_, _> = details.env.iter().cloned().collect();
    assert_eq!(env.get("GREETING").map(String::as_str), Some("hello world"));
    assert_eq!(env.get("EMPTY").map(String::as_str), Some(""));
    assert_eq!(
        details.labels.get(SERVICE_LABEL).map(String::as_str),
        Some("web")
    );
    assert_eq!(
        details.labels.get(INSTANCE_LABEL).map(String::as_str),
        Some("web-1")
    );
    let mut exposed = config.exposed_ports.clone().unwrap_or_default();
    exposed.sort();
    assert_eq!(exposed, vec!["53/udp", "80/tcp", "81/tcp"]);
    assert_eq!(
        config.volumes.clone().unwrap_or_default(),
        vec!["/cache".to_string()]
    );
    let health = config.healthcheck.clone().ok_or("no healthcheck")?;
    assert_eq!(health.interval, Some(1_000_000_000));
    assert_eq!(health.retries, Some(3));
    assert_eq!(health.start_period, Some(500_000_000));

    assert_eq!(host.binds, Some(vec![format!("{host_path}:/mnt/host:ro")]));
    assert_eq!(host.volumes_from, Some(vec!["dk-data".to_string()]));
    assert_eq!(host.network_mode.as_deref(), Some("dk-front"));
    let restart = host.restart_policy.clone().ok_or("no restart policy")?;
    assert_eq!(
        restart.name,
        Some(bollard::models::RestartPolicyNameEnum::ON_FAILURE)
    );
    assert_eq!(restart.maximum_retry_count, Some(3));
    assert_eq!(host.memory, Some(64 * 1024 * 1024));
    assert_eq!(host.memory_swap, Some(128 * 1024 * 1024));
    assert_eq!(host.cpu_shares, Some(512));
    let ulimits = host.ulimits.clone().unwrap_or_default();
    assert_eq!(ulimits.len(), 1);
    assert_eq!(ulimits[0].name.as_deref(), Some("nofile"));
    assert_eq!((ulimits[0].soft, ulimits[0].hard), (Some(1024), Some(2048)));
    assert_eq!(host.cap_add, Some(vec!["NET_ADMIN".to_string()]));
    assert_eq!(host.cap_drop, Some(vec!["MKNOD".to_string()]));
    assert_eq!(host.extra_hosts, Some(vec!["outside:10.9.8.7".to_string()]));
    assert_eq!(host.dns, Some(vec!["10.9.8.53".to_string()]));
    assert_eq!(
        host.security_opt,
        Some(vec!["no-new-privileges".to_string()])
    );
    assert_eq!(host.init, Some(true));
    let log = host.log_config.clone().ok_or("no log config")?;
    assert_eq!(log.typ.as_deref(), Some("json-file"));
    assert_eq!(
        log.config
            .unwrap_or_default()
            .get("max-size")
            .map(String::as_str),
        Some("1m")
    );
    assert_eq!(
        host.tmpfs
            .clone()
            .unwrap_or_default()
            .get("/run/scratch")
            .map(String::as_str),
        Some("size=1m")
    );
    let devices = host.devices.clone().unwrap_or_default();
    assert_eq!(devices[0].path_in_container.as_deref(), Some("/dev/mynull"));

    // Ports: the fixed one, a daemon-chosen one, one from the range on 127.0.0.1.
    assert_eq!(details.published_ports.get("80/tcp"), Some(&vec![18080]));
    assert!(
        !details
            .published_ports
            .get("53/udp")
            .cloned()
            .unwrap_or_default()
            .is_empty()
    );
    let ranged = details
        .published_ports
        .get("81/tcp")
        .cloned()
        .unwrap_or_default();
    assert!(
        ranged.len() == 1 && (19000..=19010).contains(&ranged[0]),
        "{ranged:?}"
    );

    // Mounts: the bind, the anonymous volume, and the one from dk-data.
    let mounts = raw.mounts.clone().unwrap_or_default();
    let destination = |path: &str| {
        mounts
            .iter()
            .find(|m| m.destination.as_deref() == Some(path))
            .cloned()
    };
    let bind = destination("/mnt/host").ok_or("bind missing")?;
    assert_eq!(bind.rw, Some(false));
    assert!(destination("/cache").is_some());
    assert!(
        destination("/data").is_some(),
        "volumes_from did not land: {mounts:?}"
    );

    // Networks: both, with the instance alias, and the link on the primary one.
    let networks = raw
        .network_settings
        .clone()
        .and_then(|n| n.networks)
        .unwrap_or_default();
    let on_front = networks.get("dk-front").cloned().ok_or("not on dk-front")?;
    assert!(
        on_front
            .aliases
            .unwrap_or_default()
            .contains(&"web-1".to_string())
    );
    assert_eq!(on_front.links, Some(vec!["dk-db:database".to_string()]));
    let on_back = networks.get("dk-back").cloned().ok_or("not on dk-back")?;
    assert!(
        on_back
            .aliases
            .unwrap_or_default()
            .contains(&"web-1".to_string())
    );

    // The link and the alias resolve from inside, the bind is readable.
    let resolved = ship
        .exec(
            "dk-web",
            &["ping".into(), "-c1".into(), "-W2".into(), "database".into()],
            &[],
        )
        .await?;
    assert_eq!(resolved.exit_code, 0, "{}", resolved.output);
    let read = ship
        .exec("dk-web", &["cat".into(), "/mnt/host/hello".into()], &[])
        .await?;
    assert_eq!(read.output, "from the host\n");

    // The container's own HEALTHCHECK turns healthy.
    let mut health = None;
    for _ in 0..40 {
        health = ship.health("dk-web").await?;
        if health == Some(HealthState::Healthy) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert_eq!(health, Some(HealthState::Healthy));
    assert_eq!(ship.health("dk-db").await?, None);

    for name in ["dk-web", "dk-db", "dk-data"] {
        ship.remove(name, true).await?;
    }
    Ok(())
}

#[tokio::test]
async fn list_managed_uses_labels_and_carries_the_spec_hash() -> TestResult {
    let bed = Bed::up("dk-list")?;
    let ship = bed.ship().await?;

    let mut one = simple(&bed, "dk-one", "sleep 300");
    one.labels = labels("prod", "api", "api-1");
    one.ports = vec![PortSpec {
        container_port: 8000,
        protocol: Protocol::Tcp,
        host_ip: None,
        host_port: HostPort::Port(18000),
    }];
    let mut two = simple(&bed, "dk-two", "exit 2");
    two.labels = labels("prod", "worker", "worker-1");
    let mut other = simple(&bed, "dk-other", "sleep 300");
    other.labels = labels("staging", "api", "api-1");
    for spec in [&one, &two, &other] {
        ship.create(spec).await?;
    }
    ship.start("dk-one").await?;
    ship.start("dk-two").await?;
    ship.wait_running("dk-one", Duration::from_secs(20)).await?;
    // dk-two exits on its own.
    for _ in 0..50 {
        let state = ship.inspect("dk-two").await?.map(|d| d.state);
        if state == Some(ContainerStatus::Exited) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let listed = ship.list_managed("prod").await?;
    let names: Vec<&str> = listed.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, vec!["dk-one", "dk-two"]);
    let api = &listed[0];
    assert_eq!(api.environment, "prod");
    assert_eq!(api.service, "api");
    assert_eq!(api.instance, "api-1");
    assert_eq!(api.state, ContainerStatus::Running);
    assert!(api.status.starts_with("Up"), "{}", api.status);
    assert!(api.age.is_some());
    assert_eq!(api.spec_hash.as_deref(), Some(one.hash().as_str()));
    assert_eq!(api.image, bed.image);
    assert!(api.image_id.starts_with("sha256:"));
    assert_eq!(Some(api.image_id.clone()), ship.image_id(&bed.image).await?);
    assert!(api.created > 0);
    assert!(
        api.ports.iter().any(|p| p.container_port == 8000
            && p.host_port == 18000
            && p.protocol == Protocol::Tcp),
        "{:?}",
        api.ports
    );
    let worker = &listed[1];
    assert_eq!(worker.state, ContainerStatus::Exited);
    assert_eq!(worker.exit_code, Some(2));
    assert_ne!(worker.spec_hash, api.spec_hash);

    // A changed spec is detected by its hash.
    let mut changed = one.clone();
    changed.env.push(("NEW".into(), "1".into()));
    assert_ne!(changed.hash(), api.spec_hash.clone().unwrap_or_default());
    assert_eq!(
        one.clone().hash(),
        api.spec_hash.clone().unwrap_or_default()
    );
    // And a dry run can say what changed.
    let recorded = api.recorded_spec().ok_or("no recorded spec")?;
    assert!(one.changes_since(&recorded, None).is_empty());
    let changes = changed.changes_since(&recorded, None);
    assert_eq!(changes.len(), 1, "{changes:?}");
    assert_eq!(changes[0].field, "env.NEW");
    assert_eq!(changes[0].new.as_deref(), Some("1"));

    assert!(ship.list_managed("nothing-here").await?.is_empty());
    assert_eq!(ship.image_id("no-such-image:1").await?, None);
    Ok(())
}

#[tokio::test]
async fn lifecycle_start_stop_kill_remove() -> TestResult {
    let bed = Bed::up("dk-life")?;
    let ship = bed.ship().await?;

    let spec = simple(
        &bed,
        "dk-life",
        "trap 'exit 0' TERM; while true; do sleep 1; done",
    );
    ship.create(&spec).await?;
    let again = ship
        .create(&spec)
        .await
        .err()
        .ok_or("second create succeeded")?;
    assert!(again.is_conflict(), "{again}");

    ship.start("dk-life").await?;
    ship.start("dk-life").await?; // already running: fine
    ship.wait_running("dk-life", Duration::from_secs(20))
        .await?;

    ship.stop("dk-life", Duration::from_secs(5)).await?;
    let stopped = ship.inspect("dk-life").await?.ok_or("gone")?;
    assert_eq!(stopped.state, ContainerStatus::Exited);
    assert!(stopped.finished_at.is_some());
    ship.stop("dk-life", Duration::from_secs(5)).await?; // already stopped: fine

    ship.start("dk-life").await?;
    ship.wait_running("dk-life", Duration::from_secs(20))
        .await?;
    ship.kill("dk-life", "SIGKILL").await?;
    for _ in 0..50 {
        if ship.inspect("dk-life").await?.map(|d| d.running) == Some(false) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let killed = ship.inspect("dk-life").await?.ok_or("gone")?;
    assert_eq!(killed.exit_code, Some(137));
    let not_running = ship
        .kill("dk-life", "SIGKILL")
        .await
        .err()
        .ok_or("kill of a dead one")?;
    assert!(not_running.is_conflict(), "{not_running}");

    ship.remove("dk-life", false).await?;
    assert!(ship.inspect("dk-life").await?.is_none());
    let missing = ship
        .remove("dk-life", false)
        .await
        .err()
        .ok_or("removed twice")?;
    assert!(missing.is_not_found());
    let missing = ship.start("dk-life").await.err().ok_or("started a ghost")?;
    assert!(missing.is_not_found());
    assert!(
        missing.to_string().contains("ship ship1: start dk-life"),
        "{missing}"
    );

    // Forced removal of a running container.
    ship.create(&spec).await?;
    ship.start("dk-life").await?;
    ship.remove("dk-life", true).await?;
    assert!(ship.inspect("dk-life").await?.is_none());

    // Creating from a missing image says so.
    let mut no_image = simple(&bed, "dk-noimage", "true");
    no_image.image = "no-such-image:1".into();
    let err = ship
        .create(&no_image)
        .await
        .err()
        .ok_or("created without image")?;
    assert!(err.is_not_found(), "{err}");
    Ok(())
}

#[tokio::test]
async fn wait_running_reports_the_exit_code() -> TestResult {
    let bed = Bed::up("dk-exit")?;
    let ship = bed.ship().await?;
    let spec = simple(&bed, "dk-exit", "echo failing; exit 3");
    ship.create(&spec).await?;
    ship.start("dk-exit").await?;
    // Let it exit before we look, as a crashing service would.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let err = ship
        .wait_running("dk-exit", Duration::from_secs(10))
        .await
        .err()
        .ok_or("an exited container counted as running")?;
    assert_eq!(err.kind, ErrorKind::Exited { code: 3 });
    assert_eq!(
        ship.logs_tail("dk-exit", 5).await?,
        vec!["failing".to_string()]
    );

    // A created, never started container times out.
    ship.create(&simple(&bed, "dk-idle", "true")).await?;
    let err = ship
        .wait_running("dk-idle", Duration::from_millis(500))
        .await
        .err()
        .ok_or("never started but running")?;
    assert_eq!(err.kind, ErrorKind::TimedOut);
    Ok(())
}

#[tokio::test]
async fn logs_tail_follow_and_exec() -> TestResult {
    let bed = Bed::up("dk-logs")?;
    let ship = bed.ship().await?;
    let spec = simple(
        &bed,
        "dk-logs",
        // The daemon copies stdout and stderr separately, so their order is only certain
        // when they are apart in time.
        "for i in 1 2 3 4 5; do echo line $i; done; sleep 1; echo oops >&2; sleep 2; echo late; sleep 300",
    );
    ship.create(&spec).await?;
    ship.start("dk-logs").await?;
    ship.wait_running("dk-logs", Duration::from_secs(20))
        .await?;
    tokio::time::sleep(Duration::from_millis(1500)).await;

    let tail = ship.logs_tail("dk-logs", 3).await?;
    assert_eq!(tail, vec!["line 4", "line 5", "oops"]);

    let mut follow = ship.logs(
        "dk-logs",
        LogQuery {
            tail: Some(1),
            follow: true,
            timestamps: true,
            ..LogQuery::default()
        },
    );
    let first = follow.next().await.ok_or("stream ended")??;
    assert_eq!(first.text, "oops");
    assert_eq!(first.source, LogSource::Stderr);
    // With timestamps, each line carries the time the daemon wrote it, split off its text.
    assert!(first.time.is_some(), "{first:?}");
    let late = tokio::time::timeout(Duration::from_secs(10), follow.next())
        .await?
        .ok_or("stream ended")??;
    assert_eq!(late.text, "late");
    assert_eq!(late.source, LogSource::Stdout);
    drop(follow);

    // From a point in time on (seconds granularity): the late line, not the early ones.
    let since = std::time::SystemTime::now() - Duration::from_secs(1);
    let since = since
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| i32::try_from(d.as_secs()).unwrap_or(i32::MAX))?;
    let recent: Vec<String> = ship
        .logs(
            "dk-logs",
            LogQuery {
                since: Some(since),
                ..LogQuery::default()
            },
        )
        .filter_map(|l| async move { l.ok().map(|l| l.text) })
        .collect()
        .await;
    assert!(!recent.contains(&"line 1".to_string()), "{recent:?}");

    let outcome = ship
        .exec(
            "dk-logs",
            &[
                "sh".into(),
                "-c".into(),
                "echo $FOO; echo err >&2; exit 4".into(),
            ],
            &[("FOO".into(), "bar".into())],
        )
        .await?;
    assert_eq!(outcome.exit_code, 4);
    assert!(outcome.output.contains("bar\n"), "{}", outcome.output);
    assert!(outcome.output.contains("err\n"), "{}", outcome.output);
    let ok = ship.exec("dk-logs", &["true".into()], &[]).await?;
    assert_eq!(ok.exit_code, 0);

    // A followed log ends when the container stops.
    let mut follow = ship.logs(
        "dk-logs",
        LogQuery {
            tail: Some(0),
            follow: true,
            ..LogQuery::default()
        },
    );
    ship.stop("dk-logs", Duration::from_secs(1)).await?;
    let ended = tokio::time::timeout(Duration::from_secs(15), async {
        while let Some(line) = follow.next().await {
            line?;
        }
        Ok::<(), DockerError>(())
    })
    .await;
    assert!(matches!(ended, Ok(Ok(()))), "{ended:?}");
    Ok(())
}

#[tokio::test]
async fn ensure_network_is_idempotent_under_concurrency() -> TestResult {
    let bed = Bed::up("dk-net")?;
    // Separate handles and Ship values: no shared in-process lock, like separate processes.
    let mut ships = Vec::new();
    for _ in 0..6 {
        ships.push(bed.ship().await?);
    }
    let results =
        futures_util::future::join_all(ships.iter().map(|ship| ship.ensure_network("dk-race")))
            .await;
    let ids: Vec<String> = results.into_iter().collect::<Result<_, _>>()?;
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    let listed = bed
        .docker_cli(
            &[
                "network",
                "ls",
                "--filter",
                "name=dk-race",
                "--format",
                "{{.Name}} {{.ID}}",
            ],
            None,
        )
        .map_err(|e| e.to_string())?;
    let exact: Vec<&str> = listed
        .lines()
        .filter(|l| l.split(' ').next() == Some("dk-race"))
        .collect();
    assert_eq!(exact.len(), 1, "{listed}");
    assert!(ids[0].starts_with(exact[0].split(' ').nth(1).unwrap_or("?")));
    // And once more, sequentially.
    assert_eq!(ships[0].ensure_network("dk-race").await?, ids[0]);
    Ok(())
}

#[tokio::test]
async fn pull_from_a_private_registry() -> TestResult {
    let bed = Bed::up("dk-pull")?;
    let ship = bed.ship().await?;
    let _registry = common::PrivateRegistry::start(&bed.netns, "maestro", "s3cret")?;
    let client_config = tempfile::tempdir()?;
    let cli = |args: &[&str]| {
        bed.docker_cli(args, Some(client_config.path()))
            .map_err(|e| format!("docker {args:?}: {e}"))
    };

    // An image with a layer of its own, so that the pull really downloads something.
    let image = format!("{}/maestro/app:1", common::PrivateRegistry::ADDRESS);
    cli(&[
        "run",
        "--name",
        "dk-builder",
        &bed.image,
        "dd",
        "if=/dev/urandom",
        "of=/blob",
        "bs=1024",
        "count=3072",
    ])?;
    cli(&["commit", "dk-builder", &image])?;
    cli(&["rm", "dk-builder"])?;
    let login = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "echo s3cret | docker -H unix://{} login -u maestro --password-stdin {}",
            bed.socket,
            common::PrivateRegistry::ADDRESS
        ))
        .env("DOCKER_CONFIG", client_config.path())
        .output()?;
    assert!(
        login.status.success(),
        "{}",
        String::from_utf8_lossy(&login.stderr)
    );
    cli(&["push", &image])?;
    cli(&["rmi", &image])?;
    assert_eq!(ship.image_id(&image).await?, None);

    // Without credentials the registry refuses, and a code not configured is not retried.
    let started = std::time::Instant::now();
    let refused = ship
        .pull(
            &image,
            None,
            &PullRetry {
                delay: Duration::from_secs(60),
                ..Default::default()
            },
            |_| {},
        )
        .await
        .err()
        .ok_or("pulled without credentials")?;
    // A retry would wait 60 s first: ending well before says there was none.
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "retried: {refused}"
    );
    assert!(refused.message.contains("auth"), "{refused}");

    // A configured code is retried, a bounded number of times.
    let started = std::time::Instant::now();
    let retry = PullRetry {
        attempts: 3,
        on_status: vec![refused.status.unwrap_or(500)],
        delay: Duration::from_millis(2500),
    };
    assert!(ship.pull(&image, None, &retry, |_| {}).await.is_err());
    // Two waits of 2.5 s between three attempts; a fourth would add another.
    let elapsed = started.elapsed();
    assert!(
        elapsed >= Duration::from_secs(5) && elapsed < Duration::from_secs(60),
        "{elapsed:?}"
    );

    // The credentials `docker login` left in the client config work.
    let credentials = Credentials::from_docker_config_file(
        &client_config.path().join("config.json"),
        common::PrivateRegistry::ADDRESS,
    )?
    .ok_or("no credentials in the client config")?;
    assert_eq!(credentials.username, "maestro");
    assert!(!format!("{credentials:?}").contains("s3cret"));

    let mut seen = Vec::new();
    let id = ship
        .pull(&image, Some(credentials), &PullRetry::default(), |p| {
            seen.push(p)
        })
        .await?;
    assert!(id.starts_with("sha256:"));
    assert_eq!(ship.image_id(&image).await?, Some(id));
    let last = seen.last().ok_or("no progress")?;
    assert_eq!(last.percent, 100);
    assert!(
        last.layers_total >= 1 && last.layers_done == last.layers_total,
        "{last:?}"
    );
    assert!(
        seen.windows(2).all(|w| w[0].percent <= w[1].percent),
        "progress went backwards"
    );
    assert!(
        seen.iter()
            .any(|p| p.status == "Downloading" || p.status == "Extracting"),
        "{seen:?}"
    );
    Ok(())
}

/// A "daemon" that accepts connections and hangs up at once, as a dropped tunnel does.
/// Returns the socket path and a counter of connections.
async fn hanging_up_daemon(
    dir: &Path,
) -> Result<(PathBuf, std::sync::Arc<std::sync::atomic::AtomicUsize>), Box<dyn std::error::Error>> {
    let path = dir.join("eof.sock");
    let listener = tokio::net::UnixListener::bind(&path)?;
    let accepted = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            drop(stream);
        }
    });
    Ok((path, accepted))
}

#[tokio::test]
async fn broken_connections_are_retried_only_for_idempotent_calls() -> TestResult {
    use std::sync::atomic::Ordering;
    let dir = tempfile::tempdir()?;
    let (path, accepted) = hanging_up_daemon(dir.path()).await?;
    let docker = Docker::connect_with_unix(&path.to_string_lossy(), 5, API_DEFAULT_VERSION)?;
    let ship = Ship::new("flaky", docker).with_retry(RetryPolicy {
        attempts: 3,
        initial_delay: Duration::from_millis(10),
        max_delay: Duration::from_millis(20),
    });

    let err = ship
        .list_managed("prod")
        .await
        .err()
        .ok_or("listed over a dead link")?;
    assert!(err.is_transient(), "{err}");
    assert!(
        err.to_string()
            .starts_with("ship flaky: list containers of prod"),
        "{err}"
    );
    assert_eq!(accepted.swap(0, Ordering::SeqCst), 3);

    let err = ship
        .inspect("web-1")
        .await
        .err()
        .ok_or("inspected over a dead link")?;
    assert!(err.is_transient(), "{err}");
    assert_eq!(accepted.swap(0, Ordering::SeqCst), 3);

    let spec = ContainerSpec {
        name: "web-1".into(),
        image: "maestro-test:latest".into(),
        ..Default::default()
    };
    let err = ship
        .create(&spec)
        .await
        .err()
        .ok_or("created over a dead link")?;
    assert!(err.is_transient(), "{err}");
    assert_eq!(
        accepted.swap(0, Ordering::SeqCst),
        1,
        "create must not be retried"
    );

    let err = ship
        .kill("web-1", "SIGKILL")
        .await
        .err()
        .ok_or("killed over a dead link")?;
    assert!(err.is_transient(), "{err}");
    assert_eq!(
        accepted.swap(0, Ordering::SeqCst),
        1,
        "kill must not be retried"
    );
    Ok(())
}
