//! The two rtnetlink requests the runtime needs, built as plain bytes:
//! move a link into a network namespace (renaming it on the way) and set a
//! link up. Sending them is [`super::sys::Syscall::netlink`].

const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const IFLA_IFNAME: u16 = 3;
const IFLA_NET_NS_PID: u16 = 19;
const NLMSG_ERROR: u16 = 2;
const IFF_UP: u32 = 1;

fn push_attr(buf: &mut Vec<u8>, kind: u16, data: &[u8]) {
    let len = 4 + data.len();
    buf.extend_from_slice(&(len as u16).to_ne_bytes());
    buf.extend_from_slice(&kind.to_ne_bytes());
    buf.extend_from_slice(data);
    while buf.len() % 4 != 0 {
        buf.push(0);
    }
}

fn newlink(index: i32, flags: u32, change: u32, attrs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut b = Vec::with_capacity(64);
    b.extend_from_slice(&0u32.to_ne_bytes()); // length, patched below
    b.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    b.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    b.extend_from_slice(&1u32.to_ne_bytes()); // seq
    b.extend_from_slice(&0u32.to_ne_bytes()); // pid
    // struct ifinfomsg
    b.push(libc::AF_UNSPEC as u8);
    b.push(0);
    b.extend_from_slice(&0u16.to_ne_bytes());
    b.extend_from_slice(&index.to_ne_bytes());
    b.extend_from_slice(&flags.to_ne_bytes());
    b.extend_from_slice(&change.to_ne_bytes());
    for (k, d) in attrs {
        push_attr(&mut b, *k, d);
    }
    let len = b.len() as u32;
    b[..4].copy_from_slice(&len.to_ne_bytes());
    b
}

fn cname(name: &str) -> Vec<u8> {
    let mut v = name.as_bytes().to_vec();
    v.push(0);
    v
}

/// Moves link `index` into the network namespace of `pid`, named `new_name` there.
pub fn move_to_pid_netns(index: u32, pid: i32, new_name: &str) -> Vec<u8> {
    newlink(index as i32, 0, 0, &[(IFLA_NET_NS_PID, pid.to_ne_bytes().to_vec()), (IFLA_IFNAME, cname(new_name))])
}

/// Sets the link called `name` up (in the namespace of the socket).
pub fn set_up(name: &str) -> Vec<u8> {
    newlink(0, IFF_UP, IFF_UP, &[(IFLA_IFNAME, cname(name))])
}

/// Reads the kernel's acknowledgement: `Ok` for error code 0, else the errno.
pub fn parse_ack(buf: &[u8]) -> Result<(), super::sys::Errno> {
    if buf.len() < 20 {
        return Err(super::sys::Errno(libc::EPROTO));
    }
    let kind = u16::from_ne_bytes([buf[4], buf[5]]);
    if kind != NLMSG_ERROR {
        return Err(super::sys::Errno(libc::EPROTO));
    }
    let code = i32::from_ne_bytes([buf[16], buf[17], buf[18], buf[19]]);
    if code == 0 {
        Ok(())
    } else {
        Err(super::sys::Errno(-code))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_well_formed() {
        let m = set_up("lo");
        assert_eq!(m.len() % 4, 0);
        assert_eq!(u32::from_ne_bytes(m[..4].try_into().unwrap()) as usize, m.len());
        // header 16 + ifinfomsg 16 + attr (4 + "lo\0" padded to 4) = 40
        assert_eq!(m.len(), 40);
        let mv = move_to_pid_netns(7, 1234, "fh0");
        assert_eq!(i32::from_ne_bytes(mv[20..24].try_into().unwrap()), 7);
        let mut ack = vec![0u8; 36];
        ack[4..6].copy_from_slice(&NLMSG_ERROR.to_ne_bytes());
        assert!(parse_ack(&ack).is_ok());
        ack[16..20].copy_from_slice(&(-libc::ENODEV).to_ne_bytes());
        assert_eq!(parse_ack(&ack), Err(crate::container::sys::Errno(libc::ENODEV)));
    }
}
