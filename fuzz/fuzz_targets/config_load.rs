//! The config loader on arbitrary text: it must return an environment or an error, never
//! panic, overflow its stack or hang. Crashes found here become cases of
//! tests/offline/hostile_input.rs.
#![no_main]

use std::collections::BTreeMap;
use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    // A fixed, empty template environment and a base directory that holds nothing: the
    // result depends on the input alone, so a crash reproduces.
    let vars = BTreeMap::new();
    let base = Path::new("/nonexistent-maestro-fuzz");
    if let Err(err) = maestro::config::load_str_with_vars(text, "fuzz.yaml", base, &vars) {
        // Rendering the message walks the snippet code with hostile positions too.
        let _ = err.to_string();
        let _ = err.exit_code();
    }
});
