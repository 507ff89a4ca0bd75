//! cranlab experiments: scenario files, orchestration of the deployments,
//! interleaved runs, histograms, reports and plots.

pub mod histio;
pub mod host;
pub mod report;
pub mod results;
pub mod run;
pub mod scenario;
pub mod sims;
pub mod sweep;

/// `git describe --always --dirty` of the tree cranlab was built from.
pub const GIT_REVISION: &str = env!("CRANLAB_GIT_REVISION");
