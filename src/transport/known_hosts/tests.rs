//! Unit tests of known_hosts: host fields, markers, verdicts and recording, host
//! certificates; moved out of known_hosts.rs to keep it readable.

use super::*;

const KEY_A: &str = "AAAAC3NzaC1lZDI1NTE5AAAAIJdD7y3aLq454yWBdwLWbieU1ebz9/cu7/QEXn9OIeZJ";
const KEY_B: &str = "AAAAC3NzaC1lZDI1NTE5AAAAILIG2T/B0l0gaqj3puu510tu9N1OkQ4znY3LYuEm5zCF";
const KEY_RSA: &str = "AAAAB3NzaC1yc2EAAAADAQABAAABAQDeIa0K3VWwQBCosKOQC3wIEvaRD4JB3ke3TGOAGenzOA0ELcHXs8fRvLq5b6xZEvciYCqt88iDuzbnPbwPrYbkVeM58opGVe94aCtGIZmIorr6k+62KMzEJUHSJbXg7lVVQoTNEGw+59yYfXwOHHRtGAsaAVxwB9kqdPTNrEuMte9F1Fc6Yzeujie41udyHTYRODQEyvM7gJjnXWtX57FpDy/GkGe6cA1L0kY1KZnaqCOIfVBgU31NmogWj0RXy0L6oTBU2muesSL83skBbDFHDKKPf3oSeHIiXxL1vtuhK9Q4SfoAReytreBXV3qP4Dj54BZwICak7wwOxYZH8KiB";
const KEY_ECDSA: &str = "AAAAE2VjZHNhLXNoYTItbmlzdHAyNTYAAAAIbmlzdHAyNTYAAABBBNEZzZpulFw9C7+rCfd0XKDgaeKyoFkkRz9Gi/kQiAMHVh6Vwb4isetsFSeZVrIRENRlvlxEIn9iJmUI72bnf94=";

/// `verify`, recording into the first file as a user's known_hosts is.
fn check_key(
    host: &str,
    port: u16,
    key: &PublicKey,
    files: &[PathBuf],
    policy: HostKeyPolicy,
) -> Verdict {
    verify(
        host,
        port,
        key,
        files,
        accept_new_into(policy, files.first().map(PathBuf::as_path)),
    )
}

fn key(b64: &str) -> PublicKey {
    russh::keys::parse_public_key_base64(b64).expect("test key")
}

#[test]
fn revoked_keys_are_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("known_hosts");
    std::fs::write(
        &file,
        format!("10.0.0.1 ssh-ed25519 {KEY_A}\n@revoked * ssh-ed25519 {KEY_A}\n"),
    )
    .expect("write");
    assert!(matches!(
        check_key(
            "10.0.0.1",
            22,
            &key(KEY_A),
            &[file],
            HostKeyPolicy::AcceptNew
        ),
        Verdict::Revoked { .. }
    ));
}

#[test]
fn known_unknown_changed_and_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("known_hosts");
    std::fs::write(&file, format!("[10.0.0.1]:2222 ssh-ed25519 {KEY_A}\n")).expect("write");
    let files = vec![file.clone()];

    assert!(matches!(
        check_key("10.0.0.1", 2222, &key(KEY_A), &files, HostKeyPolicy::Strict),
        Verdict::Known
    ));
    assert!(matches!(
        check_key("10.0.0.2", 22, &key(KEY_A), &files, HostKeyPolicy::Strict),
        Verdict::Unknown
    ));
    match check_key(
        "10.0.0.1",
        2222,
        &key(KEY_B),
        &files,
        HostKeyPolicy::AcceptNew,
    ) {
        Verdict::Changed {
            expected,
            line,
            recorded_types,
            offered_type,
            ..
        } => {
            assert_eq!(expected, vec![fingerprint(&key(KEY_A))]);
            assert_eq!(line, 1);
            assert_eq!(recorded_types, vec!["ssh-ed25519"]);
            assert_eq!(offered_type, "ssh-ed25519");
        }
        other => panic!("expected Changed, got {other:?}"),
    }
    assert!(matches!(
        check_key(
            "10.0.0.2",
            22,
            &key(KEY_B),
            &files,
            HostKeyPolicy::AcceptNew
        ),
        Verdict::Recorded { .. }
    ));
    assert!(matches!(
        check_key("10.0.0.2", 22, &key(KEY_B), &files, HostKeyPolicy::Strict),
        Verdict::Known
    ));
}

