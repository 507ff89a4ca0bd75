//! AF_XDP sockets and the XDP redirect program.
//!
//! [`AfXdp::open`] does everything in one process: it loads a small XDP
//! program (EtherType 0xAEFE → `bpf_redirect_map` into an XSKMAP keyed by the
//! receive queue, everything else `XDP_PASS` to the kernel), creates one AF_XDP
//! socket per active receive queue with its own UMEM (a memfd), binds it
//! (zero-copy, else copy; need-wakeup; retried while the queue is busy),
//! inserts it into the XSKMAP and attaches the program with
//! `BPF_LINK_CREATE` (native XDP, else generic), so the kernel detaches it
//! when the process dies.
//!
//! For containers the privileged half and the data path are split:
//! [`XskHandoff::prepare`] runs in the privileged parent (in the worker's
//! network namespace) and [`AfXdp::from_handoff`] in the unprivileged child,
//! which only maps the UMEM memfd and the four rings of the inherited socket
//! descriptors. See docs/transport.md.
//!
//! All `unsafe` code of this backend is in the `sys` submodule.

mod prog;
mod sys;

use std::os::fd::{AsRawFd, OwnedFd, RawFd};
use std::time::{Duration, Instant};

use self::sys::{Ring, UmemView, XdpDesc};
pub use self::sys::XdpStatistics;
use crate::sys::{os_err_from, set_cloexec};
use crate::{IoStats, PacketIo, PktError, Wait};

/// Environment variable carrying an encoded [`XskHandoff`] to a worker.
pub const HANDOFF_ENV: &str = "CRANLAB_XSK";

/// Where the XDP program runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AttachMode {
    /// Native (driver) XDP, else generic (skb) XDP.
    #[default]
    Auto,
    /// Native XDP only.
    Native,
    /// Generic XDP only.
    Generic,
}

/// How the socket shares frames with the driver.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyMode {
    /// Zero-copy, else copy.
    #[default]
    Auto,
    /// Zero-copy only.
    ZeroCopy,
    /// Copy only.
    Copy,
}

/// AF_XDP configuration; sizes are per queue, ring sizes powers of two, and
/// 0 means "derive it" (see each field).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XdpConfig {
    /// UMEM chunk size, 2048 or 4096; 0 (default) = 2048 when a frame of the
    /// interface's MTU fits in one chunk, else 4096 (and multi-buffer beyond).
    pub frame_size: u32,
    /// UMEM chunks; 0 (default) = as many as fill [`XdpConfig::umem_bytes`].
    pub frames: u32,
    /// UMEM size used when `frames` is 0. Default 64 MiB: 30 720 receive
    /// buffers of 2 KiB, i.e. 150 ms of traffic at 200 kpps without a
    /// receive call (a SCHED_FIFO busy-poller loses 50 ms a second to RT
    /// throttling).
    pub umem_bytes: usize,
    /// Extra headroom in front of received frames. Default 0.
    pub headroom: u32,
    /// TX ring entries, also the number of transmit chunks. Default 2048.
    pub tx_ring: u32,
    /// RX ring entries; 0 (default) = receive chunks rounded up to a power
    /// of two, so a stalled reader shows up as `rx_fill_ring_empty_descs`.
    pub rx_ring: u32,
    /// Fill ring entries; 0 (default) = twice the receive chunks (the kernel
    /// publishes its consumer index lazily, so a ring just big enough for
    /// every chunk can look full while it is not). Must hold every receive
    /// chunk.
    pub fill_ring: u32,
    /// Completion ring entries; 0 (default) = `tx_ring`.
    pub comp_ring: u32,
    /// Native or generic XDP.
    pub attach: AttachMode,
    /// Zero-copy or copy.
    pub copy: CopyMode,
    /// EtherType redirected to the sockets. Default eCPRI 0xAEFE.
    pub ethertype: u16,
    /// Queues to bind; `None` binds every active receive queue.
    pub queues: Option<Vec<u32>>,
    /// Use the need-wakeup protocol (fewer syscalls). Default true.
    pub need_wakeup: bool,
    /// Socket busy polling for NICs with their own NAPI context (lab hosts):
    /// `SO_PREFER_BUSY_POLL`, `SO_BUSY_POLL` = this many µs and
    /// `SO_BUSY_POLL_BUDGET` = 64, set by the privileged side; an empty
    /// `Wait::Poll` then drives the driver with `recvfrom`. 0 (default) = off.
    pub busy_poll_us: u32,
    /// How long a bind that fails with EBUSY is retried. Default 1 s.
    pub bind_timeout: Duration,
}

impl Default for XdpConfig {
    fn default() -> Self {
        XdpConfig {
            frame_size: 0,
            frames: 0,
            umem_bytes: 64 << 20,
            headroom: 0,
            tx_ring: 2048,
            rx_ring: 0,
            fill_ring: 0,
            comp_ring: 0,
            attach: AttachMode::Auto,
            copy: CopyMode::Auto,
            ethertype: crate::afpacket::ETHERTYPE_ECPRI,
            queues: None,
            need_wakeup: true,
            busy_poll_us: 0,
            bind_timeout: Duration::from_secs(1),
        }
    }
}

fn pow2_at_least(n: u32) -> u32 {
    n.max(1).checked_next_power_of_two().unwrap_or(1 << 31)
}

