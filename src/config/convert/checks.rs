//! Lifecycle checks (`tcp`, `http`, `exec`, `rexec`, `sleep`) per state, and the TLS
//! verification settings an `http` check and a ship share.

use super::*;

pub(super) fn lifecycle(
    cx: &mut Cx<'_>,
    n: &Node,
    path: &str,
) -> Result<Vec<(&'static str, Check, String)>> {
    let mut lm = MapReader::new(cx, n, path, "`lifecycle`")?;
    let mut out = Vec::new();
    for state in CHECK_STATES {
        let Some(list) = lm.opt_node(state) else {
            continue;
        };
        let sp = join(path, state);
        let Value::Seq(items) = &list.value else {
            return Err(cx.invalid(
                list.pos,
                &sp,
                format!(
                    "`{state}` must be a list of checks, found {}",
                    list.kind_name()
                ),
            ));
        };
        for (i, item) in items.iter().enumerate() {
            let cp = format!("{sp}[{i}]");
            out.push((*state, check(cx, item, &cp)?, format!("{cp}.port")));
        }
    }
    lm.finish(cx, "`lifecycle` (states)")?;
    Ok(out)
}

pub(super) fn check(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<Check> {
    let mut c = MapReader::new(cx, node, path, "a lifecycle check")?;
    let type_node = c.require(cx, "type", "a lifecycle check")?;
    let kind = string(cx, type_node, &c.field("type"))?;
    let check = match kind.as_str() {
        "tcp" => Check::Tcp {
            port: check_port(cx, &mut c)?,
            max_wait: max_wait(cx, &mut c, 180)?,
        },
        "http" => http_check(cx, &mut c)?,
        "exec" => Check::Exec {
            command: check_command(cx, &mut c)?,
            attempts: attempts(cx, &mut c)?,
            envfrom: c.given(cx, "envfrom", envfrom)?.unwrap_or(EnvFrom::Env),
        },
        "rexec" => Check::Rexec {
            command: check_command(cx, &mut c)?,
            attempts: attempts(cx, &mut c)?,
        },
        "sleep" => {
            let n = c.require(cx, "wait", "a sleep check")?;
            Check::Sleep {
                wait: number(cx, n, &c.field("wait"))?,
            }
        }
        other => {
            return Err(cx.invalid_help(
                type_node.pos,
                &c.field("type"),
                format!("unknown lifecycle check type \"{other}\" (expected tcp, http, exec, rexec or sleep)"),
                did_you_mean(other, CHECK_TYPES.iter().copied()),
            ));
        }
    };
    c.finish(cx, &format!("a {kind} check"))?;
    Ok(check)
}

pub(super) fn max_wait(cx: &mut Cx<'_>, c: &mut MapReader<'_>, default: u32) -> Result<u32> {
    let max_wait = c.given(cx, "max_wait", |cx, n, p| unsigned(cx, n, p, 1_000_000))?;
    Ok(max_wait.unwrap_or(default))
}

pub(super) fn attempts(cx: &mut Cx<'_>, c: &mut MapReader<'_>) -> Result<u32> {
    let attempts = c.given(cx, "attempts", |cx, n, p| unsigned(cx, n, p, 1_000_000))?;
    Ok(attempts.unwrap_or(180))
}

pub(super) fn check_port(cx: &mut Cx<'_>, c: &mut MapReader<'_>) -> Result<String> {
    let n = c.require(cx, "port", "a tcp/http check")?;
    non_empty_string(cx, n, &c.field("port"))
}

pub(super) fn check_command(cx: &mut Cx<'_>, c: &mut MapReader<'_>) -> Result<String> {
    let n = c.require(cx, "command", "an exec/rexec check")?;
    match &n.value {
        Value::Seq(_) => Ok(string_list(cx, n, &c.field("command"))?.join(" ")),
        _ => non_empty_string(cx, n, &c.field("command")),
    }
}

pub(super) fn envfrom(cx: &mut Cx<'_>, n: &Node, p: &str) -> Result<EnvFrom> {
    match string(cx, n, p)?.as_str() {
        "env" => Ok(EnvFrom::Env),
        "stdin" => Ok(EnvFrom::Stdin),
        other => Err(cx.invalid(
            n.pos,
            p,
            format!("invalid envfrom \"{other}\" (expected env or stdin)"),
        )),
    }
}

pub(super) fn http_check(cx: &mut Cx<'_>, c: &mut MapReader<'_>) -> Result<Check> {
    let port = check_port(cx, c)?;
    let host = c.opt(cx, "host", string)?;
    let path = c.opt(cx, "path", string)?.unwrap_or_else(|| "/".to_owned());
    let scheme = c
        .opt(cx, "scheme", string)?
        .unwrap_or_else(|| "http".to_owned());
    if scheme != "http" && scheme != "https" {
        let p = c.field("scheme");
        return Err(cx.invalid(
            cx.pos_of(&p),
            &p,
            format!("invalid scheme \"{scheme}\" (expected http or https)"),
        ));
    }
    let method = c
        .opt(cx, "method", string)?
        .unwrap_or_else(|| "GET".to_owned())
        .to_ascii_uppercase();
    let match_regex = c.opt(cx, "match_regex", string)?;
    if let Some(re) = &match_regex
        && let Err(e) = regex::Regex::new(re)
    {
        let p = c.field("match_regex");
        return Err(cx.invalid(cx.pos_of(&p), &p, format!("invalid match_regex: {e}")));
    }
    let max_wait = max_wait(cx, c, 300)?;
    let verify = c
        .opt(cx, "requests_options", requests_options)?
        .unwrap_or(TlsVerify::SystemRoots);
    Ok(Check::Http {
        port,
        host,
        path,
        scheme,
        method,
        match_regex,
        max_wait,
        verify,
    })
}

/// MaestroNG passes an http check's `requests_options` to python-requests; of those, we
/// support `verify`: `true` (system roots, the default), `false` (no verification), or the
/// path of a PEM CA bundle, which must be readable and hold a certificate.
pub(super) fn requests_options(cx: &mut Cx<'_>, node: &Node, path: &str) -> Result<TlsVerify> {
    let mut m = MapReader::new(cx, node, path, "`requests_options`")?;
    let verify = m
        .opt(cx, "verify", tls_verify)?
        .unwrap_or(TlsVerify::SystemRoots);
    m.finish(cx, "`requests_options` (maestro supports only `verify`)")?;
    Ok(verify)
}

pub(super) fn tls_verify(cx: &mut Cx<'_>, n: &Node, vp: &str) -> Result<TlsVerify> {
    Ok(match &n.value {
        Value::Bool(true) => TlsVerify::SystemRoots,
        Value::Bool(false) => TlsVerify::Off,
        Value::Str(s) if s == "true" => TlsVerify::SystemRoots,
        Value::Str(s) if s == "false" => TlsVerify::Off,
        Value::Str(s) if !s.trim().is_empty() => {
            let file = cx.resolve_path(s);
            if let Err(problem) = check_ca_file(&file) {
                return Err(cx.invalid_help(
                    n.pos,
                    vp,
                    format!("invalid verify: {problem}"),
                    Some(
                        "verify is true (system roots), false (no verification) or \
                         the path of a PEM file of CA certificates"
                            .to_owned(),
                    ),
                ));
            }
            TlsVerify::CaFile(file)
        }
        _ => {
            return Err(cx.invalid(
                n.pos,
                vp,
                format!(
                    "invalid verify: expected true, false or the path of a PEM file of \
                     CA certificates, found {}",
                    if matches!(n.value, Value::Str(_)) {
                        "an empty string"
                    } else {
                        n.kind_name()
                    }
                ),
            ));
        }
    })
}

/// A CA bundle is usable when it can be read and holds at least one PEM certificate; the
/// certificates themselves are parsed when the check runs.
pub(super) fn check_ca_file(file: &std::path::Path) -> std::result::Result<(), String> {
    let text = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    let marker = b"-----BEGIN CERTIFICATE-----";
    if text.windows(marker.len()).any(|w| w == marker) {
        Ok(())
    } else {
        Err(format!(
            "{} holds no PEM certificate (no `-----BEGIN CERTIFICATE-----` line)",
            file.display()
        ))
    }
}
