//! End-to-end tests of inter-node mutual TLS: certificates are generated with rcgen at test time and
//! a real tonic server (the gRPC health service) listens on 127.0.0.1.

use std::error::Error as StdError;
use std::fs;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};
use tempfile::TempDir;
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::transport::{Certificate, ClientTlsConfig, Endpoint, Identity, Server};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

use flotilla_raft::network::tls::{RpcTls, TlsError, TlsFiles, DEFAULT_SERVER_NAME};

/// A CA plus one node certificate it issued, written as PEM files.
struct Cluster {
    _dir: TempDir,
    files: TlsFiles,
}

impl Cluster {
    /// A fresh CA and a node certificate with the given DNS SANs.
    fn new(label: &str, sans: &[&str]) -> Cluster {
        let dir = tempfile::tempdir().unwrap();

        let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
        ca_params.distinguished_name.push(DnType::CommonName, format!("{label} cluster CA"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages =
            vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

        let node_key = KeyPair::generate().unwrap();
        let mut node_params = CertificateParams::new(sans.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap();
        node_params.distinguished_name.push(DnType::CommonName, format!("{label} node"));
        node_params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let node_cert = node_params.signed_by(&node_key, &ca).unwrap();

        let files = TlsFiles::new(dir.path().join("ca.pem"), dir.path().join("node.pem"), dir.path().join("node.key"));
        fs::write(&files.ca, ca.pem()).unwrap();
        fs::write(&files.cert, node_cert.pem()).unwrap();
        fs::write(&files.key, node_key.serialize_pem()).unwrap();
        Cluster { _dir: dir, files }
    }

    fn tls(&self) -> RpcTls {
        RpcTls::load(&self.files).unwrap()
    }

    fn pem(path: &Path) -> Vec<u8> {
        fs::read(path).unwrap()
    }
}

/// A running TLS health server; stops when dropped.
struct TestServer {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

async fn start_server(tls: &RpcTls) -> TestServer {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let (stop, stopped) = oneshot::channel::<()>();
    let server = Server::builder().tls_config(tls.server_config()).unwrap().add_service(health);
    tokio::spawn(server.serve_with_incoming_shutdown(TcpListenerStream::new(listener), async {
        let _ = stopped.await;
    }));
    TestServer { addr, _stop: stop }
}

/// The error and all its sources, for assertions and failure messages.
fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut out = err.to_string();
    let mut source = err.source();
    while let Some(e) = source {
        out.push_str(" <- ");
        out.push_str(&e.to_string());
        source = e.source();
    }
    out
}

/// Connects and runs one health check; `Err` carries the full error chain.
async fn health_check(endpoint: Endpoint) -> Result<ServingStatus, String> {
    let attempt = async {
        let channel = endpoint.connect().await.map_err(|e| format!("connect: {}", error_chain(&e)))?;
        let response = HealthClient::new(channel)
            .check(HealthCheckRequest { service: String::new() })
            .await
            .map_err(|status| format!("rpc: {}", error_chain(&status)))?;
        Ok(response.into_inner().status())
    };
    tokio::time::timeout(Duration::from_secs(15), attempt).await.map_err(|_| "timed out".to_owned())?
}

fn https(addr: SocketAddr) -> Endpoint {
    Endpoint::from_shared(format!("https://{addr}")).unwrap()
}

#[tokio::test]
async fn ca_signed_client_is_accepted() {
    let cluster = Cluster::new("main", &[DEFAULT_SERVER_NAME]);
    let tls = cluster.tls();
    let server = start_server(&tls).await;

    // Dialled by IP: the server is verified as the cluster-wide name, not as 127.0.0.1.
    let status = health_check(tls.endpoint(&server.addr.to_string()).unwrap()).await;
    assert_eq!(status, Ok(ServingStatus::Serving));

    // The same through the plain building blocks a caller would use.
    let endpoint = https(server.addr).tls_config(tls.client_config()).unwrap();
    assert_eq!(health_check(endpoint).await, Ok(ServingStatus::Serving));
}

#[tokio::test]
async fn client_without_certificate_is_rejected() {
    let cluster = Cluster::new("main", &[DEFAULT_SERVER_NAME]);
    let server = start_server(&cluster.tls()).await;

    let anonymous = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(Cluster::pem(&cluster.files.ca)))
        .domain_name(DEFAULT_SERVER_NAME);
    let result = health_check(https(server.addr).tls_config(anonymous).unwrap()).await;
    let err = result.expect_err("a client without a certificate must be rejected");
    assert!(err.contains("CertificateRequired") || err.contains("HandshakeFailure"), "unexpected error: {err}");
}

#[tokio::test]
async fn client_certificate_from_another_ca_is_rejected() {
    let cluster = Cluster::new("main", &[DEFAULT_SERVER_NAME]);
    let other = Cluster::new("other", &[DEFAULT_SERVER_NAME]);
    let server = start_server(&cluster.tls()).await;

    // Trusts the right CA (so the client is happy with the server) but presents a foreign cert.
    let foreign = ClientTlsConfig::new()
        .ca_certificate(Certificate::from_pem(Cluster::pem(&cluster.files.ca)))
        .identity(Identity::from_pem(Cluster::pem(&other.files.cert), Cluster::pem(&other.files.key)))
        .domain_name(DEFAULT_SERVER_NAME);
    let result = health_check(https(server.addr).tls_config(foreign).unwrap()).await;
    let err = result.expect_err("a client certificate from another CA must be rejected");
    assert!(err.contains("UnknownCA") || err.contains("BadCertificate"), "unexpected error: {err}");
}

#[tokio::test]
async fn client_trusting_another_ca_refuses_the_server() {
    let cluster = Cluster::new("main", &[DEFAULT_SERVER_NAME]);
    let other = Cluster::new("other", &[DEFAULT_SERVER_NAME]);
    let server = start_server(&cluster.tls()).await;

    let result = health_check(other.tls().endpoint(&server.addr.to_string()).unwrap()).await;
    let err = result.expect_err("a client must refuse a server certificate from a CA it does not trust");
    assert!(err.contains("UnknownIssuer"), "expected the client to reject the server's issuer: {err}");
}

#[tokio::test]
async fn http_uri_does_not_use_tls() {
    // The gotcha documented on `client_config`: with `http://` the TLS config is silently ignored.
    let cluster = Cluster::new("main", &[DEFAULT_SERVER_NAME]);
    let tls = cluster.tls();
    let server = start_server(&tls).await;

    let plaintext = Endpoint::from_shared(format!("http://{}", server.addr)).unwrap().tls_config(tls.client_config());
    let result = health_check(plaintext.unwrap()).await;
    assert!(result.is_err(), "plaintext against a TLS server must fail, got {result:?}");
}

#[test]
fn endpoint_always_uses_https() {
    let cluster = Cluster::new("main", &[DEFAULT_SERVER_NAME]);
    let tls = cluster.tls();
    for addr in ["10.0.0.7:7001", "http://10.0.0.7:7001", "https://10.0.0.7:7001"] {
        let endpoint = tls.endpoint(addr).unwrap();
        assert_eq!(endpoint.uri().to_string(), "https://10.0.0.7:7001/", "for {addr}");
    }
    let err = tls.endpoint("not a uri").unwrap_err();
    assert!(matches!(err, TlsError::InvalidEndpoint { .. }), "{err:?}");
}

#[test]
fn debug_does_not_print_key_material() {
    let cluster = Cluster::new("main", &[DEFAULT_SERVER_NAME]);
    let shown = format!("{:?}", cluster.tls());
    assert!(shown.contains(DEFAULT_SERVER_NAME) && !shown.contains("PRIVATE KEY"), "{shown}");
}

/// Loads `files`, expecting an error whose message names `path`.
fn load_err(files: &TlsFiles, path: &Path) -> TlsError {
    let err = RpcTls::load(files).expect_err("load must fail");
    let message = err.to_string();
    assert!(message.contains(&path.display().to_string()), "error does not name {}: {message}", path.display());
    err
}

fn with(files: &TlsFiles, edit: impl FnOnce(&mut TlsFiles)) -> TlsFiles {
    let mut files = files.clone();
    edit(&mut files);
    files
}

#[test]
fn load_reports_missing_files() {
    let cluster = Cluster::new("main", &[DEFAULT_SERVER_NAME]);
    let missing: PathBuf = cluster.files.ca.with_file_name("does-not-exist.pem");

    let err = load_err(&with(&cluster.files, |f| f.ca = missing.clone()), &missing);
    assert!(matches!(err, TlsError::Read { what: "CA", .. }), "{err:?}");
    let err = load_err(&with(&cluster.files, |f| f.cert = missing.clone()), &missing);
    assert!(matches!(err, TlsError::Read { what: "certificate", .. }), "{err:?}");
    let err = load_err(&with(&cluster.files, |f| f.key = missing.clone()), &missing);
    assert!(matches!(err, TlsError::Read { what: "key", .. }), "{err:?}");
}

#[test]
fn load_reports_empty_and_garbage_pem() {
    let cluster = Cluster::new("main", &[DEFAULT_SERVER_NAME]);
    let dir = cluster.files.ca.parent().unwrap();
    let empty = dir.join("empty.pem");
    fs::write(&empty, "\n  \n").unwrap();
    let garbage = dir.join("garbage.pem");
    fs::write(&garbage, "this is not PEM at all\n").unwrap();
    let bad_base64 = dir.join("bad-base64.pem");
    fs::write(&bad_base64, "-----BEGIN CERTIFICATE-----\n!!!not base64!!!\n-----END CERTIFICATE-----\n").unwrap();
    let not_x509 = dir.join("not-x509.pem");
    fs::write(&not_x509, "-----BEGIN CERTIFICATE-----\naGVsbG8gd29ybGQ=\n-----END CERTIFICATE-----\n").unwrap();

    let err = load_err(&with(&cluster.files, |f| f.cert = empty.clone()), &empty);
    assert!(matches!(err, TlsError::Empty { what: "certificate", .. }), "{err:?}");
    let err = load_err(&with(&cluster.files, |f| f.ca = garbage.clone()), &garbage);
    assert!(matches!(err, TlsError::NoCertificate { what: "CA", .. }), "{err:?}");
    let err = load_err(&with(&cluster.files, |f| f.cert = garbage.clone()), &garbage);
    assert!(matches!(err, TlsError::NoCertificate { what: "certificate", .. }), "{err:?}");
    let err = load_err(&with(&cluster.files, |f| f.key = garbage.clone()), &garbage);
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err:?}");
    let err = load_err(&with(&cluster.files, |f| f.cert = bad_base64.clone()), &bad_base64);
    assert!(matches!(err, TlsError::Pem { what: "certificate", .. }), "{err:?}");
    let err = load_err(&with(&cluster.files, |f| f.ca = not_x509.clone()), &not_x509);
    assert!(matches!(err, TlsError::InvalidCertificate { what: "CA", .. }), "{err:?}");

    // Files swapped around: a certificate where the key belongs, and vice versa.
    let cert = cluster.files.cert.clone();
    let err = load_err(&with(&cluster.files, |f| f.key = cert.clone()), &cert);
    assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err:?}");
    let key = cluster.files.key.clone();
    let err = load_err(&with(&cluster.files, |f| f.cert = key.clone()), &key);
    assert!(matches!(err, TlsError::NoCertificate { what: "certificate", .. }), "{err:?}");
}

