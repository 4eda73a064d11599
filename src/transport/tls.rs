//! TLS for requests to a port as the ship sees it (the `https` lifecycle checks): rustls over
//! a stream the ship opened, so the server is reached exactly as for plain HTTP. The crypto
//! provider is `ring`, the one bollard's rustls uses.
//!
//! Failures come back as [`TlsFailure`] / [`TlsSetupError`], not as sentences: the words an
//! operator needs name settings of the environment file (`requests_options.verify`, the
//! check's `host`), which this layer does not know. The caller words them.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Which certificates a TLS client trusts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsTrust {
    /// The system's trusted roots.
    SystemRoots,
    /// The certificates of this PEM file only.
    CaFile(PathBuf),
    /// Any certificate for any name, as python-requests' `verify=False`; handshake signatures
    /// are still checked, so the server must hold the certificate's key.
    AnyCertificate,
}

/// Why a TLS client could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsSetupError {
    #[error("`{0}` is neither a host name nor an ip address")]
    BadName(String),
    /// No trusted root could be read from the system; the text is the first reason found.
    #[error("no trusted CA certificates found on this machine{}", .0.as_ref().map(|e| format!(" ({e})")).unwrap_or_default())]
    NoSystemRoots(Option<String>),
    #[error("cannot use the CA file {}: {why}", .file.display())]
    CaFile { file: PathBuf, why: String },
    #[error("TLS setup: {0}")]
    Setup(String),
}

/// Why a TLS handshake failed, in the terms an operator can act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TlsFailure {
    UnknownIssuer,
    BadSignature,
    /// The certificate does not hold the name asked for; `presented` is what it holds, when
    /// rustls says.
    NotValidForName {
        presented: Vec<String>,
    },
    Expired(String),
    NotValidYet(String),
    /// Another certificate problem, described by rustls.
    Certificate(String),
    /// The server answered with something that is not TLS.
    NotTls(String),
    /// The server sent an alert.
    Refused(String),
    /// The server closed the connection during the handshake.
    Closed,
    Other(String),
}

/// What an https request connects with: the TLS settings and the name the certificate must
/// hold.
pub struct TlsClient {
    connector: TlsConnector,
    name: ServerName<'static>,
}

fn provider() -> Arc<CryptoProvider> {
    static PROVIDER: OnceLock<Arc<CryptoProvider>> = OnceLock::new();
    Arc::clone(PROVIDER.get_or_init(|| Arc::new(rustls::crypto::ring::default_provider())))
}

/// The system's trusted roots, read once per process: loading them reads a directory of files.
fn system_roots() -> Result<Arc<RootCertStore>, TlsSetupError> {
    static ROOTS: OnceLock<Result<Arc<RootCertStore>, TlsSetupError>> = OnceLock::new();
    ROOTS
        .get_or_init(|| {
            let found = rustls_native_certs::load_native_certs();
            let mut roots = RootCertStore::empty();
            roots.add_parsable_certificates(found.certs);
            if roots.is_empty() {
                return Err(TlsSetupError::NoSystemRoots(
                    found.errors.first().map(|e| e.to_string()),
                ));
            }
            Ok(Arc::new(roots))
        })
        .clone()
}

fn file_roots(file: &Path) -> Result<Arc<RootCertStore>, TlsSetupError> {
    let bad = |e: &dyn std::fmt::Display| TlsSetupError::CaFile {
        file: file.to_path_buf(),
        why: e.to_string(),
    };
    let mut roots = RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(file).map_err(|e| bad(&e))? {
        roots.add(cert.map_err(|e| bad(&e))?).map_err(|e| bad(&e))?;
    }
    if roots.is_empty() {
        return Err(bad(&"it holds no certificate"));
    }
    Ok(Arc::new(roots))
}