#[test]
fn a_key_of_a_type_not_on_record_is_changed_even_with_accept_new() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("known_hosts");
    let text = format!("10.0.0.1 ssh-ed25519 {KEY_A}\n");
    std::fs::write(&file, &text).expect("write");
    let files = vec![file.clone()];
    for (offered, name) in [(KEY_RSA, "ssh-rsa"), (KEY_ECDSA, "ecdsa-sha2-nistp256")] {
        for policy in [HostKeyPolicy::Strict, HostKeyPolicy::AcceptNew] {
            match check_key("10.0.0.1", 22, &key(offered), &files, policy) {
                Verdict::Changed {
                    expected,
                    recorded_types,
                    offered_type,
                    line,
                    ..
                } => {
                    assert_eq!(expected, vec![fingerprint(&key(KEY_A))]);
                    assert_eq!(recorded_types, vec!["ssh-ed25519"]);
                    assert_eq!(offered_type, name);
                    assert_eq!(line, 1);
                }
                other => panic!("{name} {policy:?}: expected Changed, got {other:?}"),
            }
        }
    }
    assert_eq!(std::fs::read_to_string(&file).expect("read"), text);
    // A host with both types on record accepts either, and a new key of a recorded type
    // is named against the entry of that type.
    std::fs::write(
        &file,
        format!("10.0.0.1 ssh-ed25519 {KEY_A}\n10.0.0.1 ssh-rsa {KEY_RSA}\n"),
    )
    .expect("write");
    assert!(matches!(
        check_key("10.0.0.1", 22, &key(KEY_RSA), &files, HostKeyPolicy::Strict),
        Verdict::Known
    ));
    match check_key("10.0.0.1", 22, &key(KEY_B), &files, HostKeyPolicy::Strict) {
        Verdict::Changed {
            expected,
            recorded_types,
            ..
        } => {
            assert_eq!(expected, vec![fingerprint(&key(KEY_A))]);
            assert_eq!(recorded_types, vec!["ssh-ed25519", "ssh-rsa"]);
        }
        other => panic!("expected Changed, got {other:?}"),
    }
}

mod certificates {
    use super::*;
    use russh::keys::PrivateKey;
    use russh::keys::ssh_key::certificate::Builder;
    use russh::keys::ssh_key::private::Ed25519Keypair;

    const NOW: u64 = 1_800_000_000;

    fn private(seed: u8) -> PrivateKey {
        PrivateKey::from(Ed25519Keypair::from_seed(&[seed; 32]))
    }

    fn openssh(key: &PrivateKey) -> String {
        key.public_key().to_openssh().expect("openssh form")
    }

    struct Cert {
        kind: CertType,
        principals: Vec<&'static str>,
        after: u64,
        before: u64,
    }

    impl Default for Cert {
        fn default() -> Self {
            Cert {
                kind: CertType::Host,
                principals: vec!["10.0.0.1"],
                after: NOW - 3600,
                before: NOW + 3600,
            }
        }
    }

    fn sign(host: &PrivateKey, ca: &PrivateKey, cert: Cert) -> Certificate {
        let mut builder = Builder::new(
            [7u8; 16],
            host.public_key().key_data().clone(),
            cert.after,
            cert.before,
        )
        .expect("builder");
        builder.cert_type(cert.kind).expect("type");
        if cert.principals.is_empty() {
            builder.all_principals_valid().expect("principals");
        }
        for principal in cert.principals {
            builder.valid_principal(principal).expect("principal");
        }
        builder.sign(ca).expect("sign")
    }

