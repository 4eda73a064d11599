//! Python behaviour that MaestroNG's templates rely on and minijinja lacks.
//!
//! MaestroNG renders with Jinja2, so its users write Python: `'%s' % x`, `l.append(x)`,
//! `'a,b'.split(',')`, and expect `{{ none }}` to print `None`. minijinja-contrib's pycompat
//! callback covers most str and dict methods; this module adds the rest:
//!
//! - `%` on a string (minijinja refuses it and has no operator hook): the template source is
//!   rewritten so that `a % b` becomes `__maestro_percent(a, b)`, which formats when `a` is a
//!   string and takes the remainder otherwise;
//! - mutable lists: minijinja values are immutable, so list displays (`[...]`) are rewritten to
//!   `__maestro_list([...])`, an object whose `append` and friends change it in place;
//! - printing as Python prints (`None`, `True`, `['a', 'b']`), by an output formatter.
//!
//! Two functions here run past the guide's 100 lines on purpose: they are method dispatch
//! tables, one arm per Python method, each arm short and self-contained, and reading them
//! as one table against Python's documentation is the point. Splitting them would scatter
//! the table without giving any arm a better home.
//!
//! - `PyList::call_method` (its `Object` impl): the list methods (`append`, `extend`,
//!   `insert`, `pop`...);
//! - `extra_str_method`: the str methods that minijinja-contrib's pycompat lacks.

use std::sync::{Arc, Mutex, MutexGuard};

use minijinja::formatting::{FormatStyle, format};
use minijinja::value::{Enumerator, Object, ObjectRepr, Tuple, ValueKind, from_args};
use minijinja::{Error, ErrorKind, Output, State, Value};

/// Name of the global that stands for Python's `%` operator in rewritten templates.
pub(crate) const PERCENT_FN: &str = "__maestro_percent";
/// Brackets nested deeper than this are not rewritten (the engine refuses such depths anyway):
/// the rewriter recurses once per level and must not overflow the stack.
const MAX_NESTING: usize = 256;

/// Name of the global that turns a list display into a mutable list.
pub(crate) const LIST_FN: &str = "__maestro_list";

/// A list that grows past this is refused: a template looping on `append` must not eat the
/// machine's memory (the rendered file is capped at 10 MB anyway).
const MAX_LIST_ITEMS: usize = 1_000_000;

/// Padding methods (`zfill`, `ljust`...) refuse wider results, for the same reason.
const MAX_PAD_WIDTH: usize = 1 << 20;

// ---------------------------------------------------------------------------------------
// Source rewriting

#[derive(Clone, Copy, PartialEq, Eq, Debug)]
enum Kind {
    Name,
    Str,
    Num,
    Op,
}

#[derive(Clone, Copy, Debug)]
struct Tok {
    kind: Kind,
    start: usize,
    end: usize,
}

#[derive(Debug)]
enum Node {
    Tok(Tok),
    Group {
        open: Tok,
        children: Vec<Node>,
        close: Tok,
    },
}

impl Node {
    fn start(&self) -> usize {
        match self {
            Node::Tok(t) => t.start,
            Node::Group { open, .. } => open.start,
        }
    }
    fn end(&self) -> usize {
        match self {
            Node::Tok(t) => t.end,
            Node::Group { close, .. } => close.end,
        }
    }
}

/// Rewrites `%` operators and list displays inside `{{ }}` and `{% %}` tags so that they get
/// Python's behaviour (see the module docs). Text outside tags, comments and `raw` blocks are
/// kept byte for byte; lines never move, so errors keep their line numbers. A tag that cannot
/// be tokenized is left as it is for the engine to report.
pub(crate) fn rewrite(src: &str) -> String {
    let mut out = String::with_capacity(src.len() + 64);
    let mut pos = 0;
    while let Some(rel) = src[pos..].find('{') {
        let start = pos + rel;
        let rest = &src[start..];
        if rest.starts_with("{#") {
            let end = rest.find("#}").map_or(src.len(), |e| start + e + 2);
            out.push_str(&src[pos..end]);
            pos = end;
            continue;
        }
        let block = rest.starts_with("{%");
        if !block && !rest.starts_with("{{") {
            out.push_str(&src[pos..start + 1]);
            pos = start + 1;
            continue;
        }
        let mut body_start = start + 2;
        if matches!(src.as_bytes().get(body_start), Some(b'-' | b'+')) {
            body_start += 1;
        }
        let Some((nodes, body_end, tag_end)) = lex_tag(src, body_start, block) else {
            // Unterminated: the engine says where; rewriting stops here.
            out.push_str(&src[pos..]);
            return out;
        };
        if block && is_raw(src, &nodes) {
            let end = find_endraw(src, tag_end).unwrap_or(src.len());
            out.push_str(&src[pos..end]);
            pos = end;
            continue;
        }
        out.push_str(&src[pos..body_start]);
        out.push_str(&emit_level(src, &nodes, body_start, body_end));
        out.push_str(&src[body_end..tag_end]);
        pos = tag_end;
    }
    out.push_str(&src[pos..]);
    out
}

