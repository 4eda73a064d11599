//! Secrets never leave the process in clear: every text maestro prints (events, reports,
//! dumps, error messages) can be passed through a [`Masker`], which replaces each known secret
//! value with `***`.
//!
//! What is secret:
//! - registry passwords of the environment file;
//! - the SSH key passphrase (`MAESTRO_SSH_PASSPHRASE`);
//! - the value of every environment variable (of the process, and of every instance in the
//!   file) whose NAME matches a secret pattern: by default `*PASSWORD*`, `*SECRET*`,
//!   `*TOKEN*`, `*KEY*`, case-insensitive. `MAESTRO_SECRET_PATTERNS` (comma-separated globs)
//!   replaces the default list; `secrets: {patterns: [...]}` in the file adds to it.
//!
//! Values shorter than [`MIN_SECRET_LEN`] characters are not masked: masking `1` or `yes`
//! everywhere would garble output and protect nothing.
//!
//! The CLI installs one process-wide masker ([`install`], [`add_environment`]) so that
//! renderers deep in the stack ([`crate::ui::render`]) mask without every caller threading
//! it through; library users that install nothing get a masker that masks nothing.

use std::sync::RwLock;

use globset::{GlobBuilder, GlobSet, GlobSetBuilder};

use crate::config::Environment;

/// What a secret is replaced with.
pub const MASK: &str = "***";
/// Fields of structured output (events, reports, JSON documents) whose values are names the
/// environment file gave (or Docker's ids of them), shown as written: masking by substring
/// turned a service named like a common password into `***` and a path into `***s/web.yaml`.
/// Every other string field is free text (reasons, daemon messages, log lines) and keeps
/// substring masking, since a secret can appear anywhere in it.
pub const NAME_FIELDS: &[&str] = &[
    "instance",
    "instances",
    "service",
    "services",
    "ship",
    "ships",
    "ship_address",
    "environment",
    "image",
    "image_id",
    "container",
    "container_id",
    "id",
    "name",
    "file",
    "field",
    "source",
];
/// Column headers of the tables whose cells are names (see [`NAME_FIELDS`]).
pub const NAME_COLUMNS: &[&str] = &[
    "#",
    "INSTANCE",
    "SERVICE",
    "SHIP",
    "HOST",
    "CONTAINER",
    "IMAGE",
    "IMAGE ID",
];
/// Shorter values are left alone (see the module documentation).
pub const MIN_SECRET_LEN: usize = 4;
/// Names of environment variables whose values are secret, unless `MAESTRO_SECRET_PATTERNS`
/// says otherwise.
pub const DEFAULT_PATTERNS: &[&str] = &["*PASSWORD*", "*SECRET*", "*TOKEN*", "*KEY*"];
/// Comma-separated globs that replace [`DEFAULT_PATTERNS`].
pub const PATTERNS_VARIABLE: &str = "MAESTRO_SECRET_PATTERNS";
/// The SSH key passphrase the transport reads; always a secret.
pub const PASSPHRASE_VARIABLE: &str = "MAESTRO_SSH_PASSPHRASE";

/// A list of case-insensitive globs over environment variable names.
#[derive(Debug, Clone)]
pub struct SecretPatterns {
    patterns: Vec<String>,
    set: GlobSet,
}

impl SecretPatterns {
    /// Patterns from globs; invalid globs are skipped (they were checked where they came from:
    /// the config layer locates its own, and a bad `MAESTRO_SECRET_PATTERNS` entry must not
    /// disable masking altogether).
    pub fn new<I, S>(patterns: I) -> SecretPatterns
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut builder = GlobSetBuilder::new();
        let mut kept = Vec::new();
        for pattern in patterns {
            let pattern = pattern.as_ref().trim();
            if pattern.is_empty() || kept.iter().any(|k: &String| k == pattern) {
                continue;
            }
            if let Ok(glob) = GlobBuilder::new(pattern).case_insensitive(true).build() {
                builder.add(glob);
                kept.push(pattern.to_owned());
            }
        }
        let set = builder.build().unwrap_or_else(|_| GlobSet::empty());
        SecretPatterns {
            patterns: kept,
            set,
        }
    }

    /// The default list, or the one `MAESTRO_SECRET_PATTERNS` gives (`value` is its value).
    pub fn from_variable(value: Option<&str>) -> SecretPatterns {
        match value {
            Some(list) if !list.trim().is_empty() => SecretPatterns::new(list.split(',')),
            _ => SecretPatterns::new(DEFAULT_PATTERNS),
        }
    }

    /// These patterns and `more`.
    pub fn with<I, S>(&self, more: I) -> SecretPatterns
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut all = self.patterns.clone();
        all.extend(more.into_iter().map(|s| s.as_ref().to_owned()));
        SecretPatterns::new(all)
    }

    pub fn is_secret_name(&self, name: &str) -> bool {
        self.set.is_match(name)
    }

    pub fn patterns(&self) -> &[String] {
        &self.patterns
    }
}

