//! Jinja2 rendering of the environment file (MaestroNG renders before parsing YAML).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment as Jinja, UndefinedBehavior, Value};

use super::MAX_FILE_BYTES;
use super::error::{ConfigError, SourceText};
use super::node::Pos;
use super::pycompat;

/// Renders `text` (named `name` in errors) with the process environment as `env`;
/// `{% include %}` resolves against `base_dir`.
pub(crate) fn render(
    text: &str,
    name: &str,
    base_dir: &Path,
    vars: &BTreeMap<String, String>,
) -> Result<String, ConfigError> {
    // A file without template syntax renders to itself: skip the engine, keep exact text.
    if !text.contains("{{") && !text.contains("{%") && !text.contains("{#") {
        return Ok(text.to_owned());
    }
    let mut jinja = Jinja::new();
    // Jinja2's default (keep_trailing_newline=False), which MaestroNG keeps: one trailing
    // newline of each source is dropped, so `"{% include 'f' %}"` has no newline inside.
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(false)
        .build()
    {
        jinja.set_syntax(syntax);
    }
    // Python idioms (str and dict methods, `%`, list.append, printing None as `None`).
    jinja.set_unknown_method_callback(pycompat::unknown_method);
    jinja.set_formatter(pycompat::formatter);
    jinja.add_function(pycompat::PERCENT_FN, pycompat::percent_fn);
    jinja.add_function(pycompat::LIST_FN, pycompat::list_fn);
    jinja.add_filter("list", pycompat::list_filter);
    // SemiStrict: an unset variable is an error when printed, yet `{% if env.X %}` and
    // `env.X | default('y')` still work as in Jinja2.
    jinja.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    let include_dir: PathBuf = base_dir.to_path_buf();
    jinja.set_loader(move |include: &str| {
        let path = include_dir.join(include);
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() > MAX_FILE_BYTES => Err(minijinja::Error::new(
                minijinja::ErrorKind::InvalidOperation,
                format!("included file {} is larger than 10 MB", path.display()),
            )),
            Ok(_) => std::fs::read_to_string(&path)
                .map(|t| Some(pycompat::rewrite(&t)))
                .map_err(|e| {
                    minijinja::Error::new(
                        minijinja::ErrorKind::TemplateNotFound,
                        format!("cannot read included file {}: {e}", path.display()),
                    )
                }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(minijinja::Error::new(
                minijinja::ErrorKind::TemplateNotFound,
                format!("cannot read included file {}: {e}", path.display()),
            )),
        }
    });
    let template_error = |e: minijinja::Error| template_diagnostic(&e, text, name, base_dir);
    jinja
        .add_template_owned(name.to_owned(), pycompat::rewrite(text))
        .map_err(template_error)?;
    let template = jinja.get_template(name).map_err(template_error)?;
    let context = minijinja::context! { env => Value::from(vars.clone()) };
    let rendered = template.render(context).map_err(template_error)?;
    if rendered.len() as u64 > MAX_FILE_BYTES {
        return Err(ConfigError::TooLarge {
            file: format!("{name} (after template rendering)"),
            size: rendered.len() as u64,
            limit: MAX_FILE_BYTES,
        });
    }
    Ok(rendered)
}

fn template_diagnostic(
    e: &minijinja::Error,
    text: &str,
    name: &str,
    base_dir: &Path,
) -> ConfigError {
    // An error in an included file comes wrapped in one for the `{% include %}` line: point
    // at the innermost one that knows its place, in the included file.
    let mut e = e;
    while let Some(inner) = std::error::Error::source(e)
        .and_then(|s| s.downcast_ref::<minijinja::Error>())
        .filter(|inner| inner.line().is_some() && inner.name().is_some())
    {
        e = inner;
    }
    // The error may sit in an included file: show that file's text and name.
    let (file, source) = match e.name() {
        Some(n) if n != name => (
            base_dir.join(n).display().to_string(),
            std::fs::read_to_string(base_dir.join(n)).unwrap_or_default(),
        ),
        _ => (name.to_owned(), text.to_owned()),
    };
    let line = e.line().unwrap_or(0);
    let column = match (e.range(), line) {
        (Some(range), l) if l > 0 => column_of(&source, range.start).unwrap_or(1),
        _ => 0,
    };
    let mut message = match e.kind() {
        minijinja::ErrorKind::UndefinedError => {
            "template error: undefined value (a variable or an `env` entry that is not set; \
             use `| default(...)` for optional ones)"
                .to_owned()
        }
        minijinja::ErrorKind::TemplateNotFound => {
            "template error: included file not found".to_owned()
        }
        minijinja::ErrorKind::SyntaxError => "template syntax error".to_owned(),
        _ => "template error".to_owned(),
    };
    if let Some(detail) = e.detail() {
        message.push_str(": ");
        message.push_str(detail);
    }
    let help = match e.kind() {
        minijinja::ErrorKind::UnknownFilter => unknown_name(e.detail(), "filter", FILTERS),
        minijinja::ErrorKind::UnknownTest => unknown_name(e.detail(), "test", TESTS),
        _ => None,
    };
    let src = SourceText {
        name: file,
        text: source,
        rendered_differs: false,
    };
    ConfigError::Template(Box::new(src.diagnostic(
        Pos { line, column },
        None,
        message,
        help,
    )))
}

