//! Reading `~/.ssh/config` (or the file the operator names) for one host, through
//! russh-config, after expanding `Include` and normalising the syntax it does not accept.
//! Keywords russh-config does not know (`IdentitiesOnly`) are answered by a second query
//! over the same blocks, so that host matching and "first value wins" stay russh-config's.

use std::path::{Path, PathBuf};

/// What ssh_config says about one host alias.
#[derive(Debug, Clone, Default)]
pub(crate) struct HostSettings {
    pub host_name: Option<String>,
    pub user: Option<String>,
    pub port: Option<u16>,
    pub identity_files: Vec<PathBuf>,
    pub proxy_jump: Option<String>,
    /// `ProxyCommand`, `%` tokens not yet expanded (they depend on the final user and port).
    pub proxy_command: Option<String>,
    /// `IdentitiesOnly yes`: offer only the configured key files, not every agent key.
    pub identities_only: bool,
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
    let dot_ssh = home_dir().map(|home| home.join(".ssh"));
    lookup_with(path, alias, dot_ssh.as_deref())
}

/// `lookup`, relative `Include`s resolved under `dot_ssh`.
fn lookup_with(
    path: Option<&Path>,
    alias: &str,
    dot_ssh: Option<&Path>,
) -> Result<HostSettings, String> {
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
    let text = expand_includes(&text, alias, dot_ssh, 0)?;
    let normalised = normalise(&text);
    let parsed = russh_config::parse(&normalised, alias)
        .map_err(|err| format!("cannot parse ssh config {}: {err}", path.display()))?;
    let host = parsed.host_config;
    let not_none = |value: &String| !value.trim().eq_ignore_ascii_case("none");
    Ok(HostSettings {
        host_name: host.hostname,
        user: host.user,
        port: host.port,
        identity_files: host.identity_file.unwrap_or_default(),
        proxy_jump: host.proxy_jump.filter(not_none),
        proxy_command: host.proxy_command.filter(not_none),
        identities_only: keyword_value(&normalised, alias, "identitiesonly")
            .is_some_and(|v| v.eq_ignore_ascii_case("yes")),
        known_hosts_file: host.user_known_hosts_file,
        strict_host_key_checking: host.strict_host_key_checking,
    })
}

/// OpenSSH's limit on nested `Include`s.
const MAX_INCLUDE_DEPTH: usize = 16;

/// `Keyword value` of a config line, the keyword lower-cased; `None` for blanks and comments.
fn keyword_of(line: &str) -> Option<(String, &str)> {
    let line = line.trim();
    if line.is_empty() || line.starts_with('#') {
        return None;
    }
    let split_at = line
        .find(|c: char| c.is_whitespace() || c == '=')
        .unwrap_or(line.len());
    let (keyword, rest) = line.split_at(split_at);
    let value = rest
        .trim_start_matches(|c: char| c.is_whitespace())
        .trim_start_matches('=')
        .trim_start();
    Some((keyword.to_ascii_lowercase(), value))
}