impl Default for SecretPatterns {
    fn default() -> Self {
        SecretPatterns::new(DEFAULT_PATTERNS)
    }
}

/// Replaces known secret values with `***`.
#[derive(Debug, Clone, Default)]
pub struct Masker {
    patterns: SecretPatterns,
    /// Distinct values, longest first, so that a secret containing another is masked whole.
    secrets: Vec<String>,
    /// One alternation of every secret (leftmost, longest first); `None` when there are none.
    matcher: Option<regex::Regex>,
}

impl Masker {
    /// A masker that knows no secret yet, with the default patterns.
    pub fn new(patterns: SecretPatterns) -> Masker {
        Masker {
            patterns,
            secrets: Vec::new(),
            matcher: None,
        }
    }

    /// From the process environment: `MAESTRO_SECRET_PATTERNS`, the passphrase, and every
    /// variable whose name matches a pattern.
    pub fn from_process_env() -> Masker {
        let vars: Vec<(String, String)> = std::env::vars_os()
            .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
            .collect();
        Masker::from_vars(vars)
    }

    /// As [`Masker::from_process_env`], from the given variables.
    pub fn from_vars<I, K, V>(vars: I) -> Masker
    where
        I: IntoIterator<Item = (K, V)>,
        K: AsRef<str>,
        V: AsRef<str>,
    {
        let vars: Vec<(String, String)> = vars
            .into_iter()
            .map(|(k, v)| (k.as_ref().to_owned(), v.as_ref().to_owned()))
            .collect();
        let patterns = SecretPatterns::from_variable(
            vars.iter()
                .find(|(k, _)| k == PATTERNS_VARIABLE)
                .map(|(_, v)| v.as_str()),
        );
        let mut masker = Masker::new(patterns);
        masker.add_vars(&vars);
        masker
    }

    /// Adds the values of `vars` whose names are secret (and the passphrase, whatever the
    /// patterns say).
    pub fn add_vars(&mut self, vars: &[(String, String)]) {
        let values: Vec<&str> = vars
            .iter()
            .filter(|(k, _)| k == PASSPHRASE_VARIABLE || self.patterns.is_secret_name(k))
            .map(|(_, v)| v.as_str())
            .collect();
        self.add_all(values);
    }

    /// Adds what the environment file makes secret: its extra patterns (which also apply to
    /// the process environment), registry passwords, and instance environment values whose
    /// names match.
    pub fn add_environment(&mut self, env: &Environment) {
        if !env.secret_patterns.is_empty() {
            self.patterns = self.patterns.with(&env.secret_patterns);
            let vars: Vec<(String, String)> = std::env::vars_os()
                .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
                .collect();
            self.add_vars(&vars);
        }
        let mut values: Vec<String> = env
            .registries
            .iter()
            .filter_map(|r| r.password.as_ref().map(|p| p.expose().to_owned()))
            .collect();
        for (_, instance) in env.instances() {
            for (name, value) in &instance.env {
                if self.patterns.is_secret_name(name) {
                    values.push(value.clone());
                }
            }
        }
        self.add_all(values);
    }

    /// Adds one secret value (ignored when shorter than [`MIN_SECRET_LEN`]).
    pub fn add(&mut self, secret: &str) {
        self.add_all([secret]);
    }