fn is_raw(src: &str, nodes: &[Node]) -> bool {
    matches!(nodes, [Node::Tok(t)] if t.kind == Kind::Name && &src[t.start..t.end] == "raw")
}

/// The end of the `{% endraw %}` tag that closes a raw block opened before `from`.
fn find_endraw(src: &str, from: usize) -> Option<usize> {
    let mut pos = from;
    while let Some(rel) = src[pos..].find("{%") {
        let start = pos + rel;
        let inner = src[start + 2..].trim_start_matches(['-', '+']).trim_start();
        if let Some(after) = inner.strip_prefix("endraw") {
            let after = after.trim_start().trim_start_matches(['-', '+']);
            if after.starts_with("%}") {
                return Some(src.len() - after.len() + 2);
            }
        }
        pos = start + 2;
    }
    None
}

/// Tokenizes one tag's body from `i`. Returns the token tree, where the body ends (at the
/// closing marker, whitespace control included) and where the tag ends.
fn lex_tag(src: &str, mut i: usize, block: bool) -> Option<(Vec<Node>, usize, usize)> {
    let bytes = src.as_bytes();
    let end_marker = if block { "%}" } else { "}}" };
    // Groups being built: (opening token, children so far).
    let mut stack: Vec<(Tok, Vec<Node>)> = Vec::new();
    let mut top: Vec<Node> = Vec::new();
    loop {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            return None;
        }
        let rest = &src[i..];
        if stack.is_empty() {
            for control in ["", "-", "+"] {
                if rest.starts_with(control) && rest[control.len()..].starts_with(end_marker) {
                    return Some((top, i, i + control.len() + 2));
                }
            }
        }
        let c = rest.chars().next()?;
        let start = i;
        let kind;
        if c == '\'' || c == '"' {
            let mut j = i + 1;
            loop {
                match bytes.get(j) {
                    None => return None,
                    Some(b'\\') => j += 2,
                    Some(&b) if b == c as u8 => break,
                    Some(_) => j += 1,
                }
            }
            i = j + 1;
            kind = Kind::Str;
        } else if c.is_ascii_digit() {
            i += 1;
            while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                i += 1;
            }
            if bytes.get(i) == Some(&b'.') && bytes.get(i + 1).is_some_and(u8::is_ascii_digit) {
                i += 1;
                while i < bytes.len() && (bytes[i].is_ascii_alphanumeric() || bytes[i] == b'_') {
                    i += 1;
                }
            }
            kind = Kind::Num;
        } else if c.is_alphabetic() || c == '_' {
            i += c.len_utf8();
            while let Some(n) = src[i..].chars().next() {
                if !(n.is_alphanumeric() || n == '_') {
                    break;
                }
                i += n.len_utf8();
            }
            kind = Kind::Name;
        } else {
            let two = rest.get(..2).unwrap_or("");
            i += if matches!(two, "**" | "//" | "==" | "!=" | "<=" | ">=") {
                2
            } else {
                c.len_utf8()
            };
            kind = Kind::Op;
        }
        let tok = Tok {
            kind,
            start,
            end: i,
        };
        let current = stack.last_mut().map_or(&mut top, |(_, children)| children);
        match (kind, c) {
            (Kind::Op, '(' | '[' | '{') => {
                if stack.len() >= MAX_NESTING {
                    return None;
                }
                stack.push((tok, Vec::new()))
            }
            (Kind::Op, ')' | ']' | '}') => {
                let (open, children) = stack.pop()?;
                let parent = stack.last_mut().map_or(&mut top, |(_, children)| children);
                parent.push(Node::Group {
                    open,
                    children,
                    close: tok,
                });
            }
            _ => current.push(Node::Tok(tok)),
        }
    }
}

fn text<'a>(src: &'a str, t: &Tok) -> &'a str {
    &src[t.start..t.end]
}

fn is_op(src: &str, node: Option<&Node>, ops: &[&str]) -> bool {
    matches!(node, Some(Node::Tok(t)) if t.kind == Kind::Op && ops.contains(&text(src, t)))
}

fn is_name(src: &str, node: Option<&Node>, name: &str) -> bool {
    matches!(node, Some(Node::Tok(t)) if t.kind == Kind::Name && text(src, t) == name)
}

fn is_any_name(node: Option<&Node>) -> bool {
    matches!(node, Some(Node::Tok(t)) if t.kind == Kind::Name)
}

fn opens(src: &str, node: Option<&Node>, brackets: &str) -> bool {
    matches!(node, Some(Node::Group { open, .. }) if brackets.contains(text(src, open)))
}

