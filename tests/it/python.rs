//! The Python package (`pip install .`): builds it into a virtual environment under target/ with pytest and the
//! oracle, PyPCAPKit 1.4.1 (`pypcapkit==1.4.1.post2`), then runs python/tests (the drop-in `extract` against
//! PyPCAPKit and expected/, the native API against this build's CLI) and asserts that every test passed.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The virtual environment, made once and reused by later runs.
fn venv() -> PathBuf {
    PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("python-venv")
}

fn run(what: &str, cmd: &mut Command) -> String {
    let out = cmd
        .output()
        .unwrap_or_else(|e| panic!("{what}: could not run {cmd:?}: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "{what} failed ({}):\n{}\n...\n{}",
        out.status,
        head(&text, 6000),
        tail(&text, 3000)
    );
    text
}

fn head(s: &str, n: usize) -> &str {
    let mut at = n.min(s.len());
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    &s[..at]
}

fn tail(s: &str, n: usize) -> &str {
    let mut at = s.len().saturating_sub(n);
    while !s.is_char_boundary(at) {
        at += 1;
    }
    &s[at..]
}

#[test]
fn python_package_passes_its_tests() {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"));
    let venv = venv();
    let python = venv.join("bin/python");
    if !python.exists() {
        run(
            "making the virtual environment (needs python3-venv; scripts/test.sh installs it)",
            Command::new("python3").arg("-m").arg("venv").arg(&venv),
        );
    }
    let has_tools = Command::new(&python)
        .args(["-c", "import pytest, pcapkit, pandas, pyarrow"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !has_tools {
        run(
            "installing pytest, the oracle pypcapkit==1.4.1.post2, and pandas and pyarrow (to_pandas, to_arrow)",
            Command::new(&python).args([
                "-m",
                "pip",
                "install",
                "-q",
                "pytest",
                "pypcapkit==1.4.1.post2",
                "pandas",
                "pyarrow",
            ]),
        );
    }
    // The package from this tree, rebuilt every run (maturin builds it in this workspace's target/).
    run(
        "pip install . (the traceflow package)",
        Command::new(&python)
            .args([
                "-m",
                "pip",
                "install",
                "-q",
                "--force-reinstall",
                "--no-deps",
                ".",
            ])
            .current_dir(repo),
    );
    let out = run(
        "pytest python/tests",
        Command::new(&python)
            .args([
                "-m",
                "pytest",
                "-q",
                "-p",
                "no:cacheprovider",
                "python/tests",
            ])
            .current_dir(repo)
            .env("TRACEFLOW_BIN", env!("CARGO_BIN_EXE_traceflow"))
            .env("TRACEFLOW_CONFORMANCE", crate::util::conformance()),
    );
    // pytest's closing line: the count of Python tests, in this test's output.
    let last = out
        .lines()
        .rev()
        .find(|l| l.contains(" passed"))
        .unwrap_or("");
    println!("pytest: {last}");
    assert!(
        !last.contains("failed") && !last.contains("error") && last.contains("passed"),
        "{last}"
    );
}