    fn check(known_hosts: &str, host: &str, port: u16, cert: &Certificate) -> Verdict {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, known_hosts).expect("write");
        verify_certificate(host, port, cert, &[file], None, None, NOW).0
    }

    fn problem(verdict: Verdict) -> CertProblem {
        match verdict {
            Verdict::BadCertificate { problem } => problem,
            other => panic!("expected BadCertificate, got {other:?}"),
        }
    }

    #[test]
    fn accepted_when_a_trusted_ca_signed_it_for_this_host() {
        let (ca, host) = (private(1), private(2));
        let cert = sign(&host, &ca, Cert::default());
        let line = format!("@cert-authority 10.0.0.* {}\n", openssh(&ca));
        assert!(matches!(
            check(&line, "10.0.0.1", 22, &cert),
            Verdict::Certified
        ));
        let port_line = format!("@cert-authority [10.0.0.?]:2222,other {}\n", openssh(&ca));
        assert!(matches!(
            check(&port_line, "10.0.0.1", 2222, &cert),
            Verdict::Certified
        ));
        // OpenSSH writes `[host]:port` for other ports: a bare pattern does not cover them.
        assert!(matches!(
            problem(check(&line, "10.0.0.1", 2222, &cert)),
            CertProblem::UntrustedCa { .. }
        ));
    }

    #[test]
    fn hashed_host_fields_match() {
        // Written by `ssh-keygen -H` for 10.1.2.3.
        let hashed = "|1|3wbRCE5Sgb3oepQ6EgYROG9RbFQ=|vfhu2Ncz5OCurPcVqWcRsztECqM=";
        assert!(hosts_field_matches("10.1.2.3", 22, hashed));
        assert!(!hosts_field_matches("10.1.2.4", 22, hashed));
        assert!(!hosts_field_matches(
            "10.1.2.3",
            22,
            &format!("*,!{hashed}")
        ));
        use russh::keys::ssh_encoding::base64::{Base64, Encoding};
        let (ca, host) = (private(1), private(2));
        let cert = sign(&host, &ca, Cert::default());
        let salt = [9u8; 20];
        let hash = sha1::hmac(&salt, b"10.0.0.1");
        let field = format!(
            "|1|{}|{}",
            Base64::encode_string(&salt),
            Base64::encode_string(&hash)
        );
        let line = format!("@cert-authority {field} {}\n", openssh(&ca));
        assert!(matches!(
            check(&line, "10.0.0.1", 22, &cert),
            Verdict::Certified
        ));
        assert!(matches!(
            problem(check(
                &line,
                "10.0.0.2",
                22,
                &sign(
                    &host,
                    &ca,
                    Cert {
                        principals: vec!["10.0.0.2"],
                        ..Cert::default()
                    }
                )
            )),
            CertProblem::UntrustedCa { .. }
        ));
    }

    #[test]
    fn wrong_principal_is_refused_with_the_principals() {
        let (ca, host) = (private(1), private(2));
        let cert = sign(
            &host,
            &ca,
            Cert {
                principals: vec!["web1", "web2"],
                ..Cert::default()
            },
        );
        let line = format!("@cert-authority * {}\n", openssh(&ca));
        let refused = problem(check(&line, "10.0.0.1", 22, &cert));
        assert_eq!(
            refused.to_string(),
            "is for principals [web1, web2], not `10.0.0.1`"
        );
        let wildcard = sign(
            &host,
            &ca,
            Cert {
                principals: vec!["10.0.0.*"],
                ..Cert::default()
            },
        );
        assert!(matches!(
            check(&line, "10.0.0.1", 22, &wildcard),
            Verdict::Certified
        ));
        let none = sign(
            &host,
            &ca,
            Cert {
                principals: vec![],
                ..Cert::default()
            },
        );
        assert_eq!(
            problem(check(&line, "10.0.0.1", 22, &none)),
            CertProblem::NoPrincipals
        );
    }

    #[test]
    fn expired_and_not_yet_valid_are_refused() {
        let (ca, host) = (private(1), private(2));
        let line = format!("@cert-authority * {}\n", openssh(&ca));
        let expired = sign(
            &host,
            &ca,
            Cert {
                after: 1_700_000_000 - 60,
                before: 1_700_000_000,
                ..Cert::default()
            },
        );
        assert_eq!(
            problem(check(&line, "10.0.0.1", 22, &expired)).to_string(),
            "expired at 2023-11-14 22:13:20 UTC"
        );
        let early = sign(
            &host,
            &ca,
            Cert {
                after: NOW + 60,
                before: NOW + 3600,
                ..Cert::default()
            },
        );
        assert_eq!(
            problem(check(&line, "10.0.0.1", 22, &early)),
            CertProblem::NotYetValid { from: NOW + 60 }
        );
    }

    #[test]
    fn user_certificates_are_not_host_certificates() {
        let (ca, host) = (private(1), private(2));
        let cert = sign(
            &host,
            &ca,
            Cert {
                kind: CertType::User,
                ..Cert::default()
            },
        );
        let line = format!("@cert-authority * {}\n", openssh(&ca));
        assert_eq!(
            problem(check(&line, "10.0.0.1", 22, &cert)),
            CertProblem::UserCertificate
        );
    }

    #[test]
    fn revoked_ca_or_host_key_refuses() {
        let (ca, host) = (private(1), private(2));
        let cert = sign(&host, &ca, Cert::default());
        let trusted = format!("@cert-authority * {}\n", openssh(&ca));
        let ca_revoked = format!("{trusted}@revoked * {}\n", openssh(&ca));
        match check(&ca_revoked, "10.0.0.1", 22, &cert) {
            Verdict::CaRevoked { ca: revoked, .. } => {
                assert_eq!(revoked, fingerprint(ca.public_key()));
            }
            other => panic!("expected CaRevoked, got {other:?}"),
        }
        // Scoped to no host at all, still revoked: revocation is never narrowed.
        let host_revoked = format!("{trusted}@revoked nowhere {}\n", openssh(&host));
        assert!(matches!(
            check(&host_revoked, "10.0.0.1", 22, &cert),
            Verdict::Revoked { .. }
        ));
    }

    #[test]
    fn untrusted_ca_or_other_hosts_ca_falls_back_to_the_plain_key() {
        let (ca, other_ca, host) = (private(1), private(3), private(2));
        let cert = sign(&host, &ca, Cert::default());
        let other = format!("@cert-authority * {}\n", openssh(&other_ca));
        assert!(matches!(
            problem(check(&other, "10.0.0.1", 22, &cert)),
            CertProblem::UntrustedCa { .. }
        ));
        for pattern in ["10.9.*", "10.0.0.*,!10.0.0.1", "!10.0.0.1"] {
            let line = format!("@cert-authority {pattern} {}\n", openssh(&ca));
            assert!(
                matches!(
                    problem(check(&line, "10.0.0.1", 22, &cert)),
                    CertProblem::UntrustedCa { .. }
                ),
                "{pattern}"
            );
            let dir = tempfile::tempdir().expect("tempdir");
            let file = dir.path().join("known_hosts");
            std::fs::write(&file, &line).expect("write");
            assert!(!trusts_cas_for("10.0.0.1", 22, &[file]), "{pattern}");
        }
        // OpenSSH retries a failed certificate as its plain key: known is accepted,
        // changed is still refused.
        let known = format!("{other}10.0.0.1 {}\n", openssh(&host));
        assert!(matches!(
            check(&known, "10.0.0.1", 22, &cert),
            Verdict::Known
        ));
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, &known).expect("write");
        let (_, problem) = verify_certificate("10.0.0.1", 22, &cert, &[file], None, None, NOW);
        assert!(
            matches!(problem, Some(CertProblem::UntrustedCa { .. })),
            "the certificate's problem is kept for a warning: {problem:?}"
        );
        let changed = format!("{other}10.0.0.1 {}\n", openssh(&other_ca));
        assert!(matches!(
            check(&changed, "10.0.0.1", 22, &cert),
            Verdict::Changed { .. }
        ));
    }

    // Made with ssh-keygen: an RSA CA, and one Ed25519 host key signed by it for 10.0.0.1,
    // valid forever, once with `-t ssh-rsa` (SHA-1) and once with `-t rsa-sha2-512`.
    const RSA_CA: &str = "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQC4ys/wA0hXpqbFwVsepLQjsBXJ+Fc9K78s6ruqw0dwk+SpwoRe\
NfF4Kf+I+mjxgeNyTwBvofk6+lWkDM/1RmwqWVfjddh1zFgxCWMrJmvqCG2O4p5lkLTAT0VtPvqEJnBF\
boQCrZvgrvsSW1/rp8vWlS6xkooN12LskbCf3IZNgnoVbTBit7a2VJxCKec0TWfmvdN+wcd2H+Q/cedk\
NuGKxXwqrXCV7Vod9t3psGXzYMak9kciqW2GJvyxpyUbAmT33DeWJtATLusQrkRS1XbkD9YfiCsiAkSC\
GCtIVSgHGUYetEY3PeKHpR2Wav8K4cWNc78/2nGcnb4LAd1cg9ub";
    const SIGNED_SHA1: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIEG/VrluY1cGzYCv2Ifg1/zEaWOG\
