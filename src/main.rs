//! The `traceflow` command line: parses arguments, runs the subcommand, maps errors to exit codes.

use std::process::ExitCode;

use traceflow::cli;

fn main() -> ExitCode {
    cli::tune_allocator();
    let args = match cli::parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return ExitCode::from(if e.use_stderr() { 2 } else { 0 });
        }
    };
    match cli::run(args) {
        Ok(code) => ExitCode::from(code),
        Err(cli::Error::Filter(f)) => {
            // The filter, with a caret under the word that is wrong.
            traceflow::msg::say_lines(&f.to_string());
            ExitCode::from(2)
        }
        Err(e) => {
            // One line: the error, then each cause the line does not already hold.
            let mut causes = Vec::new();
            let mut at: Option<&dyn std::error::Error> = std::error::Error::source(&e);
            while let Some(c) = at {
                causes.push(c.to_string());
                at = c.source();
            }
            traceflow::msg::say(&traceflow::msg::error_line(&e.to_string(), causes));
            ExitCode::from(2)
        }
    }
}
