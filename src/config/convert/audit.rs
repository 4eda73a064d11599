//! The `audit` section: MaestroNG's auditor types and keys.

use super::*;

pub(super) fn audit(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Vec<Auditor>> {
    let Value::Seq(items) = &node.value else {
        return Err(cx.invalid(
            node.pos,
            path,
            format!(
                "`audit` must be a list of auditors, found {}",
                node.kind_name()
            ),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| auditor(cx, item, &format!("{path}[{i}]")))
        .collect()
}

/// One auditor, with MaestroNG 0.8.3's keys for its type (`level` and `ignore_errors` for
/// all).
pub(super) fn auditor(cx: &mut Cx<'_>, item: &Node, path: &str) -> Result<Auditor> {
    let mut a = MapReader::new(cx, item, path, "an auditor")?;
    let tn = a.require(cx, "type", "an auditor")?;
    let kind = string(cx, tn, &a.field("type"))?;
    let what = format!("a {kind} auditor");
    let target = match kind.as_str() {
        "log" => AuditTarget::Log {
            file: required(cx, &mut a, "file", &what)?,
        },
        "http" => {
            let endpoint = required(cx, &mut a, "endpoint", &what)?;
            http_auditor(cx, &mut a, endpoint)?
        }
        "slack" => AuditTarget::Slack {
            channel: required(cx, &mut a, "channel", &what)?,
            token: required(cx, &mut a, "token", &what)?,
            name: a.opt(cx, "name", string)?,
            icon: a.opt(cx, "icon", string)?,
        },
        "hipchat" => AuditTarget::HipChat {
            room: required(cx, &mut a, "room", &what)?,
            token: required(cx, &mut a, "token", &what)?,
            name: a.opt(cx, "name", string)?,
        },
        "exec" => AuditTarget::Exec {
            script: required(cx, &mut a, "script", &what)?,
            args: a.opt(cx, "args", string)?.unwrap_or_default(),
        },
        _ => {
            let help = if kind == "webhook" {
                Some("MaestroNG's webhook auditor is `type: http`, with `endpoint`".into())
            } else {
                did_you_mean(&kind, AUDITOR_TYPES.iter().copied())
            };
            return Err(cx.invalid_help(
                tn.pos,
                &a.field("type"),
                format!(
                    "unknown auditor type \"{kind}\" (expected {})",
                    AUDITOR_TYPES.join(", ")
                ),
                help,
            ));
        }
    };
    let level = match a.opt(cx, "level", string)?.as_deref() {
        None | Some("info") => AuditLevel::Info,
        Some("debug") => AuditLevel::Debug,
        Some(other) => {
            return Err(cx.invalid(
                cx.pos_of(&a.field("level")),
                &a.field("level"),
                format!("unknown audit level `{other}` (expected info or debug)"),
            ));
        }
    };
    let ignore_errors = a.given(cx, "ignore_errors", boolean)?.unwrap_or(false);
    a.finish(cx, &what)?;
    Ok(Auditor {
        target,
        level,
        ignore_errors,
    })
}

pub(super) fn required(
    cx: &mut Cx<'_>,
    a: &mut MapReader<'_>,
    key: &str,
    what: &str,
) -> Result<String> {
    let node = a.require(cx, key, what)?;
    non_empty_string(cx, node, &a.field(key))
}

/// The keys of an `http` auditor besides its `endpoint`, with MaestroNG's defaults.
pub(super) fn http_auditor(
    cx: &mut Cx<'_>,
    a: &mut MapReader<'_>,
    endpoint: String,
) -> Result<AuditTarget> {
    let payload = a
        .given(cx, "payload", json_value)?
        .unwrap_or_else(|| serde_json::Value::Object(serde_json::Map::new()));
    let headers = a
        .given(cx, "headers", |cx, n, p| string_map(cx, n, p, "`headers`"))?
        .unwrap_or_default();
    let method = a
        .opt(cx, "method", string)?
        .unwrap_or_else(|| "POST".into())
        .to_uppercase();
    if method != "GET" && method != "POST" {
        return Err(cx.invalid(
            cx.pos_of(&a.field("method")),
            &a.field("method"),
            format!("invalid HTTP method `{method}` (expected GET or POST)"),
        ));
    }
    let timeout = a
        .given(cx, "timeout", duration)?
        .unwrap_or(Duration::from_secs(3));
    Ok(AuditTarget::Http {
        endpoint,
        payload,
        headers,
        method,
        timeout,
    })
}

/// A YAML value as JSON (an http auditor's `payload`, sent as written).
pub(super) fn json_value(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<serde_json::Value> {
    use serde_json::Value as Json;
    Ok(match &node.value {
        Value::Null => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(Json::Null, Json::Number),
        Value::Str(s) => Json::String(s.clone()),
        Value::Seq(items) => Json::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, n)| json_value(cx, n, &format!("{path}[{i}]")))
                .collect::<Result<_>>()?,
        ),
        Value::Map(_) => {
            let mut m = MapReader::new(cx, node, path, "a mapping")?;
            let mut out = serde_json::Map::new();
            for (k, _, v) in m.all() {
                out.insert(k.clone(), json_value(cx, v, &join(path, &k))?);
            }
            Json::Object(out)
        }
    })
}