/// The filters the template engine has (minijinja's built-ins and ours), for a "did you
/// mean"; a unit test checks each against the engine, so the list cannot drift.
const FILTERS: &[&str] = &[
    "abs",
    "attr",
    "batch",
    "bool",
    "capitalize",
    "count",
    "d",
    "default",
    "dictsort",
    "e",
    "escape",
    "first",
    "float",
    "groupby",
    "indent",
    "int",
    "items",
    "join",
    "last",
    "length",
    "lines",
    "list",
    "lower",
    "map",
    "max",
    "min",
    "pprint",
    "reject",
    "rejectattr",
    "replace",
    "reverse",
    "round",
    "safe",
    "select",
    "selectattr",
    "slice",
    "sort",
    "split",
    "string",
    "sum",
    "title",
    "trim",
    "unique",
    "upper",
];

/// The tests the template engine has (`is defined`, ...), likewise.
const TESTS: &[&str] = &[
    "boolean",
    "defined",
    "divisibleby",
    "endingwith",
    "eq",
    "equalto",
    "escaped",
    "even",
    "false",
    "filter",
    "float",
    "ge",
    "gt",
    "in",
    "integer",
    "iterable",
    "le",
    "lower",
    "lt",
    "mapping",
    "ne",
    "none",
    "number",
    "odd",
    "safe",
    "sameas",
    "sequence",
    "startingwith",
    "string",
    "test",
    "true",
    "undefined",
    "upper",
];

/// "did you mean" for minijinja's `filter NAME is unknown` / `test NAME is unknown`.
fn unknown_name(detail: Option<&str>, kind: &str, known: &[&str]) -> Option<String> {
    let name = detail?
        .strip_prefix(kind)?
        .trim_start()
        .strip_suffix("is unknown")?
        .trim();
    super::error::did_you_mean(name, known.iter().copied())
}

