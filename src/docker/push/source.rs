//! Images taken from this machine: the local Docker daemon's export (`GET /images/NAME/get`)
//! or a `docker save` archive (the Docker layout's `manifest.json`, or the OCI layout's
//! `index.json`), turned into the blobs a registry serves.
//!
//! Decisions:
//! - Each source is read once per run, unpacked into a private temporary directory (mode
//!   0700, removed when the [`Images`] is dropped), and each layer is compressed at most once:
//!   every ship of the run is served the same bytes.
//! - A layer's compressed digest and size are remembered by its diff id ([`DigestCache`]):
//!   the manifest needs them before any ship says what it lacks, and without them every run
//!   would compress every layer, also those all ships have (most of a second push's time).
//!   A remembered layer is compressed only when a ship asks for it, and must come out the
//!   same.
//! - Layers are gzip-compressed at level 1: the run compresses every layer of the image,
//!   also those that every ship already has, so speed counts more than the last percent of
//!   size. flate2's gzip is deterministic (no time in its header), so the same layer gets
//!   the same digest in every run and a ship's daemon recognises a layer it pulled before.
//! - The manifest is schema 2 with the source's own config blob, byte for byte: the image id
//!   on the ship (the config's digest) is the source's.
//! - An uncompressed layer's digest is checked against the config's `rootfs.diff_ids` while
//!   it is compressed: a damaged archive fails here, naming it, not on every ship.

use std::collections::HashMap;
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use bollard::Docker;
use futures_util::StreamExt;
use sha2::{Digest, Sha256};

/// Where an image comes from, on this machine.
#[derive(Debug, Clone)]
pub enum LocalSource {
    /// The local daemon: `docker` is its API, `described` says which one (for messages).
    Daemon { docker: Docker, described: String },
    /// An archive made by `docker save`.
    Archive(PathBuf),
}

impl LocalSource {
    /// The local daemon: the one `DOCKER_HOST` names (unix or tcp), else the default socket.
    pub fn local_daemon() -> Result<LocalSource, String> {
        let described = std::env::var("DOCKER_HOST")
            .ok()
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "unix:///var/run/docker.sock".to_string());
        let docker = Docker::connect_with_defaults()
            .map_err(|e| format!("the local Docker daemon ({described}): {e}"))?;
        Ok(LocalSource::Daemon { docker, described })
    }

    /// How messages name it: `the local Docker daemon (unix:///var/run/docker.sock)` or
    /// `archive ./app.tar`.
    pub fn describe(&self) -> String {
        match self {
            LocalSource::Daemon { described, .. } => {
                format!("the local Docker daemon ({described})")
            }
            LocalSource::Archive(path) => format!("archive {}", path.display()),
        }
    }
}

/// Why an image could not be taken from this machine.
#[derive(Debug, thiserror::Error)]
#[error("image {image}{}: {message}", service.as_deref().map(|s| format!(" of service {s}")).unwrap_or_default())]
pub struct SourceError {
    pub image: String,
    pub service: Option<String>,
    pub message: String,
}

/// One blob to serve: a file of the temporary directory, written when first asked for if
/// it is a layer compressed in an earlier run (see [`Blob::ready`]).
#[derive(Debug, Clone)]
pub struct Blob {
    pub path: PathBuf,
    pub size: u64,
    pending: Option<Arc<Pending>>,
}

/// A layer whose compressed digest and size are known from an earlier run (see
/// [`DigestCache`]), compressed only when a ship asks for it.
#[derive(Debug)]
struct Pending {
    layer: PathBuf,
    digest: String,
    blobs_dir: PathBuf,
    remembered: PathBuf,
    done: tokio::sync::OnceCell<Result<(), String>>,
}

impl Blob {
    fn at(path: PathBuf, size: u64) -> Blob {
        Blob {
            path,
            size,
            pending: None,
        }
    }

    /// Makes sure the file is there: a layer compressed in an earlier run is compressed now,
    /// once for every ship of the run, and must come out as it did then (flate2's gzip is
    /// deterministic); if not, the remembered digest is forgotten and the push fails, and
    /// the next run compresses it before anything is served.
    pub async fn ready(&self) -> Result<(), String> {
        let Some(pending) = &self.pending else {
            return Ok(());
        };
        pending
            .done
            .get_or_init(|| async {
                let work = pending.clone();
                tokio::task::spawn_blocking(move || {
                    let unique = STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    let (digest, _, _) = compress(&work.layer, &work.blobs_dir, unique)?;
                    if digest != work.digest {
                        let _ = std::fs::remove_file(&work.remembered);
                        return Err(format!(
                            "a layer compressed to {digest}, not to {} as in an earlier run \
                             (maestro or its compression changed?): forgotten, run again",
                            work.digest
                        ));
                    }
                    Ok(())
                })
                .await
                .unwrap_or_else(|e| Err(format!("compression stopped: {e}")))
            })
            .await
            .clone()
    }
}