/// Operator keywords: they bind looser than `%` and so end an operand.
const KEYWORDS: &[&str] = &["and", "or", "not", "in", "if", "else", "is"];

/// Parses one operand of `*`, `/`, `//`, `%` starting at `i` (unary signs, a primary, then
/// attribute access, calls, subscripts, filters, tests and `**`), marking list displays in
/// `lists`. Returns the index after it.
fn parse_operand(src: &str, nodes: &[Node], mut i: usize, lists: &mut [bool]) -> Option<usize> {
    // One pass per factor of a `**` chain; a loop, not recursion, so long chains cannot
    // overflow the stack.
    loop {
        while is_op(src, nodes.get(i), &["-", "+"]) {
            i += 1;
        }
        match nodes.get(i)? {
            Node::Tok(t) if t.kind == Kind::Name && !KEYWORDS.contains(&text(src, t)) => i += 1,
            Node::Tok(t) if t.kind == Kind::Num => i += 1,
            Node::Tok(t) if t.kind == Kind::Str => {
                // Adjacent string literals concatenate, as in Python.
                while matches!(nodes.get(i), Some(Node::Tok(t)) if t.kind == Kind::Str) {
                    i += 1;
                }
            }
            Node::Group { open, .. } => {
                if text(src, open) == "[" {
                    lists[i] = true;
                }
                i += 1;
            }
            Node::Tok(_) => return None,
        }
        loop {
            if is_op(src, nodes.get(i), &["."])
                && matches!(nodes.get(i + 1), Some(Node::Tok(t)) if matches!(t.kind, Kind::Name | Kind::Num))
            {
                i += 2;
            } else if opens(src, nodes.get(i), "([") {
                i += 1;
            } else if is_op(src, nodes.get(i), &["|"]) && is_any_name(nodes.get(i + 1)) {
                i += 2;
                while is_op(src, nodes.get(i), &["."]) && is_any_name(nodes.get(i + 1)) {
                    i += 2;
                }
                if opens(src, nodes.get(i), "(") {
                    i += 1;
                }
            } else if is_name(src, nodes.get(i), "is") {
                i += 1;
                if is_name(src, nodes.get(i), "not") {
                    i += 1;
                }
                if is_any_name(nodes.get(i)) {
                    i += 1;
                    while is_op(src, nodes.get(i), &["."]) && is_any_name(nodes.get(i + 1)) {
                        i += 2;
                    }
                }
                if opens(src, nodes.get(i), "(") {
                    i += 1;
                }
            } else {
                break;
            }
        }
        let factor_end = i;
        if !is_op(src, nodes.get(i), &["**"]) {
            return Some(i);
        }
        i += 1;
        // `a **` with nothing usable after it: the operand ends before the `**`.
        let next_is_operand = {
            let mut j = i;
            while is_op(src, nodes.get(j), &["-", "+"]) {
                j += 1;
            }
            match nodes.get(j) {
                Some(Node::Tok(t)) => match t.kind {
                    Kind::Name => !KEYWORDS.contains(&text(src, t)),
                    Kind::Num | Kind::Str => true,
                    Kind::Op => false,
                },
                Some(Node::Group { .. }) => true,
                None => false,
            }
        };
        if !next_is_operand {
            return Some(factor_end);
        }
    }
}

/// Emits `src[from..to]`, which holds `nodes`, with this level's `%` chains and list displays
/// rewritten (and every nested group's, recursively).
fn emit_level(src: &str, nodes: &[Node], from: usize, to: usize) -> String {
    let mut lists = vec![false; nodes.len()];
    // Operands as index ranges; anything between them is an operator or a keyword.
    let mut operands: Vec<(usize, usize)> = Vec::new();
    let mut i = 0;
    let mut after_operand = false;
    while i < nodes.len() {
        let binary_sign = after_operand && is_op(src, nodes.get(i), &["-", "+"]);
        if !binary_sign && let Some(end) = parse_operand(src, nodes, i, &mut lists) {
            operands.push((i, end));
            i = end;
            after_operand = true;
            continue;
        }
        i += 1;
        after_operand = false;
    }

    let mut out = String::new();
    let mut cursor = from;
    let mut k = 0;
    let mut idx = 0;
    while idx < nodes.len() {
        while operands.get(k).is_some_and(|(s, _)| *s < idx) {
            k += 1;
        }
        if operands.get(k).is_some_and(|(s, _)| *s == idx) {
            // The chain `operand (mulop operand)*` that starts here; rewritten if it has a `%`.
            let mut last = k;
            while let (Some(&(_, end)), Some(&(next, _))) =
                (operands.get(last), operands.get(last + 1))
            {
                if next == end + 1 && is_op(src, nodes.get(end), &["*", "/", "//", "%"]) {
                    last += 1;
                } else {
                    break;
                }
            }
            if (k..last).any(|m| is_op(src, nodes.get(operands[m].1), &["%"])) {
                let (first, first_end) = operands[k];
                let chain_end = nodes[operands[last].1 - 1].end();
                out.push_str(&src[cursor..nodes[first].start()]);
                let mut acc = emit_nodes(src, nodes, first, first_end, &lists);
                for &(s, e) in &operands[k + 1..=last] {
                    let op = &nodes[s - 1];
                    let rhs = emit_nodes(src, nodes, s, e, &lists);
                    if is_op(src, Some(op), &["%"]) {
                        acc = format!("{PERCENT_FN}({acc}, {rhs})");
                    } else {
                        let between = &src[nodes[s - 2].end()..nodes[s].start()];
                        acc = format!("{acc}{between}{rhs}");
                    }
                }
                // Keep every line where it was, so that errors point at the right one.
                let lines = src[nodes[first].start()..chain_end].matches('\n').count();
                let missing = lines.saturating_sub(acc.matches('\n').count());
                acc.extend(std::iter::repeat_n('\n', missing));
                out.push_str(&acc);
                cursor = chain_end;
                idx = operands[last].1;
                k = last + 1;
                continue;
            }
        }
        out.push_str(&src[cursor..nodes[idx].start()]);
        out.push_str(&node_text(src, &nodes[idx], lists[idx]));
        cursor = nodes[idx].end();
        idx += 1;
    }
    out.push_str(&src[cursor..to]);
    out
}

