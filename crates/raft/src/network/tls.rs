//! Optional mutual TLS for inter-node gRPC.
//!
//! When enabled, every inter-node connection is authenticated in both directions with certificates
//! issued by one **cluster CA**:
//!
//! * the server ([`RpcTls::server_config`]) presents its node certificate and *requires* a client
//!   certificate that chains to the cluster CA; anonymous clients and clients with certificates from
//!   any other CA fail the handshake;
//! * the client ([`RpcTls::client_config`]) trusts *only* the cluster CA (no system or WebPKI roots),
//!   presents the same node certificate as its client certificate, and verifies the server's
//!   certificate against one cluster-wide server name.
//!
//! # One cluster-wide server name
//!
//! Nodes are addressed by IP or by whatever host name happens to be in the peer list, so the client
//! does not verify the server against the host it dialled. Instead every node verifies its peer
//! against a single cluster-wide DNS name, [`DEFAULT_SERVER_NAME`] (`flotilla-node`) unless configured
//! otherwise ([`TlsFiles::server_name`]). Operators therefore issue **each node** a certificate from
//! the cluster CA that carries that name as a DNS subject alternative name, much like CockroachDB's
//! shared `node` certificate. The node's own host names and IPs may be added as extra SANs, but they
//! are not what peers check. Because the same certificate is also presented as a client certificate,
//! it must either carry no extended key usage extension or carry both `serverAuth` and
//! `clientAuth`. Trust is therefore "holds a key certified by the cluster CA", not "is node N":
//! protect the CA key and the node keys accordingly.
//!
//! [`RpcTls::load`] checks all of this up front (the PEM files parse, the key matches the certificate,
//! and the certificate chains to the CA and is valid for the server name as both a server and a
//! client certificate) so misconfiguration fails at start-up with an error naming the file, rather
//! than as an opaque handshake failure between two nodes later.
//!
//! # Client endpoints must use `https://`
//!
//! tonic only runs the TLS handshake for URIs with the `https` scheme. With an `http://` URI the
//! [`ClientTlsConfig`] is silently ignored and the connection is attempted in plaintext, which the
//! TLS server then rejects. When TLS is on, peer endpoints must be `https://host:port`;
//! [`RpcTls::endpoint`] builds such an endpoint.
//!
//! # Crypto provider
//!
//! tonic's `tls-ring` feature makes rustls use *ring*. The client side falls back to ring by itself,
//! but the server side asks rustls for the process-wide default provider, which rustls can only pick
//! automatically while exactly one of its `ring` / `aws-lc-rs` features is enabled in the whole
//! dependency graph. [`RpcTls::load`] therefore installs ring as the process default (unless some
//! provider is already installed), so a dependency that later enables `aws-lc-rs` cannot turn server
//! start-up into a panic.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::client::danger::ServerCertVerifier;
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::CertifiedKey;
use rustls::RootCertStore;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, ServerTlsConfig};

/// The server name every node verifies its peers against unless configured otherwise.
pub const DEFAULT_SERVER_NAME: &str = "flotilla-node";

/// Upper bound on a TLS handshake, on both the client and the server side, so a peer that stalls
/// mid-handshake cannot hold a connection (or a server task) open indefinitely.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// PEM paths from configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The cluster CA certificate(s) that node certificates must chain to. Several PEM certificates
    /// may be concatenated, e.g. the old and the new CA while the CA is being rotated.
    pub ca: PathBuf,
    /// This node's certificate, optionally followed by intermediate CA certificates (leaf first).
    pub cert: PathBuf,
    /// The private key of [`cert`](Self::cert): PKCS#8, PKCS#1 (RSA) or SEC1 (EC) PEM.
    pub key: PathBuf,
    /// The cluster-wide name peers verify each other's certificates against (a DNS SAN in every
    /// node certificate); normally [`DEFAULT_SERVER_NAME`].
    pub server_name: String,
}