impl TlsClient {
    /// A client trusting `trust`, for a server that must hold the name `name`.
    pub fn new(trust: &TlsTrust, name: &str) -> Result<TlsClient, TlsSetupError> {
        let server_name = ServerName::try_from(name.to_string())
            .map_err(|_| TlsSetupError::BadName(name.to_string()))?;
        let builder = ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsSetupError::Setup(e.to_string()))?;
        let config = match trust {
            TlsTrust::SystemRoots => builder.with_root_certificates(system_roots()?),
            TlsTrust::CaFile(file) => builder.with_root_certificates(file_roots(file)?),
            TlsTrust::AnyCertificate => {
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyCertificate(
                        provider().signature_verification_algorithms,
                    )))
            }
        }
        .with_no_client_auth();
        Ok(TlsClient {
            connector: TlsConnector::from(Arc::new(config)),
            name: server_name,
        })
    }

    /// The name the certificate must hold.
    pub fn name(&self) -> String {
        self.name.to_str().into_owned()
    }

    pub(super) async fn handshake<S>(&self, stream: S) -> Result<TlsStream<S>, TlsFailure>
    where
        S: AsyncRead + AsyncWrite + Unpin,
    {
        self.connector
            .connect(self.name.clone(), stream)
            .await
            .map_err(|e| failure(&e))
    }
}

fn failure(err: &std::io::Error) -> TlsFailure {
    let Some(tls) = err
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    else {
        return match err.kind() {
            std::io::ErrorKind::UnexpectedEof => TlsFailure::Closed,
            _ => TlsFailure::Other(err.to_string()),
        };
    };
    classify(tls)
}

fn classify(err: &rustls::Error) -> TlsFailure {
    let rustls::Error::InvalidCertificate(cert) = err else {
        return match err {
            rustls::Error::InvalidMessage(_) => TlsFailure::NotTls(err.to_string()),
            rustls::Error::AlertReceived(alert) => TlsFailure::Refused(format!("{alert:?}")),
            other => TlsFailure::Other(other.to_string()),
        };
    };
    match cert {
        CertificateError::UnknownIssuer => TlsFailure::UnknownIssuer,
        CertificateError::BadSignature => TlsFailure::BadSignature,
        CertificateError::NotValidForNameContext { presented, .. } => TlsFailure::NotValidForName {
            presented: presented.clone(),
        },
        CertificateError::NotValidForName => TlsFailure::NotValidForName {
            presented: Vec::new(),
        },
        CertificateError::Expired | CertificateError::ExpiredContext { .. } => {
            TlsFailure::Expired(cert.to_string())
        }
        CertificateError::NotValidYet | CertificateError::NotValidYetContext { .. } => {
            TlsFailure::NotValidYet(cert.to_string())
        }
        other => TlsFailure::Certificate(other.to_string()),
    }
}

/// `TlsTrust::AnyCertificate`'s verifier.
#[derive(Debug)]
struct AnyCertificate(WebPkiSupportedAlgorithms);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rustls_errors_are_sorted_into_what_an_operator_can_act_on() {
        let unknown = rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer);
        assert_eq!(classify(&unknown), TlsFailure::UnknownIssuer);
        let wrong_name =
            rustls::Error::InvalidCertificate(CertificateError::NotValidForNameContext {
                expected: ServerName::try_from("10.1.2.3")
                    .map(|n| n.to_owned())
                    .unwrap_or_else(|e| panic!("{e}")),
                presented: vec!["IpAddress(10.9.9.9)".into()],
            });
        assert_eq!(
            classify(&wrong_name),
            TlsFailure::NotValidForName {
                presented: vec!["IpAddress(10.9.9.9)".into()]
            }
        );
        let plain = rustls::Error::InvalidMessage(rustls::InvalidMessage::InvalidContentType);
        assert!(matches!(classify(&plain), TlsFailure::NotTls(_)));
    }

    #[test]
    fn a_ca_file_without_certificates_is_refused() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let file = dir.path().join("ca.pem");
        std::fs::write(&file, "not a certificate\n").unwrap_or_else(|e| panic!("{e}"));
        let err = TlsClient::new(&TlsTrust::CaFile(file.clone()), "10.1.2.3")
            .err()
            .map(|e| e.to_string())
            .unwrap_or_default();
        assert!(err.contains("holds no certificate"), "{err}");
        assert!(TlsClient::new(&TlsTrust::AnyCertificate, "10.1.2.3").is_ok());
        assert!(TlsClient::new(&TlsTrust::AnyCertificate, "web.example").is_ok());
        assert!(matches!(
            TlsClient::new(&TlsTrust::AnyCertificate, "not a name"),
            Err(TlsSetupError::BadName(_))
        ));
    }
}