fn emit_nodes(src: &str, nodes: &[Node], from: usize, to: usize, lists: &[bool]) -> String {
    let mut out = String::new();
    let mut cursor = nodes[from].start();
    for (node, &list) in nodes[from..to].iter().zip(&lists[from..to]) {
        out.push_str(&src[cursor..node.start()]);
        out.push_str(&node_text(src, node, list));
        cursor = node.end();
    }
    out
}

fn node_text(src: &str, node: &Node, list: bool) -> String {
    match node {
        Node::Tok(t) => text(src, t).to_owned(),
        Node::Group {
            open,
            children,
            close,
        } => {
            let inner = emit_level(src, children, open.end, close.start);
            let group = format!("{}{inner}{}", text(src, open), text(src, close));
            if list {
                format!("{LIST_FN}({group})")
            } else {
                group
            }
        }
    }
}

// ---------------------------------------------------------------------------------------
// Runtime

/// A Python list: what list displays in a template become, so that `append` works.
#[derive(Debug, Default)]
pub(crate) struct PyList(Mutex<Vec<Value>>);

impl PyList {
    fn items(&self) -> MutexGuard<'_, Vec<Value>> {
        // A panic while holding the lock leaves a list that is still a list.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Refuses a value that holds this list: a cycle would make printing and comparing recurse
    /// without end (Python allows it; no environment file needs it).
    fn check_no_cycle(self: &Arc<Self>, value: &Value) -> Result<(), Error> {
        // `budget` bounds the walk: shared sublists make the tree exponentially wide.
        fn holds(value: &Value, target: *const PyList, depth: usize, budget: &mut usize) -> bool {
            if depth > MAX_REPR_DEPTH || *budget == 0 {
                return true;
            }
            *budget -= 1;
            if let Some(list) = value.downcast_object_ref::<PyList>() {
                if std::ptr::eq(list, target) {
                    return true;
                }
                let items = list.items().clone();
                return items.iter().any(|v| holds(v, target, depth + 1, budget));
            }
            match value.kind() {
                ValueKind::Seq => value.try_iter().is_ok_and(|iter| {
                    iter.collect::<Vec<_>>()
                        .iter()
                        .any(|v| holds(v, target, depth + 1, budget))
                }),
                ValueKind::Map => value.try_iter().is_ok_and(|keys| {
                    keys.collect::<Vec<_>>().iter().any(|k| {
                        value
                            .get_item(k)
                            .is_ok_and(|v| holds(&v, target, depth + 1, budget))
                    })
                }),
                _ => false,
            }
        }
        let mut budget = 100_000;
        if holds(value, Arc::as_ptr(self), 0, &mut budget) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                "a list cannot be put inside itself (nor hold more than 64 levels or 100000 values)",
            ));
        }
        Ok(())
    }

    fn push_checked(items: &mut Vec<Value>, value: Value) -> Result<(), Error> {
        if items.len() >= MAX_LIST_ITEMS {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("a list in the template grew past {MAX_LIST_ITEMS} items"),
            ));
        }
        items.push(value);
        Ok(())
    }
}

/// Python's index normalisation: negative counts from the end.
fn py_index(index: i64, len: usize) -> Option<usize> {
    let len_i = i64::try_from(len).ok()?;
    let i = if index < 0 { index + len_i } else { index };
    (0..len_i).contains(&i).then_some(i as usize)
}

