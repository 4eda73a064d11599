//! The known_hosts readers on arbitrary text: marker lines, host patterns and hashed names,
//! keys and the verdict logic must return, never panic or hang. A known_hosts file may come
//! from a shared /etc/ssh or a configuration tool, not only from the operator.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    maestro::transport::fuzzing::known_hosts(text);
});
