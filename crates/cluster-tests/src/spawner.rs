//! Spawns child processes that die with the test process.
//!
//! Sandboxes shared by a test module live in statics, which Rust never drops,
//! so their nodes cannot be killed by `Drop`. Instead every child is started
//! with `PR_SET_PDEATHSIG = SIGKILL`. That signal fires when the *thread* that
//! forked the child ends, not the process, so all forks happen on one thread
//! that lives as long as the test process: when the process exits (normally,
//! by panic or by a signal) the kernel kills every node it started.

use std::io;
use std::os::unix::process::CommandExt;
use std::process::{Child, Command};
use std::sync::mpsc::{channel, Sender};
use std::sync::{Mutex, OnceLock};

type SpawnJob = (Command, Sender<io::Result<Child>>);

static SPAWNER: OnceLock<Mutex<Sender<SpawnJob>>> = OnceLock::new();

/// Starts `command` from the process-long spawner thread, with its parent-death
/// signal set to SIGKILL so it never outlives the test binary.
pub fn spawn_tied_to_process(mut command: Command) -> io::Result<Child> {
    let parent_pid = std::process::id();
    // SAFETY: the closure runs between fork and exec and only makes
    // async-signal-safe calls (prctl, getppid, _exit).
    unsafe {
        command.pre_exec(move || {
            if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL) != 0 {
                return Err(io::Error::last_os_error());
            }
            // The parent may have died between fork and prctl.
            if libc::getppid() as u32 != parent_pid {
                libc::_exit(1);
            }
            Ok(())
        });
    }
    let (reply_to, reply) = channel();
    spawner().lock().expect("spawner lock").send((command, reply_to)).expect("spawner thread is alive");
    reply.recv().expect("spawner thread replies")
}

fn spawner() -> &'static Mutex<Sender<SpawnJob>> {
    SPAWNER.get_or_init(|| {
        let (jobs_in, jobs) = channel::<SpawnJob>();
        std::thread::Builder::new()
            .name("flotilla-spawner".into())
            .spawn(move || {
                for (mut command, reply_to) in jobs {
                    let _ = reply_to.send(command.spawn());
                }
            })
            .expect("starting the spawner thread");
        Mutex::new(jobs_in)
    })
}
