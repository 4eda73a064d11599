//! Plain scalars typed the way PyYAML types them, because MaestroNG reads its files with
//! PyYAML: YAML 1.1's implicit types, not YAML 1.2's.
//!
//! serde-saphyr infers YAML 1.2 core types with a few YAML 1.1 extras, and no option set
//! makes it agree with PyYAML: it reads `y` and `n` as booleans (PyYAML: strings), `1e3` as
//! a number (PyYAML: a string, its floats need a dot), `0o17` as 15 (a string), and `010` and
//! `12:30` as strings (PyYAML: 8 and 750, octal and base 60). The values reach containers as
//! environment variables and labels, so each of these changed what a MaestroNG file deploys.
//!
//! After parsing, every plain scalar (not quoted, not a block, not tagged) is typed again from
//! its text as written, with PyYAML's resolver (yaml/resolver.py) and constructors
//! (yaml/constructor.py). Timestamps stay strings: MaestroNG prints them as written.

use super::node::{Node, Value};

/// Types every plain scalar of `node` again from `text`, the rendered file it was parsed from.
pub fn retype(node: &mut Node, text: &str) {
    match &mut node.value {
        Value::Seq(items) => items.iter_mut().for_each(|item| retype(item, text)),
        Value::Map(pairs) => pairs.iter_mut().for_each(|(k, v)| {
            retype(k, text);
            retype(v, text);
        }),
        _ => {
            if let Some(written) = plain_text(node, text) {
                node.value = resolve(written);
            }
        }
    }
}

/// The text of `node` as written in `text`, when it is a plain scalar (not quoted, not a
/// block, not tagged) on one line: what YAML 1.1's implicit types were applied to.
pub fn written_plain<'t>(node: &Node, text: &'t str) -> Option<&'t str> {
    plain_text(node, text)
}

/// The scalar as written, when it is a plain scalar on one line.
fn plain_text<'t>(node: &Node, text: &'t str) -> Option<&'t str> {
    let (start, end) = node.raw?;
    let written = text.get(start..end)?.trim();
    if written.is_empty()
        || written.contains('\n')
        || written.starts_with(['"', '\'', '|', '>', '*', '&', '!'])
    {
        return None;
    }
    // A tag (`!!str 010`) or a block indicator (`|`, `>-`, `|2` at the end of the line
    // above, the content's span starting below it) comes before the scalar.
    let before = text.get(..start)?.trim_end();
    let previous = before
        .rsplit([' ', '\t', '\n', '{', '[', ','])
        .next()
        .unwrap_or("");
    let block_indicator = previous.starts_with(['|', '>'])
        && previous[1..]
            .chars()
            .all(|c| matches!(c, '-' | '+' | '1'..='9'));
    if previous.starts_with('!') || block_indicator {
        return None;
    }
    // The span of a key may include the `:` that ends it.
    Some(written.strip_suffix(':').unwrap_or(written).trim_end())
}

/// PyYAML's implicit type of a plain scalar.
pub fn resolve(text: &str) -> Value {
    if matches!(text, "" | "~" | "null" | "Null" | "NULL") {
        return Value::Null;
    }
    if let Some(b) = boolean(text) {
        return Value::Bool(b);
    }
    if let Some(f) = float(text) {
        return Value::Float(f);
    }
    if let Some(i) = int(text) {
        return Value::Int(i);
    }
    Value::Str(text.to_owned())
}

fn boolean(text: &str) -> Option<bool> {
    match text {
        "yes" | "Yes" | "YES" | "true" | "True" | "TRUE" | "on" | "On" | "ON" => Some(true),
        "no" | "No" | "NO" | "false" | "False" | "FALSE" | "off" | "Off" | "OFF" => Some(false),
        _ => None,
    }
}

fn sign(text: &str) -> (f64, &str) {
    match text.as_bytes().first() {
        Some(b'-') => (-1.0, &text[1..]),
        Some(b'+') => (1.0, &text[1..]),
        _ => (1.0, text),
    }
}

