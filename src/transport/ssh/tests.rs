//! Unit tests of the SSH parts that need no server: route resolution, host key order and
//! quoting, the pacing of logins, when a passphrase is asked.

use russh::keys::Algorithm;
use russh::keys::ssh_key::EcdsaCurve;
use std::sync::atomic::Ordering;

use super::auth::passphrase_for;
use super::connect::host_key_order;
use super::host_key::shell_word;
use super::pool::{Gate, backoff};
use super::route::{expand_proxy_tokens, known_hosts_files};
use crate::transport::known_hosts::{self, HostKeyPolicy, Verdict};
use crate::transport::ssh_config::{self, HostSettings};

#[test]
fn every_user_and_global_known_hosts_file_is_read_and_new_keys_go_to_the_first_user_file() {
    use std::path::PathBuf;
    let dir = tempfile::tempdir().expect("tempdir");
    let home = dir.path();
    let tokens = ssh_config::FileTokens {
        home: Some(home),
        local_user: "me",
        host: "10.0.0.1",
        original_host: "web",
        port: 22,
        remote_user: "deploy",
    };
    // Injected: the real /etc/ssh of the machine running the tests is never read.
    let global_default = format!("{0}/global1 {0}/global2", home.display());
    let settings = HostSettings {
        user_known_hosts_files: Some("~/kh_%n_%h \"%d/second file\"".into()),
        ..HostSettings::default()
    };
    let (files, record) =
        known_hosts_files(None, &settings, &tokens, &global_default).expect("files");
    assert_eq!(
        files,
        vec![
            home.join("kh_web_10.0.0.1"),
            home.join("second file"),
            home.join("global1"),
            home.join("global2"),
        ]
    );
    assert_eq!(record, Some(home.join("kh_web_10.0.0.1")));

    // A key only in a global file is known; a new key is recorded in the first user file.
    let key = |b64: &str| russh::keys::parse_public_key_base64(b64).expect("key");
    let known = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
    let new = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";
    std::fs::write(
        home.join("global2"),
        format!("10.0.0.1 ssh-ed25519 {known}\n"),
    )
    .expect("write");
    let verify = |b64: &str, host: &str| {
        known_hosts::verify(
            host,
            22,
            &key(b64),
            &files,
            known_hosts::accept_new_into(HostKeyPolicy::AcceptNew, record.as_deref()),
        )
    };
    assert!(matches!(verify(known, "10.0.0.1"), Verdict::Known));
    assert!(matches!(verify(new, "10.0.0.1"), Verdict::Changed { .. }));
    match verify(new, "10.0.0.9") {
        Verdict::Recorded { file } => assert_eq!(file, home.join("kh_web_10.0.0.1")),
        other => panic!("expected Recorded, got {other:?}"),
    }

    // `UserKnownHostsFile none`: globals still read, nothing to record into.
    let none = HostSettings {
        user_known_hosts_files: Some("none".into()),
        global_known_hosts_files: Some("%d/site_known_hosts".into()),
        ..HostSettings::default()
    };
    let (files, record) = known_hosts_files(None, &none, &tokens, &global_default).expect("files");
    assert_eq!(files, vec![home.join("site_known_hosts")]);
    assert_eq!(record, None);

    // OpenSSH's defaults, and the ship's own file alone when it names one.
    let (files, record) =
        known_hosts_files(None, &HostSettings::default(), &tokens, &global_default).expect("files");
    assert_eq!(
        files[..2],
        [
            home.join(".ssh/known_hosts"),
            home.join(".ssh/known_hosts2")
        ]
    );
    assert_eq!(files.len(), 4);
    assert_eq!(record, Some(home.join(".ssh/known_hosts")));
    let explicit = PathBuf::from("/ship/kh");
    let (files, record) =
        known_hosts_files(Some(&explicit), &settings, &tokens, &global_default).expect("files");
    assert_eq!(files, vec![explicit.clone()]);
    assert_eq!(record, Some(explicit));

    let bad = HostSettings {
        user_known_hosts_files: Some("~/kh_%C".into()),
        ..HostSettings::default()
    };
    let err = known_hosts_files(None, &bad, &tokens, &global_default).expect_err("unknown token");
    assert!(err.contains("UserKnownHostsFile `~/kh_%C`"), "{err}");
}

#[test]
fn paths_in_pasted_commands_are_quoted_when_they_need_it() {
    assert_eq!(
        shell_word("/root/.ssh/known_hosts"),
        "/root/.ssh/known_hosts"
    );
    assert_eq!(shell_word("/home/me/first kh"), "'/home/me/first kh'");
    assert_eq!(shell_word("/a'b"), "'/a'\\''b'");
}