impl TlsFiles {
    /// Paths with the default cluster-wide server name, [`DEFAULT_SERVER_NAME`].
    pub fn new(ca: impl Into<PathBuf>, cert: impl Into<PathBuf>, key: impl Into<PathBuf>) -> Self {
        Self { ca: ca.into(), cert: cert.into(), key: key.into(), server_name: DEFAULT_SERVER_NAME.to_owned() }
    }
}

/// Loaded, ready-to-use TLS settings for both sides of inter-node gRPC.
///
/// Holds the validated PEM bytes (a few KiB); cloning it, or building a config, copies them.
#[derive(Clone)]
pub struct RpcTls {
    ca: Certificate,
    identity: Identity,
    server_name: String,
}

/// Why TLS material could not be loaded. Every variant names the offending file (or server name).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read (missing, unreadable, ...).
    #[error("cannot read TLS {what} file {}: {source}", path.display())]
    Read {
        /// Which file this is: "CA", "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The underlying I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but is empty (or only whitespace).
    #[error("TLS {what} file {} is empty", path.display())]
    Empty {
        /// Which file this is: "CA", "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file is not well-formed PEM.
    #[error("TLS {what} file {} is not valid PEM: {source}", path.display())]
    Pem {
        /// Which file this is: "CA", "certificate" or "key".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// The PEM parser's complaint.
        #[source]
        source: pem::Error,
    },
    /// The file holds no `CERTIFICATE` PEM block.
    #[error("TLS {what} file {} contains no PEM certificate (expected '-----BEGIN CERTIFICATE-----')", path.display())]
    NoCertificate {
        /// Which file this is: "CA" or "certificate".
        what: &'static str,
        /// The file.
        path: PathBuf,
    },
    /// The file holds no private key PEM block.
    #[error(
        "TLS key file {} contains no PEM private key (expected PKCS#8 'PRIVATE KEY', PKCS#1 'RSA PRIVATE KEY' \
         or SEC1 'EC PRIVATE KEY')",
        path.display()
    )]
    NoPrivateKey {
        /// The file.
        path: PathBuf,
    },
    /// A certificate in the file is PEM but not a usable X.509 certificate (or CA certificate).
    #[error("TLS {what} file {} holds an unusable certificate: {source}", path.display())]
    InvalidCertificate {
        /// Which file this is: "CA" or "certificate".
        what: &'static str,
        /// The file.
        path: PathBuf,
        /// Why rustls rejected it.
        #[source]
        source: rustls::Error,
    },
    /// The private key is PEM but not a key rustls can sign with.
    #[error("TLS key file {} holds an unsupported private key: {source}", path.display())]
    InvalidKey {
        /// The file.
        path: PathBuf,
        /// Why rustls rejected it.
        #[source]
        source: rustls::Error,
    },
    /// The private key does not belong to the certificate.
    #[error("TLS key file {} does not match certificate {}: {source}", key.display(), cert.display())]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// The mismatch as reported by rustls.
        #[source]
        source: rustls::Error,
    },
    /// The configured server name is not a valid DNS name or IP address.
    #[error("invalid TLS server name {name:?}: {reason}")]
    InvalidServerName {
        /// The configured name.
        name: String,
        /// Why it was rejected.
        reason: String,
    },
    /// The node certificate would be rejected by peers: it does not chain to the cluster CA, lacks
    /// the server name as a SAN, is expired, or is not usable for server or client authentication.
    #[error(
        "TLS certificate {} is not acceptable as a node certificate for {server_name:?} under CA {}: {source}",
        cert.display(),
        ca.display()
    )]
    UntrustedCertificate {
        /// The certificate file.
        cert: PathBuf,
        /// The CA file.
        ca: PathBuf,
        /// The cluster-wide server name.
        server_name: String,
        /// What verification reported (boxed to keep `TlsError` small).
        #[source]
        source: Box<rustls::Error>,
    },
    /// The endpoint address could not be turned into an `https://` URI.
    #[error("invalid peer address {addr:?} for an https endpoint: {source}")]
    InvalidEndpoint {
        /// The address as given.
        addr: String,
        /// tonic's complaint.
        #[source]
        source: tonic::transport::Error,
    },
}