/// `[-+]?[0-9][0-9_]*(:[0-5]?[0-9])+` read in base 60 (the last part may carry a fraction).
fn sexagesimal(body: &str, last_fraction: bool) -> Option<f64> {
    let parts: Vec<&str> = body.split(':').collect();
    let (first, rest) = parts.split_first()?;
    if rest.is_empty() || first.is_empty() || !first.bytes().next()?.is_ascii_digit() {
        return None;
    }
    if !first.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
        return None;
    }
    let mut value: f64 = first.replace('_', "").parse().ok()?;
    for (i, part) in rest.iter().enumerate() {
        let is_last = i + 1 == rest.len();
        let (digits, fraction) = match part.split_once('.') {
            Some((d, f)) if is_last && last_fraction => (d, Some(f)),
            Some(_) => return None,
            None if is_last && last_fraction => return None,
            None => (*part, None),
        };
        let ok = (1..=2).contains(&digits.len())
            && digits.bytes().all(|b| b.is_ascii_digit())
            && (digits.len() == 1 || digits.as_bytes()[0] <= b'5');
        if !ok {
            return None;
        }
        let mut n: f64 = digits.parse().ok()?;
        if let Some(f) = fraction {
            if !f.bytes().all(|b| b.is_ascii_digit() || b == b'_') {
                return None;
            }
            n += format!("0.{}", f.replace('_', ""))
                .parse::<f64>()
                .unwrap_or(0.0);
        }
        value = value * 60.0 + n;
    }
    Some(value)
}

fn float(text: &str) -> Option<f64> {
    match text {
        ".inf" | ".Inf" | ".INF" | "+.inf" | "+.Inf" | "+.INF" => return Some(f64::INFINITY),
        "-.inf" | "-.Inf" | "-.INF" => return Some(f64::NEG_INFINITY),
        ".nan" | ".NaN" | ".NAN" => return Some(f64::NAN),
        _ => {}
    }
    let (sign, body) = sign(text);
    if body.contains(':') {
        return sexagesimal(body, true).map(|v| sign * v);
    }
    // [0-9][0-9_]*\.[0-9_]*([eE][-+][0-9]+)?  or  \.[0-9_]+([eE][-+][0-9]+)? (unsigned)
    let (mantissa, exponent) = match body.find(['e', 'E']) {
        Some(i) => (&body[..i], Some(&body[i + 1..])),
        None => (body, None),
    };
    let (whole, fraction) = mantissa.split_once('.')?;
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit() || b == b'_');
    let whole_ok = if whole.is_empty() {
        text.starts_with('.') && !fraction.is_empty()
    } else {
        whole.as_bytes()[0].is_ascii_digit() && digits(whole)
    };
    if !whole_ok || !digits(fraction) {
        return None;
    }
    if let Some(e) = exponent {
        let e_ok =
            e.len() > 1 && e.starts_with(['-', '+']) && e[1..].bytes().all(|b| b.is_ascii_digit());
        if !e_ok {
            return None;
        }
    }
    let cleaned = body.replace('_', "");
    let cleaned = if cleaned.starts_with('.') {
        format!("0{cleaned}")
    } else {
        cleaned
    };
    cleaned.parse::<f64>().ok().map(|v| sign * v)
}

fn int(text: &str) -> Option<i64> {
    let negative = text.starts_with('-');
    let body = text.strip_prefix(['-', '+']).unwrap_or(text);
    let digits_in =
        |s: &str, radix: u32| !s.is_empty() && s.chars().all(|c| c == '_' || c.is_digit(radix));
    let magnitude = if let Some(bits) = body.strip_prefix("0b") {
        digits_in(bits, 2).then(|| i64::from_str_radix(&bits.replace('_', ""), 2).ok())??
    } else if let Some(hex) = body.strip_prefix("0x") {
        digits_in(hex, 16).then(|| i64::from_str_radix(&hex.replace('_', ""), 16).ok())??
    } else if body.contains(':') {
        let v = sexagesimal(body, false)?;
        if !body.starts_with(|c: char| ('1'..='9').contains(&c)) || v > 9.0e15 {
            return None;
        }
        v as i64
    } else if body == "0" {
        0
    } else if let Some(octal) = body.strip_prefix('0') {
        digits_in(octal, 8).then(|| i64::from_str_radix(&octal.replace('_', ""), 8).ok())??
    } else {
        let ok = body.starts_with(|c: char| ('1'..='9').contains(&c)) && digits_in(body, 10);
        ok.then(|| body.replace('_', "").parse::<i64>().ok())??
    };
    Some(if negative { -magnitude } else { magnitude })
}

