//! The Docker API version each ship's daemon agreed to, remembered between commands so that
//! a command does not spend a round trip on `GET /version` before its first real request.
//!
//! One small file per endpoint under `$XDG_CACHE_HOME/maestro/api-version/` (or
//! `~/.cache/maestro/...`), named by a hash of the endpoint and holding the endpoint itself,
//! the highest version this build of maestro speaks and the agreed version. An entry is
//! used only if all of these match and it is less than a day old; anything unreadable is
//! ignored (the version is then negotiated as before). Writes go to a temporary file
//! renamed into place, so a reader never sees half an entry. If a daemon rejects the
//! remembered version anyway (upgraded or replaced), the connector negotiates again and
//! retries the request: see `connector::send_with_version`.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use bollard::ClientVersion;
use sha2::{Digest, Sha256};

/// Older entries are negotiated again, so an upgraded daemon's newer API is picked up.
pub(crate) const MAX_AGE: Duration = Duration::from_secs(24 * 3600);

const MAGIC: &str = "maestro-api-version 1";

/// The default cache directory: `$XDG_CACHE_HOME/maestro`, else `$HOME/.cache/maestro`.
pub fn default_cache_dir() -> Option<PathBuf> {
    let base = match std::env::var_os("XDG_CACHE_HOME") {
        Some(dir) if !dir.is_empty() && Path::new(&dir).is_absolute() => PathBuf::from(dir),
        _ => PathBuf::from(std::env::var_os("HOME")?).join(".cache"),
    };
    Some(base.join("maestro"))
}

pub(crate) fn format_version(version: &ClientVersion) -> String {
    format!("{}.{}", version.major_version, version.minor_version)
}

pub(crate) fn parse_version(text: &str) -> Option<ClientVersion> {
    let (major, minor) = text.trim().trim_start_matches('v').split_once('.')?;
    Some(ClientVersion {
        major_version: major.parse().ok()?,
        minor_version: minor.parse().ok()?,
    })
}

/// The remembered version of one endpoint.
#[derive(Debug, Clone)]
pub(crate) struct VersionCache {
    file: PathBuf,
    key: String,
}

impl VersionCache {
    /// `key` names the endpoint (route and daemon address).
    pub(crate) fn new(dir: &Path, key: &str) -> VersionCache {
        let digest = Sha256::digest(key.as_bytes());
        let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
        VersionCache {
            file: dir.join("api-version").join(name),
            key: key.to_string(),
        }
    }

    /// The remembered version, if there is a valid, recent entry for this endpoint made by a
    /// maestro speaking at most `client_max`.
    pub(crate) fn load(&self, client_max: &ClientVersion) -> Option<ClientVersion> {
        let age = std::fs::metadata(&self.file)
            .and_then(|m| m.modified())
            .ok()
            .and_then(|modified| SystemTime::now().duration_since(modified).ok())?;
        if age > MAX_AGE {
            return None;
        }
        let text = std::fs::read_to_string(&self.file).ok()?;
        let mut lines = text.lines();
        if lines.next()? != MAGIC || lines.next()? != self.key {
            return None;
        }
        if parse_version(lines.next()?)? != *client_max {
            return None;
        }
        let version = parse_version(lines.next()?)?;
        (version <= *client_max).then_some(version)
    }

    /// Remembers `version`; failures are ignored (the next command negotiates again).
    pub(crate) fn store(&self, client_max: &ClientVersion, version: &ClientVersion) {
        let _ = self.try_store(client_max, version);
    }

    fn try_store(
        &self,
        client_max: &ClientVersion,
        version: &ClientVersion,
    ) -> std::io::Result<()> {
        let dir = self.file.parent().ok_or(std::io::ErrorKind::NotFound)?;
        std::fs::create_dir_all(dir)?;
        let text = format!(
            "{MAGIC}\n{}\n{}\n{}\n",
            self.key,
            format_version(client_max),
            format_version(version)
        );
        let mut temporary = self.file.as_os_str().to_owned();
        temporary.push(format!(".{}.tmp", std::process::id()));
        let temporary = PathBuf::from(temporary);
        std::fs::write(&temporary, text)?;
        std::fs::rename(&temporary, &self.file).inspect_err(|_| {
            let _ = std::fs::remove_file(&temporary);
        })
    }

