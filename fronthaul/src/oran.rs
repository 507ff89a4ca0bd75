//! O-RAN 7.2x U-plane and C-plane headers and sections.
