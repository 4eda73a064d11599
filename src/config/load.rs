//! Reading the file (or stdin), rendering the template, parsing the YAML.

use std::collections::{BTreeMap, HashMap};
use std::io::Read;
use std::path::Path;

use super::convert::convert;
use super::error::{ConfigError, SourceText};
use super::model::Environment;
use super::node::{Node, Pos, Value};
use super::reader::Cx;
use super::{MAX_FILE_BYTES, template, validate, yaml11};

/// Loads, renders, parses and validates the environment file at `path` (`-` = stdin).
pub fn load(path: &Path) -> Result<Environment, ConfigError> {
    let (name, text, base_dir) = if path.as_os_str() == "-" {
        let text = read_limited(std::io::stdin().lock(), "<stdin>")?;
        let cwd = std::env::current_dir().unwrap_or_else(|_| ".".into());
        ("<stdin>".to_owned(), text, cwd)
    } else {
        let name = path.display().to_string();
        let file = std::fs::File::open(path).map_err(|source| ConfigError::Read {
            file: name.clone(),
            source,
        })?;
        if let Ok(meta) = file.metadata() {
            if meta.is_dir() {
                return Err(ConfigError::Read {
                    file: name,
                    source: std::io::Error::other("it is a directory"),
                });
            }
            if meta.len() > MAX_FILE_BYTES {
                return Err(ConfigError::TooLarge {
                    file: name,
                    size: meta.len(),
                    limit: MAX_FILE_BYTES,
                });
            }
        }
        let text = read_limited(file, &name)?;
        let base = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .map(Path::to_path_buf)
            .unwrap_or_else(|| ".".into());
        (name, text, base)
    };
    load_str(&text, &name, &base_dir)
}

/// Reads at most the limit plus one byte, so that a huge stream is refused without reading it.
fn read_limited(reader: impl Read, name: &str) -> Result<String, ConfigError> {
    let mut bytes = Vec::new();
    reader
        .take(MAX_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| ConfigError::Read {
            file: name.to_owned(),
            source,
        })?;
    if bytes.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            file: name.to_owned(),
            size: bytes.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|e| ConfigError::Read {
        file: name.to_owned(),
        source: std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("not UTF-8 text: {e}"),
        ),
    })
}

/// Loads an environment from text; `name_for_errors` names it in messages and `base_dir`
/// anchors includes, envfiles and key paths.
pub fn load_str(
    text: &str,
    name_for_errors: &str,
    base_dir: &Path,
) -> Result<Environment, ConfigError> {
    let vars: BTreeMap<String, String> = std::env::vars_os()
        .filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?)))
        .collect();
    load_str_with_vars(text, name_for_errors, base_dir, &vars)
}

/// As [`load_str`], with an explicit `env` for the template (tests, reproducible renders).
pub fn load_str_with_vars(
    text: &str,
    name_for_errors: &str,
    base_dir: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<Environment, ConfigError> {
    if text.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            file: name_for_errors.to_owned(),
            size: text.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    let rendered = template::render(text, name_for_errors, base_dir, vars)?;
    let src = SourceText {
        name: name_for_errors.to_owned(),
        rendered_differs: rendered.lines().count() != text.lines().count(),
        text: rendered,
    };
    if src.text.trim().is_empty() || is_only_comments(&src.text) {
        return Err(ConfigError::Invalid(Box::new(src.diagnostic(
            Pos::default(),
            None,
            "the environment file is empty (expected a mapping with `name`, `ships` and `services`)",
            None,
        ))));
    }
    let mut root = parse_yaml(&src)?;
    yaml11::retype(&mut root, &src.text);
    if matches!(root.value, Value::Null) {
        return Err(ConfigError::Invalid(Box::new(src.diagnostic(
            Pos::default(),
            None,
            "the environment file is empty (expected a mapping with `name`, `ships` and `services`)",
            None,
        ))));
    }
    let mut cx = Cx {
        src: &src,
        schema: 1,
        base_dir: base_dir.to_path_buf(),
        home: vars.get("HOME").cloned(),
        spans: HashMap::new(),
        key_spans: HashMap::new(),
        semantic: Vec::new(),
    };
    let env = convert(&mut cx, &root, name_for_errors)?;
    validate::validate(&mut cx, &env);
    if !cx.semantic.is_empty() {
        cx.semantic.sort_by_key(|d| (d.line, d.column));
        cx.semantic.dedup();
        return Err(ConfigError::Semantic(cx.semantic));
    }
    Ok(env)
}

fn is_only_comments(text: &str) -> bool {
    text.lines()
        .all(|l| l.trim().is_empty() || l.trim_start().starts_with('#') || l.trim() == "---")
}

fn parse_yaml(src: &SourceText) -> Result<Node, ConfigError> {
    let options = serde_saphyr::options! {
        with_snippet: false,
        leading_zero_numbers_as_strings: true,
        // `.inf` and `.nan` are typed by yaml11, as PyYAML types them.
        non_finite_float_policy: serde_saphyr::NonFiniteFloatPolicy::AsString,
        // An environment file replays a few hundred aliased nodes at most; the default (a
        // million) lets an alias bomb burn seconds of CPU before it is refused.
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 50_000,
        },
    };
    serde_saphyr::from_str_with_options::<Node>(&src.text, options).map_err(|e| {
        let pos = e
            .location()
            .map(|l| Pos {
                line: usize::try_from(l.line()).unwrap_or(0),
                column: usize::try_from(l.column()).unwrap_or(0),
            })
            .unwrap_or_default();
        let raw = e.without_snippet().to_string();
        ConfigError::Yaml(Box::new(src.diagnostic(
            pos,
            None,
            yaml_message(&raw),
            None,
        )))
    })
}

