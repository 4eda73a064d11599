//! Reading `~/.ssh/config` (or the file the operator names) for one host, through
//! russh-config, after expanding `Include`, deciding `Match` blocks and normalising the
//! syntax it does not accept. Keywords russh-config does not know (`IdentitiesOnly`) are
//! answered by a second query over the same blocks, so that host matching and "first value
//! wins" stay russh-config's.
//!
//! `Match` needs what OpenSSH knows when it reaches the line (the `HostName` and `User`
//! obtained so far, the user and port given by the route), which russh-config has no notion
//! of. So one pass in file order, as OpenSSH reads, tracks those values, decides each `Match`
//! line and rewrites it as `Host *` (matched) or `Host !*` (not), leaving russh-config plain
//! `Host` blocks. Criteria: `all`, `host`, `originalhost`, `user`, `localuser`, `exec`, each
//! negatable with `!`, all of a line having to match. We never canonicalise host names, so
//! `canonical` never matches and `final` always does (our single pass is the final one).
//! Criteria of newer OpenSSH that we cannot judge (`localnetwork`, `tagged`, `version`,
//! `sessiontype`, `command`) make their block match nothing, negated or not; unknown words are
//! an error, as they are to OpenSSH.

use std::path::{Path, PathBuf};

use super::patterns;

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
    /// `UserKnownHostsFile`, as written: a blank-separated list, `%` tokens and `~` not yet
    /// expanded (they depend on the final host, port and user; see [`expand_file`]).
    pub user_known_hosts_files: Option<String>,
    /// `GlobalKnownHostsFile`, as written.
    pub global_known_hosts_files: Option<String>,
    /// `Some(false)` for `StrictHostKeyChecking no` or `accept-new` (both accept-new to us:
    /// a changed key is refused regardless).
    pub strict_host_key_checking: Option<bool>,
    /// `CASignatureAlgorithms`, as written (a list, or `+`/`-`/`^` and a list).
    pub ca_signature_algorithms: Option<String>,
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

/// Who the route says to connect as, before ssh_config is read: what `Match user` and the
/// `%r`/`%p` tokens of `Match exec` see when the config has not set them (the command line
/// of OpenSSH, whose `-l` and `-p` win over the file).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Given<'a> {
    pub user: Option<&'a str>,
    pub port: Option<u16>,
}

/// Looks `alias` up in `path`. A missing file means no settings; an unreadable one is an
/// error (the operator named it, or it is theirs).
pub(crate) fn lookup(
    path: Option<&Path>,
    alias: &str,
    given: Given<'_>,
) -> Result<HostSettings, String> {
    let dot_ssh = home_dir().map(|home| home.join(".ssh"));
    lookup_with(path, alias, given, dot_ssh.as_deref())
}

/// `lookup`, relative `Include`s resolved under `dot_ssh`.
fn lookup_with(
    path: Option<&Path>,
    alias: &str,
    given: Given<'_>,
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
    settings_from(&text, path, Walk::new(alias, given, dot_ssh))
}

/// Parses `text` as an ssh_config for `alias` without touching the system: an `Include`
/// reads nothing and `Match exec` runs nothing (it does not match). For the fuzz target
/// (`transport::fuzzing`): the result depends on the text alone and hostile input cannot
/// run commands.
pub(crate) fn parse_offline(text: &str, alias: &str) -> Result<HostSettings, String> {
    let mut walk = Walk::new(alias, Given::default(), None);
    walk.offline = true;
    settings_from(text, Path::new("(fuzz input)"), walk)
}

