//! Shell completion of the environment file's names (services, instances, ships), for bash,
//! zsh and fish (and clap's other shells), with clap_complete's dynamic completion.
//!
//! Decisions:
//!
//! - The shell calls `COMPLETE=SHELL maestro -- WORDS...` at each Tab; `maestro completions
//!   SHELL` (or `COMPLETE=SHELL maestro` with no words) prints the script that does so. The
//!   script then stays right whatever the file says: it asks the binary each time.
//! - The file is the one the command line would load: `-f FILE` (or `--file`) among the words
//!   already typed, else `MAESTRO_FILE`, else `maestro.yaml`/`maestro.yml` in the current
//!   directory. `-f -` (standard input) is not read while completing.
//! - A file that does not load completes nothing (the shell then offers nothing) and prints
//!   nothing: an error in the middle of a command line being typed would garble it.
//! - We dispatch ourselves instead of `CompleteEnv::complete()`, which writes to the process's
//!   standard output directly: every byte goes through `ui::output`.

use std::ffi::{OsStr, OsString};
use std::io::Write;
use std::path::PathBuf;
use std::sync::OnceLock;

use clap::CommandFactory;
use clap_complete::engine::CompletionCandidate;
use clap_complete::env::{EnvCompleter, Shells};

use super::Cli;
use crate::config::{self, Environment};

/// The variable the shell script sets (clap_complete's convention).
pub const VAR: &str = "COMPLETE";

/// The words of the command line being completed, for the completers to find `-f`.
static WORDS: OnceLock<Vec<OsString>> = OnceLock::new();

/// Answers the shell when `COMPLETE` is set, and returns the exit code; `None` for a normal
/// run.
pub fn answer_if_asked() -> Option<i32> {
    let shell_name = std::env::var_os(VAR).filter(|v| !v.is_empty() && v != "0")?;
    let mut args: Vec<OsString> = std::env::args_os().collect();
    let completer = if args.is_empty() {
        OsString::from("maestro")
    } else {
        args.remove(0)
    };
    let name = std::path::Path::new(&shell_name)
        .file_stem()
        .unwrap_or(&shell_name)
        .to_string_lossy()
        .into_owned();
    let shells = Shells::builtins();
    let Some(shell) = shells.completer(&name) else {
        crate::ui::eprintln(&format!(
            "error: {VAR}={name}: not a shell maestro completes for\n  = help: use one of \
             bash, zsh, fish, elvish, powershell"
        ));
        return Some(super::EXIT_BAD_INPUT);
    };
    let words: Vec<OsString> = match args.iter().position(|a| a == "--") {
        Some(i) => args.split_off(i + 1),
        None => Vec::new(),
    };
    let mut buf = Vec::new();
    let written = if words.is_empty() {
        registration(shell, &completer, &mut buf)
    } else {
        let _ = WORDS.set(words.clone());
        let mut cmd = Cli::command();
        cmd.build();
        let here = std::env::current_dir().ok();
        shell.write_complete(&mut cmd, words, here.as_deref(), &mut buf)
    };
    if written.is_err() {
        return Some(super::EXIT_FAILED);
    }
    let mut out = crate::ui::output::stdout();
    let _ = out.write_all(&buf);
    let _ = out.flush();
    Some(0)
}

/// The script of `maestro completions SHELL`: it calls this very binary back at each Tab.
pub fn script(shell: clap_complete::Shell) -> Result<Vec<u8>, std::io::Error> {
    let name = shell.to_string();
    let shells = Shells::builtins();
    let Some(completer) = shells.completer(&name) else {
        return Err(std::io::Error::other(format!("no completion for {name}")));
    };
    let program = std::env::args_os()
        .next()
        .unwrap_or_else(|| OsString::from("maestro"));
    let mut buf = Vec::new();
    registration(completer, &program, &mut buf)?;
    Ok(buf)
}

fn registration(
    shell: &dyn EnvCompleter,
    program: &OsStr,
    buf: &mut Vec<u8>,
) -> Result<(), std::io::Error> {
    // `./target/debug/maestro` works from any directory once made absolute; a bare `maestro`
    // is looked up in PATH by the shell, as it should be.
    let mut path = PathBuf::from(program);
    if path.components().count() > 1
        && let Ok(here) = std::env::current_dir()
    {
        path = here.join(path);
    }
    shell.write_registration(VAR, "maestro", "maestro", &path.to_string_lossy(), buf)
}

