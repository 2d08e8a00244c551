//! Inter-node gRPC over mutual TLS: nodes holding certificates from one
//! cluster CA form a cluster and serve; a node whose certificate comes from
//! another CA is never admitted, and a node given a broken key never starts.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::ensure;
use flotilla_cluster_tests::content::random_bytes;
use flotilla_cluster_tests::Sandbox;
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
    KeyUsagePurpose,
};

use crate::common::{repo, run_printing_logs};

/// A cluster CA and one node certificate for `flotilla-node`, as PEM files.
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

impl Pki {
    fn issue(dir: &Path, label: &str) -> anyhow::Result<Pki> {
        std::fs::create_dir_all(dir)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params.distinguished_name.push(DnType::CommonName, format!("{label} cluster CA"));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
        let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate()?)?;
        let node_key = KeyPair::generate()?;
        let mut node_params = CertificateParams::new(vec!["flotilla-node".to_owned()])?;
        node_params.extended_key_usages =
            vec![ExtendedKeyUsagePurpose::ServerAuth, ExtendedKeyUsagePurpose::ClientAuth];
        let node_cert = node_params.signed_by(&node_key, &ca)?;
        let pki = Pki { ca: dir.join("ca.pem"), cert: dir.join("node.pem"), key: dir.join("node.key") };
        std::fs::write(&pki.ca, ca.pem())?;
        std::fs::write(&pki.cert, node_cert.pem())?;
        std::fs::write(&pki.key, node_key.serialize_pem())?;
        Ok(pki)
    }

    fn args(&self) -> Vec<String> {
        let path = |p: &Path| p.display().to_string();
        vec![
            "--tls-ca".into(),
            path(&self.ca),
            "--tls-cert".into(),
            path(&self.cert),
            "--tls-key".into(),
            path(&self.key),
        ]
    }
}

#[test]
fn a_tls_cluster_serves_and_refuses_a_node_of_another_ca() {
    let pki_dir = tempfile::tempdir().expect("temp dir");
    let cluster_pki = Pki::issue(&pki_dir.path().join("cluster"), "ours").expect("cluster PKI");
    let mut builder = Sandbox::builder().nodes(3);
    for arg in cluster_pki.args() {
        builder = builder.arg(arg);
    }
    let mut sandbox = builder.build().expect("a TLS cluster");
    sandbox.wait_until_formed(3, Duration::from_secs(60)).expect("formed over TLS");
    run_printing_logs(&sandbox, |sandbox| {
        // Blob copies travel between nodes over TLS: push to one, read from all.
        let name = repo("t42", "tls");
        let bytes = random_bytes(200_000);
        let digest = sandbox.node(1).client(sandbox.admin_credentials()).push_blob_post_put(&name, &bytes)?;
        for index in 0..3 {
            let blob = sandbox.node(index).client(sandbox.admin_credentials()).get_blob(&name, &digest)?;
            ensure!(blob.status == 200 && blob.body == bytes, "node {index}: {}", blob.status);
        }
        let log = std::fs::read_to_string(sandbox.node(0).log_path())?;
        ensure!(log.contains("inter-node gRPC is mutual TLS"), "node 0 did not turn TLS on");
        Ok(())
    });

    // A node with a certificate of another CA: the cluster refuses the
    // handshake, so it is never admitted (and never becomes ready).
    let foreign = Pki::issue(&pki_dir.path().join("foreign"), "theirs").expect("foreign PKI");
    let args = foreign.args();
    let args: Vec<&str> = args.iter().map(String::as_str).collect();
    let refused = sandbox.add_node_with(&args, Duration::from_secs(8));
    assert!(refused.is_err(), "a node with a foreign certificate became ready");
    let nodes = sandbox.cluster_get(0, "nodes").expect("nodes");
    let count = nodes.as_array().map_or(0, Vec::len);
    assert_eq!(count, 3, "the foreign node was recorded: {nodes}");

    // A key that does not belong to the certificate is refused at start, naming the file.
    let mut mismatched = cluster_pki.args();
    let key_at = mismatched.iter().position(|arg| arg == "--tls-key").expect("key flag") + 1;
    mismatched[key_at] = foreign.key.display().to_string();
    let args: Vec<&str> = mismatched.iter().map(String::as_str).collect();
    let started = sandbox.add_node_with(&args, Duration::from_secs(8));
    assert!(started.is_err(), "a node with a mismatched key started");
    let log = std::fs::read_to_string(sandbox.dir().join(format!("node-{}.log", sandbox.nodes().len())))
        .expect("the refused node's log");
    let last_run = log.rsplit("===== sandbox: starting").next().unwrap_or_default();
    let expected = format!("TLS key file {} does not match certificate", foreign.key.display());
    assert!(last_run.contains(&expected), "the start error does not name the key file:\n{last_run}");
}
