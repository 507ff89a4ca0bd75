//! AF_XDP sockets and the XDP redirect program.