impl RpcTls {
    /// Reads and validates the CA, certificate and key PEM files.
    ///
    /// Beyond parsing, this checks that the key belongs to the certificate and that the certificate
    /// chains to the CA and is valid for [`TlsFiles::server_name`] as both a server and a client
    /// certificate (at the current time), i.e. that peers will accept it. It also installs rustls'
    /// ring provider as the process-wide default if none is installed yet (see the module docs).
    pub fn load(files: &TlsFiles) -> Result<RpcTls, TlsError> {
        // Losing a race with (or coming after) another installation is fine: some provider is set.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        let server_name = ServerName::try_from(files.server_name.as_str())
            .map_err(|e| TlsError::InvalidServerName { name: files.server_name.clone(), reason: e.to_string() })?
            .to_owned();

        let ca_pem = read_pem("CA", &files.ca)?;
        let cert_pem = read_pem("certificate", &files.cert)?;
        let key_pem = read_pem("key", &files.key)?;

        let ca_certs = parse_certs("CA", &files.ca, &ca_pem)?;
        let mut roots = RootCertStore::empty();
        for cert in ca_certs {
            roots.add(cert).map_err(|source| TlsError::InvalidCertificate {
                what: "CA",
                path: files.ca.clone(),
                source,
            })?;
        }
        let roots = Arc::new(roots);

        let chain = parse_certs("certificate", &files.cert, &cert_pem)?;
        let key = parse_key(&files.key, &key_pem)?;
        check_key_matches(files, &provider, chain.clone(), key)?;
        check_chain(files, &provider, roots, &chain, &server_name)?;

        Ok(RpcTls {
            ca: Certificate::from_pem(ca_pem),
            identity: Identity::from_pem(cert_pem, key_pem),
            server_name: files.server_name.clone(),
        })
    }

    /// The cluster-wide name peers' certificates are verified against.
    pub fn server_name(&self) -> &str {
        &self.server_name
    }

    /// TLS settings for the inter-node gRPC server (`Server::builder().tls_config(..)`).
    ///
    /// Presents this node's certificate and requires every client to present a certificate that
    /// chains to the cluster CA (`client_auth_optional(false)`).
    pub fn server_config(&self) -> ServerTlsConfig {
        ServerTlsConfig::new()
            .identity(self.identity.clone())
            .client_ca_root(self.ca.clone())
            .client_auth_optional(false)
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// TLS settings for connecting to a peer (`Endpoint::tls_config(..)`).
    ///
    /// Trusts only the cluster CA, presents this node's certificate as the client certificate and
    /// verifies the server as [`server_name`](Self::server_name), whatever host the URI names.
    ///
    /// The caller must connect to an `https://host:port` URI: with `http://` tonic ignores this
    /// config and speaks plaintext. [`endpoint`](Self::endpoint) does both steps.
    pub fn client_config(&self) -> ClientTlsConfig {
        ClientTlsConfig::new()
            .ca_certificate(self.ca.clone())
            .identity(self.identity.clone())
            .domain_name(self.server_name.clone())
            .timeout(HANDSHAKE_TIMEOUT)
    }

    /// An endpoint for the peer at `addr` (`host:port`, optionally already prefixed with `http://` or
    /// `https://`) that uses `https://` and [`client_config`](Self::client_config).
    ///
    /// Further settings (connect timeout, keep-alive, ...) can be chained on the result.
    pub fn endpoint(&self, addr: &str) -> Result<Endpoint, TlsError> {
        let host_port = addr.strip_prefix("https://").or_else(|| addr.strip_prefix("http://")).unwrap_or(addr);
        Endpoint::from_shared(format!("https://{host_port}"))
            .and_then(|endpoint| endpoint.tls_config(self.client_config()))
            .map_err(|source| TlsError::InvalidEndpoint { addr: addr.to_owned(), source })
    }
}

impl fmt::Debug for RpcTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Deliberately omits the PEM material: the identity holds the private key.
        f.debug_struct("RpcTls").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

/// Reads a PEM file, rejecting a missing or blank one with an error naming it.
fn read_pem(what: &'static str, path: &Path) -> Result<Vec<u8>, TlsError> {
    let bytes = fs::read(path).map_err(|source| TlsError::Read { what, path: path.to_owned(), source })?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(TlsError::Empty { what, path: path.to_owned() });
    }
    Ok(bytes)
}