/// Replaces every `Include` with the text of the files it names, as OpenSSH reads them:
/// relative paths are under `~/.ssh`, globs expand in order, missing files are skipped. An
/// `Include` inside a `Host` block that does not match `alias` is skipped (OpenSSH reads it
/// with nothing matching); after one inside a matching block, the block's `Host` line is
/// repeated so that the lines after the `Include` still belong to it.
fn expand_includes(
    text: &str,
    alias: &str,
    dot_ssh: Option<&Path>,
    depth: usize,
) -> Result<String, String> {
    if depth > MAX_INCLUDE_DEPTH {
        return Err(format!(
            "ssh config: Include nested more than {MAX_INCLUDE_DEPTH} deep"
        ));
    }
    let mut out = String::with_capacity(text.len());
    let mut block: Option<String> = None;
    for line in text.lines() {
        let Some((keyword, value)) = keyword_of(line) else {
            continue;
        };
        match keyword.as_str() {
            "host" | "match" => block = Some(line.trim().to_string()),
            "include" => {
                if let Some(header) = &block
                    && !block_matches(header, alias)
                {
                    continue;
                }
                for pattern in value.split_whitespace() {
                    for file in include_paths(pattern, dot_ssh) {
                        let included = std::fs::read_to_string(&file).map_err(|err| {
                            format!("cannot read ssh config {} (Include): {err}", file.display())
                        })?;
                        out.push_str(&expand_includes(&included, alias, dot_ssh, depth + 1)?);
                    }
                }
                if let Some(header) = &block {
                    out.push_str(header);
                    out.push('\n');
                }
                continue;
            }
            _ => {}
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

fn include_paths(pattern: &str, dot_ssh: Option<&Path>) -> Vec<PathBuf> {
    let path = expand_home(Path::new(pattern));
    let path = if path.is_absolute() {
        path
    } else {
        match dot_ssh {
            Some(dot_ssh) => dot_ssh.join(path),
            None => return Vec::new(),
        }
    };
    let Ok(paths) = glob::glob(&path.to_string_lossy()) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = paths
        .filter_map(Result::ok)
        .filter(|p| p.is_file())
        .collect();
    files.sort();
    files
}

/// Whether the block opened by `header` (`Host ...`; `Match` is not supported and never
/// matches) applies to `alias`, by russh-config's own pattern rules.
fn block_matches(header: &str, alias: &str) -> bool {
    let Some((keyword, patterns)) = keyword_of(header) else {
        return false;
    };
    if keyword != "host" {
        return false;
    }
    russh_config::parse(&format!("Host {patterns}\nUser matched\n"), alias)
        .is_ok_and(|config| config.host_config.user.as_deref() == Some("matched"))
}

/// The value of a keyword russh-config ignores, for `alias`: the normalised file reduced to
/// its `Host` lines and that keyword (carried in the `User` slot), queried by russh-config.
fn keyword_value(normalised: &str, alias: &str, keyword: &str) -> Option<String> {
    let mut reduced = String::new();
    for line in normalised.lines() {
        match keyword_of(line) {
            Some((k, _)) if k == "host" => reduced.push_str(line),
            Some((k, value)) if k == keyword => reduced.push_str(&format!("User {value}")),
            _ => continue,
        }
        reduced.push('\n');
    }
    russh_config::parse(&reduced, alias).ok()?.host_config.user
}

/// russh-config wants `Keyword value` separated by one space and no options before the
/// first `Host`; OpenSSH also accepts `Keyword=value`, tabs, and global options at the top
/// (which apply to every host, first value wins, exactly as a leading `Host *` block).
fn normalise(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    let mut seen_host = false;
    let mut needs_global_block = false;
    let mut lines = Vec::new();
    for line in text.lines() {
        let Some((lowered, value)) = keyword_of(line) else {
            continue;
        };
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
            lines.push(format!("{lowered} no"));
            continue;
        }
        lines.push(format!("{lowered} {value}"));
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

    #[test]
    fn include_expands_in_place_relative_to_dot_ssh_and_honours_blocks() {
        let home = tempfile::tempdir().expect("tempdir");
        let dot_ssh = home.path().join(".ssh");
        std::fs::create_dir_all(dot_ssh.join("config.d")).expect("mkdir");
        std::fs::write(
            dot_ssh.join("config.d/10-web"),
            "Host web\n  HostName 10.0.0.5\n  Include nested\n",
        )
        .expect("write");
        std::fs::write(dot_ssh.join("config.d/20-db"), "Host db\n  Port 2200\n").expect("write");
        std::fs::write(dot_ssh.join("nested"), "User nested-user\n").expect("write");
        std::fs::write(dot_ssh.join("only-for-other"), "Host *\n  User wrong\n").expect("write");
        let config = home.path().join("config");
        std::fs::write(
            &config,
            "Include config.d/*\n\
             Host other\n  Include only-for-other\n\
             Host db\n  Include missing-file-is-skipped\n  User after-include\n",
        )
        .expect("write");
        let settings =
            |alias: &str| lookup_with(Some(&config), alias, Some(&dot_ssh)).expect("lookup");
        let text = std::fs::read_to_string(&config).expect("read");
        let expanded = expand_includes(&text, "db", Some(&dot_ssh), 0).expect("expand");
        assert!(!expanded.contains("wrong"), "{expanded}");
        let web = settings("web");
        assert_eq!(web.host_name.as_deref(), Some("10.0.0.5"));
        assert_eq!(web.user.as_deref(), Some("nested-user"));
        let db = settings("db");
        assert_eq!(db.port, Some(2200));
        assert_eq!(db.user.as_deref(), Some("after-include"), "{expanded}");
    }

    #[test]
    fn include_loops_are_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        std::fs::write(&path, format!("Include {}\n", path.display())).expect("write");
        let err = lookup(Some(&path), "any").expect_err("a loop");
        assert!(err.contains("Include nested more than 16 deep"), "{err}");
    }

    #[test]
    fn proxy_command_and_identities_only_first_value_wins() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        std::fs::write(
            &path,
            "Host a\n  ProxyCommand ssh -W %h:%p gate\n  IdentitiesOnly yes\n\
             Host b\n  ProxyCommand none\n\
             Host *\n  IdentitiesOnly no\n  ProxyCommand nc %h %p\n",
        )
        .expect("write");
        let a = lookup(Some(&path), "a").expect("lookup");
        assert_eq!(a.proxy_command.as_deref(), Some("ssh -W %h:%p gate"));
        assert!(a.identities_only);
        let b = lookup(Some(&path), "b").expect("lookup");
        assert_eq!(b.proxy_command, None, "`none` turns it off");
        assert!(!b.identities_only);
    }
}
