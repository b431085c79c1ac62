//! The module layers of `src/` (documented in `lib.rs`): every `crate::` path in a module names the module itself
//! or one of a lower layer, so that no module imports one above it or in a circle.

use std::path::{Path, PathBuf};

/// The layers, lowest first. A module may name only modules of a lower layer; two of one layer not each other.
const LAYERS: &[&[&str]] = &[
    &["key", "msg"],
    &["capture"],
    &["decode"],
    &["trace"],
    &["conn"],
    &["filter"],
    &["store"],
    &["ingest", "dump"],
    &["serve", "synth"],
    &["cli"],
    &["main"],
];

fn layer(module: &str) -> Option<usize> {
    LAYERS.iter().position(|l| l.contains(&module))
}

/// The top-level module a file of `src/` belongs to (`src/trace/spill/runs.rs`: `trace`); None for `lib.rs`.
fn module_of(rel: &Path) -> Option<String> {
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib").then(|| name.to_string())
}

/// The top-level modules a source names through `crate::` paths (`crate::a::b`, `crate::{a::b, c}`), with their
/// line numbers. A `$crate::` of a macro is not one.
fn crate_paths(src: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    for (no, line) in src.lines().enumerate() {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let before = &rest[..at];
            let word_start =
                !before.ends_with(|c: char| c == '$' || c == '_' || c.is_alphanumeric());
            rest = &rest[at + "crate::".len()..];
            if !word_start {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                // Top-level items of the group: split at commas outside nested braces.
                let (mut depth, mut item) = (0, String::new());
                let mut items = Vec::new();
                for c in group.chars() {
                    match c {
                        '{' => depth += 1,
                        '}' if depth == 0 => break,
                        '}' => depth -= 1,
                        ',' if depth == 0 => items.push(std::mem::take(&mut item)),
                        _ if depth == 0 => item.push(c),
                        _ => {}
                    }
                }
                items.push(item);
                for i in items {
                    let name: String = i
                        .trim()
                        .chars()
                        .take_while(|c| c.is_alphanumeric() || *c == '_')
                        .collect();
                    if !name.is_empty() {
                        out.push((no + 1, name));
                    }
                }
            } else {
                let name: String = rest
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    out.push((no + 1, name));
                }
            }
        }
    }
    out
}

/// What breaks the layers in `files` (a path under `src/` and its text): an import of a module above, of another
/// module of the same layer, or of a module the layers do not name.
fn violations(files: &[(PathBuf, String)]) -> Vec<String> {
    let mut bad = Vec::new();
    for (rel, text) in files {
        let Some(from) = module_of(rel) else { continue };
        let Some(from_layer) = layer(&from) else {
            bad.push(format!(
                "src/{}: module `{from}` is in no layer (add it to LAYERS and lib.rs)",
                rel.display()
            ));
            continue;
        };
        for (line, to) in crate_paths(text) {
            if to == from {
                continue;
            }
            let why = match layer(&to) {
                None => "a module in no layer".to_string(),
                Some(l) if l > from_layer => format!("layer {l}, above `{from}`'s {from_layer}"),
                Some(l) if l == from_layer => format!("the same layer as `{from}` ({l})"),
                Some(_) => continue,
            };
            bad.push(format!(
                "src/{}:{line}: `{from}` names `crate::{to}`: {why}",
                rel.display()
            ));
        }
    }
    bad
}

fn sources(dir: &Path, root: &Path, out: &mut Vec<(PathBuf, String)>) {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    entries.sort();
    for p in entries {
        if p.is_dir() {
            sources(&p, root, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            let text = std::fs::read_to_string(&p).unwrap();
            out.push((p.strip_prefix(root).unwrap().to_path_buf(), text));
        }
    }
}

#[test]
fn no_module_imports_one_above_it_or_in_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&root, &root, &mut files);
    assert!(files.len() > 50, "read {} files of src/", files.len());
    let paths: usize = files.iter().map(|(_, t)| crate_paths(t).len()).sum();
    assert!(
        paths > 100,
        "found only {paths} crate:: paths: the scan is broken"
    );
    let bad = violations(&files);
    assert!(
        bad.is_empty(),
        "imports against the layers of lib.rs:\n{}",
        bad.join("\n")
    );
}

#[test]
fn the_layout_check_catches_upward_same_layer_and_grouped_imports() {
    let f = |path: &str, text: &str| (PathBuf::from(path), text.to_string());
    let files = [
        f(
            "key/label.rs",
            "use crate::key::Timestamp;\n// $crate::cli is a macro's\n",
        ),
        f(
            "trace/flow.rs",
            "use crate::{capture::Frame, conn::ConnRecord};\n",
        ),
        f("ingest/reader.rs", "fn f() { crate::dump::x(); }\n"),
        f("capture/mod.rs", "/// [`x`]: crate::nowhere::x\n"),
        f("newthing.rs", "use crate::key;\n"),
    ];
    let bad = violations(&files);
    assert_eq!(bad.len(), 4, "{bad:#?}");
    assert!(
        bad[0].starts_with("src/trace/flow.rs:1: `trace` names `crate::conn`"),
        "{}",
        bad[0]
    );
    assert!(
        bad[1].contains("`ingest` names `crate::dump`: the same layer"),
        "{}",
        bad[1]
    );
    assert!(
        bad[2].contains("`crate::nowhere`: a module in no layer"),
        "{}",
        bad[2]
    );
    assert!(bad[3].contains("`newthing` is in no layer"), "{}", bad[3]);
}