impl Geometry {
    /// Resolves the derived sizes of `cfg` for frames of `max_frame` bytes.
    fn resolve(cfg: &XdpConfig, max_frame: u32) -> Result<Geometry, PktError> {
        let frame_size = match cfg.frame_size {
            0 if max_frame + sys::XDP_PACKET_HEADROOM + cfg.headroom <= 2048 => 2048,
            0 => 4096,
            f => f,
        };
        let frames = match cfg.frames {
            0 => (cfg.umem_bytes / frame_size as usize).min(u32::MAX as usize) as u32,
            f => f,
        };
        let tx_frames = cfg.tx_ring.min(frames / 2);
        let rx_frames = frames.saturating_sub(tx_frames);
        let g = Geometry {
            frame_size,
            frames,
            headroom: cfg.headroom,
            tx_ring: cfg.tx_ring,
            rx_ring: if cfg.rx_ring == 0 { pow2_at_least(rx_frames) } else { cfg.rx_ring },
            fill_ring: if cfg.fill_ring == 0 { pow2_at_least(rx_frames.saturating_mul(2)) } else { cfg.fill_ring },
            comp_ring: if cfg.comp_ring == 0 { cfg.tx_ring } else { cfg.comp_ring },
            need_wakeup: cfg.need_wakeup,
            busy_poll: cfg.busy_poll_us > 0,
            max_frame,
        };
        g.validate()?;
        Ok(g)
    }

    fn validate(&self) -> Result<(), PktError> {
        let bad = |m: String| Err(PktError::Unsupported(m));
        if !(self.frame_size == 2048 || self.frame_size == 4096) {
            return bad(format!("afxdp frame_size {} must be 2048 or 4096", self.frame_size));
        }
        if self.frames < 2 {
            return bad(format!("afxdp UMEM of {} chunks: need at least 2", self.frames));
        }
        for (n, v) in [("rx_ring", self.rx_ring), ("tx_ring", self.tx_ring), ("fill_ring", self.fill_ring), ("comp_ring", self.comp_ring)] {
            if !v.is_power_of_two() {
                return bad(format!("afxdp {n} {v} must be a power of two"));
            }
        }
        if self.fill_ring < self.rx_frames() || self.comp_ring < self.tx_frames() {
            return bad(format!(
                "afxdp fill_ring {} must hold the {} receive chunks and comp_ring {} the {} transmit chunks",
                self.fill_ring,
                self.rx_frames(),
                self.comp_ring,
                self.tx_frames()
            ));
        }
        if self.headroom + sys::XDP_PACKET_HEADROOM + 64 > self.frame_size {
            return bad(format!("afxdp headroom {} leaves no room in a {}-byte frame", self.headroom, self.frame_size));
        }
        Ok(())
    }

    fn tx_frames(&self) -> u32 {
        self.tx_ring.min(self.frames / 2)
    }

    fn rx_frames(&self) -> u32 {
        self.frames - self.tx_frames()
    }
}

/// What the kernel granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct XdpMode {
    /// True for native (driver) XDP, false for generic (skb) XDP.
    pub native: bool,
    /// True for zero-copy sockets, false for copy mode.
    pub zero_copy: bool,
    /// Multi-buffer (jumbo) frames: `BPF_F_XDP_HAS_FRAGS` + `XDP_USE_SG`.
    pub multi_buffer: bool,
}

impl XdpMode {
    /// E.g. `native-copy`, `generic-zerocopy`.
    pub fn as_str(&self) -> &'static str {
        match (self.native, self.zero_copy) {
            (true, true) => "native-zerocopy",
            (true, false) => "native-copy",
            (false, true) => "generic-zerocopy",
            (false, false) => "generic-copy",
        }
    }
}

/// UMEM and ring geometry shared by both halves of a hand-off.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Geometry {
    frame_size: u32,
    frames: u32,
    headroom: u32,
    rx_ring: u32,
    tx_ring: u32,
    fill_ring: u32,
    comp_ring: u32,
    need_wakeup: bool,
    busy_poll: bool,
    max_frame: u32,
}

impl Geometry {
    fn umem_len(&self) -> usize {
        self.frames as usize * self.frame_size as usize
    }
    fn rx_space(&self) -> u32 {
        self.frame_size - sys::XDP_PACKET_HEADROOM - self.headroom
    }
}

/// The program, its map and the link that keeps it attached.
struct Attachment {
    /// Closing the link detaches the program.
    _link: OwnedFd,
    _prog: OwnedFd,
    _map: OwnedFd,
}

/// A bound socket before its rings are mapped.
struct PreparedQueue {
    queue_id: u32,
    xsk: OwnedFd,
    umem: OwnedFd,
    view: Option<UmemView>,
}

/// The privileged half of an AF_XDP set-up, to be handed to a worker as
/// inherited file descriptors.
///
/// Holds the attached program: drop it (or let the parent exit) and the
/// program is detached. The child needs only the per-queue socket and UMEM
/// descriptors ([`XskHandoff::child_fds`]) and the geometry in
/// [`XskHandoff::encode`].
pub struct XskHandoff {
    ifname: String,
    ifindex: u32,
    mtu: u32,
    geo: Geometry,
    mode: XdpMode,
    notes: Vec<String>,
    queues: Vec<PreparedQueue>,
    attachment: Option<Attachment>,
}

impl std::fmt::Debug for XskHandoff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("XskHandoff").field("ifname", &self.ifname).field("mode", &self.mode).field("fds", &self.child_fds()).finish()
    }
}

fn is_errno(e: &std::io::Error, n: i32) -> bool {
    e.raw_os_error() == Some(n)
}

fn privilege_hint(e: &std::io::Error) -> &'static str {
    if is_errno(e, libc::EPERM) || is_errno(e, libc::EACCES) {
        " (needs CAP_BPF + CAP_NET_ADMIN, or root)"
    } else {
        ""
    }
}

