//! Live mode: paced transmit on the NR symbol clock, reply receipt, histograms.