#[test]
fn an_rsa_key_on_record_asks_for_sha2_rsa_signatures_first() {
    let default = russh::Preferred::default().key;
    let rsa_first = host_key_order(&default, &[Algorithm::Rsa { hash: None }]);
    assert_eq!(
        rsa_first[..3],
        [
            Algorithm::Rsa {
                hash: Some(russh::keys::HashAlg::Sha512)
            },
            Algorithm::Rsa {
                hash: Some(russh::keys::HashAlg::Sha256)
            },
            Algorithm::Rsa { hash: None },
        ]
    );
    assert_eq!(rsa_first.len(), default.len());
    let ecdsa = Algorithm::Ecdsa {
        curve: EcdsaCurve::NistP256,
    };
    let ecdsa_first = host_key_order(&default, std::slice::from_ref(&ecdsa));
    assert_eq!(ecdsa_first[0], ecdsa);
    assert_eq!(ecdsa_first[1], Algorithm::Ed25519);
    assert_eq!(host_key_order(&default, &[]), default.to_vec());
}

#[test]
fn backoff_doubles_to_two_seconds_with_jitter() {
    for attempt in 1..10 {
        let base = 250u64 * (1 << attempt.min(3));
        let base = base.min(2000);
        let wait = backoff(attempt).as_millis() as u64;
        assert!(
            (base / 2..=base * 3 / 2).contains(&wait),
            "attempt {attempt}: {wait} ms"
        );
    }
}

#[tokio::test]
async fn a_gate_shrinks_by_one_per_drop_down_to_one_place() {
    let gate = Gate::new(3);
    for _ in 0..5 {
        let place = gate.enter().await;
        gate.shrink(place);
    }
    assert_eq!(gate.size.load(Ordering::SeqCst), 1);
    assert_eq!(gate.places.available_permits(), 1);
    let place = gate.enter().await;
    assert!(place.is_some());
    assert_eq!(gate.places.available_permits(), 0);
}

#[test]
fn proxy_command_tokens() {
    assert_eq!(
        expand_proxy_tokens(
            "ssh -l %r -W %h:%p %n 100%% %x %",
            "10.0.0.1",
            2222,
            "ops",
            "web"
        ),
        Ok("ssh -l ops -W 10.0.0.1:2222 web 100% %x %".to_string())
    );
    let refused = expand_proxy_tokens("nc %h %p", "10.0.0.1$(touch /tmp/x)", 22, "ops", "w");
    assert!(
        refused
            .as_ref()
            .is_err_and(|e| e.contains("%h would be `10.0.0.1$(touch /tmp/x)`")),
        "{refused:?}"
    );
    assert!(
        expand_proxy_tokens("nc %h %p", "h", 22, "a;b", "w").is_ok(),
        "%r unused"
    );
    assert!(expand_proxy_tokens("ssh -l %r -W %h:%p g", "h", 22, "a;b", "w").is_err());
    assert!(expand_proxy_tokens("nc %n %p", "h", 22, "u", "-oProxyCommand=x").is_err());
}

/// A prompt that answers from a script and counts the questions.
struct ScriptedPrompt {
    asked: std::sync::Mutex<Vec<std::path::PathBuf>>,
}

impl super::PassphrasePrompt for ScriptedPrompt {
    fn ask(&self, key: &std::path::Path) -> Option<String> {
        self.asked.lock().expect("lock").push(key.to_path_buf());
        Some(format!("typed for {}", key.display()))
    }
}

#[tokio::test]
async fn a_passphrase_is_asked_once_per_key_and_never_in_batch_mode_or_when_given() {
    use std::sync::Arc;
    let prompt = Arc::new(ScriptedPrompt {
        asked: std::sync::Mutex::new(Vec::new()),
    });
    let options = |batch_mode: bool, passphrase: Option<&str>| super::ConnectOptions {
        ship: "web".into(),
        timeout: std::time::Duration::from_secs(1),
        keepalive: std::time::Duration::from_secs(1),
        batch_mode,
        agent_socket: None,
        passphrase: passphrase.map(str::to_string),
        prompt: Some(prompt.clone()),
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let key = dir.path().join("id_prompted");
    let other = dir.path().join("id_other");

    let given = passphrase_for(&key, &options(false, Some("from env"))).await;
    assert_eq!(given.as_deref(), Some("from env"));
    assert_eq!(passphrase_for(&key, &options(true, None)).await, None);
    assert!(prompt.asked.lock().expect("lock").is_empty());

    let typed = format!("typed for {}", key.display());
    assert_eq!(
        passphrase_for(&key, &options(false, None)).await,
        Some(typed.clone())
    );
    assert_eq!(
        passphrase_for(&key, &options(false, None)).await,
        Some(typed)
    );
    assert!(
        passphrase_for(&other, &options(false, None))
            .await
            .is_some()
    );
    assert_eq!(*prompt.asked.lock().expect("lock"), vec![key, other]);
}
