//! Timing windows shared by both ends: Ta3 transmit offset, Ta4 receive window, slot budget.