impl XskHandoff {
    /// Loads and attaches the XDP program and creates, registers and binds
    /// one AF_XDP socket per queue of `ifname`, in the network namespace of
    /// the calling thread (see [`crate::in_netns`]). Needs CAP_NET_RAW,
    /// CAP_BPF and CAP_NET_ADMIN (root); the UMEM is charged to the caller.
    pub fn prepare(ifname: &str, cfg: &XdpConfig) -> Result<XskHandoff, PktError> {
        let ifindex = crate::sys::if_index(ifname)?;
        let probe = crate::sys::socket(libc::AF_INET, libc::SOCK_DGRAM, 0, "probe")?;
        let mtu = crate::sys::if_mtu(probe.as_raw_fd(), ifname)?;
        let queues: Vec<u32> = match &cfg.queues {
            Some(q) if !q.is_empty() => q.clone(),
            Some(_) => return Err(PktError::Unsupported("afxdp queue list is empty".into())),
            None => (0..crate::sys::if_rx_queues(probe.as_raw_fd(), ifname)).collect(),
        };
        drop(probe);
        let max_frame = mtu + 18;
        let geo = Geometry::resolve(cfg, max_frame)?;
        let multi_buffer = max_frame > geo.rx_space();
        let mut notes = Vec::new();
        if multi_buffer {
            notes.push(format!(
                "MTU {mtu} needs frames of {max_frame} bytes, more than the {} a {}-byte chunk holds: multi-buffer (XDP_USE_SG)",
                geo.rx_space(),
                geo.frame_size
            ));
        }

        let max_q = queues.iter().copied().max().unwrap_or(0);
        let map = sys::create_xskmap(max_q + 1)
            .map_err(|e| os_err_from(format!("create XSKMAP for {ifname}{}", privilege_hint(&e)), e))?;
        let insns = prog::redirect_program(map.as_raw_fd(), cfg.ethertype);
        let prog_fd = sys::prog_load_xdp(&insns, multi_buffer).map_err(|(e, log)| {
            let hint = privilege_hint(&e);
            let log = if log.is_empty() { String::new() } else { format!("; verifier: {}", log.lines().last().unwrap_or("")) };
            os_err_from(format!("load XDP program for {ifname}{hint}{log}"), e)
        })?;

        let mut prepared = Vec::new();
        let mut zero_copy = None;
        for &q in &queues {
            let (pq, zc) = prepare_queue(ifname, ifindex, q, &geo, cfg, multi_buffer, &mut notes)?;
            sys::map_update(map.as_raw_fd(), q, pq.xsk.as_raw_fd() as u32)
                .map_err(|e| os_err_from(format!("insert AF_XDP socket of {ifname} queue {q} into XSKMAP"), e))?;
            zero_copy = Some(zero_copy.unwrap_or(zc) && zc);
            prepared.push(pq);
        }

        let order: &[(bool, u32)] = match cfg.attach {
            AttachMode::Auto => &[(true, sys::XDP_FLAGS_DRV_MODE), (false, sys::XDP_FLAGS_SKB_MODE)],
            AttachMode::Native => &[(true, sys::XDP_FLAGS_DRV_MODE)],
            AttachMode::Generic => &[(false, sys::XDP_FLAGS_SKB_MODE)],
        };
        let mut errs = Vec::new();
        let mut link = None;
        for &(native, flags) in order {
            match sys::link_create_xdp(prog_fd.as_raw_fd(), ifindex, flags) {
                Ok(l) => {
                    link = Some((l, native));
                    break;
                }
                Err(e) => {
                    let what = if native { "native" } else { "generic" };
                    if native && order.len() > 1 {
                        notes.push(format!("native XDP refused: {e}"));
                    }
                    errs.push((what, e));
                }
            }
        }
        let Some((link, native)) = link else {
            let (mode, last) = errs.pop().expect("at least one attach attempt");
            let hint = if is_errno(&last, libc::EBUSY) || is_errno(&last, libc::EEXIST) {
                " (another XDP program is attached to the interface)"
            } else {
                privilege_hint(&last)
            };
            let earlier: String = errs.iter().map(|(w, e)| format!("; {w} mode: {e}")).collect();
            return Err(os_err_from(format!("attach XDP program to {ifname} in {mode} mode{hint}{earlier}"), last));
        };
        Ok(XskHandoff {
            ifname: ifname.to_string(),
            ifindex,
            mtu,
            geo,
            mode: XdpMode { native, zero_copy: zero_copy.unwrap_or(false), multi_buffer },
            notes,
            queues: prepared,
            attachment: Some(Attachment { _link: link, _prog: prog_fd, _map: map }),
        })
    }

    /// The mode obtained.
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// Descriptors the child must inherit, in order: socket and UMEM memfd of
    /// each queue (`[xsk0, umem0, xsk1, umem1, …]`).
    pub fn child_fds(&self) -> Vec<RawFd> {
        self.queues.iter().flat_map(|q| [q.xsk.as_raw_fd(), q.umem.as_raw_fd()]).collect()
    }

    /// Clears (`true`) or sets (`false`) close-on-exec on [`XskHandoff::child_fds`],
    /// so that a plain `exec` passes them on.
    pub fn set_inheritable(&self, inheritable: bool) -> Result<(), PktError> {
        for fd in self.child_fds() {
            set_cloexec(fd, !inheritable).map_err(|e| os_err_from(format!("set close-on-exec on fd {fd}"), e))?;
        }
        Ok(())
    }

    /// The hand-off string for the child, naming the descriptors by their
    /// numbers in this process (the child inherits them unchanged).
    pub fn encode(&self) -> String {
        self.encode_with_fds(&self.child_fds()).expect("own fds")
    }

