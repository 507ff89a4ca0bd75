//! cranlab experiments: scenario files, orchestration of the deployments,
//! interleaved runs, histograms, reports and plots.

pub mod histio;
pub mod results;
pub mod scenario;