fn column_of(text: &str, byte_offset: usize) -> Option<usize> {
    let before = text.get(..byte_offset)?;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    Some(before[line_start..].chars().count() + 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> BTreeMap<String, String> {
        BTreeMap::from([("USER".to_owned(), "alice".to_owned())])
    }

    #[test]
    fn renders_env_set_and_loops() {
        let text = "{% set n = 2 %}user: {{ env.USER }}\n{% for i in range(n) %}i{{ i }}: {{ i }}\n{% endfor %}";
        let out = render(text, "t.yaml", Path::new("."), &vars()).unwrap_or_default();
        assert_eq!(out, "user: alice\ni0: 0\ni1: 1\n");
    }

    #[test]
    fn undefined_env_var_is_located() {
        let text = "name: x\nuser: {{ env.NOPE_NOT_SET }}\n";
        let err = render(text, "t.yaml", Path::new("."), &vars()).err();
        let msg = err.map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("t.yaml:2:"), "{msg}");
        assert!(msg.contains("undefined"), "{msg}");
    }

    #[test]
    fn an_unknown_filter_or_test_gets_the_closest_name() {
        let err = render(
            "a: {{ 'x' | defualt('y') }}\n",
            "t.yaml",
            Path::new("."),
            &vars(),
        );
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("did you mean `default`?"), "{msg}");
        let err = render(
            "{% if x is defnied %}a{% endif %}\n",
            "t.yaml",
            Path::new("."),
            &vars(),
        );
        let msg = err.err().map(|e| e.to_string()).unwrap_or_default();
        assert!(msg.contains("did you mean `defined`?"), "{msg}");
    }

    #[test]
    fn every_name_offered_is_one_the_engine_has() {
        for name in FILTERS {
            let text = format!("a: {{{{ 1 | {name} }}}}\n");
            let msg = render(&text, "t.yaml", Path::new("."), &vars())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!msg.contains("is unknown"), "filter {name}: {msg}");
        }
        for name in TESTS {
            let text = format!("{{% if 1 is {name} %}}a{{% endif %}}\n");
            let msg = render(&text, "t.yaml", Path::new("."), &vars())
                .err()
                .map(|e| e.to_string())
                .unwrap_or_default();
            assert!(!msg.contains("is unknown"), "test {name}: {msg}");
        }
    }

    #[test]
    fn optional_values_work() {
        let text = "a: {{ env.NOPE | default('d') }}\n{% if env.NOPE %}b: 1{% endif %}\n";
        let out = render(text, "t.yaml", Path::new("."), &vars()).unwrap_or_default();
        // One trailing newline of the source is dropped, as Jinja2 does by default.
        assert_eq!(out, "a: d\n");
    }

    // The expected strings below are what Jinja2 3.1 renders for the same templates (with
    // `env` = {"USER": "alice", "HOSTS": "a,b,c"}), checked side by side while writing them.

    fn py(text: &str) -> String {
        let vars = BTreeMap::from([
            ("USER".to_owned(), "alice".to_owned()),
            ("HOSTS".to_owned(), "a,b,c".to_owned()),
        ]);
        match render(text, "t.yaml", Path::new("."), &vars) {
            Ok(out) => out,
            Err(e) => format!("ERROR: {e}"),
        }
    }

    #[test]
    fn env_get_with_and_without_default() {
        assert_eq!(
            py(
                "{{ env.get('NOPE', 'dflt') }}|{{ env.get('USER') }}|{{ env.get('NOPE') }}|{{ env.get('USER', 'x') }}"
            ),
            "dflt|alice|None|alice"
        );
    }

    #[test]
    fn str_split() {
        assert_eq!(
            py(
                "{{ 'a,b'.split(',') }}|{% for h in env.HOSTS.split(',') %}{{ h }};{% endfor %}|{{ ' a  b '.split() }}|{{ 'a,b,c'.split(',', 1) }}"
            ),
            "['a', 'b']|a;b;c;|['a', 'b']|['a', 'b,c']"
        );
    }

    #[test]
    fn str_methods() {
        assert_eq!(
            py(
                "{{ 'Ab'.upper() }} {{ 'Ab'.lower() }} {{ 'a-b-c'.replace('-', '_') }} [{{ '  x '.strip() }}] {{ 'xyz'.startswith('xy') }} {{ 'xyz'.endswith('z') }}"
            ),
            "AB ab a_b_c [x] True True"
        );
        assert_eq!(
            py(
                "[{{ '  x '.lstrip() }}][{{ '  x '.rstrip() }}] {{ 'hello world'.title() }} {{ 'hELLO'.capitalize() }} {{ '-'.join(['a', 'b']) }} {{ 'banana'.count('a') }} {{ 'banana'.find('n') }} {{ 'banana'.find('z') }} {{ '123'.isdigit() }} {{ '12a'.isdigit() }}"
            ),
            "[x ][  x] Hello World Hello a-b 3 2 -1 True False"
        );
        assert_eq!(
            py(
                "{{ 'x/y'.strip('/x') }} {{ 'a,b,c'.rsplit(',', 1) }} {{ '42'.zfill(5) }} {{ '-42'.zfill(5) }} [{{ 'ab'.ljust(5, '.') }}][{{ 'ab'.rjust(5) }}][{{ 'ab'.center(5, '*') }}][{{ 'abc'.center(6, '*') }}] {{ 'k=v=w'.partition('=') }} {{ 'v1.2'.removeprefix('v') }}"
            ),
            "y ['a,b', 'c'] 00042 -0042 [ab...][   ab][**ab*][*abc**] ('k', '=', 'v=w') 1.2"
        );
    }

    #[test]
    fn more_str_methods_and_bools_in_percent() {
        assert_eq!(
            py(
                "{{ env['USER'] }} {{ ' '.isspace() }} {{ 'abab'.rfind('b') }} {{ 'AbC'.swapcase() }} {{ 'abc'.startswith(('x', 'a')) }} {{ 'a\\nb'.splitlines() }}"
            ),
            "alice True 3 aBc True ['a', 'b']"
        );
        assert_eq!(
            py(
                "{{ ' a b  c '.rsplit() }} {{ ' a b  c '.rsplit(None, 1) }} {{ 'a.b.c'.rsplit('.') }}"
            ),
            "['a', 'b', 'c'] [' a b', 'c'] ['a', 'b', 'c']"
        );
        assert_eq!(
            py(
                "[{{ 'a'.center(4) }}][{{ 'ab'.center(5) }}][{{ 'abc'.center(4) }}][{{ 'x'.center(2, '-') }}]"
            ),
            "[ a  ][  ab ][abc ][x-]"
        );
        assert_eq!(
            py("{{ '%d' % true }} {{ '%s/%d/%.1f/%5s' % (true, true, false, false) }}"),
            "1 True/1/0.0/False"
        );
    }

    #[test]
    fn str_format() {
        assert_eq!(
            py(
                "{{ '{}:{}'.format('zk', 2181) }} {{ '{0}-{1}-{0}'.format('a', 'b') }} {{ '{name}@{host}'.format(name='u', host='h') }} {{ '{:>5}|{:<4}|{:.2f}'.format('x', 'y', 3.14159) }} {{ '{}'.format(none) }} {{ '{}'.format(true) }}"
            ),
            "zk:2181 a-b-a u@h     x|y   |3.14 None True"
        );
    }

    #[test]
    fn percent_formatting() {
        assert_eq!(
            py(
                "{{ '%s-%d' % ('a', 1) }} {{ '%s' % 'x' }} {{ '100%%' % () }} [{{ '%5d' % 42 }}][{{ '%-5s' % 'ab' }}] {{ '%.2f' % 3.14159 }} {{ '%s' % none }} {{ '%s' % [1, 'a'] }} {{ '%(a)s+%(b)s' % {'a': 1, 'b': 2} }}"
            ),
            "a-1 x 100% [   42][ab   ] 3.14 None [1, 'a'] 1+2"
        );
    }

    #[test]
    fn percent_keeps_precedence_and_remainder() {
        assert_eq!(
            py(
                "{{ 7 % 3 }} {{ -7 % 3 }} {{ 2 * 7 % 4 }} {{ '%s' % 'a' ~ 'b' }} {{ 1 + 10 % 3 }} {% if 4 % 2 == 0 %}even{% endif %} {{ '%s:%s' % ('h', 8000 + 1) }} {{ '%s' % 'x'|upper }} {% set fmt = '%s/%s' %}{{ fmt % ('a', 'b') }}"
            ),
            "1 2 2 ab 2 even h:8001 X a/b"
        );
        assert_eq!(
            py(
                "{{ -3 % 2 }} {{ 5 % -3 }} {{ 2 ** 3 % 5 }} {{ 7.5 % 2 }} {{ '%s|%s' % (1 is odd, 2 is divisibleby(2)) }} {{ 'abc'[1] }} {{ 10 // 3 % 2 }}"
            ),
            "1 -1 3 1.5 True|True b 1"
        );
        assert_eq!(
            py(
                "{% for i in range(4) %}{% if loop.index % 2 %}o{% else %}e{% endif %}{% endfor %} {% for x in ['a','b'] %}{{ '%s%d' % (x, loop.index) }}{% endfor %}"
            ),
            "oeoe a1b2"
        );
    }

    #[test]
    fn percent_is_left_alone_in_text_comments_and_raw() {
        assert_eq!(
            py(
                "{# a % b [] #}{% raw %}{{ '%s' % x }} [1]{% endraw %}{{- ' 50%' -}} {{ '%d%%' % 5 }}"
            ),
            "{{ '%s' % x }} [1] 50%5%"
        );
    }

    #[test]
    fn dict_methods_in_insertion_order() {
        assert_eq!(
            py(
                "{% set d = {'b': 1, 'a': 2} %}{% for k, v in d.items() %}{{ k }}={{ v }};{% endfor %} {{ d.keys()|list }} {{ d.values()|list }} {{ d.get('a') }} {{ d.get('z') }} {{ d.get('z', 0) }} {{ d }}"
            ),
            "b=1;a=2; ['b', 'a'] [1, 2] 2 None 0 {'b': 1, 'a': 2}"
        );
    }

    #[test]
    fn list_append_and_friends() {
        assert_eq!(
            py(
                "{% set l = [] %}{% for i in range(3) %}{% set _ = l.append('x%d' % i) %}{% endfor %}{{ l }} {{ l|join(',') }} {{ l|length }} {{ l[0] }} {{ l[-1] }} {% set m = ['a'] %}{% set _ = m.append('b') %}{% set _ = m.extend(['c']) %}{{ m }} {{ m.pop() }} {{ m }} {{ 'a' in m }} {{ m == ['a', 'b'] }} {% if [] %}t{% else %}f{% endif %} {{ m + ['z'] }}"
            ),
            "['x0', 'x1', 'x2'] x0,x1,x2 3 x0 x2 ['a', 'b', 'c'] c ['a', 'b'] True True f ['a', 'b', 'z']"
        );
        assert_eq!(
            py(
                "{% set p = 'a,b'.split(',') %}{% set _ = p.append('c') %}{{ p|join(';') }} {{ [1, [2, 'x']] }} {{ (1,) }} {{ ('a', 2) }}"
            ),
            "a;b;c [1, [2, 'x']] (1,) ('a', 2)"
        );
        assert_eq!(
            py(
                "{{ [['%s' % 1]] }} {{ {'k': ['%03d' % 7]} }} {{ ('%s' % 'x', 2) }} {{ [1,2][1] }} {{ [3,1,2]|sort }} {{ [1, 2] | sum }} {{ [1,2][1:] }}"
            ),
            "[['1']] {'k': ['007']} ('x', 2) 2 [1, 2, 3] 3 [2]"
        );
    }

    #[test]
    fn maestrong_zookeeper_idiom() {
        let text = "{%- set name = 'zk-kafka' %}{%- with servers = {'ship': [('zk-1', 1), ('zk-2', 2)]} %}{%- set ids = [] %}{%- for ship, details in servers.items() %}{%- for name, sid in details %}{%- set DO = ids.append('{}:{}'.format(name, sid)) %}{%- endfor %}{%- endfor %}{{ ids|join(',') }} {{ name }}{%- endwith %}";
        assert_eq!(py(text), "zk-1:1,zk-2:2 zk-kafka");
    }

    #[test]
    fn prints_as_python() {
        assert_eq!(
            py(
                r#"{{ none }} {{ true }} {{ false }} {{ [none, true] }} {{ 1.5 }} {{ 10 / 4 }} {{ "it's" }} {{ ["it's", 'a"b', 'c\\d'] }}"#
            ),
            r#"None True False [None, True] 1.5 2.5 it's ["it's", 'a"b', 'c\\d']"#
        );
    }

    #[test]
    fn include_drops_the_included_files_trailing_newline() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("inc.yaml"), "included\n").unwrap_or_default();
        let text = "name: \"{% include 'inc.yaml' %}\"\nnext: 1\n";
        let out = render(text, "t.yaml", dir.path(), &vars()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(out, "name: \"included\"\nnext: 1");
    }

    #[test]
    fn error_after_a_rewritten_line_keeps_its_line() {
        let text = "a: {{ '%s-%s' %\n ('a',\n 'b') }}\nb: {{ [1] }}\nc: {{ nope.x }}\n";
        let msg = render(text, "t.yaml", Path::new("."), &vars())
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(msg.contains("t.yaml:5:"), "{msg}");
    }

    #[test]
    fn list_filter_gives_a_list_that_can_change() {
        assert_eq!(
            py("{% set l = env.HOSTS|list %}{% set _ = l.append('d') %}{{ l }}"),
            "['a', ',', 'b', ',', 'c', 'd']"
        );
    }

    #[test]
    fn a_list_cannot_hold_itself() {
        for text in [
            "{% set l = [] %}{% set _ = l.append(l) %}{{ l }}",
            "{% set a = [] %}{% set b = [a] %}{% set _ = a.append({'k': [b]}) %}{{ a == b }}",
            "{% set a = [] %}{% set _ = a.extend([a]) %}{{ a|string }}",
        ] {
            assert!(py(text).contains("cannot be put inside itself"), "{text}");
        }
    }

    #[test]
    fn huge_widths_are_refused_before_they_allocate() {
        for text in [
            "{{ '%999999999d' % 1 }}",
            "{{ '%(a)999999999s' % {'a': 1} }}",
            "{{ '{:>999999999}'.format(1) }}",
            "{{ '{0:.99999999999999999999f}'.format(1.5) }}",
        ] {
            assert!(py(text).contains("is larger than"), "{text}: {}", py(text));
        }
        // Long numbers in the text itself are fine.
        assert_eq!(py("{{ 'id-123456789-%s' % 1 }}"), "id-123456789-1");
        assert_eq!(py("{{ 'id-123456789-{}'.format(1) }}"), "id-123456789-1");
    }

    // Jinja2 would append here (`sort` gives a Python list); maestro cannot, and says so.
    #[test]
    fn append_to_a_list_that_cannot_change_says_so() {
        let out = py("{% set l = [3, 1]|sort %}{{ l.append('d') }}");
        assert!(out.contains("cannot append"), "{out}");
    }
}
