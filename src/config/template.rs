//! Jinja2 rendering of the environment file (MaestroNG renders before parsing YAML).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use minijinja::{Environment as Jinja, UndefinedBehavior, Value};

use super::MAX_FILE_BYTES;
use super::error::{ConfigError, SourceText};
use super::node::Pos;

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
    if let Ok(syntax) = minijinja::syntax::SyntaxConfig::builder()
        .keep_trailing_newline(true)
        .build()
    {
        jinja.set_syntax(syntax);
    }
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
            Ok(_) => std::fs::read_to_string(&path).map(Some).map_err(|e| {
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
        .add_template_owned(name.to_owned(), text.to_owned())
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
    let src = SourceText {
        name: file,
        text: source,
        rendered_differs: false,
    };
    ConfigError::Template(Box::new(src.diagnostic(
        Pos { line, column },
        None,
        message,
        None,
    )))
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
    fn optional_values_work() {
        let text = "a: {{ env.NOPE | default('d') }}\n{% if env.NOPE %}b: 1{% endif %}\n";
        let out = render(text, "t.yaml", Path::new("."), &vars()).unwrap_or_default();
        assert_eq!(out, "a: d\n\n");
    }
}