    /// The hand-off string when the child will see [`XskHandoff::child_fds`]
    /// under other numbers (`fds[i]` for `child_fds()[i]`), e.g. after
    /// `dup2` to 3, 4, … for a runtime's `--preserve-fds`.
    pub fn encode_with_fds(&self, fds: &[RawFd]) -> Result<String, PktError> {
        if fds.len() != self.queues.len() * 2 {
            return Err(PktError::Unsupported(format!(
                "hand-off needs {} descriptors (socket + UMEM per queue), got {}",
                self.queues.len() * 2,
                fds.len()
            )));
        }
        let g = &self.geo;
        let mut s = format!(
            "v1;if={};ifindex={};mtu={};native={};zc={};sg={};nw={};bp={};fsize={};frames={};headroom={};rx={};tx={};fill={};comp={};maxf={}",
            self.ifname,
            self.ifindex,
            self.mtu,
            self.mode.native as u8,
            self.mode.zero_copy as u8,
            self.mode.multi_buffer as u8,
            g.need_wakeup as u8,
            g.busy_poll as u8,
            g.frame_size,
            g.frames,
            g.headroom,
            g.rx_ring,
            g.tx_ring,
            g.fill_ring,
            g.comp_ring,
            g.max_frame
        );
        for (q, pair) in self.queues.iter().zip(fds.chunks(2)) {
            s.push_str(&format!(";q={}:{}:{}", q.queue_id, pair[0], pair[1]));
        }
        Ok(s)
    }

    /// Closes this process's copies of the child descriptors (after the
    /// child has started). The program stays attached while `self` lives.
    pub fn close_child_fds(&mut self) {
        self.queues.clear();
    }

    /// Details for results.json.
    pub fn detail(&self) -> serde_json::Value {
        serde_json::json!({
            "interface": self.ifname,
            "mode": self.mode.as_str(),
            "multi_buffer": self.mode.multi_buffer,
            "queues": self.queues.iter().map(|q| q.queue_id).collect::<Vec<_>>(),
            "notes": self.notes,
        })
    }
}

/// Creates, registers and binds the socket for one queue: zero-copy first
/// (unless configured otherwise), then copy; EBUSY retried for
/// `cfg.bind_timeout`.
fn prepare_queue(
    ifname: &str,
    ifindex: u32,
    q: u32,
    geo: &Geometry,
    cfg: &XdpConfig,
    sg: bool,
    notes: &mut Vec<String>,
) -> Result<(PreparedQueue, bool), PktError> {
    let tries: &[u16] = match cfg.copy {
        CopyMode::Auto => &[sys::XDP_ZEROCOPY, sys::XDP_COPY],
        CopyMode::ZeroCopy => &[sys::XDP_ZEROCOPY],
        CopyMode::Copy => &[sys::XDP_COPY],
    };
    let mut last = None;
    for (n, &mode) in tries.iter().enumerate() {
        let xsk = sys::xsk_socket()?;
        let fd = xsk.as_raw_fd();
        let umem = crate::sys::memfd("cranlab-umem", geo.umem_len())?;
        let view = UmemView::map(umem.as_raw_fd(), geo.umem_len())?;
        let reg = sys::UmemReg {
            addr: view.base() as u64,
            len: geo.umem_len() as u64,
            chunk_size: geo.frame_size,
            headroom: geo.headroom,
            flags: 0,
            tx_metadata_len: 0,
        };
        crate::sys::setsockopt(fd, sys::SOL_XDP, sys::XDP_UMEM_REG, &reg).map_err(|e| {
            let hint = if is_errno(&e, libc::ENOBUFS) || is_errno(&e, libc::EPERM) {
                " (UMEM above RLIMIT_MEMLOCK without CAP_IPC_LOCK?)"
            } else {
                ""
            };
            os_err_from(format!("register {}-byte UMEM for {ifname} queue {q}{hint}", geo.umem_len()), e)
        })?;
        for (opt, size, name) in [
            (sys::XDP_UMEM_FILL_RING, geo.fill_ring, "fill"),
            (sys::XDP_UMEM_COMPLETION_RING, geo.comp_ring, "completion"),
            (sys::XDP_RX_RING, geo.rx_ring, "rx"),
            (sys::XDP_TX_RING, geo.tx_ring, "tx"),
        ] {
            crate::sys::setsockopt(fd, sys::SOL_XDP, opt, &size)
                .map_err(|e| os_err_from(format!("size AF_XDP {name} ring to {size} for {ifname} queue {q}"), e))?;
        }
        let mut flags = mode;
        if geo.need_wakeup {
            flags |= sys::XDP_USE_NEED_WAKEUP;
        }
        if sg {
            flags |= sys::XDP_USE_SG;
        }
        let sa = sys::SockaddrXdp { family: sys::AF_XDP as u16, flags, ifindex, queue_id: q, shared_umem_fd: 0 };
        let start = Instant::now();
        let res = loop {
            match sys::bind_xsk(fd, &sa) {
                Err(e) if is_errno(&e, libc::EBUSY) && start.elapsed() < cfg.bind_timeout => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                r => break r,
            }
        };
        match res {
            Ok(()) => {
                if cfg.busy_poll_us > 0 {
                    let us = cfg.busy_poll_us.min(i32::MAX as u32) as i32;
                    for (opt, val, name) in [
                        (sys::SO_PREFER_BUSY_POLL, 1, "SO_PREFER_BUSY_POLL"),
                        (sys::SO_BUSY_POLL, us, "SO_BUSY_POLL"),
                        (sys::SO_BUSY_POLL_BUDGET, 64, "SO_BUSY_POLL_BUDGET"),
                    ] {
                        if let Err(e) = crate::sys::setsockopt(fd, libc::SOL_SOCKET, opt, &val) {
                            notes.push(format!("{name} on queue {q} refused: {e}"));
                        }
                    }
                }
                let zc = sys::xdp_zero_copy(fd).unwrap_or(mode == sys::XDP_ZEROCOPY);
                return Ok((PreparedQueue { queue_id: q, xsk, umem, view: Some(view) }, zc));
            }
            Err(e) if is_errno(&e, libc::EBUSY) => {
                return Err(os_err_from(
                    format!(
                        "bind AF_XDP socket to {ifname} queue {q}: queue already in use by another AF_XDP socket (retried {} ms)",
                        cfg.bind_timeout.as_millis()
                    ),
                    e,
                ));
            }
            Err(e) => {
                let m = if mode == sys::XDP_ZEROCOPY { "zero-copy" } else { "copy" };
                if n + 1 < tries.len() {
                    notes.push(format!("{m} bind on queue {q} refused: {e}"));
                }
                let sgm = if sg { " with multi-buffer (XDP_USE_SG; jumbo MTU)" } else { "" };
                last = Some(os_err_from(format!("bind AF_XDP socket to {ifname} queue {q} in {m} mode{sgm}"), e));
            }
        }
    }
    Err(last.expect("at least one bind attempt"))
}