t37PiFlxFqdeeusuAAAAINAw8W3lSiNhmEPVPGasd4z1Zyxm3ck8hC8KasAOAbiWAAAAAAAAAAAAAAAC\
AAAAAXQAAAAMAAAACDEwLjAuMC4xAAAAAAAAAAD//////////wAAAAAAAAAAAAAAAAAAARcAAAAHc3No\
LXJzYQAAAAMBAAEAAAEBALjKz/ADSFempsXBWx6ktCOwFcn4Vz0rvyzqu6rDR3CT5KnChF418Xgp/4j6\
aPGB43JPAG+h+Tr6VaQMz/VGbCpZV+N12HXMWDEJYysma+oIbY7inmWQtMBPRW0++oQmcEVuhAKtm+Cu\
+xJbX+uny9aVLrGSig3XYuyRsJ/chk2CehVtMGK3trZUnEIp5zRNZ+a9037Bx3Yf5D9x52Q24YrFfCqt\
cJXtWh323emwZfNgxqT2RyKpbYYm/LGnJRsCZPfcN5Ym0BMu6xCuRFLVduQP1h+IKyICRIIYK0hVKAcZ\
Rh60Rjc94oelHZZq/wrhxY1zvz/acZydvgsB3VyD25sAAAEPAAAAB3NzaC1yc2EAAAEAJBxfKVn/uaF0\
QzN1u0rR/nPnohhsau0+gP/xwHa6nDGwx/6jwj413zI+jwhmb6KawOaSL04R85b199qgk3rbGxPOeHfw\
StU7qXvrwBRL4TQggE116UZBKh1IS38PsJbmwlbCEfMxXRP0eUO+lFsbEqsWObIno4E198v/n8OdBcn+\
65ajNgd0NB4UyFeJXjnRSPZSLZNmW4nilrIaP5jUEO770AAVFnA7Ldbj2MyfIPSl2NhLrQB8x8/S7pLV\
wFvzxGMn1IgmSPL9I/GzG8MH2SkOTzRWrHj0alSB2eYCaxGqFcMcZSQBeI0jZ3oKtAIk0fQL0MS2lisr\
I5sY1CT3BA==";
    const SIGNED_SHA512: &str = "ssh-ed25519-cert-v01@openssh.com AAAAIHNzaC1lZDI1NTE5LWNlcnQtdjAxQG9wZW5zc2guY29tAAAAIB2RdrRXHzcJDYuMWlOUX4E9VPy4\
LJnOUH/u7fQXok8JAAAAINAw8W3lSiNhmEPVPGasd4z1Zyxm3ck8hC8KasAOAbiWAAAAAAAAAAAAAAAC\
AAAAAXQAAAAMAAAACDEwLjAuMC4xAAAAAAAAAAD//////////wAAAAAAAAAAAAAAAAAAARcAAAAHc3No\
LXJzYQAAAAMBAAEAAAEBALjKz/ADSFempsXBWx6ktCOwFcn4Vz0rvyzqu6rDR3CT5KnChF418Xgp/4j6\
aPGB43JPAG+h+Tr6VaQMz/VGbCpZV+N12HXMWDEJYysma+oIbY7inmWQtMBPRW0++oQmcEVuhAKtm+Cu\
+xJbX+uny9aVLrGSig3XYuyRsJ/chk2CehVtMGK3trZUnEIp5zRNZ+a9037Bx3Yf5D9x52Q24YrFfCqt\
cJXtWh323emwZfNgxqT2RyKpbYYm/LGnJRsCZPfcN5Ym0BMu6xCuRFLVduQP1h+IKyICRIIYK0hVKAcZ\
Rh60Rjc94oelHZZq/wrhxY1zvz/acZydvgsB3VyD25sAAAEUAAAADHJzYS1zaGEyLTUxMgAAAQA5qxwB\
bEw2/qcjgiKgm7Tpj2R4n1clt4gY2mRQuvTZcCWOYTH+ULjkbZA7FxHTyCLxX9nwbPAZ8UlDXI3IhaX3\
8JuoLGiJJ4g3UCnfItjFGJTrTKfoRIz7roSYE/FbeoUg3aeVGY0qOlJxrIZ7s1jG+7dl5JBZmPFryRWs\
nvH6M3tzgRvIsz7o3JRogP6pvkB6hj11tYH8ixzpU8v/n9x58bfHf0swXbRkCY3eKEf+nU5zyy4X89CR\
RLnaHxbKerJBahDldlI7Dlb82+urdDaVcLS2HLk2JRzN9UXck+KznMBBTUzMPgVBr+NkYHAo/oNn7e63\
uNDlVvzY+6NjHn5b";

    fn verdict_with(cert: &str, ca_algorithms: Option<&str>) -> Verdict {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("known_hosts");
        std::fs::write(&file, format!("@cert-authority * {RSA_CA}\n")).expect("write");
        let cert = Certificate::from_openssh(cert).expect("certificate");
        verify_certificate("10.0.0.1", 22, &cert, &[file], None, ca_algorithms, NOW).0
    }

    #[test]
    fn sha1_rsa_ca_signatures_are_refused_unless_allowed() {
        match problem(verdict_with(SIGNED_SHA1, None)) {
            CertProblem::WeakSignature { algorithm, .. } => assert_eq!(algorithm, "ssh-rsa"),
            other => panic!("expected WeakSignature, got {other:?}"),
        }
        assert!(matches!(
            verdict_with(SIGNED_SHA512, None),
            Verdict::Certified
        ));
        for allowed in ["+ssh-rsa", "^ssh-rsa", "ssh-rsa,rsa-sha2-512", "*"] {
            assert!(
                matches!(verdict_with(SIGNED_SHA1, Some(allowed)), Verdict::Certified),
                "{allowed}"
            );
        }
        for refused in ["ssh-ed25519", "-rsa-sha2-*", "-rsa-sha2-512"] {
            assert!(
                matches!(
                    problem(verdict_with(SIGNED_SHA512, Some(refused))),
                    CertProblem::WeakSignature { .. }
                ),
                "{refused}"
            );
        }
    }

    #[test]
    fn ca_signature_algorithms_follow_openssh_defaults_and_modifiers() {
        for good in [
            "ssh-ed25519",
            "ecdsa-sha2-nistp256",
            "rsa-sha2-256",
            "rsa-sha2-512",
        ] {
            assert!(ca_signature_allowed(good, None), "{good}");
        }
        assert!(!ca_signature_allowed("ssh-rsa", None));
        assert!(!ca_signature_allowed("ssh-rsa", Some("")));
        assert!(ca_signature_allowed("ssh-rsa", Some("+ssh-rsa")));
        assert!(!ca_signature_allowed("ssh-ed25519", Some("-ssh-*")));
        assert!(ca_signature_allowed("rsa-sha2-512", Some("-ssh-*")));
        assert!(!ca_signature_allowed("rsa-sha2-512", Some("ssh-ed25519")));
    }

    #[test]
    fn unix_times_are_formatted_as_utc_dates() {
        assert_eq!(format_unix_time(0), "1970-01-01 00:00:00 UTC");
        assert_eq!(format_unix_time(951_782_400), "2000-02-29 00:00:00 UTC");
        assert_eq!(format_unix_time(u64::MAX), "forever");
    }
}
