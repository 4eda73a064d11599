//! The deploy lock as an object of the ship's own Docker daemon: a container that is created
//! and never started, whose name is the lock and whose label is its holder's record.
//!
//! Decisions (the why is in docs/security.md, "The deploy lock"):
//! - A container name is unique in a daemon: of any number of concurrent creates of one name,
//!   the daemon admits one and answers 409 to the others. Taking the lock is that one create,
//!   one round trip on the connection the command has open anyway, over whatever route
//!   reaches the daemon (SSH to the socket or a port, TCP, TLS, a local socket). No shell and
//!   no path on the host are involved, and only who may use the daemon can see or touch it.
//! - The container is made from [`LOCK_IMAGE`], an image of one empty layer that is imported
//!   (not pulled: ships may have no registry) the first time a ship lacks it.
//! - A lock is removed by its container id, never by its name: a release or a `--force`
//!   removes the very lock it took or read, even if the name has changed hands since.

use std::collections::HashMap;

use bollard::models::{ContainerCreateBody, HostConfig};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, CreateImageOptionsBuilder, RemoveContainerOptionsBuilder,
};
use bytes::Bytes;
use futures_util::StreamExt;

use super::error::DockerError;
use super::ship::Ship;

/// The image lock containers are made from: one empty layer, never run.
pub const LOCK_IMAGE: &str = "maestro-lock:1";
const LOCK_IMAGE_REPO: &str = "maestro-lock";
const LOCK_IMAGE_TAG: &str = "1";
/// The label that holds the holder's record.
pub const LOCK_LABEL: &str = "io.maestro.lock";
/// An empty tar archive: its end, two zero blocks.
const EMPTY_TAR: [u8; 1024] = [0; 1024];

/// What one attempt to create the lock gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LockClaim {
    /// Created: the lock is ours, this container id.
    Taken { id: String },
    /// The name is in use: someone holds it (read it with [`Ship::read_lock`]).
    Held,
}

/// A lock as the daemon has it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LockObject {
    pub id: String,
    /// The holder's record, as written (untrusted text); `None` when the label is missing.
    pub record: Option<String>,
}

impl Ship {
    /// Creates the lock container `name` carrying `record`, importing [`LOCK_IMAGE`] first
    /// if the ship lacks it. Never retried: a create whose answer was lost shows up as
    /// [`LockClaim::Held`] with the caller's own record, which the caller recognises.
    pub async fn claim_lock(&self, name: &str, record: &str) -> Result<LockClaim, DockerError> {
        match self.create_lock(name, record).await {
            Err(err) if err.is_not_found() => {
                self.import_lock_image().await?;
                self.create_lock(name, record).await
            }
            other => other,
        }
    }

    async fn create_lock(&self, name: &str, record: &str) -> Result<LockClaim, DockerError> {
        let options = CreateContainerOptionsBuilder::new().name(name).build();
        let body = ContainerCreateBody {
            image: Some(LOCK_IMAGE.to_string()),
            // Never run; the daemon still wants a command to accept the container.
            cmd: Some(vec!["maestro-lock".to_string()]),
            labels: Some(HashMap::from([(
                LOCK_LABEL.to_string(),
                record.to_string(),
            )])),
            network_disabled: Some(true),
            host_config: Some(HostConfig {
                network_mode: Some("none".to_string()),
                ..Default::default()
            }),
            ..Default::default()
        };
        match self.docker.create_container(Some(options), body).await {
            Ok(created) => Ok(LockClaim::Taken { id: created.id }),
            Err(err) => {
                let err = self.err(format!("create the lock {name}"), err);
                if err.is_conflict() {
                    Ok(LockClaim::Held)
                } else {
                    Err(err)
                }
            }
        }
    }

    /// Imports [`LOCK_IMAGE`] from an empty archive: no registry is involved.
    async fn import_lock_image(&self) -> Result<(), DockerError> {
        let options = CreateImageOptionsBuilder::new()
            .from_src("-")
            .repo(LOCK_IMAGE_REPO)
            .tag(LOCK_IMAGE_TAG)
            .build();
        let body = bollard::body_full(Bytes::from_static(&EMPTY_TAR));
        let mut progress = self.docker.create_image(Some(options), Some(body), None);
        while let Some(step) = progress.next().await {
            step.map_err(|e| self.err(format!("import {LOCK_IMAGE}"), e))?;
        }
        Ok(())
    }

    /// The lock container `name`, `None` when nobody holds it.
    pub async fn read_lock(&self, name: &str) -> Result<Option<LockObject>, DockerError> {
        Ok(self.inspect(name).await?.map(|details| LockObject {
            record: details.labels.get(LOCK_LABEL).cloned(),
            id: details.id,
        }))
    }

    /// Removes the lock container `id` (by id: the one taken or read, whatever holds the
    /// name now). `false` when it was gone already.
    pub async fn remove_lock(&self, id: &str) -> Result<bool, DockerError> {
        let options = RemoveContainerOptionsBuilder::new().force(true).build();
        match self.docker.remove_container(id, Some(options)).await {
            Ok(()) => Ok(true),
            Err(err) => {
                let err = self.err(format!("remove the lock {}", short(id)), err);
                if err.is_not_found() {
                    Ok(false)
                } else {
                    Err(err)
                }
            }
        }
    }
}

fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
