//! Port specs: `80`, `"80"`, `"53/udp"`, `"8000-8010"`, `"exposed:external"` (container port
//! first, unlike `docker -p`), and `{exposed: spec, external: spec | [bind_ip, spec]}`.

use super::error::ConfigError;
use super::map_reader::MapReader;
use super::model::{Port, PortRange, Protocol};
use super::node::{Node, Pos, Value};
use super::reader::{Cx, Result, string};

/// A port number or range with an optional protocol, e.g. `8080`, `53/udp`, `1234-1236`.
pub(crate) fn parse_side(text: &str) -> std::result::Result<(PortRange, Option<Protocol>), String> {
    let text = text.trim();
    let (num, proto) = match text.split_once('/') {
        Some((n, p)) => {
            let proto = match p.to_ascii_lowercase().as_str() {
                "tcp" => Protocol::Tcp,
                "udp" => Protocol::Udp,
                other => {
                    return Err(format!(
                        "unknown protocol \"{other}\" (expected tcp or udp)"
                    ));
                }
            };
            (n, Some(proto))
        }
        None => (text, None),
    };
    let number = |s: &str| -> std::result::Result<u16, String> {
        match s.trim().parse::<u32>() {
            Ok(n) if (1..=65535).contains(&n) => Ok(n as u16),
            Ok(n) => Err(format!("port {n} is out of range (1-65535)")),
            Err(_) => Err(format!("\"{s}\" is not a port number")),
        }
    };
    let range = match num.split_once('-') {
        Some((a, b)) => {
            let (start, end) = (number(a)?, number(b)?);
            if start > end {
                return Err(format!("range {start}-{end} is reversed"));
            }
            PortRange { start, end }
        }
        None => PortRange::single(number(num)?),
    };
    Ok((range, proto))
}

fn scalar_side(node: &Node) -> Option<String> {
    match &node.value {
        Value::Int(_) | Value::Str(_) => node.scalar_text(),
        _ => None,
    }
}

/// One side's protocol applies to both; two different protocols are an error.
fn merge_protocols(
    a: Option<Protocol>,
    b: Option<Protocol>,
) -> std::result::Result<Protocol, String> {
    match (a, b) {
        (Some(x), Some(y)) if x != y => Err(format!(
            "protocols do not match ({x} inside the container, {y} outside)"
        )),
        (Some(x), _) | (None, Some(x)) => Ok(x),
        (None, None) => Ok(Protocol::Tcp),
    }
}

fn check_ranges(exposed: PortRange, external: PortRange) -> std::result::Result<(), String> {
    if !exposed.is_single() && exposed.end - exposed.start != external.end - external.start {
        return Err(format!(
            "the container range {exposed} and the published range {external} differ in size"
        ));
    }
    Ok(())
}

/// The port being read, for its error messages.
struct Spec<'a> {
    name: &'a str,
    path: &'a str,
}

impl Spec<'_> {
    fn bad(&self, cx: &Cx<'_>, pos: Pos, why: String, written: &str) -> ConfigError {
        cx.invalid(
            pos,
            self.path,
            format!(
                "invalid port spec {written} for port `{}`: {why}",
                self.name
            ),
        )
    }
}

pub(crate) fn parse_port(cx: &mut Cx<'_>, name: &str, spec: &Node, path: &str) -> Result<Port> {
    let at = Spec { name, path };
    match &spec.value {
        Value::Map(_) => long_form(cx, &at, spec),
        Value::Int(_) | Value::Str(_) => short_form(cx, &at, spec),
        _ => Err(at.bad(
            cx,
            spec.pos,
            format!(
                "expected a number, a string or {{exposed, external}}, found {}",
                spec.kind_name()
            ),
            "",
        )),
    }
}

/// `{exposed: spec, external: spec | [bind_ip, spec]}`.
fn long_form(cx: &mut Cx<'_>, at: &Spec<'_>, spec: &Node) -> Result<Port> {
    let mut m = MapReader::new(cx, spec, at.path, "a port")?;
    let en = m.require(cx, "exposed", "a port")?;
    let exposed_text = scalar_side(en).ok_or_else(|| {
        at.bad(
            cx,
            en.pos,
            format!("`exposed` must be a port, found {}", en.kind_name()),
            "",
        )
    })?;
    let (exposed, p1) = parse_side(&exposed_text)
        .map_err(|w| at.bad(cx, en.pos, w, &format!("\"{exposed_text}\"")))?;
    // A null `external` is refused as a port, as it always was.
    let (external, p2, bind_ip) = match m.get("external") {
        None => (exposed, None, None),
        Some(xn) => external_side(cx, at, xn)?,
    };
    m.finish(cx, "a port")?;
    let protocol =
        merge_protocols(p1, p2).map_err(|w| at.bad(cx, spec.pos, w, "{exposed, external}"))?;
    check_ranges(exposed, external).map_err(|w| at.bad(cx, spec.pos, w, "{exposed, external}"))?;
    Ok(Port {
        name: at.name.to_owned(),
        exposed,
        external,
        protocol,
        bind_ip,
    })
}

