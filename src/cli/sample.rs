//! `traceflow sample`: writes a small synthetic capture to try traceflow on.

use std::path::PathBuf;

use super::Error;

/// `traceflow sample` arguments.
#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// Where to write the pcap.
    pub output: PathBuf,
    /// Number of TCP conversations.
    #[arg(long, default_value_t = 6)]
    pub conversations: u32,
}

/// Writes the sample capture.
pub fn run(args: &SampleArgs) -> Result<u8, Error> {
    crate::synth::write_sample(&args.output, args.conversations).map_err(|source| Error::Io {
        what: format!("writing {}", args.output.display()),
        source,
    })?;
    crate::msg::say(&format!(
        "wrote {} ({} TCP conversations)",
        args.output.display(),
        args.conversations
    ));
    Ok(0)
}