/// A float as Python's `str()` prints it: the shortest text that reads back, `1000.0` with
/// its `.0`, exponents from 1e16 and below 1e-4 (`1e+16`, `1.5e-05`), `inf`, `nan`.
pub fn python_float(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0.0" } else { "0.0" }.to_owned();
    }
    // Rust's `{:e}` is the shortest round-trip digits: `1.5e-5`, `1e16`.
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..16).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let plain = format!("{f}");
    if plain.contains('.') {
        plain
    } else {
        format!("{plain}.0")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_as_pyyaml_types_them() {
        for (text, expected) in [
            ("y", Value::Str("y".into())),
            ("n", Value::Str("n".into())),
            ("yes", Value::Bool(true)),
            ("Off", Value::Bool(false)),
            ("010", Value::Int(8)),
            ("0x1F", Value::Int(31)),
            ("0b101", Value::Int(5)),
            ("0o17", Value::Str("0o17".into())),
            ("1_000", Value::Int(1000)),
            ("12:30", Value::Int(750)),
            ("-1:00:00", Value::Int(-3600)),
            ("1e3", Value::Str("1e3".into())),
            ("1.0e+3", Value::Float(1000.0)),
            (".5", Value::Float(0.5)),
            ("1:30.5", Value::Float(90.5)),
            ("0", Value::Int(0)),
            ("09", Value::Str("09".into())),
            ("~", Value::Null),
            ("2001-12-14", Value::Str("2001-12-14".into())),
            ("10.0.0.1", Value::Str("10.0.0.1".into())),
            ("8080:80", Value::Str("8080:80".into())),
            ("1.2", Value::Float(1.2)),
        ] {
            assert_eq!(resolve(text), expected, "{text}");
        }
    }

    fn load(yaml: &str) -> Node {
        let mut node: Node = serde_saphyr::from_str(yaml).expect("parses");
        retype(&mut node, yaml);
        node
    }

    fn value_of(node: &Node, key: &str) -> Value {
        let Value::Map(pairs) = &node.value else {
            panic!("a mapping");
        };
        pairs
            .iter()
            .find(|(k, _)| k.scalar_text().as_deref() == Some(key))
            .map(|(_, v)| v.value.clone())
            .unwrap_or(Value::Null)
    }

    #[test]
    fn only_plain_scalars_are_typed_again() {
        let node = load(
            "a: |\n  123\nb: |-\n  true\nc: >\n  010\nd: !!str 010\ne: '010'\nf: 010\n\
             g: [y, \"y\"]\nh: |2\n   12:30\n",
        );
        assert_eq!(value_of(&node, "a"), Value::Str("123\n".into()));
        assert_eq!(value_of(&node, "b"), Value::Str("true".into()));
        assert_eq!(value_of(&node, "c"), Value::Str("010\n".into()));
        assert_eq!(value_of(&node, "d"), Value::Str("010".into()));
        assert_eq!(value_of(&node, "e"), Value::Str("010".into()));
        assert_eq!(value_of(&node, "f"), Value::Int(8));
        let Value::Seq(items) = value_of(&node, "g") else {
            panic!("a list");
        };
        assert_eq!(items[0].value, Value::Str("y".into()));
        assert_eq!(items[1].value, Value::Str("y".into()));
        assert_eq!(value_of(&node, "h"), Value::Str(" 12:30\n".into()));
    }

    #[test]
    fn floats_print_as_python_prints_them() {
        for (f, expected) in [
            (1000.0, "1000.0"),
            (0.5, "0.5"),
            (1e16, "1e+16"),
            (1.5e-5, "1.5e-05"),
            (0.0001, "0.0001"),
            (123456789012345.6, "123456789012345.6"),
            (f64::INFINITY, "inf"),
        ] {
            assert_eq!(python_float(f), expected, "{f}");
        }
    }
}