impl Object for PyList {
    fn repr(self: &Arc<Self>) -> ObjectRepr {
        ObjectRepr::Seq
    }

    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        self.items().get(key.as_usize()?).cloned()
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        // A snapshot: the lock must not be held while the template runs the loop body.
        Enumerator::Values(self.items().clone())
    }

    fn enumerator_len(self: &Arc<Self>) -> Option<usize> {
        Some(self.items().len())
    }

    fn call_method(
        self: &Arc<Self>,
        _state: &mut State<'_, '_>,
        method: &str,
        args: &[Value],
    ) -> Result<Value, Error> {
        let none = Value::from(());
        match method {
            "append" => {
                let (value,): (Value,) = from_args(args)?;
                self.check_no_cycle(&value)?;
                Self::push_checked(&mut self.items(), value)?;
                Ok(none)
            }
            "extend" => {
                let (values,): (Value,) = from_args(args)?;
                // Collected first: `l.extend(l)` must not hold the lock while reading `l`.
                let new: Vec<Value> = values.try_iter()?.collect();
                for value in &new {
                    self.check_no_cycle(value)?;
                }
                let mut items = self.items();
                for value in new {
                    Self::push_checked(&mut items, value)?;
                }
                Ok(none)
            }
            "insert" => {
                let (index, value): (i64, Value) = from_args(args)?;
                self.check_no_cycle(&value)?;
                let mut items = self.items();
                let len = i64::try_from(items.len()).unwrap_or(i64::MAX);
                let at = if index < 0 {
                    (index + len).max(0)
                } else {
                    index.min(len)
                };
                let at = usize::try_from(at).unwrap_or(items.len());
                if items.len() >= MAX_LIST_ITEMS {
                    return Self::push_checked(&mut items, value).map(|()| none);
                }
                items.insert(at, value);
                Ok(none)
            }
            "pop" => {
                let (index,): (Option<i64>,) = from_args(args)?;
                let mut items = self.items();
                if items.is_empty() {
                    return Err(Error::new(
                        ErrorKind::InvalidOperation,
                        "pop from empty list",
                    ));
                }
                let at = py_index(index.unwrap_or(-1), items.len()).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidOperation, "pop index out of range")
                })?;
                Ok(items.remove(at))
            }
            "remove" => {
                let (value,): (Value,) = from_args(args)?;
                let mut items = self.items();
                let at = items.iter().position(|v| *v == value).ok_or_else(|| {
                    Error::new(ErrorKind::InvalidOperation, "list.remove(x): x not in list")
                })?;
                items.remove(at);
                Ok(none)
            }
            "index" => {
                let (value,): (Value,) = from_args(args)?;
                let at = self
                    .items()
                    .iter()
                    .position(|v| *v == value)
                    .ok_or_else(|| {
                        Error::new(
                            ErrorKind::InvalidOperation,
                            format!("{value} is not in list"),
                        )
                    })?;
                Ok(Value::from(at))
            }
            "count" => {
                let (value,): (Value,) = from_args(args)?;
                Ok(Value::from(
                    self.items().iter().filter(|v| **v == value).count(),
                ))
            }
            "clear" => {
                let () = from_args(args)?;
                self.items().clear();
                Ok(none)
            }
            "reverse" => {
                let () = from_args(args)?;
                self.items().reverse();
                Ok(none)
            }
            "copy" => {
                let () = from_args(args)?;
                Ok(new_list(self.items().clone()))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    }
}

fn new_list(items: Vec<Value>) -> Value {
    Value::from_object(PyList(Mutex::new(items)))
}

/// `__maestro_list(seq)`: the list display `seq`, made mutable.
pub(crate) fn list_fn(items: Value) -> Result<Value, Error> {
    Ok(new_list(items.try_iter()?.collect()))
}

/// The `list` filter, giving a list that `append` can change, as Python's `list()` does.
pub(crate) fn list_filter(state: &State, value: Value) -> Result<Value, Error> {
    list_fn(minijinja::filters::list(state, value)?)
}

/// `__maestro_percent(lhs, rhs)`: Python's `lhs % rhs`.
pub(crate) fn percent_fn(state: &State, lhs: Value, rhs: Value) -> Result<Value, Error> {
    let Some(fmt) = lhs.as_str() else {
        // Not a string: the engine's own `%` (floored remainder, as Python's).
        let expr = state.env().compile_expression("lhs % rhs")?;
        return expr.eval(minijinja::context! { lhs, rhs });
    };
    // A tuple spreads over the conversions; anything else (a list, a dict) is one value.
    let args: Vec<Value> = if rhs.is_tuple() {
        rhs.try_iter()?.collect()
    } else {
        vec![rhs]
    };
    // `%(key)s` looks into a dict argument, which must stay a dict.
    let args: Vec<Value> = if fmt.contains("%(") {
        printf_conversions(fmt)?;
        args
    } else {
        let conversions = printf_conversions(fmt)?;
        args.into_iter()
            .enumerate()
            .map(|(n, arg)| match (arg.kind(), conversions.get(n)) {
                // Python's bool is an int: `'%d' % True` is `1`.
                (ValueKind::Bool, Some(c)) if "diouxXeEfFgGc".contains(*c) => {
                    Value::from(i64::from(arg.is_true()))
                }
                _ => str_arg(arg),
            })
            .collect()
    };
    format(FormatStyle::Printf, fmt, &args).map(Value::from)
}

