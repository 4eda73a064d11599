//! One way to read the keys of a mapping. The reader remembers every key it was asked for,
//! present or not: those are the keys the section knows, so the "unknown key" check and its
//! suggestions come from the reading code itself and cannot drift from a hand-kept list.
//!
//! Decisions:
//! - A key is unknown when nothing consumed it (`finish`), not merely when it was never asked
//!   for: of `command` and `cmd` only the first present is used, and the other is refused.
//! - The known keys are listed in the order they were asked for (suggestion ties, and the
//!   "known keys here" help, follow that order).
//! - `opt` reads an explicit `null` as absent. `given` hands `null` to the value's reader,
//!   which refuses it unless its type has a use for it: keys whose `null` was refused before
//!   this reader existed still are, so that no file changes meaning.
//! - Keys accepted for MaestroNG's files and not used are named once, with `accept_ignored`.

use super::error::did_you_mean;
use super::node::{Node, Pos, Value};
use super::reader::{Cx, Result};

pub(crate) fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// A mapping being read: remembers which keys were asked for and which were consumed, so the
/// rest can be reported.
pub(crate) struct MapReader<'n> {
    pub path: String,
    pub pos: Pos,
    entries: Vec<(String, &'n Node, &'n Node)>,
    used: Vec<bool>,
    asked: Vec<String>,
}

impl<'n> MapReader<'n> {
    pub fn new(cx: &mut Cx<'_>, node: &'n Node, path: &str, what: &str) -> Result<Self> {
        let Value::Map(pairs) = &node.value else {
            return Err(cx.invalid(
                node.pos,
                path,
                format!("{what} must be a mapping, found {}", node.kind_name()),
            ));
        };
        cx.record(path, node.pos);
        let mut entries = Vec::with_capacity(pairs.len());
        for (k, v) in pairs {
            let Some(key) = k.scalar_text() else {
                return Err(cx.invalid(
                    k.pos,
                    path,
                    format!("keys of {what} must be names, found {}", k.kind_name()),
                ));
            };
            cx.record(&join(path, &key), v.pos);
            cx.key_spans.insert(join(path, &key), k.pos);
            entries.push((key, k, v));
        }
        let used = vec![false; entries.len()];
        // A missing key is best shown at the key that names this mapping (`web:`).
        let pos = cx.key_spans.get(path).copied().unwrap_or(node.pos);
        Ok(MapReader {
            path: path.to_owned(),
            pos,
            entries,
            used,
            asked: Vec::new(),
        })
    }

    fn ask(&mut self, key: &str) {
        if !self.asked.iter().any(|k| k == key) {
            self.asked.push(key.to_owned());
        }
    }

    /// The value of `key` as written, `null` included.
    pub fn get(&mut self, key: &str) -> Option<&'n Node> {
        self.ask(key);
        let i = self.entries.iter().position(|(k, _, _)| k == key)?;
        self.used[i] = true;
        Some(self.entries[i].2)
    }

    /// The value of `key`, an explicit `null` being absent.
    pub fn opt_node(&mut self, key: &str) -> Option<&'n Node> {
        self.get(key).filter(|n| !matches!(n.value, Value::Null))
    }

    /// `key` read by `read` unless it is absent or `null`.
    pub fn opt<'c, T>(
        &mut self,
        cx: &mut Cx<'c>,
        key: &str,
        read: impl FnOnce(&mut Cx<'c>, &'n Node, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        let path = self.field(key);
        self.opt_node(key).map(|n| read(cx, n, &path)).transpose()
    }

    /// `key` read by `read` unless it is absent; a `null` is the reader's to accept or refuse.
    pub fn given<'c, T>(
        &mut self,
        cx: &mut Cx<'c>,
        key: &str,
        read: impl FnOnce(&mut Cx<'c>, &'n Node, &str) -> Result<T>,
    ) -> Result<Option<T>> {
        let path = self.field(key);
        self.get(key).map(|n| read(cx, n, &path)).transpose()
    }

    /// The first of `keys` present (aliases such as `command`/`cmd`), with the spelling used.
    /// All of them are known keys; only the one returned is consumed.
    pub fn get_any(&mut self, keys: &[&'static str]) -> Option<(&'static str, &'n Node)> {
        keys.iter().for_each(|k| self.ask(k));
        keys.iter().find_map(|k| self.get(k).map(|n| (*k, n)))
    }

    pub fn require(&mut self, cx: &Cx<'_>, key: &str, what: &str) -> Result<&'n Node> {
        self.get(key).ok_or_else(|| {
            cx.invalid(
                self.pos,
                &self.path,
                format!("{what} is missing the required key `{key}`"),
            )
        })
    }

    /// Keys accepted for MaestroNG's files and not used.
    pub fn accept_ignored(&mut self, keys: &[&str]) {
        for key in keys {
            let _ = self.get(key);
        }
    }

    /// Whether `key` is written here (`null` included), without consuming it.
    pub fn has(&self, key: &str) -> bool {
        self.entries.iter().any(|(k, _, _)| k == key)
    }

    /// The keys asked for so far, in the order they were first asked for.
    pub fn known(&self) -> Vec<&str> {
        self.asked.iter().map(String::as_str).collect()
    }

    pub fn field(&self, key: &str) -> String {
        join(&self.path, key)
    }

    /// Every entry, in file order (for user-keyed maps such as `env` or `ports`).
    pub fn all(&mut self) -> Vec<(String, &'n Node, &'n Node)> {
        self.used.iter_mut().for_each(|u| *u = true);
        self.entries.clone()
    }

    /// Fails on the first key that was not consumed, suggesting the closest known key.
    pub fn finish(self, cx: &Cx<'_>, what: &str) -> Result<()> {
        let known = self.known();
        for (i, (key, key_node, _)) in self.entries.iter().enumerate() {
            if !self.used[i] {
                let help = compose_habit(key, &known)
                    .or_else(|| did_you_mean(key, known.iter().copied()))
                    .or_else(|| Some(format!("known keys here: {}", known.join(", "))));
                return Err(cx.invalid_help(
                    key_node.pos,
                    &join(&self.path, key),
                    format!("unknown key `{key}` in {what}"),
                    help,
                ));
            }
        }
        Ok(())
    }
}

/// docker compose's name for a key whose meaning here has another name (or another place):
/// the spelling suggestion would point elsewhere (`environment` is closest to `envfile`).
fn compose_habit(key: &str, known: &[&str]) -> Option<String> {
    let has = |k: &str| known.contains(&k);
    match key {
        "environment" if has("env") => Some(
            "docker compose's `environment` is `env` here: a mapping `NAME: value`".to_string(),
        ),
        "depends_on" if has("requires") => Some(
            "docker compose's `depends_on` is `requires` here: the services to start first \
             (`wants_info` gives their variables without the order)"
                .to_string(),
        ),
        "restart" if has("instances") => Some(
            "`restart` is set per instance here: `instances: {NAME: {restart: always}}`"
                .to_string(),
        ),
        "container_name" if has("instances") => Some(
            "an instance's name is its container's name: name the instance under `instances`"
                .to_string(),
        ),
        _ => None,
    }
}
