//! Images from this machine (`image_source: local` or `{archive: FILE}`), put on ships
//! through their own SSH sessions: `maestro push`, and the pulls of `start`, `restart` and
//! `pull` for those images.
//!
//! Decisions:
//! - Every image of the run is read and compressed before any ship is touched (see
//!   [`prepare`]): a missing image fails the command with nothing changed, naming the
//!   service and where it was looked for.
//! - Per ship and image, one remote forward of the ship's session (a port sshd picks on the
//!   ship's 127.0.0.1) for the length of the pull, cancelled when it ends, fails, or is
//!   dropped (Ctrl-C); the registry behind it refuses requests without the run's
//!   credentials. The ship's daemon decides which layers it lacks: only those cross.
//! - The ship's daemon must share its sshd's loopback: a daemon reached over TCP from here,
//!   or a local socket, cannot pull from it, and the ship is refused by name.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use crate::config::{Environment, ImageSource};
use crate::docker::push::{DigestCache, Images, LocalSource, PreparedImage, Registry, Served};
use crate::docker::{DockerError, ErrorKind, PullProgress};
use crate::orchestrate::engine::fleet::ShipHandle;

/// The images of a run that come from this machine, ready to serve.
#[derive(Debug)]
pub struct Pushes {
    registry: Registry,
    /// By image name as the file writes it.
    sources: HashMap<String, ImageSource>,
}

/// What one push to one ship did.
#[derive(Debug, Clone)]
pub struct PushReport {
    pub id: String,
    pub bytes_sent: u64,
    pub layers_total: usize,
    pub layers_skipped: usize,
}

/// Reads and compresses the images of `instances` whose source is this machine. `None` when
/// none is. An image missing from its source fails here, naming the service and the source.
pub async fn prepare(env: &Environment, instances: &[String]) -> Result<Option<Pushes>, String> {
    // Image -> (source, a service using it), in a stable order for messages.
    let mut wanted: BTreeMap<String, (ImageSource, String)> = BTreeMap::new();
    for name in instances {
        let Some((service, instance)) = env.instance(name) else {
            continue;
        };
        let source = env.image_source(instance);
        if source == ImageSource::Registry {
            continue;
        }
        // The ship gets the image under this name: a tag, which a digest is not.
        if instance.image.contains('@') {
            return Err(format!(
                "image {} of service {}: comes from this machine ({}), and is given to the ships \
                 under its name, which cannot be a digest: name it with a tag (`app:1.4`)",
                instance.image,
                service.name,
                describe(&source)
            ));
        }
        // Checked before anything is read: the image reaches a ship only through its session.
        if env.ship(&instance.ship).is_some_and(|s| s.ssh.is_none()) {
            return Err(format!(
                "ship {}: image {} of service {} comes from this machine ({}), which reaches a \
                 ship only through its SSH session, and ship {} is not reached over SSH: give \
                 it an `ssh:` block, or give the service `image_source: registry`",
                instance.ship,
                instance.image,
                service.name,
                describe(&source),
                instance.ship
            ));
        }
        if let Some((known, other)) = wanted.get(&instance.image)
            && *known != source
        {
            return Err(format!(
                "image {} comes from {} for service {other} and from {} for service {}: give \
                 both the same image_source",
                instance.image,
                describe(known),
                describe(&source),
                service.name
            ));
        }
        wanted.insert(instance.image.clone(), (source, service.name.clone()));
    }
    if wanted.is_empty() {
        return Ok(None);
    }
    let cache = crate::transport::default_cache_dir()
        .map(|dir| DigestCache::new(dir.join("layer-digests")));
    let mut images =
        Images::new(cache).map_err(|e| format!("temporary directory for images: {e}"))?;
    let mut daemon: Option<LocalSource> = None;
    for (image, (source, service)) in &wanted {
        let local = match source {
            ImageSource::Archive(path) => LocalSource::Archive(path.clone()),
            _ => match &daemon {
                Some(d) => d.clone(),
                None => {
                    let d = LocalSource::local_daemon()
                        .map_err(|e| format!("image {image} of service {service}: {e}"))?;
                    daemon = Some(d.clone());
                    d
                }
            },
        };
        images
            .prepare(image, Some(service), &local)
            .await
            .map_err(|e| e.to_string())?;
    }
    let registry =
        Registry::new(Arc::new(images)).map_err(|e| format!("credentials for the push: {e}"))?;
    Ok(Some(Pushes {
        registry,
        sources: wanted.into_iter().map(|(k, (s, _))| (k, s)).collect(),
    }))
}

fn describe(source: &ImageSource) -> String {
    match source {
        ImageSource::Registry => "a registry".into(),
        ImageSource::Local => "the local Docker daemon".into(),
        ImageSource::Archive(path) => format!("archive {}", path.display()),
    }
}