/// The conversion letter of each `%` field of a printf-style format, in order (`%%` is none).
/// Refuses widths and precisions above [`MAX_PAD_WIDTH`]: `'%999999999d'` would allocate a
/// gigabyte before the size check on the rendered file could say no.
fn printf_conversions(fmt: &str) -> Result<Vec<char>, Error> {
    let mut conversions = Vec::new();
    let mut chars = fmt.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            continue;
        }
        if chars.peek() == Some(&'%') {
            chars.next();
            continue;
        }
        if chars.peek() == Some(&'(') {
            for c in chars.by_ref() {
                if c == ')' {
                    break;
                }
            }
        }
        // Flags, width, precision and length modifiers come before the letter.
        let mut spec = String::new();
        for c in chars.by_ref() {
            if !"#0- +*.0123456789hlL".contains(c) {
                conversions.push(c);
                break;
            }
            spec.push(c);
        }
        check_widths(&spec)?;
    }
    Ok(conversions)
}

/// Refuses `str.format` specs (`{:>999999999}`) wider than [`MAX_PAD_WIDTH`].
fn check_format_widths(fmt: &str) -> Result<(), Error> {
    let mut rest = fmt;
    while let Some(open) = rest.find('{') {
        rest = &rest[open + 1..];
        if let Some(after) = rest.strip_prefix('{') {
            rest = after;
            continue;
        }
        let field = &rest[..rest.find('}').unwrap_or(rest.len())];
        if let Some((_, spec)) = field.split_once(':') {
            check_widths(spec)?;
        }
    }
    Ok(())
}

fn check_widths(spec: &str) -> Result<(), Error> {
    for digits in spec.split(|c: char| !c.is_ascii_digit()) {
        if !digits.is_empty() && digits.parse::<usize>().map_or(true, |n| n > MAX_PAD_WIDTH) {
            return Err(Error::new(
                ErrorKind::InvalidOperation,
                format!("width or precision {digits} is larger than {MAX_PAD_WIDTH}"),
            ));
        }
    }
    Ok(())
}

/// What Python's `str()` gives where it differs from minijinja's rendering; other values pass
/// through so that `%d` and `{:.2f}` still see numbers.
fn str_arg(value: Value) -> Value {
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Seq | ValueKind::Map => {
            Value::from(py_str(&value))
        }
        _ => value,
    }
}

/// The unknown-method callback: minijinja-contrib's pycompat, plus the Python methods it lacks,
/// with Python's `str()` for the arguments of `format`.
pub(crate) fn unknown_method(
    state: &mut State,
    value: &Value,
    method: &str,
    args: &[Value],
) -> Result<Value, Error> {
    if let Some(s) = value.as_str() {
        match method {
            "format" => {
                check_format_widths(s)?;
                let args: Vec<Value> = args
                    .iter()
                    .map(|a| {
                        if a.is_kwargs() {
                            a.clone()
                        } else {
                            str_arg(a.clone())
                        }
                    })
                    .collect();
                return format(FormatStyle::StrFormat, s, &args).map(Value::from);
            }
            "split" | "splitlines" => {
                // Python gives a list, which the template may then append to.
                let parts = minijinja_contrib::pycompat::unknown_method_callback(
                    state, value, method, args,
                )?;
                return Ok(new_list(parts.try_iter()?.collect()));
            }
            _ => {}
        }
        if let Some(result) = extra_str_method(s, method, args) {
            return result;
        }
    }
    if value.kind() == ValueKind::Seq
        && matches!(
            method,
            "append" | "extend" | "insert" | "pop" | "remove" | "clear"
        )
    {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!(
                "cannot {method} to this list: only lists written in the template \
                 (`[...]`), made by split() or by `| list` can change"
            ),
        ));
    }
    minijinja_contrib::pycompat::unknown_method_callback(state, value, method, args)
}

fn pad_width(width: i64) -> Result<usize, Error> {
    let width = usize::try_from(width.max(0)).unwrap_or(usize::MAX);
    if width > MAX_PAD_WIDTH {
        return Err(Error::new(
            ErrorKind::InvalidOperation,
            format!("width {width} is larger than {MAX_PAD_WIDTH}"),
        ));
    }
    Ok(width)
}

fn fill_char(fill: Option<&str>) -> Result<char, Error> {
    let fill = fill.unwrap_or(" ");
    let mut chars = fill.chars();
    match (chars.next(), chars.next()) {
        (Some(c), None) => Ok(c),
        _ => Err(Error::new(
            ErrorKind::InvalidOperation,
            "the fill character must be exactly one character long",
        )),
    }
}

