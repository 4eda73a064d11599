//! start, up, stop, down, kill, restart, pull, clean: the commands that change ships.

use super::super::{Cli, CliError};

pub(super) fn run(_cli: &Cli) -> Result<i32, CliError> {
    Err(CliError::Usage("this command is not implemented yet".into()))
}
