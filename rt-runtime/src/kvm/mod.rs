//! The kvm deployment: the worker in a QEMU guest, hardware KVM or TCG labelled as such.