/// One bound socket with its mapped rings.
struct XskQueue {
    queue_id: u32,
    fd: OwnedFd,
    _umem_fd: OwnedFd,
    umem: UmemView,
    fill: Ring<u64>,
    comp: Ring<u64>,
    rx: Ring<XdpDesc>,
    tx: Ring<XdpDesc>,
    tx_free: Vec<u64>,
    /// Receive frames waiting for room in the fill ring (the kernel
    /// publishes its fill-ring consumer index lazily).
    fill_pending: Vec<u64>,
    /// Multi-buffer reassembly (per queue: a chain never spans queues).
    asm: Assembly,
}

impl XskQueue {
    fn attach(queue_id: u32, fd: OwnedFd, umem_fd: OwnedFd, view: Option<UmemView>, g: &Geometry) -> Result<XskQueue, PktError> {
        let raw = fd.as_raw_fd();
        let mut off = sys::MmapOffsets::default();
        crate::sys::getsockopt(raw, sys::SOL_XDP, sys::XDP_MMAP_OFFSETS, &mut off)
            .map_err(|e| os_err_from(format!("read AF_XDP ring offsets of queue {queue_id}"), e))?;
        let umem = match view {
            Some(v) => v,
            None => UmemView::map(umem_fd.as_raw_fd(), g.umem_len())?,
        };
        let mut fill: Ring<u64> = Ring::map(raw, &off.fr, g.fill_ring, sys::XDP_UMEM_PGOFF_FILL_RING, "AF_XDP fill ring")?;
        let comp = Ring::map(raw, &off.cr, g.comp_ring, sys::XDP_UMEM_PGOFF_COMPLETION_RING, "AF_XDP completion ring")?;
        let rx = Ring::map(raw, &off.rx, g.rx_ring, sys::XDP_PGOFF_RX_RING, "AF_XDP rx ring")?;
        let tx = Ring::map(raw, &off.tx, g.tx_ring, sys::XDP_PGOFF_TX_RING, "AF_XDP tx ring")?;
        let rx_frames = g.rx_frames();
        let n = fill.free(rx_frames);
        for i in 0..n {
            fill.write(i, i as u64 * g.frame_size as u64);
        }
        fill.submit(n);
        let tx_free = (rx_frames..g.frames).rev().map(|i| i as u64 * g.frame_size as u64).collect();
        let mut fill_pending = Vec::with_capacity(rx_frames as usize);
        fill_pending.extend((n..rx_frames).map(|i| i as u64 * g.frame_size as u64));
        let asm_len = if g.max_frame > g.rx_space() { g.max_frame as usize } else { 0 };
        let asm = Assembly { buf: vec![0; asm_len], len: 0, active: false, overflow: false };
        Ok(XskQueue { queue_id, fd, _umem_fd: umem_fd, umem, fill, comp, rx, tx, tx_free, fill_pending, asm })
    }

    /// Moves pending receive frames into the fill ring as far as it has room.
    fn refill(&mut self) {
        let want = self.fill_pending.len() as u32;
        if want == 0 {
            return;
        }
        let room = self.fill.free(want);
        for i in 0..room {
            let a = self.fill_pending.pop().expect("room <= pending");
            self.fill.write(i, a);
        }
        self.fill.submit(room);
    }

    fn reap_completions(&mut self, mask: u64) {
        let n = self.comp.ready(u32::MAX);
        for i in 0..n {
            self.tx_free.push(self.comp.read(i) & mask);
        }
        self.comp.release(n);
    }
}

/// Multi-buffer receive reassembly state.
struct Assembly {
    buf: Vec<u8>,
    len: usize,
    active: bool,
    overflow: bool,
}

/// An AF_XDP transport on one interface (every bound queue).
pub struct AfXdp {
    ifname: String,
    ifindex: u32,
    mtu: u32,
    geo: Geometry,
    mode: XdpMode,
    notes: Vec<String>,
    queues: Vec<XskQueue>,
    next_q: usize,
    /// Kept last so the program is detached after the sockets close.
    attachment: Option<Attachment>,
    from_handoff: bool,
    tx_scratch: Vec<u8>,
    pollfds: Vec<libc::pollfd>,
    stats: IoStats,
    kicks_tx: u64,
    kicks_rx: u64,
    rx_oversize: u64,
}

impl std::fmt::Debug for AfXdp {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AfXdp").field("ifname", &self.ifname).field("mode", &self.mode).finish()
    }
}

fn parse_kv<'a>(spec: &'a str, key: &str) -> Result<&'a str, PktError> {
    spec.split(';')
        .find_map(|t| t.strip_prefix(key).and_then(|r| r.strip_prefix('=')))
        .ok_or_else(|| PktError::Unsupported(format!("AF_XDP hand-off: missing {key}= in {spec:?}")))
}

fn parse_num<T: std::str::FromStr>(spec: &str, key: &str) -> Result<T, PktError> {
    let v = parse_kv(spec, key)?;
    v.parse().map_err(|_| PktError::Unsupported(format!("AF_XDP hand-off: bad value {key}={v:?}")))
}