    fn add_all<I, S>(&mut self, values: I)
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut changed = false;
        for value in values {
            let value = value.as_ref();
            if value.chars().count() < MIN_SECRET_LEN || value == MASK {
                continue;
            }
            // In JSON output a secret with quotes, backslashes or control characters appears
            // escaped: mask that spelling too.
            let escaped = serde_json::to_string(value)
                .ok()
                .and_then(|quoted| Some(quoted.get(1..quoted.len().checked_sub(1)?)?.to_owned()));
            for spelling in std::iter::once(value.to_owned()).chain(escaped) {
                if !self.secrets.contains(&spelling) {
                    self.secrets.push(spelling);
                    changed = true;
                }
            }
        }
        if changed {
            self.secrets
                .sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
            let alternation: Vec<String> = self.secrets.iter().map(|s| regex::escape(s)).collect();
            // A secret too large for the regex engine must still be masked: fall back to
            // plain replacement (see `mask`).
            self.matcher = regex::RegexBuilder::new(&alternation.join("|"))
                .size_limit(64 << 20)
                .build()
                .ok();
        }
    }

    pub fn patterns(&self) -> &SecretPatterns {
        &self.patterns
    }

    /// Whether `name` (of an environment variable) holds a secret.
    pub fn is_secret_name(&self, name: &str) -> bool {
        name == PASSPHRASE_VARIABLE || self.patterns.is_secret_name(name)
    }

    /// How many distinct secret values are known.
    pub fn len(&self) -> usize {
        self.secrets.len()
    }

    pub fn is_empty(&self) -> bool {
        self.secrets.is_empty()
    }

    /// `text` with every known secret value replaced by `***`.
    pub fn mask(&self, text: &str) -> String {
        if self.secrets.is_empty() {
            return text.to_owned();
        }
        match &self.matcher {
            Some(re) => re.replace_all(text, MASK).into_owned(),
            None => {
                let mut out = text.to_owned();
                for secret in &self.secrets {
                    out = out.replace(secret.as_str(), MASK);
                }
                out
            }
        }
    }

    /// [`Masker::mask`], and also, in lines that quote the environment file (error snippets:
    /// `12 |     DB_PASSWORD: hunter2`), the value of every `NAME: value` or `NAME=value` whose
    /// name is secret, up to the end of the line. A file that fails to load has not told us
    /// its secrets yet, but its snippets may show them.
    pub fn mask_snippets(&self, text: &str) -> String {
        // Masked whole first: a secret may span lines (a key file's text).
        let masked = self.mask(text);
        let originals: Vec<&str> = text.split('\n').collect();
        let same_lines = masked.split('\n').count() == originals.len();
        let mut out = String::with_capacity(masked.len());
        for (i, line) in masked.split('\n').enumerate() {
            if i > 0 {
                out.push('\n');
            }
            // An error's location (`  --> examples/web.yaml:12:3`, `  = field: services.db`)
            // is a path and names of the file: shown as written.
            if let Some(original) = originals.get(i).filter(|_| same_lines) {
                let trimmed = original.trim_start();
                if trimmed.starts_with("--> ") || trimmed.starts_with("= field: ") {
                    out.push_str(original);
                    continue;
                }
            }
            match snippet_source(line) {
                Some(start) => {
                    out.push_str(&line[..start]);
                    out.push_str(&self.mask_assignments(&line[start..]));
                }
                None => out.push_str(line),
            }
        }
        out
    }

    /// The value of every `NAME: value` / `NAME=value` in `line` whose name is secret, masked
    /// to the end of the line (a value may hold spaces and commas; masking too much is safe).
    pub fn mask_assignments(&self, line: &str) -> String {
        static ASSIGNMENT: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
        let assignment = ASSIGNMENT.get_or_init(|| {
            regex::Regex::new(
                r#"(?:^|[\s{,\["'])(?P<name>[A-Za-z_][A-Za-z0-9_]*)["']?\s*[:=][ \t]*"#,
            )
            .ok()
        });
        let Some(assignment) = assignment else {
            return line.to_owned();
        };
        for caps in assignment.captures_iter(line) {
            let (Some(name), Some(whole)) = (caps.name("name"), caps.get(0)) else {
                continue;
            };
            let rest = line[whole.end()..].trim_end();
            if self.is_secret_name(name.as_str()) && !rest.is_empty() && rest != MASK {
                return format!("{}{MASK}", &line[..whole.end()]);
            }
        }
        line.to_owned()
    }

    /// Masks a JSON value field by field: keys are names and stay, values of the
    /// [`NAME_FIELDS`] are shown as written, every other string is masked wherever a secret
    /// appears in it.
    pub fn mask_json(&self, value: &mut serde_json::Value) {
        if self.secrets.is_empty() {
            return;
        }
        match value {
            serde_json::Value::String(s) => {
                let masked = self.mask(s);
                if masked != *s {
                    *s = masked;
                }
            }
            serde_json::Value::Array(items) => items.iter_mut().for_each(|v| self.mask_json(v)),
            serde_json::Value::Object(map) => {
                for (key, v) in map.iter_mut() {
                    // Tags select the variant; masking one would make the event unreadable.
                    let tag = key == "event" || key == "step" || key == "outcome";
                    if !tag && !is_name_field(key, v) {
                        self.mask_json(v);
                    }
                }
            }
            _ => {}
        }
    }

    /// `value` (an event, a report) with every secret in its texts masked, field by field
    /// through its JSON form (job names, reasons, log tails...).
    pub fn mask_value<T>(&self, value: &T) -> T
    where
        T: serde::Serialize + serde::de::DeserializeOwned + Clone,
    {
        if self.secrets.is_empty() {
            return value.clone();
        }
        let Ok(mut json) = serde_json::to_value(value) else {
            return value.clone();
        };
        self.mask_json(&mut json);
        serde_json::from_value(json).unwrap_or_else(|_| value.clone())
    }
}

