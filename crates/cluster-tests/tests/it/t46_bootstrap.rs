//! Forming a cluster the way a Kubernetes StatefulSet does: every node gets
//! the same `--join` list (its own address included) and
//! `--bootstrap-if-first`. The node listed first waits while a listed node is
//! not up, creates the cluster once the others answer that they are in no
//! cluster, and the others join it, whatever the order they start in. All
//! three restarted at once form again; the first node with an emptied data
//! directory joins the running cluster instead of creating a second one; a
//! node whose list names only itself stops with an error instead of waiting
//! forever.
//!
//! The sandbox starts nodes one after the other with `--join` naming the
//! earlier ones, so these nodes are started here, on ports of their own.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use anyhow::ensure;
use serde_json::Value;

use flotilla_cluster_tests::content::random_bytes;
use flotilla_cluster_tests::sandbox::{locate_binary, ADMIN_USER};
use flotilla_cluster_tests::spawner::spawn_tied_to_process;
use flotilla_cluster_tests::{wait, Credentials, OciClient};

use crate::common::repo;

const PASSWORD: &str = "t46-admin";
const READY: Duration = Duration::from_secs(90);

/// One `flotilla serve` process of a StatefulSet-like group.
struct Pod {
    node_id: u64,
    http: SocketAddr,
    rpc: SocketAddr,
    gossip: SocketAddr,
    data_dir: PathBuf,
    log: PathBuf,
    join: Vec<SocketAddr>,
    bootstrap_if_first: bool,
    child: Mutex<Option<Child>>,
}

impl Pod {
    fn new(root: &Path, node_id: u64, bootstrap_if_first: bool) -> anyhow::Result<Pod> {
        // A loopback address per pod, apart from the sandbox's 127.1.x.y.
        static NEXT: AtomicU8 = AtomicU8::new(2);
        let ip = IpAddr::V4(Ipv4Addr::new(127, 46, 0, NEXT.fetch_add(1, Ordering::SeqCst)));
        let listeners = [TcpListener::bind((ip, 0))?, TcpListener::bind((ip, 0))?, TcpListener::bind((ip, 0))?];
        let data_dir = root.join(format!("node-{node_id}"));
        std::fs::create_dir_all(&data_dir)?;
        Ok(Pod {
            node_id,
            http: listeners[0].local_addr()?,
            rpc: listeners[1].local_addr()?,
            gossip: listeners[2].local_addr()?,
            data_dir,
            log: root.join(format!("node-{node_id}.log")),
            join: Vec::new(),
            bootstrap_if_first,
            child: Mutex::new(None),
        })
    }

    fn start(&self) -> anyhow::Result<()> {
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let join: Vec<String> = self.join.iter().map(SocketAddr::to_string).collect();
        let mut command = Command::new(locate_binary()?);
        command
            .arg("serve")
            .args(["--node-id", &self.node_id.to_string()])
            .arg("--data-dir")
            .arg(&self.data_dir)
            .args(["--http-addr", &self.http.to_string()])
            .args(["--rpc-addr", &self.rpc.to_string()])
            .args(["--gossip-addr", &self.gossip.to_string()])
            .args(["--join", &join.join(",")])
            .args(["--bootstrap-if-first", &self.bootstrap_if_first.to_string()]);
        for (key, _) in std::env::vars_os() {
            if key.to_string_lossy().starts_with("FLOTILLA_") {
                command.env_remove(key);
            }
        }
        command
            .env("FLOTILLA_ADMIN_PASSWORD", PASSWORD)
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        *self.child.lock().unwrap() = Some(spawn_tied_to_process(command)?);
        Ok(())
    }

