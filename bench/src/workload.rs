//! Guest workloads for the whitepaper benchmarks: a sysbench-style prime
//! computation, mbw-style memory bandwidth (memcpy, "dumb" word loop, block
//! copy) and a netperf-style TCP stream / request-response pair.
//!
//! The same code runs on bare metal, in a container and in a guest (the
//! `cranlab-workload` binary), so the ratios compare the deployments and not
//! the tools.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// Result of one workload run, printed by `cranlab-workload` as one line
/// `RESULT {json}`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct WorkloadResult {
    /// Which workload: `prime`, `mbw`, `net_stream`, `net_rr`.
    pub workload: String,
    /// Events per second (primes: runs of the prime search per second; rr: transactions per second).
    pub events_per_s: Option<f64>,
    /// MiB/s per mbw method: `memcpy`, `dumb`, `mcblock`; or `stream` for TCP throughput.
    pub mib_per_s: Vec<(String, f64)>,
    /// Wall time spent, seconds.
    pub seconds: f64,
}

/// Counts the primes up to `limit` by trial division, as sysbench's cpu test does.
pub fn count_primes(limit: u64) -> u64 {
    let mut n = 0;
    for c in 3..=limit {
        let t = (c as f64).sqrt() as u64;
        let mut prime = true;
        let mut l = 2;
        while l <= t {
            if c % l == 0 {
                prime = false;
                break;
            }
            l += 1;
        }
        if prime {
            n += 1;
        }
    }
    n
}

/// Repeats [`count_primes`] for `seconds`; events per second.
pub fn prime(limit: u64, seconds: f64) -> WorkloadResult {
    let start = Instant::now();
    let mut events = 0u64;
    let mut sink = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        sink = sink.wrapping_add(count_primes(std::hint::black_box(limit)));
        events += 1;
    }
    std::hint::black_box(sink);
    let secs = start.elapsed().as_secs_f64();
    WorkloadResult { workload: "prime".into(), events_per_s: Some(events as f64 / secs), mib_per_s: Vec::new(), seconds: secs }
}

/// Shortest timed batch of the memory workload. A guest's clock may tick in
/// jiffies (4 ms at HZ=250 under emulation); copies are repeated until a batch
/// lasts this long, so the rate is never a division by a zero or one-tick
/// interval.
const MBW_MIN_BATCH: Duration = Duration::from_millis(100);

/// mbw-style memory bandwidth over two `mib`-MiB arrays, best of `reps`
/// batches per method (a batch repeats the copy for at least
/// [`MBW_MIN_BATCH`]).
pub fn mbw(mib: usize, reps: u32) -> WorkloadResult {
    let words = mib * 1024 * 1024 / 8;
    let a: Vec<u64> = (0..words as u64).collect();
    let mut b: Vec<u64> = vec![0; words];
    let start = Instant::now();
    let mut best = |f: &mut dyn FnMut(&[u64], &mut [u64])| {
        let mut rate_best = 0.0f64;
        for _ in 0..reps.max(1) {
            let t = Instant::now();
            let mut copies = 0u64;
            while copies == 0 || t.elapsed() < MBW_MIN_BATCH {
                f(&a, &mut b);
                std::hint::black_box(&b);
                copies += 1;
            }
            rate_best = rate_best.max(copies as f64 * mib as f64 / t.elapsed().as_secs_f64());
        }
        rate_best
    };
    let memcpy = best(&mut |src, dst| dst.copy_from_slice(src));
    let dumb = best(&mut |src, dst| {
        for i in 0..src.len() {
            // A plain indexed loop, as mbw's "dumb" method; black_box keeps it
            // from becoming a memcpy call.
            dst[i] = std::hint::black_box(src[i]);
        }
    });
    let mcblock = best(&mut |src, dst| {
        const BLOCK: usize = 262_144 / 8;
        for (d, s) in dst.chunks_mut(BLOCK).zip(src.chunks(BLOCK)) {
            d.copy_from_slice(s);
        }
    });
    WorkloadResult {
        workload: "mbw".into(),
        events_per_s: None,
        mib_per_s: vec![("memcpy".into(), memcpy), ("dumb".into(), dumb), ("mcblock".into(), mcblock)],
        seconds: start.elapsed().as_secs_f64(),
    }
}

/// Serves the network workloads on `listener` until `connections` clients have
/// been served: a connection whose first byte is `S` is a stream sink (read
/// until EOF), `R` is request/response (echo 1-byte requests until EOF).
pub fn net_serve(listener: &TcpListener, connections: usize) -> std::io::Result<()> {
    for _ in 0..connections {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut kind = [0u8; 1];
        s.read_exact(&mut kind)?;
        let mut buf = vec![0u8; 64 * 1024];
        match kind[0] {
            b'S' => while s.read(&mut buf)? > 0 {},
            _ => loop {
                let n = s.read(&mut buf[..1])?;
                if n == 0 {
                    break;
                }
                s.write_all(&buf[..1])?;
            },
        }
    }
    Ok(())
}

/// TCP stream throughput to a [`net_serve`] server, MiB/s.
pub fn net_stream(addr: SocketAddr, seconds: f64) -> std::io::Result<WorkloadResult> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.write_all(b"S")?;
    let buf = vec![0x5au8; 64 * 1024];
    let start = Instant::now();
    let mut bytes = 0u64;
    while start.elapsed().as_secs_f64() < seconds {
        s.write_all(&buf)?;
        bytes += buf.len() as u64;
    }
    s.shutdown(std::net::Shutdown::Write)?;
    let mut rest = [0u8; 1];
    let _ = s.read(&mut rest)?; // wait for the server to drain and close
    let secs = start.elapsed().as_secs_f64();
    Ok(WorkloadResult {
        workload: "net_stream".into(),
        events_per_s: None,
        mib_per_s: vec![("stream".into(), bytes as f64 / (1024.0 * 1024.0) / secs)],
        seconds: secs,
    })
}

/// TCP request/response rate (1-byte ping-pong) to a [`net_serve`] server.
pub fn net_rr(addr: SocketAddr, seconds: f64) -> std::io::Result<WorkloadResult> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    s.set_nodelay(true)?;
    s.write_all(b"R")?;
    let start = Instant::now();
    let mut n = 0u64;
    let mut b = [0u8; 1];
    while start.elapsed().as_secs_f64() < seconds {
        s.write_all(b"x")?;
        s.read_exact(&mut b)?;
        n += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    Ok(WorkloadResult { workload: "net_rr".into(), events_per_s: Some(n as f64 / secs), mib_per_s: Vec::new(), seconds: secs })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prime_count_is_right() {
        // primes in 3..=100 (2 is not counted, as in sysbench's loop)
        assert_eq!(count_primes(100), 24);
        assert_eq!(count_primes(10_000), 1228);
    }

    #[test]
    fn mbw_reports_three_methods() {
        let r = mbw(4, 2);
        let names: Vec<&str> = r.mib_per_s.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(names, ["memcpy", "dumb", "mcblock"]);
        assert!(r.mib_per_s.iter().all(|(_, v)| v.is_finite() && *v > 0.0));
    }

    #[test]
    fn net_pair_over_loopback() {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        let server = std::thread::spawn(move || net_serve(&l, 2));
        let s = net_stream(addr, 0.05).unwrap();
        assert!(s.mib_per_s[0].1 > 0.0);
        let r = net_rr(addr, 0.05).unwrap();
        assert!(r.events_per_s.unwrap() > 0.0);
        server.join().unwrap().unwrap();
    }
}