/// Words people use as passwords in examples and first deployments: a secret spelled like one
/// is weak, and masking it also masks the word wherever it appears in logs.
const COMMON_WORDS: &[&str] = &[
    "admin",
    "changeme",
    "default",
    "example",
    "guest",
    "letmein",
    "master",
    "mysql",
    "pass",
    "passw0rd",
    "password",
    "postgres",
    "qwerty",
    "redis",
    "root",
    "secret",
    "test",
    "user",
    "welcome",
    "123456",
    "12345678",
    "password1",
];

/// Why a secret value is a poor one, if it is: shorter than [`MIN_SECRET_LEN`] (never masked),
/// one of `names` (the file's own names: masking it hides that name in free text), or a
/// common word. `validate` warns with it.
pub fn weak_secret(value: &str, names: &[&str]) -> Option<String> {
    if value.chars().count() < MIN_SECRET_LEN {
        return Some(format!(
            "it is shorter than {MIN_SECRET_LEN} characters, so it is never masked in output"
        ));
    }
    if let Some(name) = names.iter().find(|n| n.eq_ignore_ascii_case(value)) {
        return Some(format!(
            "it is spelled like `{name}`, a name in this file: that name will show as `{MASK}` \
             in container logs and daemon messages, and the secret is easy to guess"
        ));
    }
    if COMMON_WORDS.iter().any(|w| w.eq_ignore_ascii_case(value)) {
        return Some(format!(
            "it is a common word: it will show as `{MASK}` wherever that word appears in \
             container logs and daemon messages, and it is easy to guess"
        ));
    }
    None
}

/// A name field holds a name or a list of names (never an object, whose own fields decide).
fn is_name_field(key: &str, value: &serde_json::Value) -> bool {
    let names = match value {
        serde_json::Value::String(_) => true,
        serde_json::Value::Array(items) => items.iter().all(serde_json::Value::is_string),
        _ => false,
    };
    names && NAME_FIELDS.contains(&key)
}

/// Where the quoted source starts in a snippet line (`  12 | text`, `   | ^^^`), if it is one.
fn snippet_source(line: &str) -> Option<usize> {
    let bar = line.find('|')?;
    let head = &line[..bar];
    if !head.chars().all(|c| c.is_ascii_digit() || c == ' ') {
        return None;
    }
    Some((bar + 2).min(line.len()))
}

static GLOBAL: RwLock<Option<Masker>> = RwLock::new(None);

/// Makes `masker` the one [`global`] returns.
pub fn install(masker: Masker) {
    let mut slot = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
    *slot = Some(masker);
}

/// Adds the secrets of a loaded environment file to the installed masker (installing one
/// from the process environment first if there is none).
pub fn add_environment(env: &Environment) {
    let mut slot = GLOBAL.write().unwrap_or_else(|e| e.into_inner());
    slot.get_or_insert_with(Masker::from_process_env)
        .add_environment(env);
}