impl AfXdp {
    /// Opens AF_XDP on every active queue of `ifname` in the calling thread's
    /// network namespace: loads and attaches the program, binds, maps. Needs
    /// root (CAP_NET_RAW, CAP_BPF, CAP_NET_ADMIN). On refusal the error names
    /// the step, so a caller can fall back to AF_PACKET and say why.
    pub fn open(ifname: &str, cfg: &XdpConfig) -> Result<AfXdp, PktError> {
        let mut h = XskHandoff::prepare(ifname, cfg)?;
        let queues = std::mem::take(&mut h.queues)
            .into_iter()
            .map(|q| XskQueue::attach(q.queue_id, q.xsk, q.umem, q.view, &h.geo))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(AfXdp::assemble(h.ifname, h.ifindex, h.mtu, h.geo, h.mode, h.notes, queues, h.attachment.take(), false))
    }

    /// The worker half of a hand-off: adopts the inherited socket and UMEM
    /// descriptors named in `spec` (from [`XskHandoff::encode`]), maps the
    /// UMEM and the rings, and fills the fill ring. Needs no capability.
    pub fn from_handoff(spec: &str) -> Result<AfXdp, PktError> {
        if !spec.starts_with("v1;") {
            return Err(PktError::Unsupported(format!("AF_XDP hand-off: unknown format {spec:?} (expected v1;…)")));
        }
        let flag = |k: &str| -> Result<bool, PktError> { Ok(parse_num::<u8>(spec, k)? != 0) };
        let geo = Geometry {
            frame_size: parse_num(spec, "fsize")?,
            frames: parse_num(spec, "frames")?,
            headroom: parse_num(spec, "headroom")?,
            rx_ring: parse_num(spec, "rx")?,
            tx_ring: parse_num(spec, "tx")?,
            fill_ring: parse_num(spec, "fill")?,
            comp_ring: parse_num(spec, "comp")?,
            need_wakeup: flag("nw")?,
            busy_poll: flag("bp").unwrap_or(false),
            max_frame: parse_num(spec, "maxf")?,
        };
        geo.validate()?;
        let mode = XdpMode { native: flag("native")?, zero_copy: flag("zc")?, multi_buffer: flag("sg")? };
        let ifname = parse_kv(spec, "if")?.to_string();
        let mut queues = Vec::new();
        for t in spec.split(';').filter_map(|t| t.strip_prefix("q=")) {
            let parts: Vec<&str> = t.split(':').collect();
            let nums: Option<Vec<i32>> = parts.iter().map(|p| p.parse().ok()).collect();
            let Some([q, xsk, umem]) = nums.as_deref().and_then(|n| <[i32; 3]>::try_from(n).ok()) else {
                return Err(PktError::Unsupported(format!("AF_XDP hand-off: bad queue entry q={t:?} (expected queue:xskfd:umemfd)")));
            };
            let xsk = crate::sys::adopt_fd(xsk).map_err(|e| os_err_from(format!("adopt inherited AF_XDP socket fd {xsk}"), e))?;
            match sys::socket_domain(xsk.as_raw_fd()) {
                Ok(d) if d == sys::AF_XDP => {}
                _ => return Err(PktError::Unsupported(format!("AF_XDP hand-off: fd {} is not an AF_XDP socket", xsk.as_raw_fd()))),
            }
            let umem = crate::sys::adopt_fd(umem).map_err(|e| os_err_from(format!("adopt inherited UMEM memfd {umem}"), e))?;
            let size = crate::sys::fd_size(umem.as_raw_fd()).map_err(|e| os_err_from("stat inherited UMEM memfd", e))?;
            if size != geo.umem_len() as u64 {
                return Err(PktError::Unsupported(format!(
                    "AF_XDP hand-off: UMEM memfd {} holds {size} bytes, geometry says {}",
                    umem.as_raw_fd(),
                    geo.umem_len()
                )));
            }
            queues.push(XskQueue::attach(q as u32, xsk, umem, None, &geo)?);
        }
        if queues.is_empty() {
            return Err(PktError::Unsupported("AF_XDP hand-off names no queue".into()));
        }
        let ifindex = parse_num(spec, "ifindex")?;
        let mtu = parse_num(spec, "mtu")?;
        Ok(AfXdp::assemble(ifname, ifindex, mtu, geo, mode, Vec::new(), queues, None, true))
    }

    /// [`AfXdp::from_handoff`] with the string in the environment variable
    /// [`HANDOFF_ENV`].
    pub fn from_env() -> Result<AfXdp, PktError> {
        let spec = std::env::var(HANDOFF_ENV)
            .map_err(|_| PktError::Unsupported(format!("{HANDOFF_ENV} is not set: no AF_XDP hand-off from the runtime")))?;
        AfXdp::from_handoff(&spec)
    }

