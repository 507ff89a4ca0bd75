//! cranlab experiments: scenario files, orchestration of the deployments,
//! interleaved runs, histograms, reports and plots, and the whitepaper
//! benchmarks.

pub mod histio;
pub mod host;
pub mod report;
pub mod report_html;
pub mod results;
pub mod run;
pub mod scenario;
pub mod sims;
pub mod sweep;
pub mod whitepaper;
pub mod workload;

/// `git describe --always --dirty` of the tree cranlab was built from.
pub const GIT_REVISION: &str = env!("CRANLAB_GIT_REVISION");