/// All `CERTIFICATE` blocks in `pem`, at least one.
fn parse_certs(what: &'static str, path: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let certs = CertificateDer::pem_slice_iter(pem).collect::<Result<Vec<_>, _>>().map_err(|source| TlsError::Pem {
        what,
        path: path.to_owned(),
        source,
    })?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate { what, path: path.to_owned() });
    }
    Ok(certs)
}

/// The first private key in `pem`, of any supported encoding (as tonic itself picks it).
fn parse_key(path: &Path, pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_slice(pem).map_err(|source| match source {
        pem::Error::NoItemsFound => TlsError::NoPrivateKey { path: path.to_owned() },
        source => TlsError::Pem { what: "key", path: path.to_owned(), source },
    })
}

/// Checks that `key` is usable and is the key of the first certificate in `chain`.
fn check_key_matches(
    files: &TlsFiles,
    provider: &CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<(), TlsError> {
    let signing_key = provider
        .key_provider
        .load_private_key(key)
        .map_err(|source| TlsError::InvalidKey { path: files.key.clone(), source })?;
    CertifiedKey::new(chain, signing_key).keys_match().map_err(|source| match source {
        rustls::Error::InvalidCertificate(_) | rustls::Error::NoCertificatesPresented => {
            TlsError::InvalidCertificate { what: "certificate", path: files.cert.clone(), source }
        }
        source => TlsError::KeyMismatch { cert: files.cert.clone(), key: files.key.clone(), source },
    })
}

/// Verifies `chain` the way peers will: as a server certificate for `server_name` and as a client
/// certificate, both under the cluster CA.
fn check_chain(
    files: &TlsFiles,
    provider: &Arc<CryptoProvider>,
    roots: Arc<RootCertStore>,
    chain: &[CertificateDer<'static>],
    server_name: &ServerName<'static>,
) -> Result<(), TlsError> {
    let untrusted = |source: rustls::Error| TlsError::UntrustedCertificate {
        cert: files.cert.clone(),
        ca: files.ca.clone(),
        server_name: files.server_name.clone(),
        source: Box::new(source),
    };
    let invalid_ca =
        |source: rustls::Error| TlsError::InvalidCertificate { what: "CA", path: files.ca.clone(), source };
    let Some((end_entity, intermediates)) = chain.split_first() else {
        return Err(TlsError::NoCertificate { what: "certificate", path: files.cert.clone() });
    };
    let now = UnixTime::now();

    let as_server = WebPkiServerVerifier::builder_with_provider(roots.clone(), provider.clone())
        .build()
        .map_err(|e| invalid_ca(rustls::Error::General(e.to_string())))?;
    as_server.verify_server_cert(end_entity, intermediates, server_name, &[], now).map_err(untrusted)?;

    let as_client = WebPkiClientVerifier::builder_with_provider(roots, provider.clone())
        .build()
        .map_err(|e| invalid_ca(rustls::Error::General(e.to_string())))?;
    as_client.verify_client_cert(end_entity, intermediates, now).map_err(untrusted)?;
    Ok(())
}
