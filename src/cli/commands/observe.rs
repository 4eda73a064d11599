//! status, logs, plan: the commands that look at ships without changing them.

use super::super::{Cli, CliError};

pub(super) fn run(_cli: &Cli) -> Result<i32, CliError> {
    Err(CliError::Usage("this command is not implemented yet".into()))
}
