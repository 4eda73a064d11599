//! Registry credentials, and the fallback lookup in the Docker client's config.json.

use std::fmt;
use std::path::{Path, PathBuf};

use bollard::auth::DockerCredentials;

/// Login for one registry. The password never appears in `Debug` output.
#[derive(Clone, PartialEq, Eq)]
pub struct Credentials {
    pub username: String,
    pub password: String,
    pub email: Option<String>,
    /// Registry address as the daemon expects it (`host[:port]`).
    pub server: Option<String>,
}

impl fmt::Debug for Credentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Credentials")
            .field("username", &self.username)
            .field("password", &"***")
            .field("email", &self.email)
            .field("server", &self.server)
            .finish()
    }
}

impl Credentials {
    pub fn new(username: impl Into<String>, password: impl Into<String>) -> Self {
        Credentials {
            username: username.into(),
            password: password.into(),
            email: None,
            server: None,
        }
    }

    pub(crate) fn to_bollard(&self) -> DockerCredentials {
        DockerCredentials {
            username: Some(self.username.clone()),
            password: Some(self.password.clone()),
            email: self.email.clone(),
            serveraddress: self.server.clone(),
            ..Default::default()
        }
    }

    /// Credentials for `registry_host` from the Docker client config (`$DOCKER_CONFIG/config.json`
    /// or `~/.docker/config.json`), `None` when the file or the entry is missing.
    pub fn from_docker_config(
        registry_host: &str,
    ) -> Result<Option<Credentials>, CredentialsError> {
        let Some(path) = docker_config_path() else {
            return Ok(None);
        };
        if !path.exists() {
            return Ok(None);
        }
        Self::from_docker_config_file(&path, registry_host)
    }

    /// Same as [`Credentials::from_docker_config`], from a given file.
    pub fn from_docker_config_file(
        path: &Path,
        registry_host: &str,
    ) -> Result<Option<Credentials>, CredentialsError> {
        let text = std::fs::read_to_string(path).map_err(|source| CredentialsError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        let config: serde_json::Value =
            serde_json::from_str(&text).map_err(|source| CredentialsError::Parse {
                path: path.to_path_buf(),
                source,
            })?;
        let Some(auths) = config.get("auths").and_then(|a| a.as_object()) else {
            return Ok(None);
        };
        let wanted = normalize_registry(registry_host);
        let wanted_host = strip_port(&wanted);
        // An exact host:port match wins over a match on the host alone.
        let exact = auths
            .iter()
            .find(|(key, _)| normalize_registry(key) == wanted);
        let loose = || {
            auths
                .iter()
                .find(|(key, _)| strip_port(&normalize_registry(key)) == wanted_host)
        };
        let Some((key, entry)) = exact.or_else(loose) else {
            return Ok(None);
        };
        let field = |name: &str| entry.get(name).and_then(|v| v.as_str()).map(str::to_string);
        let (username, password) = match (field("username"), field("password"), field("auth")) {
            (Some(user), Some(pass), _) => (user, pass),
            (_, _, Some(auth)) if !auth.is_empty() => {
                let decoded = decode_base64(&auth)
                    .and_then(|bytes| String::from_utf8(bytes).ok())
                    .ok_or_else(|| CredentialsError::BadAuth {
                        path: path.to_path_buf(),
                        registry: key.clone(),
                    })?;
                let Some((user, pass)) = decoded.split_once(':') else {
                    return Err(CredentialsError::BadAuth {
                        path: path.to_path_buf(),
                        registry: key.clone(),
                    });
                };
                (user.to_string(), pass.to_string())
            }
            _ => return Ok(None),
        };
        Ok(Some(Credentials {
            username,
            password,
            email: field("email"),
            server: Some(wanted),
        }))
    }
}

/// Why the Docker client config could not give credentials.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path} is not valid JSON: {source}")]
    Parse {
        path: PathBuf,
        source: serde_json::Error,
    },
    #[error("{path}: the auth entry for {registry} is not base64 of user:password")]
    BadAuth { path: PathBuf, registry: String },
}