/// The settings `text` (read from `path`, named in errors) gives `walk.alias`.
fn settings_from(text: &str, path: &Path, walk: Walk<'_>) -> Result<HostSettings, String> {
    let alias = walk.alias;
    let text = walk
        .run(text)
        .map_err(|err| format!("ssh config {}: {err}", path.display()))?;
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
        // Read raw: russh-config takes the value for one path and expands only `~`.
        user_known_hosts_files: keyword_value(&normalised, alias, "userknownhostsfile"),
        global_known_hosts_files: keyword_value(&normalised, alias, "globalknownhostsfile"),
        strict_host_key_checking: host.strict_host_key_checking,
        ca_signature_algorithms: keyword_value(&normalised, alias, "casignaturealgorithms"),
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

/// One reading of the config in OpenSSH's order: `Include`s replaced by the files they
/// name, `Match` lines decided, and the values `Match` depends on tracked as they are set.
struct Walk<'a> {
    alias: &'a str,
    given: Given<'a>,
    dot_ssh: Option<&'a Path>,
    /// First `HostName`, `User`, `Port` of the blocks that applied so far.
    host_name: Option<String>,
    user: Option<String>,
    port: Option<u16>,
    /// Read no `Include` and run no `Match exec` (see [`parse_offline`]).
    offline: bool,
}

impl<'a> Walk<'a> {
    fn new(alias: &'a str, given: Given<'a>, dot_ssh: Option<&'a Path>) -> Self {
        Walk {
            alias,
            given,
            dot_ssh,
            host_name: None,
            user: None,
            port: None,
            offline: false,
        }
    }

    fn run(mut self, text: &str) -> Result<String, String> {
        let mut out = String::with_capacity(text.len());
        self.walk(text, 0, &mut out)?;
        Ok(out)
    }

    /// Relative `Include` paths are under `~/.ssh`, globs expand in order, missing files are
    /// skipped. An `Include` in a block that does not apply is skipped (OpenSSH reads it with
    /// nothing matching); after one in a block that does, the block's header is repeated so
    /// that the lines after the `Include` still belong to it.
    fn walk(&mut self, text: &str, depth: usize, out: &mut String) -> Result<(), String> {
        if depth > MAX_INCLUDE_DEPTH {
            return Err(format!("Include nested more than {MAX_INCLUDE_DEPTH} deep"));
        }
        // Lines before a file's first header belong to the block that included it, which
        // applies (or the file would not be read), or are global in the top file.
        let mut applies = true;
        let mut header: Option<String> = None;
        for line in text.lines() {
            let Some((keyword, value)) = keyword_of(line) else {
                continue;
            };
            match keyword.as_str() {
                "host" => {
                    applies = block_matches(line, self.alias);
                    header = Some(line.trim().to_string());
                }
                "match" => {
                    applies = self.match_line(value)?;
                    let rewritten = if applies { "Host *" } else { "Host !*" };
                    header = Some(rewritten.to_string());
                    out.push_str(rewritten);
                    out.push('\n');
                    continue;
                }
                "include" => {
                    if !applies || self.offline {
                        continue;
                    }
                    for pattern in value.split_whitespace() {
                        for file in include_paths(pattern, self.dot_ssh) {
                            let included = std::fs::read_to_string(&file).map_err(|err| {
                                format!("cannot read {} (Include): {err}", file.display())
                            })?;
                            self.walk(&included, depth + 1, out)?;
                        }
                    }
                    // Global lines after a top-level Include are global again.
                    out.push_str(header.as_deref().unwrap_or("Host *"));
                    out.push('\n');
                    continue;
                }
                _ if applies => self.note(&keyword, value),
                _ => {}
            }
            out.push_str(line);
            out.push('\n');
        }
        Ok(())
    }

    /// Keeps the first value of the keywords `Match` looks at, as OpenSSH's options hold them.
    fn note(&mut self, keyword: &str, value: &str) {
        let value = unquote(value.trim());
        match keyword {
            "hostname" if self.host_name.is_none() => {
                self.host_name = Some(expand_tokens(value, &[('h', self.alias)]));
            }
            "user" if self.user.is_none() => self.user = Some(value.to_string()),
            "port" if self.port.is_none() => self.port = value.parse().ok(),
            _ => {}
        }
    }

    /// The host name as OpenSSH's `Match host` sees it: after `HostName` so far.
    fn host(&self) -> &str {
        self.host_name.as_deref().unwrap_or(self.alias)
    }

    fn remote_user(&self) -> String {
        self.given
            .user
            .map(str::to_string)
            .or_else(|| self.user.clone())
            .unwrap_or_else(local_user)
    }