/// str methods that pycompat lacks; `None` when `method` is not one of them.
fn extra_str_method(s: &str, method: &str, args: &[Value]) -> Option<Result<Value, Error>> {
    let result = (|| -> Result<Value, Error> {
        let len = s.chars().count();
        match method {
            "rsplit" => {
                let (sep, maxsplit): (Option<&str>, Option<i64>) = from_args(args)?;
                let max = maxsplit.and_then(|m| usize::try_from(m).ok());
                let mut parts: Vec<Value> = match (sep, max) {
                    (Some(""), _) => {
                        return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"));
                    }
                    (Some(sep), Some(max)) => s.rsplitn(max + 1, sep).map(Value::from).collect(),
                    (Some(sep), None) => s.rsplit(sep).map(Value::from).collect(),
                    (None, max) => {
                        let words: Vec<&str> = s.split_whitespace().collect();
                        match max {
                            Some(max) if words.len() > max + 1 => {
                                // The head keeps its leading and inner whitespace, as in
                                // Python.
                                let tail = &words[words.len() - max..];
                                let mut rest = s.trim_end();
                                for w in tail.iter().rev() {
                                    rest = rest.strip_suffix(w).unwrap_or(rest).trim_end();
                                }
                                std::iter::once(Value::from(rest))
                                    .chain(tail.iter().map(|w| Value::from(*w)))
                                    .rev()
                                    .collect()
                            }
                            _ => words.into_iter().rev().map(Value::from).collect(),
                        }
                    }
                };
                parts.reverse();
                Ok(new_list(parts))
            }
            "removeprefix" => {
                let (prefix,): (&str,) = from_args(args)?;
                Ok(Value::from(s.strip_prefix(prefix).unwrap_or(s)))
            }
            "removesuffix" => {
                let (suffix,): (&str,) = from_args(args)?;
                Ok(Value::from(s.strip_suffix(suffix).unwrap_or(s)))
            }
            "zfill" => {
                let (width,): (i64,) = from_args(args)?;
                let width = pad_width(width)?;
                if len >= width {
                    return Ok(Value::from(s));
                }
                let (sign, digits) = match s.chars().next() {
                    Some(c @ ('+' | '-')) => (c.to_string(), &s[1..]),
                    _ => (String::new(), s),
                };
                Ok(Value::from(format!(
                    "{sign}{}{digits}",
                    "0".repeat(width - len)
                )))
            }
            "ljust" | "rjust" | "center" => {
                let (width, fill): (i64, Option<&str>) = from_args(args)?;
                let width = pad_width(width)?;
                let fill = fill_char(fill)?;
                if len >= width {
                    return Ok(Value::from(s));
                }
                let pad = width - len;
                let (left, right) = match method {
                    "ljust" => (0, pad),
                    "rjust" => (pad, 0),
                    // CPython puts the odd extra character on the left when the padding is
                    // odd and the string's length is odd too.
                    _ => {
                        let left = pad / 2 + (pad & width & 1);
                        (left, pad - left)
                    }
                };
                let fill_n = |n| std::iter::repeat_n(fill, n).collect::<String>();
                Ok(Value::from(format!("{}{s}{}", fill_n(left), fill_n(right))))
            }
            "swapcase" => {
                let () = from_args(args)?;
                Ok(Value::from(
                    s.chars()
                        .flat_map(|c| {
                            if c.is_uppercase() {
                                c.to_lowercase().collect::<Vec<_>>()
                            } else {
                                c.to_uppercase().collect::<Vec<_>>()
                            }
                        })
                        .collect::<String>(),
                ))
            }
            "partition" | "rpartition" => {
                let (sep,): (&str,) = from_args(args)?;
                if sep.is_empty() {
                    return Err(Error::new(ErrorKind::InvalidOperation, "empty separator"));
                }
                let found = if method == "partition" {
                    s.split_once(sep)
                } else {
                    s.rsplit_once(sep)
                };
                let parts: [Value; 3] = match (found, method) {
                    (Some((a, b)), _) => [a.into(), sep.into(), b.into()],
                    (None, "partition") => [s.into(), "".into(), "".into()],
                    (None, _) => ["".into(), "".into(), s.into()],
                };
                Ok(Value::from(Tuple::from(parts)))
            }
            _ => Err(Error::from(ErrorKind::UnknownMethod)),
        }
    })();
    match result {
        Err(e) if e.kind() == ErrorKind::UnknownMethod => None,
        other => Some(other),
    }
}

// ---------------------------------------------------------------------------------------
// Printing as Python prints

