//! Core isolation: isolcpus/nohz_full when present, else a cpuset shield and IRQ steering, restored afterwards.