/// The file `-f`/`--file` names among `words`, else `MAESTRO_FILE`, else a default name that
/// exists here.
fn file_of(words: &[OsString]) -> Option<PathBuf> {
    let mut named = None;
    let mut iter = words.iter().map(|w| w.to_string_lossy());
    while let Some(word) = iter.next() {
        if word == "--" {
            break;
        }
        if word == "-f" || word == "--file" {
            named = iter.next().map(|f| f.into_owned());
        } else if let Some(file) = word.strip_prefix("--file=") {
            named = Some(file.to_string());
        } else if let Some(file) = word.strip_prefix("-f")
            && !file.is_empty()
            && !word.starts_with("--")
        {
            named = Some(file.to_string());
        }
    }
    let named = named
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("MAESTRO_FILE").map(PathBuf::from));
    match named {
        Some(file) if file.as_os_str() == "-" => None,
        Some(file) => Some(file),
        None => super::DEFAULT_FILES
            .iter()
            .map(PathBuf::from)
            .find(|p| p.is_file()),
    }
}

fn environment() -> Option<Environment> {
    let words = WORDS.get().map(Vec::as_slice).unwrap_or_default();
    config::load(&file_of(words)?).ok()
}

fn candidates(
    current: &OsStr,
    names: impl IntoIterator<Item = (String, String)>,
) -> Vec<CompletionCandidate> {
    let current = current.to_string_lossy();
    let mut seen = std::collections::BTreeSet::new();
    names
        .into_iter()
        .filter(|(name, _)| name.starts_with(current.as_ref()) && seen.insert(name.clone()))
        .map(|(name, help)| CompletionCandidate::new(name).help(Some(help.into())))
        .collect()
}

fn services_and_instances(env: &Environment) -> Vec<(String, String)> {
    let services = env.services.iter().map(|s| {
        (
            s.name.clone(),
            format!("service, {} instance(s)", s.instances.len()),
        )
    });
    let instances = env.instances().map(|(s, i)| {
        (
            i.name.clone(),
            format!("instance of {} on {}", s.name, i.ship),
        )
    });
    services.chain(instances).collect()
}

fn instances(env: &Environment) -> Vec<(String, String)> {
    env.instances()
        .map(|(s, i)| {
            (
                i.name.clone(),
                format!("instance of {} on {}", s.name, i.ship),
            )
        })
        .collect()
}

fn ships(env: &Environment) -> Vec<(String, String)> {
    env.ships
        .iter()
        .map(|s| (s.name.clone(), format!("ship at {}", s.ip)))
        .collect()
}

/// THING: services and instances.
pub fn things(current: &OsStr) -> Vec<CompletionCandidate> {
    environment().map_or_else(Vec::new, |env| {
        candidates(current, services_and_instances(&env))
    })
}

/// `-C GLOB`: instances.
pub fn instance_names(current: &OsStr) -> Vec<CompletionCandidate> {
    environment().map_or_else(Vec::new, |env| candidates(current, instances(&env)))
}

/// `-S GLOB`, `ships SHIP`: ships.
pub fn ship_names(current: &OsStr) -> Vec<CompletionCandidate> {
    environment().map_or_else(Vec::new, |env| candidates(current, ships(&env)))
}

/// `forward INSTANCE|SHIP`: instances, then ships.
pub fn instances_and_ships(current: &OsStr) -> Vec<CompletionCandidate> {
    environment().map_or_else(Vec::new, |env| {
        candidates(current, instances(&env).into_iter().chain(ships(&env)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<OsString> {
        text.split(' ').map(OsString::from).collect()
    }

    #[test]
    fn the_file_is_the_one_the_command_line_names() {
        let file = |text: &str| file_of(&words(text)).map(|p| p.display().to_string());
        assert_eq!(file("maestro -f a.yaml logs w").as_deref(), Some("a.yaml"));
        assert_eq!(
            file("maestro --file b.yaml logs").as_deref(),
            Some("b.yaml")
        );
        assert_eq!(
            file("maestro --file=c.yaml logs").as_deref(),
            Some("c.yaml")
        );
        assert_eq!(file("maestro -fd.yaml logs").as_deref(), Some("d.yaml"));
        assert_eq!(
            file("maestro logs -f e.yaml web").as_deref(),
            Some("e.yaml")
        );
        assert_eq!(file("maestro -f - logs"), None, "stdin is not read");
    }
}
