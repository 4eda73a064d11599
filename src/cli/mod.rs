//! Command-line interface: parses arguments, runs the command, and is the one place where
//! errors are reported to the user and turned into exit codes.

mod args;
mod commands;
pub mod complete;

pub use args::{Cli, Command, ExecArgs, Output, PersistAction, SshArgs, Things};

/// Exit code for input the user must fix (bad file, bad arguments); no ship was contacted.
pub const EXIT_BAD_INPUT: i32 = 2;
/// Exit code when some instance or ship failed.
pub const EXIT_FAILED: i32 = 1;
/// Exit code when Ctrl-C ended the command (the shell's convention for SIGINT).
pub const EXIT_INTERRUPTED: i32 = 130;

/// The environment file's names looked for in the current directory, in this order (by the
/// commands and by completion alike).
const DEFAULT_FILES: [&str; 2] = ["maestro.yaml", "maestro.yml"];

/// Runs maestro with the process arguments and returns the exit code.
pub fn main() -> i32 {
    // Before anything can fail or print: secrets of the process environment are known from
    // the start; the environment file's are added once it is loaded.
    crate::secrets::install(crate::secrets::Masker::from_process_env());
    // The shell asking for completions (`COMPLETE=bash maestro -- WORDS`): answer, and stop.
    if let Some(code) = complete::answer_if_asked() {
        return code;
    }
    let cli = match <Cli as clap::Parser>::try_parse_from(args::options_after_command(
        std::env::args_os().collect(),
    )) {
        // `--output json` (`-o json`) is `--json`, for the reports as for the events.
        Ok(cli) if cli.output == Output::Json => Cli { json: true, ..cli },
        Ok(cli) => cli,
        Err(err) => {
            // clap prints help and version to stdout with code 0, usage errors with code 2.
            let _ = err.print();
            if let Some(hint) = usage_hint(&err, std::env::args().skip(1).collect()) {
                crate::ui::eprintln(&hint);
            }
            return err.exit_code();
        }
    };
    crate::ui::diagnostics::init(cli.verbose);
    // An encrypted key without MAESTRO_SSH_PASSPHRASE is asked for on the terminal, which is
    // ui's: transport only calls the prompt installed here.
    crate::transport::install_passphrase_prompt(std::sync::Arc::new(
        crate::ui::terminal::PassphraseOnTerminal,
    ));
    match commands::run(&cli) {
        Ok(code) => code,
        // A reader that stopped reading (`maestro man | head`): the output was wanted no
        // further, which is no error, as in ripgrep and every Unix filter.
        Err(CliError::Io(err)) if err.kind() == std::io::ErrorKind::BrokenPipe => 0,
        Err(err) => {
            // Error messages quote the user's file and the ships' replies: ui's writers mask
            // both.
            crate::ui::eprintln(&err.to_string());
            if cli.json {
                // Scripts read standard output: the same error, as a JSON document there;
                // for `validate`, with the key its success has.
                let mut doc = err.to_json();
                if matches!(cli.command, Command::Validate)
                    && let Some(fields) = doc.as_object_mut()
                {
                    fields.insert("valid".into(), serde_json::Value::Bool(false));
                }
                // Masked field by field: the location as written, the messages as text.
                crate::secrets::global().mask_json(&mut doc);
                crate::ui::println_fields(&doc.to_string());
            }
            err.exit_code()
        }
    }
}

/// An error that ends the command. Its message is complete (it starts with `error:`), and
/// each knows its exit code.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("{0}")]
    Config(#[from] crate::config::ConfigError),
    #[error("{0}")]
    Plan(#[from] crate::orchestrate::plan::select::PlanError),
    #[error("{0}")]
    Forward(#[from] crate::orchestrate::session::forward::ForwardError),
    /// Boxed: a Docker error inside makes it the largest by far.
    #[error("{0}")]
    Exec(Box<crate::orchestrate::session::exec::ExecError>),
    #[error("error: {0}")]
    Io(#[from] std::io::Error),
    /// A usage error that clap cannot see (e.g. `stop` without names or `-a`).
    #[error("error: {0}")]
    Usage(String),
    #[error("error: {0}")]
    Failed(String),
}

impl From<crate::orchestrate::session::exec::ExecError> for CliError {
    fn from(err: crate::orchestrate::session::exec::ExecError) -> Self {
        CliError::Exec(Box::new(err))
    }
}

impl CliError {
    /// `{"ok": false, "exit_code", "error", "diagnostics": [...]}`, where each diagnostic
    /// of a configuration error has its file, line, column, field, message and help.
    pub fn to_json(&self) -> serde_json::Value {
        let diagnostics: Vec<serde_json::Value> = match self {
            CliError::Config(err) => err
                .diagnostics()
                .into_iter()
                .map(|d| {
                    serde_json::json!({
                        "file": d.file,
                        "line": d.line,
                        "column": d.column,
                        "field": d.field,
                        "message": d.message,
                        "help": d.help,
                        "note": d.note,
                    })
                })
                .collect(),
            _ => Vec::new(),
        };
        let message = self.to_string();
        let first = message.lines().next().unwrap_or_default();
        serde_json::json!({
            "ok": false,
            "exit_code": self.exit_code(),
            "error": first.strip_prefix("error: ").unwrap_or(first),
            "diagnostics": diagnostics,
        })
    }

    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Config(err) => err.exit_code(),
            CliError::Plan(err) => err.exit_code(),
            CliError::Forward(err) => err.exit_code(),
            CliError::Exec(err) => err.exit_code(),
            CliError::Usage(_) => EXIT_BAD_INPUT,
            CliError::Io(_) | CliError::Failed(_) => EXIT_FAILED,
        }
    }
}

/// What a docker hand meant when clap refused the line: `logs web -f` (docker's follow) ends
/// with `-f`, which is the environment file here.
fn usage_hint(err: &clap::Error, args: Vec<String>) -> Option<String> {
    let missing_value = matches!(
        err.kind(),
        clap::error::ErrorKind::InvalidValue | clap::error::ErrorKind::UnknownArgument
    );
    let follow = args.iter().any(|a| a == "logs") && args.last().is_some_and(|a| a == "-f");
    (missing_value && follow).then(|| {
        "  = help: `-f` names the environment file; `logs -F` (or --follow) follows the logs"
            .to_string()
    })
}