    /// Whether every criterion of the `Match` line with arguments `args` holds.
    fn match_line(&self, args: &str) -> Result<bool, String> {
        let words = split_args(args)?;
        if words.is_empty() {
            return Err("Match without criteria".to_string());
        }
        let mut result = true;
        let mut words = words.iter();
        while let Some(word) = words.next() {
            let (negated, criterion) = match word.strip_prefix('!') {
                Some(rest) => (true, rest.to_ascii_lowercase()),
                None => (false, word.to_ascii_lowercase()),
            };
            let matched = match criterion.as_str() {
                "all" => {
                    let alone = split_args(args)?.iter().all(|w| {
                        let w = w.trim_start_matches('!').to_ascii_lowercase();
                        matches!(w.as_str(), "all" | "canonical" | "final")
                    });
                    if !alone {
                        return Err("Match all cannot be combined with other criteria".to_string());
                    }
                    true
                }
                "canonical" => false,
                "final" => true,
                _ => {
                    let Some(arg) = words.next() else {
                        return Err(format!("Match {criterion} needs an argument"));
                    };
                    match criterion.as_str() {
                        "host" => patterns::list_matches(self.host(), arg, true),
                        "originalhost" => patterns::list_matches(self.alias, arg, true),
                        "user" => patterns::list_matches(&self.remote_user(), arg, false),
                        "localuser" => patterns::list_matches(&local_user(), arg, false),
                        // As OpenSSH, a command is not run once the line has failed.
                        "exec" if !result || self.offline => false,
                        "exec" => self.exec_succeeds(arg)?,
                        "localnetwork" | "tagged" | "version" | "sessiontype" | "command" => {
                            result = false;
                            continue;
                        }
                        other => return Err(format!("unsupported Match criterion `{other}`")),
                    }
                }
            };
            if matched == negated {
                result = false;
            }
        }
        Ok(result)
    }

    /// `Match exec`: the command, tokens expanded, run with `sh -c`; exit status 0 matches.
    /// stdin and stdout are closed and stderr left to the operator, as OpenSSH does.
    fn exec_succeeds(&self, command: &str) -> Result<bool, String> {
        let port = self.given.port.or(self.port).unwrap_or(22).to_string();
        let remote_user = self.remote_user();
        let local = local_user();
        // The command runs through `sh -c`: names holding shell metacharacters are refused
        // before anything runs, as for a ProxyCommand (see [`valid_hostname`]).
        for (token, value, valid) in [
            ('h', self.host(), valid_hostname as fn(&str) -> bool),
            ('n', self.alias, valid_hostname),
            ('r', remote_user.as_str(), valid_user),
        ] {
            if command.contains(&format!("%{token}")) && !valid(value) {
                return Err(format!(
                    "refusing to run `Match exec {command}`: %{token} would be `{value}`, which \
                     holds characters a shell interprets (OpenSSH refuses it too)"
                ));
            }
        }
        let command = expand_tokens(
            command,
            &[
                ('h', self.host()),
                ('p', &port),
                ('r', &remote_user),
                ('n', self.alias),
                ('u', &local),
            ],
        );
        std::process::Command::new("sh")
            .arg("-c")
            .arg(&command)
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::null())
            .status()
            .map(|status| status.success())
            .or(Ok(false))
    }
}

/// The user running maestro, for `Match localuser` and `%u`: `$USER`, `$LOGNAME`, else
/// what `id -un` says (services and containers often set neither variable; `id` is POSIX,
/// so this holds on macOS too). Asked once per process.
fn local_user() -> String {
    static LOCAL_USER: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    LOCAL_USER
        .get_or_init(|| {
            std::env::var("USER")
                .ok()
                .or_else(|| std::env::var("LOGNAME").ok())
                .filter(|name| !name.is_empty())
                .or_else(|| {
                    let out = std::process::Command::new("id").arg("-un").output().ok()?;
                    let name = String::from_utf8(out.stdout).ok()?.trim().to_string();
                    (out.status.success() && !name.is_empty()).then_some(name)
                })
                .unwrap_or_default()
        })
        .clone()
}

