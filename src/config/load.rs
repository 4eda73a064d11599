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
    // Before the parser: it costs seconds (debug build) on a file of the size limit, and a
    // file past the node budget is refused only once the parser has reached that node.
    if let Some(pos) = nodes_past_limit(&src.text, MAX_NODES) {
        return Err(ConfigError::Yaml(Box::new(src.diagnostic(
            pos,
            None,
            format!("invalid YAML: {}", too_many_nodes(MAX_NODES)),
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
        warnings: Vec::new(),
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

/// The most YAML nodes (scalars, keys included, sequences and mappings) a file may have: an
/// environment file has a few thousand. The parser's budget and [`nodes_past_limit`] share it.
const MAX_NODES: usize = 250_000;

fn too_many_nodes(limit: usize) -> String {
    format!(
        "too many nodes: the document has more than {limit} (an environment file has a few \
         thousand; is this the file you meant?)"
    )
}

/// Where a cheap count of `text`'s YAML nodes, line by line and without parsing, passes
/// `limit` (the position of the node that did), if it does. The count is a lower bound of
/// what the parser counts: a line counts only the nodes it surely starts (`- ` a sequence
/// item each, `key:` a key and its value), and lines that may continue a scalar or a flow
/// collection of an earlier line (more indented than that line, after it gave its node a
/// value) count nothing, nor do comments, directives or document markers. So a file it
/// refuses is one the parser would refuse too, only after parsing up to that node.
fn nodes_past_limit(text: &str, limit: usize) -> Option<Pos> {
    let mut count = 0usize;
    // Lines more indented than this continue the value of an earlier line.
    let mut value_of: Option<usize> = None;
    for (n, line) in text.lines().enumerate() {
        let rest = line.trim_start_matches(' ');
        let indent = line.len() - rest.len();
        if rest.is_empty() || rest.starts_with('#') {
            continue;
        }
        if value_of.is_some_and(|parent| indent > parent) {
            continue;
        }
        value_of = None;
        if rest.starts_with(['\t', '%']) || rest.starts_with("---") || rest.starts_with("...") {
            continue;
        }
        let mut col = indent;
        let mut rest = rest;
        let mut last = None;
        // `- - key: value`: an item per dash, then maybe a key.
        loop {
            if rest == "-" {
                count += 1;
                last = Some(col);
                rest = "";
                break;
            }
            let Some(after) = rest.strip_prefix("- ") else {
                break;
            };
            count += 1;
            last = Some(col);
            let after_trim = after.trim_start_matches(' ');
            col += 2 + after.len() - after_trim.len();
            rest = after_trim;
        }
        if let Some(value) = plain_key_value(rest) {
            count += 2;
            last = Some(col);
            rest = value;
        }
        if count > limit {
            return Some(Pos {
                line: n + 1,
                column: last.unwrap_or(col) + 1,
            });
        }
        // A value given on this line (a scalar, the start of a quoted or block scalar or of a
        // flow collection, an anchor, a tag, a quoted key...) may go on over more indented
        // lines: they count nothing. (Nested nodes under an anchor or a tag are skipped too:
        // the count stays a lower bound.)
        let value = rest.trim_start_matches(' ');
        if !value.is_empty() && !value.starts_with('#') {
            value_of = Some(indent);
            // A quoted scalar or a flow collection left open may go on at any indentation:
            // past that, lines cannot be told apart without parsing. The parser decides.
            if leaves_open(value) {
                return None;
            }
        }
    }
    None
}

/// Whether `value` (the rest of a line) opens a quoted scalar or a flow collection that it
/// does not close. A quote opens a scalar only where a scalar may begin (at the start, after
/// `[`, `{`, `,` or `:`), so the apostrophe of `don't` does not count; a comment ends the line.
fn leaves_open(value: &str) -> bool {
    let mut depth = 0i64;
    let mut quote: Option<char> = None;
    let mut prev = ' ';
    let mut token_start = true;
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some('"') if c == '\\' => {
                chars.next();
            }
            Some(q) if c == q => {
                if q == '\'' && chars.peek() == Some(&'\'') {
                    chars.next();
                } else {
                    quote = None;
                }
            }
            Some(_) => {}
            None => match c {
                '#' if prev == ' ' => break,
                '"' | '\'' if token_start => quote = Some(c),
                '[' | '{' => depth += 1,
                ']' | '}' => depth -= 1,
                _ => {}
            },
        }
        if quote.is_none() && c != ' ' {
            token_start = matches!(c, '[' | '{' | ',' | ':');
        }
        prev = c;
    }
    quote.is_some() || depth != 0
}

/// `key: value` or `key:` with a plain key: the text after the colon.
fn plain_key_value(rest: &str) -> Option<&str> {
    let first = rest.chars().next()?;
    if !(first.is_alphanumeric() || matches!(first, '_' | '/' | '.' | '$')) {
        return None;
    }
    let end = rest
        .find(": ")
        .or_else(|| rest.ends_with(':').then(|| rest.len() - 1))?;
    let key = &rest[..end];
    if key.contains(['"', '\'', '[', '{', '#', ',']) {
        return None;
    }
    Some(&rest[end + 1..])
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
        budget: serde_saphyr::budget! {
            max_nodes: MAX_NODES,
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
            too_many_nodes(count)
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

    /// The issue's file: a 9 MB list of 260 000 items.
    fn huge_list(head: &str) -> String {
        let mut text = String::from(head);
        text.push_str("x:\n");
        for i in 0..260_000 {
            text.push_str(&format!("  - item-{i:06}-abcdefghijklmnopqrstu\n"));
        }
        text
    }

    #[test]
    fn a_file_past_the_node_budget_is_refused_before_it_is_parsed() {
        // The parser would stop at line 2 (a key given twice); the count refuses first.
        let text = huge_list("name: x\nname: y\nships: {}\n");
        let err = load_str_with_vars(&text, "big.yaml", Path::new("."), &BTreeMap::new())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(
            err.contains(
                "invalid YAML: too many nodes: the document has more than 250000 (an environment \
                 file has a few thousand; is this the file you meant?)"
            ) && err.contains("big.yaml:249997:3"),
            "{err}"
        );
    }

    /// Whether the parser, with a budget of `limit` nodes, refuses `text` for its nodes.
    fn parser_refuses(text: &str, limit: usize) -> bool {
        let options = serde_saphyr::options! {
            budget: serde_saphyr::budget! { max_nodes: limit },
        };
        serde_saphyr::from_str_with_options::<Node>(text, options)
            .is_err_and(|e| e.to_string().contains("Nodes"))
    }

    /// The count is a lower bound of the parser's: whenever it refuses, the parser would too.
    #[test]
    fn the_node_count_never_exceeds_the_parsers() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let mut texts: Vec<String> = [
            // Scalars that go on over lines, at any indentation for quoted ones.
            "a: \"x\n- y\nz: w\"\nb: 1\n",
            "a: 'it''s\n- y'\nb: [1,\n2, c: d]\n",
            "a: |\n  - y\n  z: w\nb: >-\n  - q\n",
            "- a: x\n  b: y\n- - b\n  - c\n-\n  d: e\n",
            "k: &anchor\n  x: 1\nl: *anchor\n? complex\n: value\n",
            "%YAML 1.2\n--- # doc\n\"q\": 1\n'r': [a, {b: c}]\nmsg: don't # it's\n",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        for dir in ["examples", "tests/fixtures", "tests/fixtures/parity"] {
            for entry in std::fs::read_dir(root.join(dir))
                .into_iter()
                .flatten()
                .flatten()
            {
                if let Ok(text) = std::fs::read_to_string(entry.path()) {
                    texts.push(text);
                }
            }
        }
        let inline = 6;
        for (i, text) in texts.iter().enumerate() {
            // Only YAML the parser takes (a template is not YAML yet); the cases above must be.
            if let Err(e) = serde_saphyr::from_str::<Node>(text) {
                assert!(
                    i >= inline,
                    "case {i} is not YAML the parser takes: {e}\n{text}"
                );
                continue;
            }
            for limit in [0, 1, 2, 3, 5, 8, 13, 21, 50, 100, 200, 500, 1000] {
                if nodes_past_limit(text, limit).is_some() {
                    assert!(
                        parser_refuses(text, limit),
                        "counted more than {limit} nodes where the parser does not:\n{text}"
                    );
                }
            }
        }
    }

    #[test]
    fn stdin_style_text_loads_with_a_name() {
        let vars = BTreeMap::new();
        let env = load_str_with_vars("name: x\nships: {}\n", "<stdin>", Path::new("."), &vars);
        assert_eq!(env.map(|e| e.source).ok().as_deref(), Some("<stdin>"));
    }
}