    fn kill9(&self) {
        if let Some(mut child) = self.child.lock().unwrap().take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The exit status, once the process has ended.
    fn exited(&self) -> Option<std::process::ExitStatus> {
        self.child.lock().unwrap().as_mut().and_then(|child| child.try_wait().ok().flatten())
    }

    fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.http)
    }

    /// `/readyz` answers 200.
    fn is_ready(&self) -> bool {
        let http = reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(2)).build();
        http.ok().and_then(|http| http.get(self.url("/readyz")).send().ok()).is_some_and(|r| r.status() == 200)
    }

    fn wait_ready(&self) -> anyhow::Result<()> {
        wait::until_some(&format!("node {} to be ready", self.node_id), READY, Duration::from_millis(100), || {
            if let Some(status) = self.exited() {
                return Ok(Some(Err(anyhow::anyhow!("node {} exited with {status}", self.node_id))));
            }
            Ok(self.is_ready().then_some(Ok(())))
        })?
    }

    fn cluster_state(&self) -> anyhow::Result<Value> {
        let http = reqwest::blocking::Client::builder().no_proxy().timeout(Duration::from_secs(15)).build()?;
        let response = http.get(self.url("/_cluster/state")).basic_auth(ADMIN_USER, Some(PASSWORD)).send()?;
        ensure!(response.status() == 200, "/_cluster/state: {}", response.status());
        Ok(response.json()?)
    }

    fn client(&self) -> OciClient {
        OciClient::new(&self.url(""), Credentials::Basic { user: ADMIN_USER.into(), password: PASSWORD.into() })
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Three pods with the same join list (all three, pod 1 first).
struct Group {
    pods: Vec<Pod>,
    _root: tempfile::TempDir,
}

impl Group {
    fn new(bootstrap_if_first: bool) -> anyhow::Result<Group> {
        let root = tempfile::Builder::new().prefix("flotilla-t46-").tempdir()?;
        let mut pods: Vec<Pod> =
            (1..=3).map(|id| Pod::new(root.path(), id, bootstrap_if_first)).collect::<anyhow::Result<_>>()?;
        let join: Vec<SocketAddr> = pods.iter().map(|pod| pod.rpc).collect();
        for pod in &mut pods {
            pod.join = join.clone();
        }
        Ok(Group { pods, _root: root })
    }

    /// Waits until every pod is ready and they agree on one cluster of three voters; its id.
    fn wait_formed(&self) -> anyhow::Result<String> {
        for pod in &self.pods {
            pod.wait_ready()?;
        }
        wait::until_some("one cluster of three voters", READY, Duration::from_millis(200), || {
            let states: Vec<Value> = self
                .pods
                .iter()
                .map(Pod::cluster_state)
                .collect::<anyhow::Result<_>>()
                .map_err(|e| format!("{e:#}"))?;
            let id = &states[0]["cluster_id"];
            let voters = |state: &Value| {
                state["nodes"].as_array().map_or(0, |nodes| nodes.iter().filter(|n| n["role"] == "voter").count())
            };
            if id.is_string() && states.iter().all(|state| &state["cluster_id"] == id && voters(state) == 3) {
                Ok(Some(id.as_str().unwrap_or_default().to_owned()))
            } else {
                Err(format!("{states:?}"))
            }
        })
    }

    fn logs(&self) -> String {
        self.pods.iter().map(|pod| format!("----- node {} -----\n{}\n", pod.node_id, pod.log_text())).collect()
    }
}

impl Drop for Group {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("{}", self.logs());
        }
        for pod in &self.pods {
            pod.kill9();
        }
    }
}

fn run(group: &Group, test: impl FnOnce(&Group) -> anyhow::Result<()>) {
    if let Err(error) = test(group) {
        panic!("{error:#}\n{}", group.logs());
    }
}

#[test]
fn nodes_with_one_join_list_form_one_cluster_in_any_order_and_never_a_second_one() {
    let group = Group::new(true).expect("pods");
    run(&group, |group| {
        let [first, second, third] = [&group.pods[0], &group.pods[1], &group.pods[2]];

        // The first node alone: it waits for the others rather than create a cluster.
        first.start()?;
        std::thread::sleep(Duration::from_secs(3));
        ensure!(first.exited().is_none(), "the first node exited alone:\n{}", first.log_text());
        ensure!(!first.is_ready(), "the first node created a cluster while the others were away");
        ensure!(first.log_text().contains("bootstrap_if_first"), "it says what it waits for");

        // The others start last-first; one cluster forms.
        third.start()?;
        second.start()?;
        let cluster_id = group.wait_formed()?;
        ensure!(first.log_text().contains("creating a new cluster"), "the first node created it");
        for pod in [second, third] {
            ensure!(!pod.log_text().contains("initialized a new single-node cluster"), "node {}", pod.node_id);
        }
        let name = repo("t46", "bootstrap");
        let digest = second.client().push_blob_monolithic(&name, &random_bytes(20_000))?;

        // A full outage: all three restart at once and form the same cluster.
        for pod in &group.pods {
            pod.kill9();
        }
        for pod in group.pods.iter().rev() {
            pod.start()?;
        }
        ensure!(group.wait_formed()? == cluster_id, "a full restart formed another cluster");

        // The first node loses its data: it joins the running cluster (it is
        // listed first, but the others answer for their cluster).
        first.kill9();
        std::fs::remove_dir_all(&first.data_dir)?;
        std::fs::create_dir_all(&first.data_dir)?;
        first.start()?;
        first.wait_ready()?;
        let state = first.cluster_state()?;
        ensure!(state["cluster_id"] == cluster_id.as_str(), "the emptied first node is in another cluster: {state}");
        first.client().head_blob(&name, &digest)?.expect_status(200)?;
        Ok(())
    });
}

#[test]
fn a_node_whose_join_list_names_only_itself_stops_with_an_error() {
    let root = tempfile::tempdir().expect("dir");
    let mut alone = Pod::new(root.path(), 1, false).expect("pod");
    alone.join = vec![alone.rpc];
    alone.start().expect("start");
    let status =
        wait::until_some(
            "the node to exit",
            Duration::from_secs(60),
            Duration::from_millis(100),
            || Ok(alone.exited()),
        );
    let log = alone.log_text();
    alone.kill9();
    let status = status.unwrap_or_else(|error| panic!("{error:#}\n{log}"));
    assert!(!status.success(), "{log}");
    assert!(log.contains("names only this node"), "{log}");

    // With bootstrap_if_first the same node creates a cluster of its own.
    let root = tempfile::tempdir().expect("dir");
    let mut single = Pod::new(root.path(), 1, true).expect("pod");
    single.join = vec![single.rpc];
    single.start().expect("start");
    let ready = single.wait_ready();
    let log = single.log_text();
    single.kill9();
    ready.unwrap_or_else(|error| panic!("{error:#}\n{log}"));
}