fn docker_config_path() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("DOCKER_CONFIG") {
        return Some(PathBuf::from(dir).join("config.json"));
    }
    std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".docker").join("config.json"))
}

/// `https://host:5000/v1/` and `host:5000` name the same registry.
fn normalize_registry(name: &str) -> String {
    let without_scheme = name
        .strip_prefix("https://")
        .or_else(|| name.strip_prefix("http://"))
        .unwrap_or(name);
    without_scheme
        .split('/')
        .next()
        .unwrap_or(without_scheme)
        .to_ascii_lowercase()
}

fn strip_port(host: &str) -> &str {
    // Bracketed IPv6 addresses keep their colons.
    if let Some(end) = host.find(']') {
        return &host[..=end];
    }
    host.split(':').next().unwrap_or(host)
}

/// The registry host of an image reference, `None` for Docker Hub images
/// (`busybox`, `library/busybox`, `user/app`).
pub fn registry_of_image(image: &str) -> Option<&str> {
    let (first, rest) = image.split_once('/')?;
    if rest.is_empty() {
        return None;
    }
    if first.contains('.') || first.contains(':') || first == "localhost" {
        Some(first)
    } else {
        None
    }
}

/// Standard base64 with optional padding; what Docker writes in `auths.*.auth`.
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn value(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let trimmed = text.trim().trim_end_matches('=');
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let mut buffer: u32 = 0;
    let mut bits = 0;
    for c in trimmed.bytes() {
        buffer = (buffer << 6) | value(c)?;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push(((buffer >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_hides_password() {
        let creds = Credentials::new("alice", "s3cret");
        let shown = format!("{creds:?}");
        assert!(!shown.contains("s3cret"));
        assert!(shown.contains("***"));
        assert!(shown.contains("alice"));
    }

    #[test]
    fn base64_decodes() {
        assert_eq!(decode_base64("dXNlcjpwYXNz"), Some(b"user:pass".to_vec()));
        assert_eq!(decode_base64("YTpi"), Some(b"a:b".to_vec()));
        assert_eq!(decode_base64("YQ=="), Some(b"a".to_vec()));
        assert_eq!(decode_base64("!!"), None);
    }

    #[test]
    fn reads_docker_config() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("config.json");
        std::fs::write(
            &path,
            r#"{"auths": {
                "https://registry.example.com:5000/v1/": {"auth": "dXNlcjpwYXNz"},
                "other.example.com": {"username": "u2", "password": "p2"},
                "empty.example.com": {}
            }}"#,
        )?;
        let creds = Credentials::from_docker_config_file(&path, "registry.example.com:5000")?
            .ok_or("missing")?;
        assert_eq!(creds.username, "user");
        assert_eq!(creds.password, "pass");
        let by_host = Credentials::from_docker_config_file(&path, "registry.example.com")?
            .ok_or("missing")?;
        assert_eq!(by_host.username, "user");
        let plain =
            Credentials::from_docker_config_file(&path, "other.example.com")?.ok_or("missing")?;
        assert_eq!(plain.password, "p2");
        assert!(Credentials::from_docker_config_file(&path, "empty.example.com")?.is_none());
        assert!(Credentials::from_docker_config_file(&path, "nowhere.example.com")?.is_none());
        Ok(())
    }

    #[test]
    fn image_registries() {
        assert_eq!(registry_of_image("busybox"), None);
        assert_eq!(registry_of_image("user/app:1"), None);
        assert_eq!(
            registry_of_image("registry.example.com:5000/app:1"),
            Some("registry.example.com:5000")
        );
        assert_eq!(registry_of_image("localhost/app"), Some("localhost"));
        assert_eq!(
            registry_of_image("10.0.0.1:5000/app"),
            Some("10.0.0.1:5000")
        );
    }
}
