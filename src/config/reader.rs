//! Reading typed values out of the node tree, with the field path and the position of every
//! value at hand for errors.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::error::{ConfigError, Diagnostic, SourceText};
use super::node::{Node, Pos, Value};

pub(crate) type Result<T> = std::result::Result<T, ConfigError>;

/// The conversion context: where positions point, which schema is in force, and the semantic
/// problems found so far (reported together at the end).
pub(crate) struct Cx<'s> {
    pub src: &'s SourceText,
    pub schema: u32,
    pub base_dir: PathBuf,
    pub home: Option<String>,
    /// Field path -> position of its value, so later checks can point at the user's text.
    pub spans: HashMap<String, Pos>,
    /// Field path -> position of its key (for "missing key" errors on the parent).
    pub key_spans: HashMap<String, Pos>,
    pub semantic: Vec<Diagnostic>,
    /// What loads but was probably not meant (a plain `on` typed as `True`).
    pub warnings: Vec<Diagnostic>,
}

impl<'s> Cx<'s> {
    pub fn invalid(&self, pos: Pos, path: &str, message: impl Into<String>) -> ConfigError {
        ConfigError::Invalid(Box::new(self.src.diagnostic(
            pos,
            Some(path),
            message,
            None,
        )))
    }

    pub fn invalid_help(
        &self,
        pos: Pos,
        path: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) -> ConfigError {
        ConfigError::Invalid(Box::new(self.src.diagnostic(
            pos,
            Some(path),
            message,
            help,
        )))
    }

    /// Records a cross-reference problem and lets conversion go on.
    pub fn semantic(
        &mut self,
        pos: Pos,
        path: &str,
        message: impl Into<String>,
        help: Option<String>,
    ) {
        let d = self.src.diagnostic(pos, Some(path), message, help);
        self.semantic.push(d);
    }

    pub fn record(&mut self, path: &str, pos: Pos) {
        self.spans.insert(path.to_owned(), pos);
    }

    pub fn pos_of(&self, path: &str) -> Pos {
        self.spans.get(path).copied().unwrap_or_default()
    }

    /// `~` is the operator's home; relative paths are relative to the environment file.
    pub fn resolve_path(&self, written: &str) -> PathBuf {
        if let (Some(rest), Some(home)) = (written.strip_prefix("~/"), &self.home) {
            return Path::new(home).join(rest);
        }
        if written == "~"
            && let Some(home) = &self.home
        {
            return PathBuf::from(home);
        }
        let p = Path::new(written);
        if p.is_absolute() {
            p.to_path_buf()
        } else {
            self.base_dir.join(p)
        }
    }
}

/// A scalar as text: strings, numbers and booleans are accepted, as YAML users expect.
pub(crate) fn string(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<String> {
    match &node.value {
        Value::Str(s) => Ok(s.clone()),
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => {
            Ok(node.scalar_text().unwrap_or_default())
        }
        _ => Err(cx.invalid(
            node.pos,
            path,
            format!("expected a string, found {}", node.kind_name()),
        )),
    }
}

pub(crate) fn non_empty_string(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<String> {
    let s = string(cx, node, path)?;
    if s.trim().is_empty() {
        return Err(cx.invalid(node.pos, path, "expected a non-empty string"));
    }
    Ok(s)
}

/// Why `text` is not a host name or an IP address, if it is not. Addresses reach a shell: a
/// ProxyCommand (`nc %h %p`) runs through `sh -c`, so a ship at `10.0.0.1$(touch /tmp/x)`
/// would run a command there, and addresses often come from templates or generated
/// inventories. OpenSSH 9.6 refuses such names for this reason (CVE-2023-51385). Host names,
/// IPv4 and IPv6 addresses (bracketed, or with a zone) need only letters, digits and `.-_:%[]`.
pub(crate) fn host_problem(text: &str) -> Option<String> {
    if text.starts_with('-') {
        return Some("it starts with `-`, which a command would take for an option".into());
    }
    let bad = text
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || ".-_:%[]".contains(*c)))?;
    Some(format!("{} cannot be in one", describe_char(bad)))
}

