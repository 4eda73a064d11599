//! The diagnostic log (`-v`, `-vv`, `MAESTRO_LOG`): `tracing` events of the layers below,
//! one line each on stderr, through the masking writer like every other byte of output.
//!
//! - `-v`: every SSH step (TCP connect, the key exchange's algorithms, the host key check,
//!   each login method tried and its answer, channel opens) and every Docker API request
//!   (method, path, status, time);
//! - `-vv`: also the SSH library's own messages (russh logs through the `log` crate; the
//!   subscriber bridges them);
//! - `MAESTRO_LOG`: a filter in `tracing`'s syntax (`debug`, `maestro::transport=trace`)
//!   instead of the flags.
//!
//! Time is shown since the start of the process: what an operator reads in a diagnostic is
//! how long each step took.

use tracing_subscriber::EnvFilter;

use super::output;

/// The variable that sets the filter instead of `-v`.
pub const LOG_VARIABLE: &str = "MAESTRO_LOG";

/// The filter for `-v` repeated `verbose` times; None: no diagnostics.
fn filter_for(verbose: u8) -> Option<&'static str> {
    match verbose {
        0 => None,
        // The key exchange's choice is logged by russh itself, at debug.
        1 => Some("maestro=debug,russh::client::kex=debug"),
        _ => Some("maestro=trace,russh=debug"),
    }
}

/// Whether diagnostics will be written (the live display, which redraws stderr, would
/// garble them: the caller picks plain lines then).
pub fn wanted(verbose: u8) -> bool {
    verbose > 0 || std::env::var(LOG_VARIABLE).is_ok_and(|spec| !spec.trim().is_empty())
}

/// Installs the diagnostic log for `-v` repeated `verbose` times, or for `MAESTRO_LOG` when
/// it is set. A bad `MAESTRO_LOG` is reported and the flags' filter used instead.
pub fn init(verbose: u8) {
    let from_variable = std::env::var(LOG_VARIABLE)
        .ok()
        .filter(|spec| !spec.trim().is_empty());
    let filter = match from_variable {
        Some(spec) => match EnvFilter::try_new(&spec) {
            Ok(filter) => filter,
            Err(err) => {
                output::eprintln(&format!(
                    "warning: {LOG_VARIABLE}={spec:?} is not a log filter ({err}); write a \
                     level (`debug`) or `target=level` pairs (`maestro::transport=trace`)"
                ));
                match filter_for(verbose.max(1)) {
                    Some(default) => EnvFilter::new(default),
                    None => return,
                }
            }
        },
        None => match filter_for(verbose) {
            Some(default) => EnvFilter::new(default),
            None => return,
        },
    };
    let colours = super::colors_wanted(console::Term::stderr().is_term());
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(output::stderr)
        .with_timer(tracing_subscriber::fmt::time::uptime())
        .with_ansi(colours)
        .with_target(verbose >= 2)
        .try_init();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_level_says_what_it_shows() {
        assert_eq!(filter_for(0), None);
        assert!(filter_for(1).is_some_and(|f| f.contains("maestro=debug")));
        assert!(filter_for(3).is_some_and(|f| f.contains("russh=debug")));
    }
}
