//! AF_PACKET driven by io_uring.
