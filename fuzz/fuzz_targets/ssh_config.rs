//! The ssh_config reader on arbitrary text: `Host` and `Match` blocks, normalisation, the
//! second queries for keywords russh-config does not know, and the expansion of known-hosts
//! file lists must return a result or an error, never panic or hang. The entry point reads
//! no `Include` and runs no `Match exec`, so hostile input cannot run commands here.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    maestro::transport::fuzzing::ssh_config(text);
});
