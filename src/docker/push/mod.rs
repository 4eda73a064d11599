//! Images that travel from this machine to a ship without a registry in between: the ship's
//! daemon pulls them from a registry that maestro serves (see [`registry`]) over a channel
//! the transport provides, from blobs prepared once per run (see [`source`]).

mod registry;
mod source;

pub use registry::{Registry, Served};
pub use source::{Blob, DigestCache, Images, LocalSource, PreparedImage, SourceError};

use crate::docker::{DockerError, ErrorKind, PullProgress, PullRetry, Ship};

/// The repository the ship's daemon pulls from on the forwarded registry; the name the file
/// gives the image is set after (see [`receive`]).
pub const PULLED_AS: &str = "maestro/push";

/// Has `ship` pull `image` from the registry forwarded to its `127.0.0.1:port`, then gives it
/// the file's name and drops the registry's reference (also those a cut run left). A
/// transfer cut before the end leaves layers the next run reuses, and nothing under the
/// file's name. Returns the image id, the source's.
pub async fn receive(
    ship: &Ship,
    registry: &Registry,
    image: &PreparedImage,
    port: u16,
    progress: impl FnMut(PullProgress),
) -> Result<String, DockerError> {
    let reference = format!("127.0.0.1:{port}/{PULLED_AS}@{}", image.manifest_digest);
    let once = PullRetry {
        attempts: 1,
        ..PullRetry::default()
    };
    let id = ship
        .pull(
            &reference,
            Some(registry.credentials(port)),
            &once,
            progress,
        )
        .await?;
    if id != image.id {
        return Err(DockerError::new(
            ship.name(),
            format!("push {}", image.name),
            ErrorKind::Other,
            format!(
                "the ship made image {id} of it, not {} as here; is its Docker older than 1.10?",
                image.id
            ),
        ));
    }
    ship.tag(&id, &image.name).await?;
    for stale in ship.repo_digests(&id).await? {
        if stale.starts_with("127.0.0.1:") && stale.contains(&format!("/{PULLED_AS}@")) {
            ship.untag(&stale).await?;
        }
    }
    Ok(id)
}
