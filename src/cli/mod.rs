//! Command-line interface: parses arguments, runs the command, reports errors once.

/// Runs maestro with the process arguments and returns the exit code.
pub fn main() -> i32 {
    0
}