impl Pushes {
    /// The prepared image `name`, when it comes from this machine.
    pub fn image(&self, name: &str) -> Option<&PreparedImage> {
        self.sources
            .contains_key(name)
            .then(|| self.registry.images().image(name))
            .flatten()
    }

    /// Puts `image` on the ship: a forward of its session for the length of one pull by its
    /// daemon. `progress` is told the bytes sent so far.
    pub async fn push(
        &self,
        handle: &ShipHandle,
        image: &PreparedImage,
        mut progress: impl FnMut(u64),
    ) -> Result<PushReport, DockerError> {
        let ship = handle.docker.name().to_string();
        let failed = |message: String| {
            DockerError::new(
                &ship,
                format!("push {}", image.name),
                ErrorKind::Other,
                message,
            )
        };
        let mut forward = handle
            .connection
            .remote_forward()
            .await
            .map_err(|e| failed(e.to_string()))?;
        let port = forward.port();
        let served = Arc::new(Served::default());
        let mut connections = tokio::task::JoinSet::new();
        let pull = crate::docker::push::receive(
            &handle.docker,
            &self.registry,
            image,
            port,
            |_: PullProgress| progress(served.bytes()),
        );
        tokio::pin!(pull);
        let mut listening = true;
        let result = loop {
            tokio::select! {
                done = &mut pull => break done,
                stream = forward.accept(), if listening => match stream {
                    Some(stream) => {
                        let registry = self.registry.clone();
                        let served = served.clone();
                        connections.spawn(async move { registry.serve(stream, served).await });
                    }
                    None => listening = false,
                },
            }
        };
        forward.close().await;
        connections.abort_all();
        let id = result.map_err(|err| explain(err, &handle.connection.info().route))?;
        let skipped = image
            .layers
            .iter()
            .filter(|(digest, _)| !served.fetched(digest))
            .count();
        Ok(PushReport {
            id,
            bytes_sent: served.bytes(),
            layers_total: image.layers.len(),
            layers_skipped: skipped,
        })
    }
}

/// A daemon that cannot reach the forward (it does not run in the network namespace of the
/// ship's sshd) says "connection refused": say why.
fn explain(mut err: DockerError, route: &str) -> DockerError {
    if err.message.contains("127.0.0.1:") && err.message.contains("connection refused") {
        err.message = format!(
            "{}; its Docker daemon cannot reach the ship's 127.0.0.1, where its sshd listens for \
             the push (route {route}): the daemon must run on the host of that sshd, in the \
             same network namespace",
            err.message
        );
    }
    err
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(text: &str) -> Environment {
        crate::config::load_str(text, "t.yaml", std::path::Path::new(".")).expect("valid")
    }

    #[tokio::test]
    async fn what_cannot_be_pushed_is_refused_before_anything_is_read() {
        let ships = "ships:\n  a: {ip: 10.0.0.1, ssh: {user: root}}\n  \
                     t: {ip: 10.0.0.2, docker_port: 2375}\n";
        let digest = env(&format!(
            "name: x\n{ships}services:\n  web:\n    image: app@sha256:{}\n    \
             image_source: local\n    instances: {{w: {{ship: a}}}}\n",
            "0".repeat(64)
        ));
        let err = prepare(&digest, &["w".into()]).await.expect_err("refused");
        assert!(
            err.contains("image app@sha256:") && err.contains("name it with a tag"),
            "{err}"
        );
        let tcp = env(&format!(
            "name: x\n{ships}services:\n  web:\n    image: app:1\n    \
             image_source: {{archive: /nonexistent.tar}}\n    instances: {{w: {{ship: t}}}}\n"
        ));
        let err = prepare(&tcp, &["w".into()]).await.expect_err("refused");
        assert!(
            err.starts_with(
                "ship t: image app:1 of service web comes from this machine \
                             (archive /nonexistent.tar)"
            ) && err.contains("give it an `ssh:` block"),
            "{err}"
        );
        let mixed = env(&format!(
            "name: x\n{ships}services:\n  web:\n    image: app:1\n    image_source: local\n    \
             instances: {{w: {{ship: a}}}}\n  api:\n    image: app:1\n    \
             image_source: {{archive: /a.tar}}\n    instances: {{p: {{ship: a}}}}\n"
        ));
        let err = prepare(&mixed, &["w".into(), "p".into()])
            .await
            .expect_err("refused");
        assert!(err.contains("give both the same image_source"), "{err}");
        // Nothing from this machine: nothing read.
        let registry = env(&format!(
            "name: x\n{ships}services:\n  web:\n    image: app:1\n    instances: {{w: {{ship: t}}}}\n"
        ));
        assert!(
            prepare(&registry, &["w".into()])
                .await
                .expect("ok")
                .is_none()
        );
    }
}
