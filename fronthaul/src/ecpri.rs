//! The eCPRI common header and the PC_ID/SEQ_ID fields.
