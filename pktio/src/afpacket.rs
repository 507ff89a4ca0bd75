//! AF_PACKET raw sockets bound to an interface.
