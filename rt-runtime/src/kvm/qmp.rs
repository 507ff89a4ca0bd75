//! A small QMP client over a unix socket (serde_json, one command at a time).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Errors talking QMP.
#[derive(Debug, thiserror::Error)]
pub enum QmpError {
    /// Socket trouble.
    #[error("qmp {what}: {err}")]
    Io {
        /// What was being done.
        what: String,
        /// The cause.
        err: std::io::Error,
    },
    /// QEMU answered with an error or something unexpected.
    #[error("qmp {what}: {detail}")]
    Protocol {
        /// The command.
        what: String,
        /// QEMU's error or what was wrong.
        detail: String,
    },
}

/// A connected QMP session in command mode.
#[derive(Debug)]
pub struct Qmp {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

/// One vCPU as QEMU reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct VcpuThread {
    /// Guest CPU index.
    pub cpu_index: usize,
    /// Host thread id.
    pub thread_id: i32,
}

impl Qmp {
    /// Connects to `path`, retrying until `timeout` (QEMU creates the socket
    /// shortly after it starts), and negotiates capabilities.
    pub fn connect(path: &Path, timeout: Duration) -> Result<Qmp, QmpError> {
        let start = Instant::now();
        let stream = loop {
            match UnixStream::connect(path) {
                Ok(s) => break s,
                Err(e) if start.elapsed() < timeout => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(10));
                }
                Err(err) => return Err(QmpError::Io { what: format!("connect {}", path.display()), err }),
            }
        };
        let io = |what: &str| {
            let what = what.to_string();
            move |err| QmpError::Io { what, err }
        };
        stream.set_read_timeout(Some(Duration::from_secs(10))).map_err(io("set read timeout"))?;
        let writer = stream.try_clone().map_err(io("clone socket"))?;
        let mut q = Qmp { reader: BufReader::new(stream), writer };
        let greeting = q.read_message("greeting")?;
        if greeting.get("QMP").is_none() {
            return Err(QmpError::Protocol { what: "greeting".into(), detail: greeting.to_string() });
        }
        q.execute("qmp_capabilities", None)?;
        Ok(q)
    }

    fn read_message(&mut self, what: &str) -> Result<Value, QmpError> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|err| QmpError::Io { what: format!("read reply to {what}"), err })?;
        if n == 0 {
            return Err(QmpError::Protocol { what: what.into(), detail: "connection closed".into() });
        }
        serde_json::from_str(&line).map_err(|e| QmpError::Protocol { what: what.into(), detail: format!("bad json {line:?}: {e}") })
    }

    /// Runs `cmd` with `args`, returning its `return` value (events are skipped).
    pub fn execute(&mut self, cmd: &str, args: Option<Value>) -> Result<Value, QmpError> {
        let mut msg = json!({ "execute": cmd });
        if let Some(a) = args {
            msg["arguments"] = a;
        }
        let mut s = msg.to_string();
        s.push('\n');
        self.writer
            .write_all(s.as_bytes())
            .map_err(|err| QmpError::Io { what: format!("send {cmd}"), err })?;
        loop {
            let v = self.read_message(cmd)?;
            if let Some(r) = v.get("return") {
                return Ok(r.clone());
            }
            if let Some(e) = v.get("error") {
                return Err(QmpError::Protocol { what: cmd.into(), detail: e.to_string() });
            }
            // An asynchronous event: keep reading.
        }
    }

    /// `query-cpus-fast`: vCPU index → host thread id.
    pub fn vcpu_threads(&mut self) -> Result<Vec<VcpuThread>, QmpError> {
        let r = self.execute("query-cpus-fast", None)?;
        parse_cpus_fast(&r).ok_or_else(|| QmpError::Protocol { what: "query-cpus-fast".into(), detail: r.to_string() })
    }
}

/// Parses the `return` of `query-cpus-fast`.
pub fn parse_cpus_fast(r: &Value) -> Option<Vec<VcpuThread>> {
    let mut v: Vec<VcpuThread> = r
        .as_array()?
        .iter()
        .map(|c| {
            Some(VcpuThread {
                cpu_index: c.get("cpu-index")?.as_u64()? as usize,
                thread_id: c.get("thread-id")?.as_i64()? as i32,
            })
        })
        .collect::<Option<_>>()?;
    v.sort_by_key(|c| c.cpu_index);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpus_fast_reply_is_parsed_and_sorted() {
        let r = json!([
            {"cpu-index": 1, "qom-path": "/machine/unattached/device[1]", "thread-id": 4242, "props": {}, "target": "x86_64"},
            {"cpu-index": 0, "qom-path": "/machine/unattached/device[0]", "thread-id": 4241, "props": {}, "target": "x86_64"}
        ]);
        assert_eq!(
            parse_cpus_fast(&r).unwrap(),
            [VcpuThread { cpu_index: 0, thread_id: 4241 }, VcpuThread { cpu_index: 1, thread_id: 4242 }]
        );
        assert!(parse_cpus_fast(&json!([{"cpu-index": 0}])).is_none());
        assert!(parse_cpus_fast(&json!({})).is_none());
    }
}
