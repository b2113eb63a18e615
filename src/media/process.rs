//! The one way liveup runs a child process: argv built by code (never a shell), stderr drained on its
//! own thread so the child cannot block on it, the last lines kept for error messages, and the child
//! killed and reaped when the handle drops.

use std::collections::VecDeque;
use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdin, ChildStdout, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::{self, JoinHandle};

const STDERR_LINES_KEPT: usize = 40;

#[derive(Debug, thiserror::Error)]
pub enum ProcessError {
    #[error("could not start {name} ({program}): {source}")]
    Spawn {
        name: &'static str,
        program: String,
        source: std::io::Error,
    },
    #[error("{name} {status}; its last output:\n{stderr_tail}")]
    Failed {
        name: &'static str,
        status: String,
        stderr_tail: String,
    },
    #[error("waiting for {name}: {source}")]
    Wait {
        name: &'static str,
        source: std::io::Error,
    },
}

/// A running child. Shared between the thread that reads or writes its pipes and the supervisor
/// that may kill it, hence the mutex around the `Child`.
pub struct Process {
    name: &'static str,
    child: Mutex<Child>,
    stderr_tail: Arc<Mutex<VecDeque<String>>>,
    stderr_reader: Mutex<Option<JoinHandle<()>>>,
}

pub struct Spawned {
    pub process: Arc<Process>,
    pub stdin: Option<ChildStdin>,
    pub stdout: Option<ChildStdout>,
}

impl Process {
    /// Starts `command` with stderr captured. `stdin`/`stdout` are piped when asked, else null.
    pub fn spawn(
        name: &'static str,
        mut command: Command,
        pipe_stdin: bool,
        pipe_stdout: bool,
    ) -> Result<Spawned, ProcessError> {
        let program = command.get_program().to_string_lossy().into_owned();
        command
            .stdin(if pipe_stdin {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(if pipe_stdout {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|source| ProcessError::Spawn {
            name,
            program,
            source,
        })?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take();
        let stderr = child.stderr.take().expect("stderr is piped");
        let stderr_tail = Arc::new(Mutex::new(VecDeque::with_capacity(STDERR_LINES_KEPT)));
        let tail = Arc::clone(&stderr_tail);
        let stderr_reader = thread::Builder::new()
            .name(format!("{name}-stderr"))
            .spawn(move || {
                for line in BufReader::new(stderr).split(b'\n').map_while(Result::ok) {
                    let line = String::from_utf8_lossy(&line).trim_end().to_string();
                    if line.is_empty() {
                        continue;
                    }
                    let mut tail = tail.lock().unwrap();
                    if tail.len() == STDERR_LINES_KEPT {
                        tail.pop_front();
                    }
                    tail.push_back(line);
                }
            })
            .expect("spawn stderr thread");
        let process = Arc::new(Process {
            name,
            child: Mutex::new(child),
            stderr_tail,
            stderr_reader: Mutex::new(Some(stderr_reader)),
        });
        Ok(Spawned {
            process,
            stdin,
            stdout,
        })
    }

    pub fn name(&self) -> &'static str {
        self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.lock().unwrap().id()
    }

    /// Kills the child if it is still running; harmless after it exited.
    pub fn kill(&self) {
        let mut child = self.child.lock().unwrap();
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
        }
    }

    /// Waits for the child to exit and turns a non-zero exit or a signal into an error that carries
    /// the tail of its stderr. `kill` from another thread is never blocked meanwhile.
    pub fn wait(&self) -> Result<(), ProcessError> {
        let status = self.wait_status()?;
        if status.success() {
            Ok(())
        } else {
            Err(ProcessError::Failed {
                name: self.name,
                status: describe_status(status),
                stderr_tail: self.stderr_tail(),
            })
        }
    }

    fn wait_status(&self) -> Result<ExitStatus, ProcessError> {
        self.block_until_exited()?;
        let status = self
            .child
            .lock()
            .unwrap()
            .wait()
            .map_err(|source| ProcessError::Wait {
                name: self.name,
                source,
            })?;
        if let Some(reader) = self.stderr_reader.lock().unwrap().take() {
            let _ = reader.join();
        }
        Ok(status)
    }

    /// Sleeps in the kernel until the child has exited, without reaping it: the lock on the
    /// child stays free for `kill`, and the pid cannot be reused before the reaping `wait`.
    fn block_until_exited(&self) -> Result<(), ProcessError> {
        let pid = self.pid();
        loop {
            // SAFETY: `info` is a writable siginfo_t; waitid only fills it in.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            // SAFETY: plain system call on our own child's pid.
            let result = unsafe {
                libc::waitid(
                    libc::P_PID,
                    pid as libc::id_t,
                    &mut info,
                    libc::WEXITED | libc::WNOWAIT,
                )
            };
            if result == 0 {
                return Ok(());
            }
            let error = std::io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EINTR) => continue,
                // Already reaped by another waiter: its status is kept in the `Child`.
                Some(libc::ECHILD) => return Ok(()),
                _ => {
                    return Err(ProcessError::Wait {
                        name: self.name,
                        source: error,
                    })
                }
            }
        }
    }

    pub fn stderr_tail(&self) -> String {
        let tail = self.stderr_tail.lock().unwrap();
        tail.iter().cloned().collect::<Vec<_>>().join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        let child = self.child.get_mut().unwrap();
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

fn describe_status(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exited with code {code}"),
        (None, Some(signal)) => format!("was killed by signal {signal}"),
        _ => "ended abnormally".to_string(),
    }
}

/// Runs a short command to completion and returns its stdout, or the error with stderr's tail.
pub fn output(name: &'static str, command: Command) -> Result<Vec<u8>, ProcessError> {
    use std::io::Read;
    let mut spawned = Process::spawn(name, command, false, true)?;
    let mut stdout = Vec::new();
    if let Some(mut out) = spawned.stdout.take() {
        let _ = out.read_to_end(&mut stdout);
    }
    spawned.process.wait()?;
    Ok(stdout)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failure_carries_the_tail_of_stderr() {
        let mut command = Command::new("sh");
        command.args(["-c", "echo first >&2; echo 'the real reason' >&2; exit 3"]);
        let err = output("sh", command).unwrap_err().to_string();
        assert!(err.contains("exited with code 3"), "{err}");
        assert!(err.contains("the real reason"), "{err}");
    }

    #[test]
    fn a_killed_child_reports_the_signal() {
        let mut command = Command::new("sleep");
        command.arg("30");
        let spawned = Process::spawn("sleep", command, false, false).unwrap();
        spawned.process.kill();
        let err = spawned.process.wait().unwrap_err().to_string();
        assert!(err.contains("killed by signal 9"), "{err}");
    }

    #[test]
    fn a_missing_program_is_a_spawn_error() {
        let err = output("nothing", Command::new("/nonexistent/liveup-tool")).unwrap_err();
        assert!(matches!(err, ProcessError::Spawn { .. }));
    }
}