/// The output formatter: `{{ x }}` prints what Jinja2 prints, i.e. Python's `str(x)`, where
/// that differs from minijinja (`None`, `True`, lists and dicts in Python's repr).
pub(crate) fn formatter(out: &mut Output, state: &mut State, value: &Value) -> Result<(), Error> {
    match value.kind() {
        ValueKind::None | ValueKind::Bool | ValueKind::Seq | ValueKind::Map => {
            out.write_str(&py_str(value)).map_err(Error::from)
        }
        _ => minijinja::escape_formatter(out, state, value),
    }
}

/// Python's `str()` of a value.
fn py_str(value: &Value) -> String {
    if let Some(s) = value.as_str() {
        return s.to_owned();
    }
    let mut out = String::new();
    py_repr(value, &mut out, 0);
    out
}

/// Deeper structures are cut short: a self-referencing list must not recurse forever.
const MAX_REPR_DEPTH: usize = 64;

/// Python's `repr()` of a value.
fn py_repr(value: &Value, out: &mut String, depth: usize) {
    if depth > MAX_REPR_DEPTH {
        out.push_str("...");
        return;
    }
    match value.kind() {
        ValueKind::None => out.push_str("None"),
        ValueKind::Bool => out.push_str(if value.is_true() { "True" } else { "False" }),
        ValueKind::String => py_repr_str(value.as_str().unwrap_or_default(), out),
        ValueKind::Seq => {
            let tuple = value.is_tuple();
            out.push(if tuple { '(' } else { '[' });
            let mut n = 0;
            if let Ok(items) = value.try_iter() {
                for item in items {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    py_repr(&item, out, depth + 1);
                    n += 1;
                }
            }
            if tuple && n == 1 {
                out.push(',');
            }
            out.push(if tuple { ')' } else { ']' });
        }
        ValueKind::Map => {
            out.push('{');
            if let Some(obj) = value.as_object()
                && let Some(pairs) = obj.try_iter_pairs()
            {
                for (n, (k, v)) in pairs.enumerate() {
                    if n > 0 {
                        out.push_str(", ");
                    }
                    py_repr(&k, out, depth + 1);
                    out.push_str(": ");
                    py_repr(&v, out, depth + 1);
                }
            }
            out.push('}');
        }
        _ => out.push_str(&value.to_string()),
    }
}

/// Python's `repr()` of a string: single quotes unless the text has one and no double quote.
fn py_repr_str(s: &str, out: &mut String) {
    let quote = if s.contains('\'') && !s.contains('"') {
        '"'
    } else {
        '\''
    };
    out.push(quote);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c == quote => {
                out.push('\\');
                out.push(c);
            }
            c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                out.push_str(&format!("\\x{:02x}", c as u32));
            }
            c => out.push(c),
        }
    }
    out.push(quote);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rewrites_percent_chains_and_list_displays_only_inside_tags() {
        assert_eq!(
            rewrite("50% [x] {{ 'a%s' % b }} {% set l = [] %}{{ a * b % c }}"),
            "50% [x] {{ __maestro_percent('a%s', b) }} {% set l = __maestro_list([]) %}\
             {{ __maestro_percent(a * b, c) }}"
        );
        // Subscripts and calls stay as they are; `%}` ends the tag, it is no operator.
        assert_eq!(
            rewrite("{% if x[0] %}{{ f(1)[2] }}{% endif %}"),
            "{% if x[0] %}{{ f(1)[2] }}{% endif %}"
        );
        assert_eq!(
            rewrite("{{- -a % -b|abs -}}"),
            "{{- __maestro_percent(-a, -b|abs) -}}"
        );
    }

    #[test]
    fn rewriting_keeps_lines_and_leaves_broken_tags_alone() {
        let src = "{{ '%s' %\n x }}\nnext";
        let out = rewrite(src);
        assert_eq!(
            out.matches('\n').count(),
            src.matches('\n').count(),
            "{out}"
        );
        assert_eq!(rewrite("a {{ 'x' % (1"), "a {{ 'x' % (1");
        assert_eq!(rewrite("{{ 'unterminated }}"), "{{ 'unterminated }}");
        assert_eq!(rewrite("{# [1] % 2"), "{# [1] % 2");
    }

    #[test]
    fn hostile_nesting_and_chains_do_not_overflow() {
        let deep = format!(
            "{{{{ {}1{} % 2 }}}}",
            "[".repeat(100_000),
            "]".repeat(100_000)
        );
        assert_eq!(rewrite(&deep), deep);
        let chain = format!("{{{{ 2{} % 3 }}}}", " ** 2".repeat(100_000));
        assert!(rewrite(&chain).starts_with("{{ __maestro_percent(2 ** 2"));
        assert_eq!(rewrite("{{ 2 ** % 3 }}"), "{{ 2 ** % 3 }}");
        assert_eq!(
            rewrite("{{ '\\é' % x }}é"),
            "{{ __maestro_percent('\\é', x) }}é"
        );
    }
}
