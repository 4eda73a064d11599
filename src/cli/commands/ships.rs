//! `maestro ships`: connect to every ship at once and report how each was reached.

use super::super::{Cli, CliError};

pub(super) fn ships(_cli: &Cli, _names: &[String]) -> Result<i32, CliError> {
    Err(CliError::Usage("`ships` is not implemented yet".into()))
}
