//! Golden files: expected outputs kept in `tests/golden/`, compared byte for byte.
//! `UPDATE_GOLDEN=1` rewrites them from the actual output instead (review the diff).
//!
//! Shared by integration tests (`#[path]` from tests/*.rs) and unit tests (`#[path]` from
//! src/), so it uses nothing but std.

use std::path::PathBuf;

/// Compares `actual` with `tests/golden/<name>`, or rewrites the file under UPDATE_GOLDEN=1.
pub fn check(name: &str, actual: &str) {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var_os("UPDATE_GOLDEN").is_some_and(|v| v == "1") {
        std::fs::write(&path, actual).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (run with UPDATE_GOLDEN=1 to create it)",
            path.display()
        )
    });
    assert!(
        expected == actual,
        "{} differs from the actual output (UPDATE_GOLDEN=1 to accept):\n--- expected\n{expected}\n--- actual\n{actual}",
        path.display()
    );
}