/// The installed masker; one that masks nothing when none is installed.
pub fn global() -> Masker {
    GLOBAL
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or_default()
}

/// The installed masker applied to `text`.
pub fn mask(text: &str) -> String {
    let slot = GLOBAL.read().unwrap_or_else(|e| e.into_inner());
    match slot.as_ref() {
        Some(masker) => masker.mask(text),
        None => text.to_owned(),
    }
}

/// The installed masker's [`Masker::mask_snippets`] applied to `text`: what `ui`'s writers
/// do to every line they print.
pub fn mask_output(text: &str) -> String {
    let slot = GLOBAL.read().unwrap_or_else(|e| e.into_inner());
    match slot.as_ref() {
        Some(masker) => masker.mask_snippets(text),
        None => text.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn default_patterns_are_case_insensitive() {
        let p = SecretPatterns::default();
        for name in [
            "DB_PASSWORD",
            "db_password",
            "Api_Token",
            "AWS_SECRET_ACCESS_KEY",
            "key",
        ] {
            assert!(p.is_secret_name(name), "{name}");
        }
        for name in ["HOME", "PATH", "USER", "PASS"] {
            assert!(!p.is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn values_of_secret_names_and_the_passphrase_are_masked() {
        let m = Masker::from_vars(vars(&[
            ("DB_PASSWORD", "hunter22"),
            ("HOME", "/root"),
            ("MAESTRO_SSH_PASSPHRASE", "open sesame"),
            ("SHORT_TOKEN", "abc"),
        ]));
        assert_eq!(m.len(), 2);
        assert_eq!(
            m.mask("pw=hunter22 home=/root phrase='open sesame' t=abc"),
            "pw=*** home=/root phrase='***' t=abc"
        );
    }

    #[test]
    fn the_pattern_variable_replaces_the_defaults() {
        let m = Masker::from_vars(vars(&[
            ("MAESTRO_SECRET_PATTERNS", "*_pass, CREDS"),
            ("DB_PASSWORD", "notmasked"),
            ("db_pass", "masked-1"),
            ("CREDS", "masked-2"),
        ]));
        assert_eq!(m.mask("notmasked masked-1 masked-2"), "notmasked *** ***");
    }

    #[test]
    fn longer_secrets_are_masked_whole() {
        let mut m = Masker::default();
        m.add("abcd");
        m.add("abcdefgh");
        assert_eq!(m.mask("xabcdefghx abcd"), "x***x ***");
        m.add("a.*b");
        assert_eq!(
            m.mask("a.*b axxb"),
            "*** axxb",
            "values are literal, not regexes"
        );
        m.add("q\"uo\\te");
        assert_eq!(
            m.mask(r#"{"p":"q\"uo\\te"}"#),
            r#"{"p":"***"}"#,
            "JSON spelling too"
        );
    }

    #[test]
    fn assignments_with_secret_names_are_masked_in_quoted_text() {
        let m = Masker::default();
        let text = "3 |       DB_PASSWORD: hunter22\n4 |       password: 's3cr3t pw'\n5 | - API_TOKEN=xyz123\n6 |   image: nginx\n   = field: services.web.env.DB_PASSWORD";
        let out = m.mask_snippets(text);
        assert!(
            !out.contains("hunter22") && !out.contains("s3cr3t") && !out.contains("xyz123"),
            "{out}"
        );
        assert!(out.contains("DB_PASSWORD: ***"), "{out}");
        assert!(out.contains("API_TOKEN=***"), "{out}");
        assert!(out.contains("image: nginx"), "{out}");
        assert!(out.contains("field: services.web.env.DB_PASSWORD"), "{out}");
        let help = "   = help: known keys here: a, b\n  --> /tmp/key.yaml:3:5";
        assert_eq!(
            m.mask_snippets(help),
            help,
            "only quoted source lines are touched"
        );
    }

    #[test]
    fn json_strings_are_masked_and_tags_kept() {
        let mut m = Masker::default();
        m.add("hunter22");
        let mut v = serde_json::json!({"event": "job_failed", "reason": "bad hunter22", "log_tail": ["x hunter22"]});
        m.mask_json(&mut v);
        assert_eq!(
            v,
            serde_json::json!({"event": "job_failed", "reason": "bad ***", "log_tail": ["x ***"]})
        );
    }
}
