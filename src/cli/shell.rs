//! `traceflow completions SHELL` and `traceflow man`: the shell completion scripts and the manual page, both
//! generated from the same clap definitions as the parser, so they never fall behind the options.

use std::io::Write;

use super::Error;

/// `traceflow completions` arguments.
#[derive(clap::Args, Debug)]
pub struct CompletionsArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    pub shell: clap_complete::Shell,
}

/// Writes `bytes` to stdout; a reader that went away (`| head`) is not an error.
pub fn write_stdout(bytes: &[u8]) -> Result<u8, Error> {
    let stdout = std::io::stdout();
    let mut out = stdout.lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(0),
        Err(source) => Err(Error::Io {
            what: "writing stdout".into(),
            source,
        }),
        Ok(()) => Ok(0),
    }
}

/// Prints the completion script for `args.shell`.
pub fn completions(args: &CompletionsArgs) -> Result<u8, Error> {
    // Generated into memory first: clap_complete panics when its writer fails (a closed pipe).
    let mut buf = Vec::new();
    clap_complete::generate(args.shell, &mut super::command(), "traceflow", &mut buf);
    write_stdout(&buf)
}

/// Prints the manual page, with one section per subcommand.
pub fn man() -> Result<u8, Error> {
    let cmd = super::command();
    let mut buf = Vec::new();
    let io = |source| Error::Io {
        what: "rendering the manual page".into(),
        source,
    };
    let man = clap_mangen::Man::new(cmd.clone());
    man.render_title(&mut buf).map_err(io)?;
    man.render_name_section(&mut buf).map_err(io)?;
    man.render_synopsis_section(&mut buf).map_err(io)?;
    man.render_description_section(&mut buf).map_err(io)?;
    man.render_options_section(&mut buf).map_err(io)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("traceflow {}", sub.get_name());
        writeln!(buf, ".SH \"{}\"", name.to_uppercase()).map_err(io)?;
        if let Some(about) = sub.get_long_about().or(sub.get_about()) {
            writeln!(buf, "{}", roff_text(&about.to_string())).map_err(io)?;
        }
        for arg in sub.get_arguments().filter(|a| !a.is_hide_set()) {
            let long = arg.get_long().map(|l| l.replace('-', "\\-"));
            let flag = match (long.as_deref(), arg.get_short()) {
                (Some(l), Some(s)) => format!("\\-{s}, \\-\\-{l}"),
                (Some(l), None) => format!("\\-\\-{l}"),
                (None, Some(s)) => format!("\\-{s}"),
                (None, None) => arg.get_id().to_string().to_uppercase(),
            };
            writeln!(buf, ".TP\n\\fB{flag}\\fR").map_err(io)?;
            if let Some(h) = arg.get_long_help().or(arg.get_help()) {
                writeln!(buf, "{}", roff_text(&h.to_string())).map_err(io)?;
            }
        }
        // What --help prints after the options (the filter language of `flows`), kept as preformatted lines.
        if let Some(after) = sub.get_after_long_help().or(sub.get_after_help()) {
            writeln!(buf, ".PP\n.nf\n{}\n.fi", roff_text(&after.to_string())).map_err(io)?;
        }
    }
    man.render_extra_section(&mut buf).map_err(io)?;
    man.render_version_section(&mut buf).map_err(io)?;
    write_stdout(&buf)
}

/// Text for a roff paragraph: backslashes and hyphens escaped, no line starting with a control character.
fn roff_text(s: &str) -> String {
    s.lines()
        .map(|l| {
            let l = l.replace('\\', "\\e").replace('-', "\\-");
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}