    #[cfg(test)]
    fn path(&self) -> &Path {
        &self.file
    }
}

/// Whether a daemon's 400 answer says it does not speak the version in the request's path
/// ("client version 1.99 is too new. Maximum supported API version is 1.41", or
/// "... is too old. Minimum supported API version is 1.24 ...").
pub(crate) fn is_version_rejection(message: &str) -> bool {
    let message = message.to_ascii_lowercase();
    message.contains("client version")
        && (message.contains("too new") || message.contains("too old"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v(text: &str) -> ClientVersion {
        parse_version(text).expect("version")
    }

    #[test]
    fn stored_version_is_loaded_back() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = VersionCache::new(dir.path(), "ssh root@ship1:22 -> unix:/run/docker.sock");
        assert!(cache.load(&v("1.52")).is_none());
        cache.store(&v("1.52"), &v("1.41"));
        assert_eq!(cache.load(&v("1.52")), Some(v("1.41")));
    }

    #[test]
    fn other_endpoints_and_other_builds_do_not_share_entries() {
        let dir = tempfile::tempdir().expect("tempdir");
        let one = VersionCache::new(dir.path(), "ssh root@ship1:22 -> unix:/a");
        let two = VersionCache::new(dir.path(), "ssh root@ship2:22 -> unix:/a");
        one.store(&v("1.52"), &v("1.41"));
        assert!(two.load(&v("1.52")).is_none());
        // A maestro speaking another maximum negotiates again.
        assert!(one.load(&v("1.53")).is_none());
    }

    #[test]
    fn corrupt_or_foreign_entries_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = VersionCache::new(dir.path(), "ssh root@ship1:22 -> unix:/a");
        cache.store(&v("1.52"), &v("1.41"));
        for garbage in [
            "",
            "garbage",
            "maestro-api-version 1\nssh root@ship1:22 -> unix:/a\n1.52\n",
            "maestro-api-version 1\nssh root@ship1:22 -> unix:/a\n1.52\nnot-a-version\n",
            "maestro-api-version 1\nanother endpoint\n1.52\n1.41\n",
            "maestro-api-version 1\nssh root@ship1:22 -> unix:/a\n1.52\n1.60\n",
        ] {
            std::fs::write(cache.path(), garbage).expect("write");
            assert!(cache.load(&v("1.52")).is_none(), "{garbage:?}");
        }
        // A directory in place of the file: unreadable, and storing fails quietly.
        std::fs::remove_file(cache.path()).expect("rm");
        std::fs::create_dir(cache.path()).expect("mkdir");
        assert!(cache.load(&v("1.52")).is_none());
        cache.store(&v("1.52"), &v("1.41"));
    }

    #[test]
    fn old_entries_are_ignored() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = VersionCache::new(dir.path(), "k");
        cache.store(&v("1.52"), &v("1.41"));
        let old = SystemTime::now() - MAX_AGE - Duration::from_secs(60);
        std::fs::File::options()
            .write(true)
            .open(cache.path())
            .and_then(|f| f.set_modified(old))
            .expect("set mtime");
        assert!(cache.load(&v("1.52")).is_none());
    }

    #[test]
    fn store_replaces_and_leaves_no_temporary_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = VersionCache::new(dir.path(), "k");
        cache.store(&v("1.52"), &v("1.41"));
        cache.store(&v("1.52"), &v("1.44"));
        assert_eq!(cache.load(&v("1.52")), Some(v("1.44")));
        let entries = std::fs::read_dir(dir.path().join("api-version"))
            .expect("dir")
            .count();
        assert_eq!(entries, 1);
    }

    #[test]
    fn version_rejections_are_recognised() {
        assert!(is_version_rejection(
            "client version 1.99 is too new. Maximum supported API version is 1.41"
        ));
        assert!(is_version_rejection(
            "client version 1.11 is too old. Minimum supported API version is 1.24, please \
             upgrade your client to a newer version"
        ));
        assert!(!is_version_rejection("No such container: web"));
        assert!(!is_version_rejection("invalid reference format"));
    }
}
