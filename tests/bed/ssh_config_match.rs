//! ssh_config `Match` through the binary on the real test bed: a ship named only by an alias
//! gets its address from a `Match` block, and only when every criterion holds.

use crate::common;

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

/// `maestro -f HOME/ships.yaml ships --json` with `HOME=home`, the ship named by `alias` in
/// `config`, and no `known_hosts_file` of its own: the known_hosts files are ssh_config's.
fn report_without_known_hosts_file(
    bed: &common::TestBed,
    ship: &common::Ship,
    alias: &str,
    config: &Path,
    home: &Path,
    policy: &str,
) -> Value {
    let file = home.join("ships.yaml");
    std::fs::write(
        &file,
        format!(
            "name: match\nships:\n  listed: {{ip: {}, endpoint: {alias}, timeout: 3, socket_path: \"{}\", ssh: {{user: {}, identity_files: [\"{}\"], known_hosts: {policy}}}}}\nservices: {{}}\n",
            ship.ip,
            ship.docker_socket.display(),
            bed.user,
            bed.key().display(),
        ),
    )
    .expect("write environment");
    common::first_ship_report(&file, &[("MAESTRO_SSH_CONFIG", config)])
}

#[test]
fn known_hosts_files_of_ssh_config_are_lists_with_tokens_and_global_files() {
    let bed = common::TestBed::shared();
    let ship = bed.outer_ships()[0].clone();
    // HOME of the run: `%d` below.
    let home = tempfile::tempdir().expect("tempdir");
    let home = home.path();
    let config = home.join("config");
    std::fs::write(
        &config,
        format!(
            "Host kh-*\n\
             \x20 HostName {ip}\n\
             \x20 UserKnownHostsFile \"%d/first kh\" %d/kh_%n_%r\n\
             \x20 GlobalKnownHostsFile %d/global_kh\n",
            ip = ship.ip,
        ),
    )
    .expect("write ssh config");
    let host_key = std::fs::read_to_string(ship.host_key_public.as_ref().expect("host key"))
        .expect("read host key");
    let line = format!("{} {}\n", ship.ip, host_key.trim());

    // Known only by the global file.
    std::fs::write(home.join("global_kh"), &line).expect("write");
    let reached = report_without_known_hosts_file(&bed, &ship, "kh-one", &config, home, "strict");
    assert_eq!(reached["ok"], true, "{reached}");

    // Known only by the second user file, its name made of `%n` and `%r`.
    std::fs::remove_file(home.join("global_kh")).expect("remove");
    std::fs::write(home.join(format!("kh_kh-one_{}", bed.user)), &line).expect("write");
    let reached = report_without_known_hosts_file(&bed, &ship, "kh-one", &config, home, "strict");
    assert_eq!(reached["ok"], true, "{reached}");

    // Known by none: accept-new records it in the first user file, and only there.
    let refused = report_without_known_hosts_file(&bed, &ship, "kh-two", &config, home, "strict");
    assert_eq!(refused["error"]["cause"], "host-key-unknown", "{refused}");
    assert!(
        refused["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains(&format!(">> '{}'", home.join("first kh").display())),
        "the hint names the first user file, quoted for the shell: {refused}"
    );
    let recorded =
        report_without_known_hosts_file(&bed, &ship, "kh-two", &config, home, "accept-new");
    assert_eq!(recorded["ok"], true, "{recorded}");
    let first = std::fs::read_to_string(home.join("first kh")).expect("first user file written");
    assert!(
        first.contains(host_key.split_whitespace().nth(1).expect("key")),
        "{first}"
    );
    assert!(!home.join(format!("kh_kh-two_{}", bed.user)).exists());
    assert!(!home.join("global_kh").exists());
}
