//! ssh_config `Match` through the binary on the real test bed: a ship named only by an alias
//! gets its address from a `Match` block, and only when every criterion holds.

mod common;

use std::path::Path;

use serde_json::Value;

/// `maestro -f FILE ships --json` for one ship whose `endpoint` is `alias`, looked up in
/// `config` (named by `MAESTRO_SSH_CONFIG`, since a ship has no setting for it).
fn report(bed: &common::TestBed, ship: &common::Ship, alias: &str, config: &Path) -> Value {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("ships.yaml");
    std::fs::write(
        &file,
        format!(
            "name: match\nships:\n  matched: {{ip: {}, endpoint: {alias}, timeout: 3, socket_path: \"{}\", ssh: {}}}\nservices: {{}}\n",
            ship.ip,
            ship.docker_socket.display(),
            bed.ssh_yaml(""),
        ),
    )
    .expect("write environment");
    common::first_ship_report(&file, &[("MAESTRO_SSH_CONFIG", config)])
}

#[test]
fn match_block_supplies_the_address_only_when_all_criteria_hold() {
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[0].clone();
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("config");
    std::fs::write(
        &config,
        format!(
            "Match originalhost via-match,other user {user} exec \"test %n = via-match -a %r = {user}\"\n\
             \x20 HostName {ip}\n\
             Match originalhost refused-by-exec exec false\n\
             \x20 HostName {ip}\n\
             Host refused-by-exec\n\
             \x20 HostName 127.0.0.1\n\
             \x20 Port 1\n",
            user = bed.user,
            ip = ship.ip,
        ),
    )
    .expect("write ssh config");

    let reached = report(&bed, &ship, "via-match", &config);
    assert_eq!(reached["ok"], true, "{reached}");
    assert!(
        reached["connection"]["route"]
            .as_str()
            .unwrap_or("")
            .contains(&ship.ip),
        "{reached}"
    );

    // The failing command skips the block, so the later (closed) address is the first one.
    let refused = report(&bed, &ship, "refused-by-exec", &config);
    assert_eq!(refused["ok"], false, "{refused}");
    assert_eq!(refused["error"]["cause"], "refused", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("127.0.0.1:1"),
        "{refused}"
    );
}
