//! Reading `~/.ssh/config` (or the file the operator names) for one host, through
//! russh-config, after normalising the syntax it does not accept.

use std::path::{Path, PathBuf};

/// What ssh_config says about one host alias.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostSettings {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    pub proxy_jump: Option<String>,
    pub known_hosts_file: Option<PathBuf>,
    /// `Some(false)` for `StrictHostKeyChecking no` or `accept-new` (both accept-new to us:
    /// a changed key is refused regardless).
    pub strict_host_key_checking: Option<bool>,
}

/// The ssh_config file in effect: the ship setting, else `MAESTRO_SSH_CONFIG`, else
/// `~/.ssh/config`.
pub(crate) fn config_path(explicit: Option<&Path>) -> Option<PathBuf> {
    if let Some(path) = explicit {
        return Some(expand_home(path));
    }
    if let Some(path) = std::env::var_os("MAESTRO_SSH_CONFIG") {
        return Some(PathBuf::from(path));
    }
    home_dir().map(|home| home.join(".ssh").join("config"))
}

/// Looks `alias` up in `path`. A missing file means no settings; an unreadable one is an
/// error (the operator named it, or it is theirs).
pub(crate) fn lookup(path: Option<&Path>, alias: &str) -> Result<HostSettings, String> {
    let Some(path) = path else {
        return Ok(HostSettings::default());
    };
    let text = match std::fs::read_to_string(path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Ok(HostSettings::default());
        }
        Err(err) => return Err(format!("cannot read ssh config {}: {err}", path.display())),
    };
    let parsed = russh_config::parse(&normalise(&text), alias)
        .map_err(|err| format!("cannot parse ssh config {}: {err}", path.display()))?;
    let host = parsed.host_config;
    Ok(HostSettings {
        host_name: host.hostname,
        user: host.user,
        port: host.port,
        identity_files: host.identity_file.unwrap_or_default(),
        proxy_jump: host
            .proxy_jump
            .filter(|jump| !jump.trim().eq_ignore_ascii_case("none")),
        known_hosts_file: host.user_known_hosts_file,
        strict_host_key_checking: host.strict_host_key_checking,
    })
}

/// russh-config wants `Keyword value` separated by one space and no options before the
/// first `Host`; OpenSSH also accepts `Keyword=value`, tabs, and global options at the top
/// (which apply to every host, first value wins, exactly as a leading `Host *` block).
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut seen_host = false;
    let mut needs_global_block = false;
    let mut lines = Vec::new();
    for raw in text.lines() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let split_at = line
            .find(|c: char| c.is_whitespace() || c == '=')
            .unwrap_or(line.len());
        let (keyword, rest) = line.split_at(split_at);
        let value = rest
            .trim_start_matches(|c: char| c.is_whitespace())
            .trim_start_matches('=')
            .trim_start();
        let lowered = keyword.to_ascii_lowercase();
        if lowered == "host" || lowered == "match" {
            seen_host = true;
        } else if !seen_host {
            needs_global_block = true;
        }
        if lowered == "match" {
            // Unsupported: make the block match nothing rather than everything.
            lines.push("Host !*".to_string());
            continue;
        }
        if lowered == "stricthostkeychecking" && value.eq_ignore_ascii_case("accept-new") {
            // russh-config reads only `no` as lenient; both mean accept-new to us (a changed
            // key is refused whatever the setting).
            lines.push(format!("{keyword} no"));
            continue;
        }
        lines.push(format!("{keyword} {value}"));
    }
    if needs_global_block {
        out.push_str("Host *\n");
    }
    for line in lines {
        out.push_str(&line);
        out.push('\n');
    }
    out
}

pub(crate) fn home_dir() -> Option<PathBuf> {
    std::env::var_os("HOME")
        .filter(|home| !home.is_empty())
        .map(PathBuf::from)
}

pub(crate) fn expand_home(path: &Path) -> PathBuf {
    if let Ok(rest) = path.strip_prefix("~")
        && let Some(home) = home_dir()
    {
        return home.join(rest);
    }
    path.to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_host_with_tabs_equals_and_globals() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "User globaluser\n\
             StrictHostKeyChecking=no\n\
             Host inner\n\
             \tHostName 10.9.9.9\n\
             \tPort=2222\n\
             \tIdentityFile /keys/a\n\
             \tProxyJump root@bastion:22\n\
             \tUserKnownHostsFile /kh\n\
             Host other\n  User other\n  StrictHostKeyChecking accept-new\n\
             Host third\n  StrictHostKeyChecking yes\n",
        )
        .expect("write");
        let inner = lookup(Some(&path), "inner").expect("lookup");
        assert_eq!(inner.host_name.as_deref(), Some("10.9.9.9"));
        assert_eq!(inner.port, Some(2222));
        assert_eq!(inner.user.as_deref(), Some("globaluser"));
        assert_eq!(inner.identity_files, vec![PathBuf::from("/keys/a")]);
        assert_eq!(inner.proxy_jump.as_deref(), Some("root@bastion:22"));
        assert_eq!(inner.known_hosts_file, Some(PathBuf::from("/kh")));
        assert_eq!(inner.strict_host_key_checking, Some(false));
        let other = lookup(Some(&path), "other").expect("lookup");
        assert_eq!(other.strict_host_key_checking, Some(false));
        let third = lookup(Some(&path), "third").expect("lookup");
        assert_eq!(
            third.strict_host_key_checking,
            Some(false),
            "global value wins"
        );
        let missing = lookup(Some(&dir.path().join("nope")), "inner").expect("lookup");
        assert!(missing.host_name.is_none());
    }
}
