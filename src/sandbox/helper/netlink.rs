//! Brings the loopback interface of a fresh network namespace up with one
//! rtnetlink request (RTM_NEWLINK, IFF_UP on ifindex 1), so nothing outside
//! the binary (no `ip`) is needed.

use std::os::fd::AsRawFd;

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, recv, sendto, socket,
};

const RTM_NEWLINK: u16 = 16;
const NLM_F_REQUEST: u16 = 1;
const NLM_F_ACK: u16 = 4;
const NLMSG_ERROR: u16 = 2;
const IFF_UP: u32 = 1;
/// Loopback is always interface 1 in a new network namespace.
const LOOPBACK_INDEX: i32 = 1;

/// The request: a netlink header followed by an `ifinfomsg`.
fn request() -> Vec<u8> {
    let mut msg = Vec::with_capacity(32);
    msg.extend_from_slice(&32u32.to_ne_bytes()); // nlmsg_len
    msg.extend_from_slice(&RTM_NEWLINK.to_ne_bytes());
    msg.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK).to_ne_bytes());
    msg.extend_from_slice(&1u32.to_ne_bytes()); // nlmsg_seq
    msg.extend_from_slice(&0u32.to_ne_bytes()); // nlmsg_pid: the kernel
    msg.push(0); // ifi_family: AF_UNSPEC
    msg.push(0); // padding
    msg.extend_from_slice(&0u16.to_ne_bytes()); // ifi_type
    msg.extend_from_slice(&LOOPBACK_INDEX.to_ne_bytes());
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_flags
    msg.extend_from_slice(&IFF_UP.to_ne_bytes()); // ifi_change
    msg
}

pub fn loopback_up() -> Result<(), String> {
    let sock = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map_err(|e| format!("netlink socket: {e}"))?;
    let fd = sock.as_raw_fd();
    sendto(fd, &request(), &NetlinkAddr::new(0, 0), MsgFlags::empty())
        .map_err(|e| format!("netlink send: {e}"))?;
    let mut reply = [0u8; 1024];
    let n = recv(fd, &mut reply, MsgFlags::empty()).map_err(|e| format!("netlink recv: {e}"))?;
    // An acknowledgement is an NLMSG_ERROR message whose error code is 0.
    if n < 20 {
        return Err(format!("netlink reply of {n} bytes"));
    }
    let kind = u16::from_ne_bytes([reply[4], reply[5]]);
    let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
    match (kind, code) {
        (NLMSG_ERROR, 0) => Ok(()),
        (NLMSG_ERROR, errno) => Err(format!(
            "bringing loopback up: {}",
            nix::errno::Errno::from_raw(-errno)
        )),
        (other, _) => Err(format!("unexpected netlink reply type {other}")),
    }
}
