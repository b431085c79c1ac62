//! `traceflow sample`: writes a small synthetic capture to try traceflow on.

use std::path::PathBuf;

use super::Error;

/// `traceflow sample` arguments.
#[derive(clap::Args, Debug)]
pub struct SampleArgs {
    /// Where to write the capture: pcapng when the name ends in `.pcapng`, else pcap.
    pub output: PathBuf,
    /// Number of request/response exchanges; they come in pairs on one client port, so tshark and `connections`
    /// count half as many TCP connections (rounded up).
    #[arg(long, default_value_t = 6)]
    pub conversations: u32,
    /// Replace OUTPUT if it exists.
    #[arg(long)]
    pub force: bool,
}

/// Writes the sample capture.
pub fn run(args: &SampleArgs) -> Result<u8, Error> {
    use std::os::unix::fs::OpenOptionsExt;
    let pcapng = args
        .output
        .extension()
        .is_some_and(|e| e.eq_ignore_ascii_case("pcapng"));
    let what = format!("writing {}", args.output.display());
    let mut open = std::fs::OpenOptions::new();
    open.write(true);
    if args.force {
        // Replaces a file, never writes through a symbolic link planted at the name.
        open.create(true)
            .truncate(true)
            .custom_flags(rustix::fs::OFlags::NOFOLLOW.bits() as i32);
    } else {
        // O_EXCL: an existing file (or a link) is left alone.
        open.create_new(true);
    }
    let file = match open.open(&args.output) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            crate::msg::say(&format!(
                "{} exists; give another name, or --force to replace it",
                args.output.display()
            ));
            return Ok(2);
        }
        Err(source) => return Err(Error::Io { what, source }),
    };
    crate::synth::write_sample_to(file, args.conversations, pcapng)
        .map_err(|source| Error::Io { what, source })?;
    crate::msg::say(&format!(
        "wrote {} ({}, {} TCP connections, {} request/response exchanges)",
        args.output.display(),
        if pcapng { "pcapng" } else { "pcap" },
        crate::synth::connections_in(args.conversations),
        args.conversations
    ));
    Ok(0)
}