/// The long form's `external`: a port spec, or `[bind_ip, spec]`.
fn external_side(
    cx: &mut Cx<'_>,
    at: &Spec<'_>,
    xn: &Node,
) -> Result<(PortRange, Option<Protocol>, Option<String>)> {
    match &xn.value {
        Value::Seq(items) if items.len() == 2 => {
            let ip = string(cx, &items[0], &format!("{}.external[0]", at.path))?;
            if ip.parse::<std::net::IpAddr>().is_err() {
                return Err(at.bad(
                    cx,
                    items[0].pos,
                    format!("\"{ip}\" is not an IP address"),
                    "[bind_ip, port]",
                ));
            }
            let t = scalar_side(&items[1]).unwrap_or_default();
            let (r, p) =
                parse_side(&t).map_err(|w| at.bad(cx, items[1].pos, w, &format!("\"{t}\"")))?;
            Ok((r, p, Some(ip)))
        }
        Value::Seq(_) => Err(at.bad(
            cx,
            xn.pos,
            "`external` as a list must be [bind_ip, port]".into(),
            "[...]",
        )),
        _ => {
            let t = scalar_side(xn).ok_or_else(|| {
                at.bad(
                    cx,
                    xn.pos,
                    format!("`external` must be a port, found {}", xn.kind_name()),
                    "",
                )
            })?;
            let (r, p) = parse_side(&t).map_err(|w| at.bad(cx, xn.pos, w, &format!("\"{t}\"")))?;
            Ok((r, p, None))
        }
    }
}

/// `80`, `"53/udp"`, `"8000-8010"`, `"exposed:external"`.
fn short_form(cx: &mut Cx<'_>, at: &Spec<'_>, spec: &Node) -> Result<Port> {
    let text = spec.scalar_text().unwrap_or_default();
    let written = format!("\"{text}\"");
    let bad = |cx: &Cx<'_>, why: String| at.bad(cx, spec.pos, why, &written);
    // docker's `-p ip:host:container`, written from compose habit.
    if let [ip, host, container] = text.split(':').collect::<Vec<_>>()[..] {
        return Err(bad(
            cx,
            format!(
                "this is docker's `-p ADDRESS:HOST:CONTAINER`; here the container port \
                 comes first, and a bind address needs the long form: \
                 `{{exposed: {container}, external: [{ip}, {host}]}}`"
            ),
        ));
    }
    let (exposed, external, protocol) = match text.split_once(':') {
        Some((a, b)) => {
            let (exposed, p1) = parse_side(a).map_err(|w| bad(cx, w))?;
            let (external, p2) = parse_side(b).map_err(|w| bad(cx, w))?;
            let protocol = merge_protocols(p1, p2).map_err(|w| bad(cx, w))?;
            (exposed, external, protocol)
        }
        None => {
            let (r, p) = parse_side(&text).map_err(|w| bad(cx, w))?;
            (r, r, p.unwrap_or(Protocol::Tcp))
        }
    };
    check_ranges(exposed, external).map_err(|w| bad(cx, w))?;
    Ok(Port {
        name: at.name.to_owned(),
        exposed,
        external,
        protocol,
        bind_ip: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sides() {
        assert_eq!(parse_side("80"), Ok((PortRange::single(80), None)));
        assert_eq!(
            parse_side("53/udp"),
            Ok((PortRange::single(53), Some(Protocol::Udp)))
        );
        assert_eq!(
            parse_side("1234-1236"),
            Ok((
                PortRange {
                    start: 1234,
                    end: 1236
                },
                None
            ))
        );
        assert!(parse_side("0").is_err());
        assert!(parse_side("70000").is_err());
        assert!(parse_side("9-8").is_err());
        assert!(parse_side("80/sctp").is_err());
        assert!(parse_side("abc").is_err());
    }

    #[test]
    fn protocols() {
        assert_eq!(
            merge_protocols(Some(Protocol::Udp), None),
            Ok(Protocol::Udp)
        );
        assert!(merge_protocols(Some(Protocol::Udp), Some(Protocol::Tcp)).is_err());
    }
}

#[cfg(test)]
mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn any_text_parses_or_fails_without_panicking(text in "\\PC{0,20}") {
            let _ = parse_side(&text);
        }

        #[test]
        fn valid_ranges_round_trip(a in 1u16.., len in 0u16..100, udp: bool) {
            let b = a.saturating_add(len);
            let text = format!("{a}-{b}{}", if udp { "/udp" } else { "" });
            let (range, proto) = parse_side(&text).map_err(TestCaseError::fail)?;
            prop_assert_eq!(range, PortRange { start: a, end: b });
            prop_assert_eq!(proto, udp.then_some(Protocol::Udp));
        }
    }
}