/// Why `text` is not a user name, if it is not (see [`host_problem`] for why it matters).
/// Letters (any script), digits and `._-@+` are allowed, and `$` at the end (machine
/// accounts).
pub(crate) fn user_problem(text: &str) -> Option<String> {
    if text.starts_with('-') {
        return Some("it starts with `-`, which a command would take for an option".into());
    }
    let last = text.chars().count().saturating_sub(1);
    let bad = text.chars().enumerate().find(|(i, c)| {
        !(c.is_alphanumeric() || "._-@+".contains(*c) || (*c == '$' && *i == last))
    })?;
    Some(format!("{} cannot be in one", describe_char(bad.1)))
}

fn describe_char(c: char) -> String {
    match c {
        ' ' => "a space".into(),
        '`' => "a backquote".into(),
        '\t' => "a tab".into(),
        '\n' => "a line break".into(),
        c if c.is_control() => format!("the control character U+{:04X}", c as u32),
        c => format!("`{c}`"),
    }
}

/// A host name or IP address (see [`host_problem`]), located when it is not one.
pub(crate) fn host_name(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<String> {
    let s = non_empty_string(cx, node, path)?;
    match host_problem(&s) {
        None => Ok(s),
        Some(why) => Err(cx.invalid_help(
            node.pos,
            path,
            format!("`{s}` is not a host name or an IP address: {why}"),
            Some(
                "addresses reach a shell when a ProxyCommand runs, so maestro refuses them, \
                 as OpenSSH does; check the template or inventory that wrote it"
                    .to_string(),
            ),
        )),
    }
}

/// A user name (see [`user_problem`]), located when it is not one.
pub(crate) fn user_name(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<String> {
    let s = non_empty_string(cx, node, path)?;
    match user_problem(&s) {
        None => Ok(s),
        Some(why) => Err(cx.invalid_help(
            node.pos,
            path,
            format!("`{s}` is not a user name: {why}"),
            Some(
                "user names reach a shell when a ProxyCommand runs (%r), so maestro refuses \
                 them, as OpenSSH does"
                    .to_string(),
            ),
        )),
    }
}

pub(crate) fn boolean(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<bool> {
    match &node.value {
        Value::Bool(b) => Ok(*b),
        Value::Str(s) if s == "true" || s == "false" => Ok(s == "true"),
        _ => Err(cx.invalid(
            node.pos,
            path,
            format!("expected true or false, found {}", node.kind_name()),
        )),
    }
}

/// A whole number in `[min, max]`.
pub(crate) fn integer(cx: &mut Cx<'_>, node: &Node, path: &str, min: i64, max: i64) -> Result<i64> {
    let value = match &node.value {
        Value::Int(i) => Some(*i),
        Value::Str(s) => s.trim().parse::<i64>().ok(),
        Value::Float(f) if f.fract() == 0.0 && f.abs() < 9.0e15 => Some(*f as i64),
        _ => None,
    };
    match value {
        Some(v) if (min..=max).contains(&v) => Ok(v),
        Some(v) => Err(cx.invalid(
            node.pos,
            path,
            format!("{v} is out of range (expected {min} to {max})"),
        )),
        None => Err(cx.invalid(
            node.pos,
            path,
            format!("expected a whole number, found {}", describe(node)),
        )),
    }
}

pub(crate) fn unsigned<T: TryFrom<i64>>(
    cx: &mut Cx<'_>,
    node: &Node,
    path: &str,
    max: i64,
) -> Result<T> {
    let v = integer(cx, node, path, 0, max)?;
    T::try_from(v).map_err(|_| cx.invalid(node.pos, path, format!("{v} is out of range")))
}

pub(crate) fn number(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<f64> {
    let value = match &node.value {
        Value::Int(i) => Some(*i as f64),
        Value::Float(f) => Some(*f),
        Value::Str(s) => s.trim().parse::<f64>().ok(),
        _ => None,
    };
    match value {
        Some(v) if v.is_finite() && v >= 0.0 => Ok(v),
        _ => Err(cx.invalid(
            node.pos,
            path,
            format!("expected a non-negative number, found {}", describe(node)),
        )),
    }
}

/// One string or a list of strings.
pub(crate) fn string_list(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Vec<String>> {
    match &node.value {
        Value::Seq(items) => {
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                let p = format!("{path}[{i}]");
                cx.record(&p, item.pos);
                out.push(string(cx, item, &p)?);
            }
            Ok(out)
        }
        Value::Null => Ok(Vec::new()),
        _ => Ok(vec![string(cx, node, path)?]),
    }
}

/// Seconds as a number, or a duration text such as `500ms`, `10s`, `2m`, `1h`.
pub(crate) fn duration(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Duration> {
    if let Value::Str(s) = &node.value {
        return parse_duration(s).ok_or_else(|| {
            cx.invalid(
                node.pos,
                path,
                format!(
                    "invalid duration \"{}\" (expected seconds, or a number with ms, s, m or h)",
                    s.trim()
                ),
            )
        });
    }
    Ok(Duration::from_secs_f64(number(cx, node, path)?))
}

/// `1.5` (seconds), `500ms`, `10s`, `2m`, `1h`, and compounds of them as Go and docker write
/// them (`1h30m`, `2m30s`, `1m500ms`): durations as the file and the command line write them.
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut rest = text.trim();
    if rest.is_empty() {
        return None;
    }
    if rest.bytes().all(|b| b.is_ascii_digit() || b == b'.') {
        return Duration::try_from_secs_f64(rest.parse::<f64>().ok()?).ok();
    }
    let mut total = 0.0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .filter(|end| *end > 0)?;
        let n = rest[..number_end].parse::<f64>().ok()?;
        rest = &rest[number_end..];
        let unit_end = rest
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(rest.len());
        let factor = match rest[..unit_end].trim() {
            "ms" => 0.001,
            "s" => 1.0,
            "m" => 60.0,
            "h" => 3600.0,
            _ => return None,
        };
        total += n * factor;
        rest = &rest[unit_end..];
    }
    Duration::try_from_secs_f64(total).ok()
}

/// Bytes from an integer or a size with a `k`, `m`, `g` or `t` suffix (any case, optional `b`).
pub(crate) fn size(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<u64> {
    let text = match &node.value {
        Value::Int(i) if *i >= 0 => return Ok(*i as u64),
        Value::Str(s) => s.trim().to_ascii_lowercase(),
        _ => {
            return Err(cx.invalid(
                node.pos,
                path,
                format!(
                    "invalid size: expected bytes or a size like 512m, found {}",
                    describe(node)
                ),
            ));
        }
    };
    parse_size(&text).ok_or_else(|| {
        cx.invalid(
            node.pos,
            path,
            format!(
                "invalid size \"{text}\" (expected bytes, or a number with k, m or g, e.g. 512m)"
            ),
        )
    })
}

pub(crate) fn parse_size(text: &str) -> Option<u64> {
    let text = text.strip_suffix('b').unwrap_or(text);
    let split = text
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(text.len());
    let (num, unit) = text.split_at(split);
    let factor: u64 = match unit {
        "" => 1,
        "k" => 1 << 10,
        "m" => 1 << 20,
        "g" => 1 << 30,
        "t" => 1 << 40,
        _ => return None,
    };
    if num.is_empty() {
        return None;
    }
    if let Ok(n) = num.parse::<u64>() {
        return n.checked_mul(factor);
    }
    let f = num.parse::<f64>().ok()?;
    let bytes = f * factor as f64;
    (0.0..1.8e19).contains(&bytes).then_some(bytes as u64)
}

/// How a value reads in a message: the scalar itself, or its kind.
pub(crate) fn describe(node: &Node) -> String {
    match &node.value {
        Value::Str(s) => format!("\"{s}\""),
        Value::Int(_) | Value::Float(_) | Value::Bool(_) => node.scalar_text().unwrap_or_default(),
        _ => node.kind_name().to_owned(),
    }
}

/// Environment values: strings, numbers, booleans (as Python prints them, like MaestroNG) and
/// lists (space-joined).
pub(crate) fn env_value(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<String> {
    let value = env_value_of(cx, node, path)?;
    warn_if_retyped(cx, node, path, &value);
    Ok(value)
}

/// A warning when YAML 1.1 typed a plain scalar of `env` or `labels` into something else than
/// its text (`on` into `True`, `12:30` into `750`, `010` into `8`), as PyYAML and so MaestroNG
/// do: the container gets the value, the warning shows the quoted form that keeps the text.
/// `true` becoming `True` is only Python's spelling, and not warned about.
fn warn_if_retyped(cx: &mut Cx<'_>, node: &Node, path: &str, value: &str) {
    if !(path.contains(".env.") || path.contains(".labels.")) {
        return;
    }
    let Some(written) = super::yaml11::written_plain(node, &cx.src.text) else {
        return;
    };
    if written.eq_ignore_ascii_case(value) {
        return;
    }
    let key = path.rsplit('.').next().unwrap_or(path);
    let d = cx.src.diagnostic(
        node.pos,
        Some(path),
        format!(
            "`{written}` is read as `{value}`: YAML 1.1 types plain `{written}` (as PyYAML, and \
             so MaestroNG, do), and the container gets `{value}`"
        ),
        Some(format!("quote it to keep the text: `{key}: \"{written}\"`")),
    );
    cx.warnings.push(d);
}

fn env_value_of(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<String> {
    match &node.value {
        Value::Null => Ok(String::new()),
        Value::Bool(b) => Ok(if *b { "True" } else { "False" }.to_owned()),
        Value::Float(f) => Ok(super::yaml11::python_float(*f)),
        Value::Seq(items) => {
            let mut parts = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                parts.push(env_value_of(cx, item, &format!("{path}[{i}]"))?);
            }
            Ok(parts.join(" "))
        }
        Value::Map(_) => Err(cx.invalid(
            node.pos,
            path,
            "environment values must be strings, numbers, booleans or lists, found a mapping",
        )),
        _ => string(cx, node, path),
    }
}

#[cfg(test)]
mod tests {

    #[test]
    fn durations_are_plain_seconds_or_units_and_their_compounds() {
        let secs = |t: &str| parse_duration(t).map(|d| d.as_secs_f64());
        assert_eq!(secs("1.5"), Some(1.5));
        assert_eq!(secs("500ms"), Some(0.5));
        assert_eq!(secs("10 s"), Some(10.0));
        assert_eq!(secs("2m"), Some(120.0));
        assert_eq!(secs("1h30m"), Some(5400.0));
        assert_eq!(secs("2m30s"), Some(150.0));
        assert_eq!(secs("1m500ms"), Some(60.5));
        for bad in ["", "h", "1x", "1h30", "m5", "1.2.3s"] {
            assert_eq!(secs(bad), None, "{bad}");
        }
    }

    use super::*;

    #[test]
    fn sizes() {
        assert_eq!(parse_size("512"), Some(512));
        assert_eq!(parse_size("1k"), Some(1024));
        assert_eq!(parse_size("2m"), Some(2 * 1024 * 1024));
        assert_eq!(parse_size("1g"), Some(1 << 30));
        assert_eq!(parse_size("1gb"), Some(1 << 30));
        assert_eq!(parse_size("1.5k"), Some(1536));
        assert_eq!(parse_size("12q"), None);
        assert_eq!(parse_size("m"), None);
    }
}