    #[allow(clippy::too_many_arguments)]
    fn assemble(
        ifname: String,
        ifindex: u32,
        mtu: u32,
        geo: Geometry,
        mode: XdpMode,
        notes: Vec<String>,
        queues: Vec<XskQueue>,
        attachment: Option<Attachment>,
        from_handoff: bool,
    ) -> AfXdp {
        let pollfds = queues.iter().map(|q| libc::pollfd { fd: q.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
        AfXdp {
            ifname,
            ifindex,
            mtu,
            mode,
            notes,
            next_q: 0,
            attachment,
            from_handoff,
            tx_scratch: vec![0; if mode.multi_buffer { geo.max_frame as usize } else { 0 }],
            pollfds,
            queues,
            geo,
            stats: IoStats::default(),
            kicks_tx: 0,
            kicks_rx: 0,
            rx_oversize: 0,
        }
    }

    /// The mode obtained (native/generic, zero-copy/copy, multi-buffer).
    pub fn mode(&self) -> XdpMode {
        self.mode
    }

    /// The kernel's XDP statistics summed over the queues.
    pub fn xdp_statistics(&self) -> XdpStatistics {
        let mut s = XdpStatistics::default();
        for q in &self.queues {
            if let Ok(x) = sys::xdp_statistics(&q.fd) {
                s.add(&x);
            }
        }
        s
    }

    /// Queue ids bound.
    pub fn queue_ids(&self) -> Vec<u32> {
        self.queues.iter().map(|q| q.queue_id).collect()
    }

    /// Drains one queue's rx ring (up to `max` frames).
    fn recv_queue(&mut self, qi: usize, max: usize, on_frame: &mut dyn FnMut(&[u8])) -> usize {
        let mask = !(self.geo.frame_size as u64 - 1);
        let sg = self.mode.multi_buffer;
        let q = &mut self.queues[qi];
        let n = q.rx.ready(max.min(u32::MAX as usize) as u32);
        if n == 0 {
            if !q.fill_pending.is_empty() {
                q.refill();
            }
            if self.geo.busy_poll {
                // Drives the driver's NAPI from this thread (socket busy poll).
                crate::sys::kick_rx(q.fd.as_raw_fd());
                self.kicks_rx += 1;
            }
            return 0;
        }
        let room = if q.fill_pending.is_empty() { q.fill.free(n) } else { 0 };
        let mut delivered = 0;
        for i in 0..n {
            let d = q.rx.read(i);
            let contd = d.options & sys::XDP_PKT_CONTD != 0;
            if sg && (contd || q.asm.active) {
                let a = &mut q.asm;
                if !a.active {
                    a.active = true;
                    a.len = 0;
                    a.overflow = false;
                }
                let l = d.len as usize;
                if a.len + l <= a.buf.len() {
                    a.buf[a.len..a.len + l].copy_from_slice(q.umem.slice(d.addr, l));
                    a.len += l;
                } else {
                    a.overflow = true;
                }
                if !contd {
                    a.active = false;
                    if a.overflow {
                        self.rx_oversize += 1;
                        self.stats.rx_dropped += 1;
                    } else {
                        on_frame(&a.buf[..a.len]);
                        delivered += 1;
                        self.stats.rx_frames += 1;
                        self.stats.rx_bytes += a.len as u64;
                    }
                }
            } else {
                on_frame(q.umem.slice(d.addr, d.len as usize));
                delivered += 1;
                self.stats.rx_frames += 1;
                self.stats.rx_bytes += d.len as u64;
            }
            if i < room {
                q.fill.write(i, d.addr & mask);
            } else {
                q.fill_pending.push(d.addr & mask);
            }
        }
        q.rx.release(n);
        q.fill.submit(room);
        q.refill();
        if self.geo.need_wakeup && q.fill.needs_wakeup() {
            crate::sys::kick_rx(q.fd.as_raw_fd());
            self.kicks_rx += 1;
        }
        delivered
    }

    /// Pushes the tx ring to the kernel until it has taken everything (copy
    /// mode sends at most 32 frames per call).
    fn flush_tx(&mut self, qi: usize) -> Result<(), PktError> {
        let mask = !(self.geo.frame_size as u64 - 1);
        let need_wakeup = self.geo.need_wakeup;
        let q = &mut self.queues[qi];
        for _ in 0..10_000 {
            if q.tx.outstanding() == 0 {
                break;
            }
            if !need_wakeup || q.tx.needs_wakeup() {
                self.kicks_tx += 1;
                if let Err(e) = crate::sys::kick_tx(q.fd.as_raw_fd()) {
                    match e.raw_os_error() {
                        Some(libc::EAGAIN) | Some(libc::EBUSY) | Some(libc::ENOBUFS) | Some(libc::EINTR) => {}
                        _ => return Err(os_err_from(format!("kick AF_XDP transmit on {} queue {}", self.ifname, q.queue_id), e)),
                    }
                }
            } else {
                std::hint::spin_loop();
            }
            q.reap_completions(mask);
        }
        q.reap_completions(mask);
        Ok(())
    }
}

impl PacketIo for AfXdp {
    fn name(&self) -> &'static str {
        "afxdp"
    }

    fn max_frame(&self) -> usize {
        self.geo.max_frame as usize
    }

    fn recv_batch(&mut self, max: usize, wait: Wait, on_frame: &mut dyn FnMut(&[u8])) -> Result<usize, PktError> {
        if max == 0 {
            return Ok(0);
        }
        let deadline = match wait {
            Wait::Poll => None,
            Wait::Block(d) => Some(Instant::now() + d),
        };
        loop {
            let nq = self.queues.len();
            let mut got = 0;
            for k in 0..nq {
                if got >= max {
                    break;
                }
                let qi = (self.next_q + k) % nq;
                got += self.recv_queue(qi, max - got, on_frame);
            }
            self.next_q = (self.next_q + 1) % nq;
            if got > 0 {
                return Ok(got);
            }
            let Some(dl) = deadline else { return Ok(0) };
            let now = Instant::now();
            if now >= dl {
                return Ok(0);
            }
            for p in &mut self.pollfds {
                p.revents = 0;
            }
            crate::sys::poll_in(&mut self.pollfds, dl - now)
                .map_err(|e| os_err_from(format!("poll AF_XDP sockets of {}", self.ifname), e))?;
        }
    }

    fn send_batch(&mut self, count: usize, fill: &mut dyn FnMut(usize, &mut [u8]) -> usize) -> Result<usize, PktError> {
        let mask = !(self.geo.frame_size as u64 - 1);
        let fsize = self.geo.frame_size as usize;
        let maxf = self.geo.max_frame as usize;
        let sg = self.mode.multi_buffer;
        let qi = 0;
        self.queues[qi].reap_completions(mask);
        let mut sent = 0;
        let mut written = 0u32;
        for i in 0..count {
            let q = &mut self.queues[qi];
            // Worst case descriptors for this frame.
            let need = if sg { maxf.div_ceil(fsize) } else { 1 };
            if q.tx_free.len() < need || q.tx.free(written + need as u32) < written + need as u32 {
                q.tx.submit(written);
                written = 0;
                self.flush_tx(qi)?;
                let q = &mut self.queues[qi];
                if q.tx_free.len() < need || q.tx.free(need as u32) < need as u32 {
                    self.stats.tx_dropped += (count - i) as u64;
                    break;
                }
            }
            let q = &mut self.queues[qi];
            if !sg {
                let addr = q.tx_free.pop().expect("checked above");
                let len = fill(i, q.umem.slice_mut(addr, maxf)).min(maxf);
                if len == 0 {
                    q.tx_free.push(addr);
                    continue;
                }
                q.tx.write(written, XdpDesc { addr, len: len as u32, options: 0 });
                written += 1;
                sent += 1;
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
            } else {
                let len = fill(i, &mut self.tx_scratch[..maxf]).min(maxf);
                if len == 0 {
                    continue;
                }
                let mut off = 0;
                while off < len {
                    let l = (len - off).min(fsize);
                    let addr = q.tx_free.pop().expect("checked above");
                    q.umem.slice_mut(addr, l).copy_from_slice(&self.tx_scratch[off..off + l]);
                    off += l;
                    let options = if off < len { sys::XDP_PKT_CONTD } else { 0 };
                    q.tx.write(written, XdpDesc { addr, len: l as u32, options });
                    written += 1;
                }
                sent += 1;
                self.stats.tx_frames += 1;
                self.stats.tx_bytes += len as u64;
            }
        }
        self.queues[qi].tx.submit(written);
        self.flush_tx(qi)?;
        Ok(sent)
    }

    fn stats(&self) -> IoStats {
        let x = self.xdp_statistics();
        IoStats { rx_dropped: self.stats.rx_dropped + x.rx_dropped + x.rx_ring_full, ..self.stats }
    }

    fn detail(&self) -> serde_json::Value {
        let g = &self.geo;
        serde_json::json!({
            "interface": self.ifname,
            "ifindex": self.ifindex,
            "mtu": self.mtu,
            "mode": self.mode.as_str(),
            "xdp_mode": if self.mode.native { "native" } else { "generic" },
            "bind_mode": if self.mode.zero_copy { "zero-copy" } else { "copy" },
            "multi_buffer": self.mode.multi_buffer,
            "need_wakeup": g.need_wakeup,
            "busy_poll": g.busy_poll,
            "queues": self.queue_ids(),
            "frame_size": g.frame_size,
            "frames_per_queue": g.frames,
            "rx_frames": g.rx_frames(),
            "tx_frames": g.tx_frames(),
            "umem_bytes_per_queue": g.umem_len(),
            "rings": { "rx": g.rx_ring, "tx": g.tx_ring, "fill": g.fill_ring, "completion": g.comp_ring },
            "ring_bytes_mapped": self.queues.iter().map(|q| q.fill.mapped_len() + q.comp.mapped_len() + q.rx.mapped_len() + q.tx.mapped_len()).sum::<usize>(),
            "from_handoff": self.from_handoff,
            "program_owner": if self.attachment.is_some() { "this process" } else { "runtime (hand-off)" },
            "notes": self.notes,
            "xdp_stats": self.xdp_statistics(),
            "tx_kicks": self.kicks_tx,
            "rx_kicks": self.kicks_rx,
            "rx_oversize": self.rx_oversize,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::fd::IntoRawFd;

    #[test]
    fn geometry_is_derived_from_the_mtu() {
        let g = Geometry::resolve(&XdpConfig::default(), 1518).unwrap();
        assert_eq!((g.frame_size, g.frames, g.tx_frames(), g.rx_frames()), (2048, 32768, 2048, 30720));
        assert_eq!((g.rx_ring, g.fill_ring, g.comp_ring), (32768, 65536, 2048));
        let j = Geometry::resolve(&XdpConfig::default(), 9018).unwrap();
        assert_eq!(j.frame_size, 4096);
        assert!(j.max_frame > j.rx_space(), "jumbo needs multi-buffer");
    }

    #[test]
    fn bad_sizes_are_refused_with_the_field_named() {
        let e = Geometry::resolve(&XdpConfig { frame_size: 1000, ..Default::default() }, 1518).unwrap_err().to_string();
        assert!(e.contains("frame_size 1000"), "{e}");
        let e = Geometry::resolve(&XdpConfig { tx_ring: 1000, ..Default::default() }, 1518).unwrap_err().to_string();
        assert!(e.contains("tx_ring 1000 must be a power of two"), "{e}");
        let e = Geometry::resolve(&XdpConfig { frames: 64, fill_ring: 16, ..Default::default() }, 1518).unwrap_err().to_string();
        assert!(e.contains("fill_ring 16"), "{e}");
    }

    #[test]
    fn malformed_handoff_strings_give_clear_errors() {
        let e = AfXdp::from_handoff("fd:3").unwrap_err().to_string();
        assert!(e.contains("unknown format"), "{e}");
        let e = AfXdp::from_handoff("v1;if=x").unwrap_err().to_string();
        assert!(e.contains("missing fsize="), "{e}");
        let base = "v1;if=x;ifindex=1;mtu=1500;native=1;zc=0;sg=0;nw=1;bp=0;fsize=2048;frames=64;headroom=0;rx=64;tx=32;fill=64;comp=32;maxf=1518";
        let e = AfXdp::from_handoff(&format!("{base};q=0:x:4")).unwrap_err().to_string();
        assert!(e.contains("bad queue entry"), "{e}");
        let e = AfXdp::from_handoff(base).unwrap_err().to_string();
        assert!(e.contains("names no queue"), "{e}");
        let e = AfXdp::from_handoff(&format!("{base};q=0:100000:100001")).unwrap_err().to_string();
        assert!(e.contains("adopt inherited AF_XDP socket fd 100000"), "{e}");
        // An open fd that is not an AF_XDP socket.
        let f = std::fs::File::open("/proc/self/status").unwrap().into_raw_fd();
        let e = AfXdp::from_handoff(&format!("{base};q=0:{f}:{f}")).unwrap_err().to_string();
        assert!(e.contains("is not an AF_XDP socket"), "{e}");
    }
}