/// What earlier runs learnt: the gzip digest and size of an uncompressed layer (by its
/// diff id), so that a layer every ship already has is never compressed again. One small
/// file per layer under the cache directory; no layer data is kept.
#[derive(Debug, Clone)]
pub struct DigestCache {
    dir: PathBuf,
}

/// The compression a remembered digest is the result of: a change forgets every entry.
const CACHE_FORMAT: &str = "maestro-layer-digest 1 gzip flate2-fast";

impl DigestCache {
    pub fn new(dir: PathBuf) -> DigestCache {
        DigestCache { dir }
    }

    fn entry(&self, diff_id: &str) -> Option<PathBuf> {
        let hex = diff_id.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit())).then(|| self.dir.join(hex))
    }

    fn get(&self, diff_id: &str) -> Option<(String, u64)> {
        let text = std::fs::read_to_string(self.entry(diff_id)?).ok()?;
        let mut lines = text.lines();
        if lines.next()? != CACHE_FORMAT {
            return None;
        }
        let (digest, size) = lines.next()?.split_once(' ')?;
        let hex = digest.strip_prefix("sha256:")?;
        (hex.len() == 64 && hex.chars().all(|c| c.is_ascii_hexdigit()))
            .then(|| Some((digest.to_string(), size.parse().ok()?)))
            .flatten()
    }

    /// Written to a temporary file and renamed: a reader never sees half an entry.
    fn put(&self, diff_id: &str, digest: &str, size: u64) {
        let Some(path) = self.entry(diff_id) else {
            return;
        };
        let staging = path.with_extension(format!(
            "tmp{}",
            STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let written = std::fs::create_dir_all(&self.dir)
            .and_then(|()| std::fs::write(&staging, format!("{CACHE_FORMAT}\n{digest} {size}\n")))
            .and_then(|()| std::fs::rename(&staging, &path));
        if let Err(err) = written {
            tracing::debug!("layer digest cache {}: {err}", self.dir.display());
            let _ = std::fs::remove_file(&staging);
        }
    }
}

/// One image ready to serve.
#[derive(Debug, Clone)]
pub struct PreparedImage {
    /// The name the environment file gives it.
    pub name: String,
    /// `sha256:...` of the config: the image id, here and on the ship.
    pub id: String,
    /// `sha256:...` of [`PreparedImage::manifest`].
    pub manifest_digest: String,
    pub manifest: Arc<Vec<u8>>,
    /// The compressed layers' digests, base first, and their sizes.
    pub layers: Vec<(String, u64)>,
}

impl PreparedImage {
    /// Bytes of all its layers, compressed.
    pub fn layer_bytes(&self) -> u64 {
        self.layers.iter().map(|(_, size)| size).sum()
    }
}

/// The images of a run and their blobs, in a private temporary directory that goes with it.
#[derive(Debug)]
pub struct Images {
    dir: tempfile::TempDir,
    cache: Option<DigestCache>,
    images: HashMap<String, PreparedImage>,
    blobs: HashMap<String, Blob>,
    counter: usize,
}

pub const MANIFEST_V2: &str = "application/vnd.docker.distribution.manifest.v2+json";
const CONFIG_V1: &str = "application/vnd.docker.container.image.v1+json";
const LAYER_GZIP: &str = "application/vnd.docker.image.rootfs.diff.tar.gzip";

impl Images {
    /// `cache`: where the compressed digests of layers are remembered between runs (none:
    /// every layer is compressed in every run).
    pub fn new(cache: Option<DigestCache>) -> std::io::Result<Images> {
        // tempfile makes the directory 0700: only this user reads the layers.
        let dir = tempfile::Builder::new().prefix("maestro-push-").tempdir()?;
        Ok(Images {
            dir,
            cache,
            images: HashMap::new(),
            blobs: HashMap::new(),
            counter: 0,
        })
    }

    pub fn image(&self, name: &str) -> Option<&PreparedImage> {
        self.images.get(name)
    }

    pub fn blob(&self, digest: &str) -> Option<&Blob> {
        self.blobs.get(digest)
    }

    /// The manifest with this digest, among the prepared images.
    pub fn manifest(&self, digest: &str) -> Option<Arc<Vec<u8>>> {
        self.images
            .values()
            .find(|i| i.manifest_digest == digest)
            .map(|i| i.manifest.clone())
    }

    /// Reads `name` from `source` (once: a second call for the same name returns the first
    /// result) and prepares its blobs.
    pub async fn prepare(
        &mut self,
        name: &str,
        service: Option<&str>,
        source: &LocalSource,
    ) -> Result<PreparedImage, SourceError> {
        if let Some(done) = self.images.get(name) {
            return Ok(done.clone());
        }
        let fail = |message: String| SourceError {
            image: name.to_string(),
            service: service.map(str::to_string),
            message,
        };
        self.counter += 1;
        let work = self.dir.path().join(format!("image{}", self.counter));
        std::fs::create_dir(&work).map_err(|e| fail(format!("temporary directory: {e}")))?;
        let archive = match source {
            LocalSource::Archive(path) => path.clone(),
            LocalSource::Daemon { docker, described } => {
                let exported = work.join("export.tar");
                export(docker, name, &exported).await.map_err(|message| {
                    fail(format!(
                        "{message} (asked the local Docker daemon, {described})"
                    ))
                })?;
                exported
            }
        };
        let blobs_dir = self.dir.path().join("blobs");
        let wanted = name.to_string();
        let raw = work.join("raw");
        let described = source.describe();
        let cache = self.cache.clone();
        let prepared = tokio::task::spawn_blocking(move || {
            unpack(&archive, &raw)?;
            let found = read_layout(&raw, &wanted)?;
            build(&wanted, cache.as_ref(), &blobs_dir, found)
        })
        .await
        .map_err(|e| fail(format!("preparing it stopped: {e}")))?
        .map_err(|message| fail(format!("{message} (in {described})")))?;
        // The export is no longer needed; the unpacked layers are, for those compressed only
        // if a ship asks (they go with the temporary directory).
        let _ = std::fs::remove_file(work.join("export.tar"));
        let (image, blobs) = prepared;
        self.blobs.extend(blobs);
        self.images.insert(name.to_string(), image.clone());
        Ok(image)
    }
}

/// The local daemon's export of `name` into `to`; a missing image says so.
async fn export(docker: &Docker, name: &str, to: &Path) -> Result<(), String> {
    match docker.inspect_image(name).await {
        Ok(_) => {}
        Err(bollard::errors::Error::DockerResponseServerError {
            status_code: 404, ..
        }) => return Err("not found on this machine".to_string()),
        Err(err) => return Err(format!("cannot inspect it: {err}")),
    }
    let mut file = tokio::fs::File::create(to)
        .await
        .map_err(|e| format!("temporary file: {e}"))?;
    let mut stream = docker.export_image(name);
    while let Some(chunk) = stream.next().await {
        let chunk = chunk.map_err(|e| format!("export failed: {e}"))?;
        tokio::io::AsyncWriteExt::write_all(&mut file, &chunk)
            .await
            .map_err(|e| format!("temporary file: {e}"))?;
    }
    tokio::io::AsyncWriteExt::flush(&mut file)
        .await
        .map_err(|e| format!("temporary file: {e}"))?;
    Ok(())
}

fn unpack(archive: &Path, into: &Path) -> Result<(), String> {
    let file = std::fs::File::open(archive).map_err(|e| format!("cannot open it: {e}"))?;
    std::fs::create_dir_all(into).map_err(|e| format!("temporary directory: {e}"))?;
    let mut tar = tar::Archive::new(std::io::BufReader::new(file));
    // `unpack` keeps every entry inside `into` (no `..`, no absolute paths).
    tar.unpack(into)
        .map_err(|e| format!("not a readable image archive (made by `docker save`?): {e}"))
}

/// What the layout says of the wanted image: its config blob and its layers, as files.
struct Found {
    config: PathBuf,
    layers: Vec<PathBuf>,
}

fn read_json(path: &Path) -> Result<serde_json::Value, String> {
    let text = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    serde_json::from_slice(&text).map_err(|e| format!("{} is not JSON: {e}", path.display()))
}

/// `app` is `app:latest`, as Docker names it in `RepoTags`.
fn with_tag(name: &str) -> String {
    let last = name.rsplit('/').next().unwrap_or(name);
    if last.contains(':') || name.contains('@') {
        name.to_string()
    } else {
        format!("{name}:latest")
    }
}

/// A path the layout names, kept inside the unpacked directory.
fn inside(root: &Path, relative: &str) -> Result<PathBuf, String> {
    let path = root.join(relative);
    let real = path
        .canonicalize()
        .map_err(|e| format!("it names {relative}, which it does not hold: {e}"))?;
    let root = root.canonicalize().map_err(|e| e.to_string())?;
    if !real.starts_with(&root) {
        return Err(format!("it names {relative}, outside the archive"));
    }
    Ok(real)
}

fn read_layout(root: &Path, wanted: &str) -> Result<Found, String> {
    let tagged = with_tag(wanted);
    let docker_manifest = root.join("manifest.json");
    if docker_manifest.exists() {
        return read_docker_layout(root, &docker_manifest, wanted, &tagged);
    }
    let index_path = root.join("index.json");
    if !index_path.exists() {
        return Err(
            "neither manifest.json (Docker layout) nor index.json (OCI layout) is in it: \
             make it with `docker save IMAGE -o FILE`"
                .into(),
        );
    }
    let chosen = oci_chosen_manifest(&index_path, wanted, &tagged)?;
    read_oci_image(root, chosen)
}

/// `docker save`'s layout: manifest.json lists the images by tag, with their config and
/// layers as paths.
fn read_docker_layout(
    root: &Path,
    docker_manifest: &Path,
    wanted: &str,
    tagged: &str,
) -> Result<Found, String> {
    let entries = read_json(docker_manifest)?;
    let entries = entries
        .as_array()
        .ok_or("manifest.json is not a list of images")?;
    let names_of = |e: &serde_json::Value| -> Vec<String> {
        e.get("RepoTags")
            .and_then(|t| t.as_array())
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default()
    };
    let entry = entries
        .iter()
        .find(|e| names_of(e).iter().any(|n| *n == tagged || n == wanted))
        .or(match entries.as_slice() {
            // A daemon's export of one image by id has no tags.
            [only] if names_of(only).is_empty() => Some(only),
            _ => None,
        })
        .ok_or_else(|| {
            let held: Vec<String> = entries.iter().flat_map(names_of).collect();
            format!(
                "not found in it (it holds {})",
                if held.is_empty() {
                    "no tagged image".to_string()
                } else {
                    held.join(", ")
                }
            )
        })?;
    let config = entry
        .get("Config")
        .and_then(|c| c.as_str())
        .ok_or("manifest.json has no Config for it")?;
    let layers = entry
        .get("Layers")
        .and_then(|l| l.as_array())
        .ok_or("manifest.json has no Layers for it")?
        .iter()
        .map(|l| {
            l.as_str()
                .ok_or_else(|| "manifest.json: a layer is not a path".to_string())
                .and_then(|l| inside(root, l))
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Found {
        config: inside(root, config)?,
        layers,
    })
}

/// The OCI layout's index entry for `wanted`, by the names its annotations give.
fn oci_chosen_manifest(
    index_path: &Path,
    wanted: &str,
    tagged: &str,
) -> Result<serde_json::Value, String> {
    let index = read_json(index_path)?;
    let manifests = index
        .get("manifests")
        .and_then(|m| m.as_array())
        .ok_or("index.json has no manifests")?;
    let name_of = |m: &serde_json::Value| -> Vec<String> {
        let annotations = m.get("annotations");
        [
            "io.containerd.image.name",
            "org.opencontainers.image.ref.name",
        ]
        .iter()
        .filter_map(|k| annotations?.get(*k)?.as_str().map(str::to_string))
        .collect()
    };
    let chosen = manifests
        .iter()
        .find(|m| {
            name_of(m).iter().any(|n| {
                *n == tagged
                    || n == wanted
                    || format!("docker.io/library/{tagged}") == *n
                    || format!("docker.io/{tagged}") == *n
            })
        })
        .or(match manifests.as_slice() {
            // An archive of one image that names none is that image.
            [only] if name_of(only).is_empty() => Some(only),
            _ => None,
        })
        .ok_or_else(|| {
            let held: Vec<String> = manifests.iter().flat_map(name_of).collect();
            format!("not found in it (it holds {})", held.join(", "))
        })?;
    Ok(chosen.clone())
}

/// A blob of the OCI layout, by its digest.
fn oci_blob(root: &Path, digest: &str) -> Result<PathBuf, String> {
    let hex = digest
        .strip_prefix("sha256:")
        .filter(|h| h.len() == 64 && h.chars().all(|c| c.is_ascii_hexdigit()))
        .ok_or_else(|| format!("digest `{digest}` is not sha256"))?;
    inside(root, &format!("blobs/sha256/{hex}"))
}

/// The config and layers of the image `chosen` leads to, through nested indexes.
fn read_oci_image(root: &Path, chosen: serde_json::Value) -> Result<Found, String> {
    let blob = |digest: &str| oci_blob(root, digest);
    let mut descriptor = chosen;
    // An index (several platforms) leads to one image manifest: this machine's platform if
    // listed, else the first.
    for _ in 0..4 {
        let digest = descriptor
            .get("digest")
            .and_then(|d| d.as_str())
            .ok_or("index.json: a manifest without digest")?;
        let document = read_json(&blob(digest)?)?;
        if let Some(list) = document.get("manifests").and_then(|m| m.as_array()) {
            let arch = match std::env::consts::ARCH {
                "x86_64" => "amd64",
                "aarch64" => "arm64",
                other => other,
            };
            descriptor = list
                .iter()
                .find(|m| {
                    m.get("platform")
                        .and_then(|p| p.get("architecture"))
                        .and_then(|a| a.as_str())
                        == Some(arch)
                })
                .or(list.first())
                .ok_or("an image index without manifests")?
                .clone();
            continue;
        }
        let config = document
            .get("config")
            .and_then(|c| c.get("digest"))
            .and_then(|d| d.as_str())
            .ok_or("an image manifest without config")?;
        let layers = document
            .get("layers")
            .and_then(|l| l.as_array())
            .ok_or("an image manifest without layers")?
            .iter()
            .map(|l| {
                l.get("digest")
                    .and_then(|d| d.as_str())
                    .ok_or_else(|| "a layer without digest".to_string())
                    .and_then(blob)
            })
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(Found {
            config: blob(config)?,
            layers,
        });
    }
    Err("index.json: image indexes nested too deep".into())
}

fn sha256_hex(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Copies `from` into `to`, hashing what was read and what was written.
struct Hashing<W: Write> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.hash.update(&buf[..n]);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}

/// A compressed layer: its digest, its size, and the digest of the uncompressed tar when it
/// was read (not for a layer that came compressed).
type Compressed = (String, u64, Option<String>);

/// One layer into the blob directory: gzip-compressed, or as it is when it already is.
/// Returns (compressed digest, size, digest of the uncompressed tar when it was read).
fn compress(
    layer: &Path,
    blobs_dir: &Path,
    n: usize,
) -> Result<(String, u64, Option<String>), String> {
    let mut input = std::fs::File::open(layer)
        .map_err(|e| format!("cannot read layer {}: {e}", layer.display()))?;
    let mut magic = [0u8; 2];
    let is_gzip = input.read(&mut magic).ok() == Some(2) && magic == [0x1f, 0x8b];
    let input = std::fs::File::open(layer)
        .map_err(|e| format!("cannot read layer {}: {e}", layer.display()))?;
    let staging = blobs_dir.join(format!("incoming-{n}"));
    let out = std::fs::File::create(&staging).map_err(|e| format!("temporary file: {e}"))?;
    let mut hashed_out = Hashing {
        inner: std::io::BufWriter::new(out),
        hash: Sha256::new(),
        size: 0,
    };
    let mut reader = std::io::BufReader::with_capacity(1 << 20, input);
    let diff_id = if is_gzip {
        std::io::copy(&mut reader, &mut hashed_out).map_err(|e| format!("layer copy: {e}"))?;
        None
    } else {
        let mut tar_hash = Sha256::new();
        let mut encoder =
            flate2::GzBuilder::new().write(&mut hashed_out, flate2::Compression::fast());
        let mut buf = vec![0u8; 1 << 20];
        loop {
            let n = reader
                .read(&mut buf)
                .map_err(|e| format!("cannot read layer {}: {e}", layer.display()))?;
            if n == 0 {
                break;
            }
            tar_hash.update(&buf[..n]);
            encoder
                .write_all(&buf[..n])
                .map_err(|e| format!("compressing a layer: {e}"))?;
        }
        encoder
            .finish()
            .map_err(|e| format!("compressing a layer: {e}"))?;
        Some(format!("sha256:{}", hex::encode(tar_hash.finalize())))
    };
    hashed_out
        .flush()
        .map_err(|e| format!("temporary file: {e}"))?;
    let digest = format!("sha256:{}", hex::encode(hashed_out.hash.clone().finalize()));
    let size = hashed_out.size;
    drop(hashed_out);
    let final_path = blobs_dir.join(digest.trim_start_matches("sha256:"));
    std::fs::rename(&staging, &final_path).map_err(|e| format!("temporary file: {e}"))?;
    Ok((digest, size, diff_id))
}

/// Names the files being written before they are named by their digest.
static STAGING: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);

type Built = (PreparedImage, Vec<(String, Blob)>);

/// The layers' digests uncompressed, as the image's config lists them: one per layer of the
/// archive, or the archive is not this image's.
fn layer_diff_ids(config: &[u8], layers: usize) -> Result<Vec<String>, String> {
    let parsed: serde_json::Value =
        serde_json::from_slice(config).map_err(|e| format!("its config is not JSON: {e}"))?;
    let diff_ids: Vec<String> = parsed
        .get("rootfs")
        .and_then(|r| r.get("diff_ids"))
        .and_then(|d| d.as_array())
        .map(|d| {
            d.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    if diff_ids.len() != layers {
        return Err(format!(
            "its config lists {} layers and the archive {}",
            diff_ids.len(),
            layers
        ));
    }
    Ok(diff_ids)
}

/// The compressed digest and size an earlier run found for a layer, unless the archive
/// holds it compressed already (then it is sent as it is).
fn remembered_layer(cache: &DigestCache, layer: &Path, diff_id: &str) -> Option<(String, u64)> {
    let mut magic = [0u8; 2];
    let mut file = std::fs::File::open(layer).ok()?;
    let gzip = file.read(&mut magic).ok() == Some(2) && magic == [0x1f, 0x8b];
    if gzip { None } else { cache.get(diff_id) }
}

/// Every layer not `remembered` compressed into `blobs_dir`, each on a thread of its own:
/// compression is the run's CPU-bound step.
fn compress_layers(
    layers: &[PathBuf],
    remembered: &[Option<(String, u64)>],
    blobs_dir: &Path,
) -> Vec<Result<Compressed, String>> {
    std::thread::scope(|scope| {
        let handles: Vec<_> = layers
            .iter()
            .zip(remembered)
            .map(|(layer, known)| {
                let unique = STAGING.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                scope.spawn(move || match known {
                    Some((digest, size)) => Ok((digest.clone(), *size, None)),
                    None => compress(layer, blobs_dir, unique),
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err("compression failed".into()))
            })
            .collect()
    })
}

fn build(
    name: &str,
    cache: Option<&DigestCache>,
    blobs_dir: &Path,
    found: Found,
) -> Result<Built, String> {
    std::fs::create_dir_all(blobs_dir).map_err(|e| format!("temporary directory: {e}"))?;
    let config =
        std::fs::read(&found.config).map_err(|e| format!("cannot read its config: {e}"))?;
    let id = sha256_hex(&config);
    let diff_ids = layer_diff_ids(&config, found.layers.len())?;
    // A layer compressed in an earlier run (and not compressed in the archive) waits until
    // a ship asks for it.
    let remembered: Vec<Option<(String, u64)>> = found
        .layers
        .iter()
        .zip(&diff_ids)
        .map(|(layer, diff_id)| remembered_layer(cache?, layer, diff_id))
        .collect();
    let results = compress_layers(&found.layers, &remembered, blobs_dir);
    let mut layers = Vec::new();
    let mut blobs = Vec::new();
    for (n, result) in results.into_iter().enumerate() {
        let (digest, size, diff_id) = result?;
        if let (Some(read), Some(expected)) = (&diff_id, diff_ids.get(n)) {
            if read != expected {
                return Err(format!(
                    "layer {} is damaged: its content is {read}, its config says {expected}",
                    n + 1
                ));
            }
            if let Some(cache) = cache {
                cache.put(expected, &digest, size);
            }
        }
        let path = blobs_dir.join(digest.trim_start_matches("sha256:"));
        let pending = match (cache, &remembered[n], found.layers.get(n), diff_ids.get(n)) {
            (Some(cache), Some(_), Some(layer), Some(diff_id)) => Some(Arc::new(Pending {
                layer: layer.clone(),
                digest: digest.clone(),
                blobs_dir: blobs_dir.to_path_buf(),
                remembered: cache.entry(diff_id).unwrap_or_default(),
                done: tokio::sync::OnceCell::new(),
            })),
            _ => None,
        };
        blobs.push((
            digest.clone(),
            Blob {
                path,
                size,
                pending,
            },
        ));
        layers.push((digest, size));
    }
    let config_path = blobs_dir.join(id.trim_start_matches("sha256:"));
    std::fs::write(&config_path, &config).map_err(|e| format!("temporary file: {e}"))?;
    blobs.push((id.clone(), Blob::at(config_path, config.len() as u64)));
    let manifest = serde_json::json!({
        "schemaVersion": 2,
        "mediaType": MANIFEST_V2,
        "config": {"mediaType": CONFIG_V1, "size": config.len(), "digest": id},
        "layers": layers.iter().map(|(digest, size)| serde_json::json!({
            "mediaType": LAYER_GZIP, "size": size, "digest": digest,
        })).collect::<Vec<_>>(),
    });
    let manifest = serde_json::to_vec(&manifest).map_err(|e| e.to_string())?;
    Ok((
        PreparedImage {
            name: name.to_string(),
            id,
            manifest_digest: sha256_hex(&manifest),
            manifest: Arc::new(manifest),
            layers,
        },
        blobs,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_get_latest_as_docker_save_writes_them() {
        assert_eq!(with_tag("app"), "app:latest");
        assert_eq!(with_tag("reg:5000/app"), "reg:5000/app:latest");
        assert_eq!(with_tag("app:1"), "app:1");
    }

    /// An OCI layout (as `docker save` of Docker 25+ or containerd writes): index.json, the
    /// manifest, the config and one uncompressed layer under blobs/sha256, in a tar.
    fn oci_archive(dir: &Path, damaged: bool) -> PathBuf {
        let mut layer = tar::Builder::new(Vec::new());
        let mut header = tar::Header::new_gnu();
        header.set_size(5);
        header.set_mode(0o644);
        header.set_cksum();
        layer
            .append_data(&mut header, "hello.txt", &b"hello"[..])
            .expect("layer");
        let layer = layer.into_inner().expect("layer");
        let diff_id = if damaged {
            sha256_hex(b"something else")
        } else {
            sha256_hex(&layer)
        };
        let config = serde_json::to_vec(&serde_json::json!({
            "architecture": "amd64", "os": "linux", "config": {},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }))
        .expect("json");
        let manifest = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "mediaType": "application/vnd.oci.image.manifest.v1+json",
            "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                       "digest": sha256_hex(&config), "size": config.len()},
            "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar",
                        "digest": sha256_hex(&layer), "size": layer.len()}],
        }))
        .expect("json");
        let index = serde_json::to_vec(&serde_json::json!({
            "schemaVersion": 2,
            "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                           "digest": sha256_hex(&manifest), "size": manifest.len(),
                           "annotations": {"io.containerd.image.name": "docker.io/library/hello:1",
                                           "org.opencontainers.image.ref.name": "1"}}],
        }))
        .expect("json");
        let path = dir.join("oci.tar");
        let mut archive = tar::Builder::new(std::fs::File::create(&path).expect("create"));
        let mut add = |name: &str, bytes: &[u8]| {
            let mut header = tar::Header::new_gnu();
            header.set_size(bytes.len() as u64);
            header.set_mode(0o644);
            header.set_cksum();
            archive.append_data(&mut header, name, bytes).expect("add");
        };
        add("oci-layout", br#"{"imageLayoutVersion":"1.0.0"}"#);
        add("index.json", &index);
        for blob in [&manifest, &config, &layer] {
            let name = format!("blobs/sha256/{}", &sha256_hex(blob)[7..]);
            add(&name, blob);
        }
        archive.finish().expect("finish");
        path
    }

    #[tokio::test]
    async fn an_oci_layout_archive_gives_the_sources_id_and_a_gzipped_layer() {
        let dir = tempfile::tempdir().expect("dir");
        let archive = oci_archive(dir.path(), false);
        let mut images = Images::new(None).expect("images");
        let source = LocalSource::Archive(archive.clone());
        let image = images
            .prepare("hello:1", Some("web"), &source)
            .await
            .expect("prepared");
        let config =
            std::fs::read(&images.blob(&image.id).expect("config blob").path).expect("config");
        assert_eq!(image.id, sha256_hex(&config));
        assert_eq!(image.layers.len(), 1);
        let blob = images.blob(&image.layers[0].0).expect("layer blob");
        let mut unpacked = Vec::new();
        flate2::read::GzDecoder::new(std::fs::File::open(&blob.path).expect("blob"))
            .read_to_end(&mut unpacked)
            .expect("gzip");
        assert!(unpacked.windows(5).any(|w| w == b"hello"));
        let manifest: serde_json::Value =
            serde_json::from_slice(&images.manifest(&image.manifest_digest).expect("manifest"))
                .expect("json");
        assert_eq!(manifest["config"]["digest"], image.id.as_str());
        assert_eq!(manifest["mediaType"], MANIFEST_V2);

        let err = images
            .prepare("other:2", Some("db"), &source)
            .await
            .expect_err("not in it");
        assert!(
            err.to_string().starts_with(
                "image other:2 of service db: not found in it (it holds docker.io/library/hello:1"
            ) && err.to_string().contains(&archive.display().to_string()),
            "{err}"
        );
        let damaged = tempfile::tempdir().expect("dir");
        let archive = oci_archive(damaged.path(), true);
        let err = Images::new(None)
            .expect("images")
            .prepare("hello:1", None, &LocalSource::Archive(archive))
            .await
            .expect_err("damaged");
        assert!(err.to_string().contains("layer 1 is damaged"), "{err}");
    }

    #[tokio::test]
    async fn a_layer_compressed_in_an_earlier_run_is_compressed_again_only_when_asked_for() {
        let dir = tempfile::tempdir().expect("dir");
        let archive = LocalSource::Archive(oci_archive(dir.path(), false));
        let cache = DigestCache::new(dir.path().join("cache"));
        let mut first = Images::new(Some(cache.clone())).expect("images");
        let image = first
            .prepare("hello:1", None, &archive)
            .await
            .expect("first");
        let (digest, size) = image.layers[0].clone();
        let compressed = std::fs::read(&first.blob(&digest).expect("blob").path).expect("read");

        let mut second = Images::new(Some(cache.clone())).expect("images");
        let again = second
            .prepare("hello:1", None, &archive)
            .await
            .expect("second");
        assert_eq!(again.layers[0], (digest.clone(), size));
        assert_eq!(
            again.manifest, image.manifest,
            "the same manifest, not compressed yet"
        );
        let blob = second.blob(&digest).expect("blob").clone();
        assert!(!blob.path.exists(), "compressed before anyone asked");
        blob.ready().await.expect("compressed on demand");
        assert_eq!(std::fs::read(&blob.path).expect("read"), compressed);

        // A remembered digest the compression no longer gives is forgotten.
        let diff_id = {
            let config: serde_json::Value = serde_json::from_slice(
                &std::fs::read(&second.blob(&again.id).expect("config").path).expect("read"),
            )
            .expect("json");
            config["rootfs"]["diff_ids"][0]
                .as_str()
                .expect("diff id")
                .to_string()
        };
        let wrong = format!("sha256:{}", "ab".repeat(32));
        cache.put(&diff_id, &wrong, 7);
        let mut third = Images::new(Some(cache.clone())).expect("images");
        let stale = third
            .prepare("hello:1", None, &archive)
            .await
            .expect("third");
        assert_eq!(stale.layers[0].0, wrong);
        let err = third
            .blob(&wrong)
            .expect("blob")
            .ready()
            .await
            .expect_err("mismatch");
        assert!(err.contains("forgotten, run again"), "{err}");
        assert_eq!(cache.get(&diff_id), None);
    }

    #[test]
    fn an_archive_naming_files_outside_itself_is_refused() {
        let dir = tempfile::tempdir().expect("dir");
        std::fs::write(
            dir.path().join("manifest.json"),
            r#"[{"Config":"../../etc/passwd","RepoTags":["a:latest"],"Layers":[]}]"#,
        )
        .expect("write");
        let err = read_layout(dir.path(), "a").err().expect("refused");
        assert!(err.contains("outside the archive"), "{err}");
        let missing = tempfile::tempdir().expect("dir");
        let err = read_layout(missing.path(), "a").err().expect("refused");
        assert!(err.contains("docker save IMAGE -o FILE"), "{err}");
    }
}
