//! Fixtures shared by the suites: one sandbox per module, started on first use,
//! and a runner that prints the nodes' logs when a test fails.

use std::sync::OnceLock;

use flotilla_cluster_tests::content::unique_suffix;
use flotilla_cluster_tests::Sandbox;

/// A sandbox of its own for one test: `nodes` nodes, formed (up to three voters).
pub fn cluster(nodes: usize) -> Sandbox {
    let sandbox = Sandbox::builder().nodes(nodes).build().expect("sandbox");
    sandbox.wait_until_formed(nodes.min(3), std::time::Duration::from_secs(60)).expect("cluster formed");
    sandbox
}

/// A module's sandbox, started by the first test that needs it. A failed start
/// is remembered so the module's other tests fail at once with the same reason.
pub type SharedSandbox = OnceLock<Result<Sandbox, String>>;

/// Runs `test` against the module's shared single-node sandbox.
pub fn with_shared(cell: &'static SharedSandbox, test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    let sandbox = match cell.get_or_init(|| Sandbox::builder().nodes(1).build().map_err(|e| format!("{e:#}"))) {
        Ok(sandbox) => sandbox,
        Err(error) => panic!("the sandbox did not start: {error}"),
    };
    run_printing_logs(sandbox, test);
}

/// Runs `test` against the module's shared cluster of `nodes` nodes, formed
/// (every node a voter up to three, the layout synced) before the first test.
pub fn with_shared_cluster(
    cell: &'static SharedSandbox,
    nodes: usize,
    test: impl FnOnce(&Sandbox) -> anyhow::Result<()>,
) {
    let started = cell.get_or_init(|| {
        let sandbox = Sandbox::builder().nodes(nodes).build().map_err(|e| format!("{e:#}"))?;
        match sandbox.wait_until_formed(nodes.min(3), std::time::Duration::from_secs(60)) {
            Ok(()) => Ok(sandbox),
            Err(error) => {
                sandbox.print_logs();
                Err(format!("{error:#}"))
            }
        }
    });
    let sandbox = match started {
        Ok(sandbox) => sandbox,
        Err(error) => panic!("the cluster did not form: {error}"),
    };
    run_printing_logs(sandbox, test);
}

/// Runs `test`; on an error or a panic prints the tail of every node's log
/// (the harness shows it for the failed test) and fails the test.
pub fn run_printing_logs(sandbox: &Sandbox, test: impl FnOnce(&Sandbox) -> anyhow::Result<()>) {
    struct PrintLogsOnPanic<'a>(&'a Sandbox);
    impl Drop for PrintLogsOnPanic<'_> {
        fn drop(&mut self) {
            if std::thread::panicking() {
                self.0.print_logs();
            }
        }
    }
    let guard = PrintLogsOnPanic(sandbox);
    if let Err(error) = test(sandbox) {
        sandbox.print_logs();
        std::mem::forget(guard);
        panic!("{error:#}");
    }
}

/// A repository name unique to one test: `<module>/<test>-<random>`.
pub fn repo(module: &str, test: &str) -> String {
    format!("{module}/{test}-{}", unique_suffix())
}