#[test]
fn load_rejects_certificates_peers_would_reject() {
    let cluster = Cluster::new("main", &[DEFAULT_SERVER_NAME]);
    let other = Cluster::new("other", &[DEFAULT_SERVER_NAME]);

    // Key of another certificate.
    let err = load_err(&with(&cluster.files, |f| f.key = other.files.key.clone()), &other.files.key);
    assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err:?}");

    // Certificate (and its key) issued by another CA.
    let foreign = with(&cluster.files, |f| {
        f.cert = other.files.cert.clone();
        f.key = other.files.key.clone();
    });
    let err = load_err(&foreign, &other.files.cert);
    assert!(matches!(err, TlsError::UntrustedCertificate { .. }), "{err:?}");
    assert!(err.to_string().contains(&cluster.files.ca.display().to_string()), "{err}");

    // Certificate without the cluster-wide server name.
    let err = load_err(&with(&cluster.files, |f| f.server_name = "some-other-name".into()), &cluster.files.cert);
    assert!(matches!(err, TlsError::UntrustedCertificate { .. }), "{err:?}");

    let err = RpcTls::load(&with(&cluster.files, |f| f.server_name = "not a name!".into())).unwrap_err();
    assert!(matches!(err, TlsError::InvalidServerName { .. }), "{err:?}");
}

#[tokio::test]
async fn server_name_is_configurable() {
    let cluster = Cluster::new("main", &["registry-peers.internal", "node-1.example"]);
    let files = with(&cluster.files, |f| f.server_name = "registry-peers.internal".into());
    let tls = RpcTls::load(&files).unwrap();
    assert_eq!(tls.server_name(), "registry-peers.internal");
    assert!(RpcTls::load(&cluster.files).is_err(), "default name is not in this certificate");

    let server = start_server(&tls).await;
    assert_eq!(health_check(tls.endpoint(&server.addr.to_string()).unwrap()).await, Ok(ServingStatus::Serving));
}