/// `%` tokens: each `(letter, value)` of `tokens`, and `%%`; others are left as written.
fn expand_tokens(text: &str, tokens: &[(char, &str)]) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some(letter) => match tokens.iter().find(|(t, _)| *t == letter) {
                Some((_, value)) => out.push_str(value),
                None => {
                    out.push('%');
                    out.push(letter);
                }
            },
            None => out.push('%'),
        }
    }
    out
}

fn unquote(value: &str) -> &str {
    value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value)
}

/// Splits a `Match` line's arguments as OpenSSH does: on whitespace, with `"..."` and
/// `'...'` quoting (so `exec "test -f x"` is one argument) and `\` escaping.
fn split_args(text: &str) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut chars = text.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            return Ok(words);
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(c) = chars.next() {
            match (quote, c) {
                (None, c) if c.is_whitespace() => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => match chars.next() {
                    Some(escaped) => word.push(escaped),
                    None => word.push('\\'),
                },
                (_, c) => word.push(c),
            }
        }
        if quote.is_some() {
            return Err(format!("unterminated quote in Match {text}"));
        }
        words.push(word);
    }
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

/// Whether the `Host ...` line `header` applies to `alias`, by russh-config's own pattern
/// rules (the ones it applies to the rewritten file).
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
        // `Match` lines are rewritten as `Host` lines by the time the text gets here.
        if lowered == "host" {
            seen_host = true;
        } else if !seen_host {
            needs_global_block = true;
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

/// What the `%` tokens of `UserKnownHostsFile` and `GlobalKnownHostsFile` stand for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FileTokens<'a> {
    /// `%d` and `~`.
    pub home: Option<&'a Path>,
    /// `%u`: who runs maestro.
    pub local_user: &'a str,
    /// `%h`: the host connected to (after `HostName`).
    pub host: &'a str,
    /// `%n`: the host as the route or jump names it.
    pub original_host: &'a str,
    /// `%p`.
    pub port: u16,
    /// `%r`: the user logged in as.
    pub remote_user: &'a str,
}