/// serde-saphyr's message, without the position it repeats and the advice aimed at programmers.
fn yaml_message(raw: &str) -> String {
    let mut msg = raw.trim().trim_start_matches("error:").trim().to_owned();
    if msg.starts_with("line ")
        && let Some((_, rest)) = msg.split_once(": ")
    {
        msg = rest.to_owned();
    }
    if let Some((head, _)) = msg.split_once(", set DuplicateKeyPolicy") {
        msg = format!("{head} (a key may appear only once in a mapping)");
    }
    // Positions are shown separately, in the user's terms.
    if let Ok(re) = regex::Regex::new(r" ?\(?(defined|used)? ?at line \d+,? column \d+\)?") {
        msg = re.replace_all(&msg, "").into_owned();
    }
    if msg.contains("budget breached")
        || msg.contains("alias") && msg.contains("limit")
        || msg.contains("replay") && msg.contains("exceeded")
    {
        let what = msg
            .split_once("budget breached: ")
            .map_or(msg.as_str(), |(_, w)| w)
            .to_owned();
        let count = what
            .chars()
            .filter(char::is_ascii_digit)
            .collect::<String>()
            .parse::<usize>()
            .map(|n| n.saturating_sub(1))
            .unwrap_or_default();
        // A node count reached through aliases is the bomb; without them, a plain big file.
        let through_aliases = raw.contains("used at");
        msg = if what.starts_with("Nodes") && !through_aliases {
            format!(
                "too many nodes: the document has more than {count} (an environment file has \
                 a few thousand; is this the file you meant?)"
            )
        } else if what.starts_with("Depth") {
            format!("the document nests deeper than {count} levels")
        } else {
            "the document grows too large once its aliases are expanded (an alias bomb?)".to_owned()
        };
    }
    if msg.lines().count() > 1 {
        msg = msg.lines().next().unwrap_or_default().to_owned();
    }
    format!("invalid YAML: {msg}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yaml_messages_drop_repeated_positions_and_programmer_advice() {
        assert_eq!(
            yaml_message("error: line 2 column 12: unclosed bracket '[' at line 2, column 12"),
            "invalid YAML: unclosed bracket '['"
        );
        let bomb = yaml_message(
            "budget breached: Nodes { nodes: 250001 } at line 3, column 34 (defined at line 7, column 9) (used at line 8, column 15)",
        );
        assert_eq!(
            bomb,
            "invalid YAML: the document grows too large once its aliases are expanded (an alias bomb?)"
        );
        let big = yaml_message("budget breached: Nodes { nodes: 250001 } at line 83334, column 5");
        assert_eq!(
            big,
            "invalid YAML: too many nodes: the document has more than 250000 (an environment \
             file has a few thousand; is this the file you meant?)"
        );
    }

    #[test]
    fn stdin_style_text_loads_with_a_name() {
        let vars = BTreeMap::new();
        let env = load_str_with_vars("name: x\nships: {}\n", "<stdin>", Path::new("."), &vars);
        assert_eq!(env.map(|e| e.source).ok().as_deref(), Some("<stdin>"));
    }
}
