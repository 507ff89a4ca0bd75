//! The platforms of the whitepaper table: bare processes and container
//! runtimes started as processes (`rt-runtime run`, `crun run`, `runc run` on
//! one bundle), and QEMU guests.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::{Instance, Kind, Platform, WpError};

/// A child process whose stdout lines are read on a thread.
pub struct ProcessInstance {
    what: String,
    make: Box<dyn Fn() -> Command + Send>,
    cleanup: Box<dyn Fn() + Send>,
    child: Option<Child>,
    lines: Option<Receiver<String>>,
}

impl ProcessInstance {
    /// Starts `make()`; `cleanup` runs after the process has ended (e.g.
    /// `crun delete -f ID`).
    pub fn start(what: String, make: Box<dyn Fn() -> Command + Send>, cleanup: Box<dyn Fn() + Send>) -> Result<ProcessInstance, WpError> {
        let mut p = ProcessInstance { what, make, cleanup, child: None, lines: None };
        p.spawn()?;
        Ok(p)
    }

    fn spawn(&mut self) -> Result<(), WpError> {
        let mut cmd = (self.make)();
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::null());
        let mut child = cmd.spawn().map_err(|e| WpError::step(format!("start {}", self.what), e))?;
        let out = child.stdout.take().ok_or_else(|| WpError::step(format!("start {}", self.what), "no stdout pipe"))?;
        let (tx, rx) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        self.child = Some(child);
        self.lines = Some(rx);
        Ok(())
    }

    fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            // SIGTERM first so a runtime in the foreground forwards it and
            // removes its container; then make sure.
            let pid = nix::unistd::Pid::from_raw(c.id() as i32);
            let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
            let t = Instant::now();
            while t.elapsed() < Duration::from_secs(3) {
                if let Ok(Some(_)) = c.try_wait() {
                    break;
                }
                std::thread::sleep(Duration::from_millis(2));
            }
            let _ = c.kill();
            let _ = c.wait();
        }
        self.lines = None;
        (self.cleanup)();
    }
}

impl Instance for ProcessInstance {
    fn wait_line(&mut self, prefix: &str, timeout: Duration) -> Result<String, WpError> {
        let rx = self.lines.as_ref().ok_or_else(|| WpError::step(format!("wait for {prefix} from {}", self.what), "not running"))?;
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.starts_with(prefix) => return Ok(line),
                Ok(_) => continue,
                Err(RecvTimeoutError::Timeout) => {
                    return Err(WpError::step(format!("wait for {prefix} from {}", self.what), format!("nothing after {timeout:?}")))
                }
                Err(RecvTimeoutError::Disconnected) => {
                    return Err(WpError::step(format!("wait for {prefix} from {}", self.what), "it exited first"))
                }
            }
        }
    }

    fn reboot(&mut self) -> Result<(), WpError> {
        self.kill();
        self.spawn()
    }

    fn snapshot(&mut self, _dir: &Path) -> Result<(u64, String), WpError> {
        Err(WpError::step(format!("snapshot {}", self.what), "this platform has no snapshot"))
    }

    fn stop(&mut self) {
        self.kill();
    }
}

impl Drop for ProcessInstance {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.kill();
        }
    }
}

/// The workload as a plain host process.
pub struct Bare {
    /// Path of `cranlab-workload`.
    pub workload: PathBuf,
}

impl Platform for Bare {
    fn name(&self) -> String {
        "bare".into()
    }
    fn kind(&self) -> Kind {
        Kind::Bare
    }
    fn start(&self, id: usize, args: &[&str]) -> Result<Box<dyn Instance>, WpError> {
        let bin = self.workload.clone();
        let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        Ok(Box::new(ProcessInstance::start(
            format!("bare workload {id}"),
            Box::new(move || {
                let mut c = Command::new(&bin);
                c.args(&args);
                c
            }),
            Box::new(|| {}),
        )?))
    }
}