/// The files of a `UserKnownHostsFile`/`GlobalKnownHostsFile` value: words separated by
/// blanks, a word in double or single quotes may hold blanks; `none` alone means no file.
pub(crate) fn split_file_list(value: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    for c in value.chars() {
        match quote {
            Some(q) if c == q => quote = None,
            Some(_) => word.push(c),
            None if c == '"' || c == '\'' => {
                quote = Some(c);
                in_word = true;
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                word.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(word);
    }
    if words.len() == 1 && words[0].eq_ignore_ascii_case("none") {
        return Vec::new();
    }
    words
}

/// One file of a known-hosts list with `~` and the `%` tokens OpenSSH expands there
/// (`%d %u %h %n %p %r %%`). An unknown token is an error, as it is to OpenSSH: a path
/// silently read with a literal `%x` would only hide a typo.
pub(crate) fn expand_file(
    word: &str,
    keyword: &str,
    tokens: &FileTokens,
) -> Result<PathBuf, String> {
    let home = || {
        tokens.home.ok_or_else(|| {
            format!("{keyword} `{word}` needs the home directory, and HOME is not set; write a full path")
        })
    };
    let mut out = String::with_capacity(word.len());
    let mut rest = word;
    if rest == "~" || rest.starts_with("~/") {
        out.push_str(&home()?.to_string_lossy());
        rest = &rest[1..];
    } else if rest.starts_with('~') {
        return Err(format!(
            "{keyword} `{word}`: `~user` is not supported; write the full path"
        ));
    }
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => out.push('%'),
            Some('d') => out.push_str(&home()?.to_string_lossy()),
            Some('u') => out.push_str(tokens.local_user),
            Some('h') => out.push_str(tokens.host),
            Some('n') => out.push_str(tokens.original_host),
            Some('p') => out.push_str(&tokens.port.to_string()),
            Some('r') => out.push_str(tokens.remote_user),
            other => {
                return Err(format!(
                    "{keyword} `{word}`: unknown token %{}; known here are %d (home), \
                     %u (local user), %h (host), %n (host as given), %p (port), \
                     %r (remote user) and %% (a percent sign)",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(PathBuf::from(out))
}

/// Names that reach a shell (a ProxyCommand, a `Match exec`) are checked with OpenSSH's own
/// rules first; ssh/route.rs checks a route's names with the same two.
/// OpenSSH's `valid_hostname` (ssh.c): no shell metacharacter, blank or control character,
/// and no leading `-`.
pub(crate) fn valid_hostname(text: &str) -> bool {
    !text.starts_with('-')
        && !text
            .chars()
            .any(|c| "'`\"$\\;&<>|(){}".contains(c) || c.is_whitespace() || c.is_control())
}

/// OpenSSH's `valid_ruser` (ssh.c): no shell metacharacter, no leading `-` nor one after a
/// blank, no trailing backslash.
pub(crate) fn valid_user(text: &str) -> bool {
    !text.starts_with('-')
        && !text.contains(" -")
        && !text.ends_with('\\')
        && !text
            .chars()
            .any(|c| "'`\";&<>|(){}".contains(c) || c.is_control())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tokens(home: Option<&Path>) -> FileTokens<'_> {
        FileTokens {
            home,
            local_user: "me",
            host: "10.0.0.1",
            original_host: "web",
            port: 2222,
            remote_user: "deploy",
        }
    }

    #[test]
    fn offline_parsing_reads_no_include_and_runs_no_exec() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("ran");
        let included = dir.path().join("included");
        std::fs::write(&included, "Host *\n  Port 7\n").expect("write");
        let text = format!(
            "Include {}\nMatch exec \"touch {}\"\n  User ran\nHost web\n  HostName 10.0.0.5\n",
            included.display(),
            marker.display()
        );
        let settings = parse_offline(&text, "web").expect("parses");
        assert_eq!(settings.host_name.as_deref(), Some("10.0.0.5"));
        assert_eq!(settings.port, None, "Include must not be read");
        assert_eq!(settings.user, None, "Match exec must not match");
        assert!(!marker.exists(), "Match exec must not run");
    }

    #[test]
    fn known_hosts_file_lists_split_and_expand_tokens() {
        assert_eq!(
            split_file_list("~/.ssh/a \"/with space/b\"  'c'"),
            vec!["~/.ssh/a", "/with space/b", "c"]
        );
        assert!(split_file_list("none").is_empty());
        assert!(split_file_list("  ").is_empty());
        let home = Path::new("/home/me");
        let expand = |word: &str| expand_file(word, "UserKnownHostsFile", &tokens(Some(home)));
        assert_eq!(
            expand("~/.ssh/kh_%h_%p").expect("expands"),
            PathBuf::from("/home/me/.ssh/kh_10.0.0.1_2222")
        );
        assert_eq!(
            expand("%d/%u/%n/%r/100%%").expect("expands"),
            PathBuf::from("/home/me/me/web/deploy/100%")
        );
        assert_eq!(expand("~").expect("expands"), PathBuf::from("/home/me"));
        let unknown = expand("/kh/%C").expect_err("unknown token");
        assert!(
            unknown.contains("UserKnownHostsFile `/kh/%C`: unknown token %C"),
            "{unknown}"
        );
        assert!(expand("~other/kh").is_err());
        let no_home =
            expand_file("%d/kh", "GlobalKnownHostsFile", &tokens(None)).expect_err("no home");
        assert!(no_home.contains("HOME is not set"), "{no_home}");
    }

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
             \tCASignatureAlgorithms +ssh-rsa\n\
             Host other\n  User other\n  StrictHostKeyChecking accept-new\n\
             Host third\n  StrictHostKeyChecking yes\n",
        )
        .expect("write");
        let inner = lookup(Some(&path), "inner", Given::default()).expect("lookup");
        assert_eq!(inner.host_name.as_deref(), Some("10.9.9.9"));
        assert_eq!(inner.port, Some(2222));
        assert_eq!(inner.user.as_deref(), Some("globaluser"));
        assert_eq!(inner.identity_files, vec![PathBuf::from("/keys/a")]);
        assert_eq!(inner.proxy_jump.as_deref(), Some("root@bastion:22"));
        assert_eq!(inner.user_known_hosts_files.as_deref(), Some("/kh"));
        assert_eq!(inner.strict_host_key_checking, Some(false));
        assert_eq!(inner.ca_signature_algorithms.as_deref(), Some("+ssh-rsa"));
        let other = lookup(Some(&path), "other", Given::default()).expect("lookup");
        assert_eq!(other.strict_host_key_checking, Some(false));
        let third = lookup(Some(&path), "third", Given::default()).expect("lookup");
        assert_eq!(
            third.strict_host_key_checking,
            Some(false),
            "global value wins"
        );
        let missing =
            lookup(Some(&dir.path().join("nope")), "inner", Given::default()).expect("lookup");
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
        let settings = |alias: &str| {
            lookup_with(Some(&config), alias, Given::default(), Some(&dot_ssh)).expect("lookup")
        };
        let text = std::fs::read_to_string(&config).expect("read");
        let expanded = Walk::new("db", Given::default(), Some(&dot_ssh))
            .run(&text)
            .expect("expand");
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
        let err = lookup(Some(&path), "any", Given::default()).expect_err("a loop");
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
        let a = lookup(Some(&path), "a", Given::default()).expect("lookup");
        assert_eq!(a.proxy_command.as_deref(), Some("ssh -W %h:%p gate"));
        assert!(a.identities_only);
        let b = lookup(Some(&path), "b", Given::default()).expect("lookup");
        assert_eq!(b.proxy_command, None, "`none` turns it off");
        assert!(!b.identities_only);
    }

    fn config(text: &str) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("config");
        std::fs::write(&path, text).expect("write");
        (dir, path)
    }

    fn port_of(path: &Path, alias: &str, given: Given<'_>) -> Option<u16> {
        lookup(Some(path), alias, given).expect("lookup").port
    }

    #[test]
    fn match_host_sees_host_name_so_far_and_originalhost_the_alias() {
        let (_dir, path) = config(
            "Host web\n  HostName %h.prod.example\n\
             Match host *.prod.example\n  Port 2201\n\
             Match originalhost web\n  User deploy\n\
             Match host web\n  IdentitiesOnly yes\n",
        );
        let web = lookup(Some(&path), "web", Given::default()).expect("lookup");
        assert_eq!(web.host_name.as_deref(), Some("%h.prod.example"));
        assert_eq!(web.port, Some(2201));
        assert_eq!(web.user.as_deref(), Some("deploy"));
        assert!(!web.identities_only, "host is web.prod.example by then");
        // Without HostName, `host` is the name as given.
        assert_eq!(
            port_of(&path, "db.prod.example", Given::default()),
            Some(2201)
        );
        assert_eq!(port_of(&path, "db", Given::default()), None);
    }

    #[test]
    fn match_user_sees_the_given_user_else_the_configured_one_else_the_local_one() {
        let me = local_user();
        let (_dir, path) = config(&format!(
            "Host configured\n  User admin\n\
             Match user deploy\n  Port 1\n\
             Match user admin\n  Port 2\n\
             Match user \"{me}\"\n  Port 3\n"
        ));
        let deploy = Given {
            user: Some("deploy"),
            port: None,
        };
        assert_eq!(port_of(&path, "configured", deploy), Some(1), "given wins");
        assert_eq!(port_of(&path, "configured", Given::default()), Some(2));
        if !me.is_empty() {
            assert_eq!(port_of(&path, "other", Given::default()), Some(3));
        }
    }

    #[test]
    fn match_localuser_negation_and_several_criteria() {
        let me = local_user();
        let (_dir, path) = config(&format!(
            "Match host a*,!ab user root\n  Port 1\n\
             Match !host c,d originalhost ?\n  Port 2\n\
             Match !localuser \"{me}\"\n  Port 3\n\
             Match localuser \"{me}\"\n  Port 4\n"
        ));
        let root = Given {
            user: Some("root"),
            port: None,
        };
        let other = Given {
            user: Some("other"),
            port: None,
        };
        assert_eq!(port_of(&path, "ac", root), Some(1));
        assert_eq!(
            port_of(&path, "AC", root),
            Some(1),
            "host names ignore case"
        );
        assert_eq!(port_of(&path, "ab", root), Some(4), "!ab vetoes the list");
        assert_eq!(
            port_of(&path, "ac", other),
            Some(4),
            "both criteria must hold"
        );
        assert_eq!(port_of(&path, "e", other), Some(2));
        assert_eq!(port_of(&path, "c", other), Some(4));
        if me.is_empty() {
            return;
        }
        assert_eq!(port_of(&path, "zz", other), Some(4));
    }

    #[test]
    fn match_exec_runs_with_tokens_and_fails_to_match_when_the_command_fails() {
        let dir = tempfile::tempdir().expect("tempdir");
        let marker = dir.path().join("ran");
        let (_config_dir, path) = config(&format!(
            "Host web\n  HostName web.example\n\
             Match host nothing exec \"touch {marker}\"\n  Port 1\n\
             Match exec false\n  Port 2\n\
             Match exec \"test %h = web.example -a %n = web -a %r = deploy -a %p = 2222 -a 100%% = '100%'\"\n  User matched\n\
             Match !exec \"exit 3\"\n  Port 4\n",
            marker = marker.display()
        ));
        let given = Given {
            user: Some("deploy"),
            port: Some(2222),
        };
        let web = lookup(Some(&path), "web", given).expect("lookup");
        assert_eq!(web.user.as_deref(), Some("matched"));
        assert_eq!(web.port, Some(4), "a failing command does not match");
        assert!(
            !marker.exists(),
            "exec is not run once an earlier criterion failed"
        );
        let other = lookup(Some(&path), "web", Given::default()).expect("lookup");
        assert_eq!(other.user, None, "%r and %p differ");
    }

    #[test]
    fn match_all_final_canonical_unsupported_and_unknown_criteria() {
        let (_dir, path) = config(
            "Match canonical\n  Port 1\n\
             Match tagged prod\n  Port 2\n\
             Match !localnetwork 10.0.0.0/8\n  Port 3\n\
             Match final\n  User final\n\
             Match all\n  Port 5\n",
        );
        let any = lookup(Some(&path), "any", Given::default()).expect("lookup");
        assert_eq!(any.port, Some(5));
        assert_eq!(any.user.as_deref(), Some("final"));

        let (_dir, bad) = config("Match bogus x\n  Port 1\n");
        let err = lookup(Some(&bad), "any", Given::default()).expect_err("unknown");
        assert!(err.contains("unsupported Match criterion `bogus`"), "{err}");
        let (_dir, bad) = config("Match all host x\n  Port 1\n");
        assert!(lookup(Some(&bad), "x", Given::default()).is_err());
        let (_dir, bad) = config("Match host\n  Port 1\n");
        let err = lookup(Some(&bad), "x", Given::default()).expect_err("no argument");
        assert!(err.contains("Match host needs an argument"), "{err}");
    }

    #[test]
    fn include_inside_match_follows_the_match() {
        let home = tempfile::tempdir().expect("tempdir");
        let dot_ssh = home.path().join(".ssh");
        std::fs::create_dir_all(&dot_ssh).expect("mkdir");
        std::fs::write(dot_ssh.join("prod"), "Port 2200\n").expect("write");
        let config = home.path().join("config");
        std::fs::write(
            &config,
            "Match originalhost *.prod\n  Include prod\n  User after\nHost *\n  Port 22\n",
        )
        .expect("write");
        let settings = |alias: &str| {
            lookup_with(Some(&config), alias, Given::default(), Some(&dot_ssh)).expect("lookup")
        };
        let prod = settings("a.prod");
        assert_eq!(prod.port, Some(2200));
        assert_eq!(prod.user.as_deref(), Some("after"));
        let dev = settings("a.dev");
        assert_eq!(dev.port, Some(22));
        assert_eq!(dev.user, None);
    }
}
