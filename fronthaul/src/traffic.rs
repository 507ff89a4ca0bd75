//! The seeded traffic model: known QAM symbols through a known channel plus noise, DMRS pilots.
