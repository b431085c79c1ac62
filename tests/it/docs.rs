//! The README and `docs/` stay true: every SQL block runs on the system `sqlite3` (Debian 12's is SQLite 3.40),
//! the schema they show is the one traceflow writes, `flow_index` gives `traceflow query`'s index and reads only
//! the capture asked for, each example command of the README prints what the README shows, the defaults they
//! name are the code's, the filter table is the parser's, and every flag of every subcommand is documented.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use assert_cmd::cargo::CommandCargoExt;
use rusqlite::Connection;

use super::util::{corpus, ingest, run};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn read(rel: &str) -> String {
    std::fs::read_to_string(repo().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// README.md, BENCHMARKS.md and every page of docs/, by path relative to the repository.
fn pages() -> Vec<String> {
    let mut v = vec!["README.md".to_string(), "BENCHMARKS.md".to_string()];
    let mut docs: Vec<String> = std::fs::read_dir(repo().join("docs"))
        .expect("docs/")
        .map(|e| format!("docs/{}", e.unwrap().file_name().to_string_lossy()))
        .filter(|p| p.ends_with(".md"))
        .collect();
    docs.sort();
    v.extend(docs);
    v
}

/// The ```sql blocks of a page, in order.
fn sql_blocks(text: &str) -> Vec<String> {
    let mut blocks = Vec::new();
    let mut cur: Option<String> = None;
    for line in text.lines() {
        match cur.as_mut() {
            None if line.trim_end() == "```sql" => cur = Some(String::new()),
            None => {}
            Some(b) if line.trim_end() == "```" => {
                blocks.push(std::mem::take(b));
                cur = None;
            }
            Some(b) => {
                b.push_str(line);
                b.push('\n');
            }
        }
    }
    assert!(cur.is_none(), "a ```sql block is not closed");
    blocks
}

/// The system `sqlite3` (scripts/test.sh installs Debian's), reading `db`.
fn sqlite3(db: &Path, script: &str) -> (bool, String, String) {
    let child = Command::new("sqlite3")
        .arg("-bail")
        .arg(db)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!("sqlite3: {e}: these tests need the sqlite3 shell (Debian: apt-get install sqlite3)")
        });
    use std::io::Write;
    child
        .stdin
        .as_ref()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

/// A folder holding `sample.pcap` (`traceflow sample`) indexed into `flows.db`, its connections built.
fn sample_session() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("flows.db");
    let cap = dir.path().join("sample.pcap");
    assert_eq!(run(&db, &["sample", cap.to_str().unwrap()]).code, 0);
    assert_eq!(ingest(&db, &["-q", "--connections"], &[&cap]).code, 0);
    dir
}

#[test]
fn every_sql_example_runs_on_the_system_sqlite3() {
    let dir = sample_session();
    let db = dir.path().join("flows.db");
    let mut ran = 0;
    for page in pages() {
        for block in sql_blocks(&read(&page)) {
            if block.contains("CREATE ") {
                continue; // the schema itself: the next test builds it
            }
            let script =
                format!(".param set :capture 1\n.param set :flow 1\n.param set :conn 1\n{block}");
            let (ok, out, err) = sqlite3(&db, &script);
            assert!(
                ok && err.is_empty(),
                "{page}: sqlite3 failed: {err}\n{block}"
            );
            assert!(!out.is_empty(), "{page}: no rows from the sample:\n{block}");
            ran += 1;
        }
    }
    assert!(ran >= 4, "only {ran} SQL examples found");
}

/// Tables, indexes, columns (name, type, NOT NULL, key), and the text of views and triggers.
fn shape(db: &Path) -> BTreeMap<String, String> {
    let c = Connection::open(db).unwrap();
    let objects: Vec<(String, String, String)> = c
        .prepare(
            "SELECT type, name, coalesce(sql, '') FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name",
        )
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut m = BTreeMap::new();
    for (ty, name, sql) in objects {
        let what = match ty.as_str() {
            "table" => {
                let cols: Vec<String> = c
                    .prepare(&format!(
                        "SELECT name, type, \"notnull\", pk FROM pragma_table_xinfo('{name}')"
                    ))
                    .unwrap()
                    .query_map([], |r| {
                        Ok(format!(
                            "{} {} {} {}",
                            r.get::<_, String>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                            r.get::<_, i64>(3)?
                        ))
                    })
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let without_rowid = sql.to_uppercase().contains("WITHOUT ROWID");
                format!("{cols:?} without rowid: {without_rowid}")
            }
            "index" => {
                let cols: Vec<String> = c
                    .prepare(&format!(
                        "SELECT coalesce(name, '') FROM pragma_index_info('{name}')"
                    ))
                    .unwrap()
                    .query_map([], |r| r.get(0))
                    .unwrap()
                    .collect::<Result<_, _>>()
                    .unwrap();
                let unique = sql.to_uppercase().contains("UNIQUE");
                // A renamed table's indexes name it quoted ("flow_rows").
                let on = sql.split(" ON ").nth(1).unwrap_or("").replace('"', "");
                format!("{cols:?} unique: {unique} on {on}")
            }
            // Views and triggers: their SQL, without comments and with whitespace collapsed.
            _ => sql
                .lines()
                .map(|l| l.split("--").next().unwrap())
                .collect::<Vec<_>>()
                .join(" ")
                .split_whitespace()
                .collect::<Vec<_>>()
                .join(" "),
        };
        m.insert(format!("{ty} {name}"), what);
    }
    m
}

#[test]
fn the_documented_schema_is_the_one_traceflow_writes() {
    let schema: String = sql_blocks(&read("docs/schema.md"))
        .into_iter()
        .filter(|b| b.contains("CREATE "))
        .collect();
    let dir = tempfile::tempdir().unwrap();
    let documented = dir.path().join("documented.db");
    let (ok, _, err) = sqlite3(&documented, &schema);
    assert!(
        ok && err.is_empty(),
        "docs/schema.md's schema fails on sqlite3: {err}"
    );
    let written = sample_session();
    let want = shape(&written.path().join("flows.db"));
    let got = shape(&documented);
    for (k, v) in &want {
        assert_eq!(
            got.get(k),
            Some(v),
            "docs/schema.md differs from the database on {k}"
        );
    }
    for k in got.keys() {
        assert!(
            want.contains_key(k),
            "docs/schema.md shows {k}, which traceflow does not make"
        );
    }
}

#[test]
fn the_flow_index_view_is_the_index_tuple_and_reads_one_capture() {
    // Several captures, so that a view which read every capture's frames would show it in its plan and rows.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let mut inputs: Vec<PathBuf> = std::fs::read_dir(corpus())
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    inputs.sort();
    let inputs: Vec<PathBuf> = inputs.into_iter().step_by(7).collect();
    let refs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    ingest(&db, &["-q"], &refs);
    let ids: Vec<i64> = Connection::open(&db)
        .unwrap()
        .prepare("SELECT id FROM captures WHERE flows > 0 ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(ids.len() >= 10, "{} captures with flows", ids.len());
    for id in &ids {
        let (ok, out, err) = sqlite3(
            &db,
            &format!(
                ".mode list\nSELECT label, frames FROM flow_index WHERE capture_id = {id} ORDER BY closed, position;"
            ),
        );
        assert!(ok, "{err}");
        let q = run(
            &db,
            &["query", "--capture", &id.to_string(), "--format", "json"],
        );
        assert_eq!(q.code, 0, "{}", q.stderr);
        let json: serde_json::Value = serde_json::from_str(&q.stdout).unwrap();
        let want: Vec<String> = super::util::index_of(&json)
            .into_iter()
            .map(|(label, frames)| {
                let f: Vec<String> = frames.iter().map(u64::to_string).collect();
                format!("{label}|{}", f.join(","))
            })
            .collect();
        let got: Vec<&str> = out.lines().collect();
        assert_eq!(
            got, want,
            "capture {id}: flow_index differs from traceflow query"
        );
    }
    let (ok, plan, err) = sqlite3(
        &db,
        "EXPLAIN QUERY PLAN SELECT label, frames FROM flow_index WHERE capture_id = 1 ORDER BY closed, position;",
    );
    assert!(ok, "{err}");
    assert!(
        plan.contains("SEARCH frames USING PRIMARY KEY (capture_id=?)")
            && !plan.contains("SCAN frames"),
        "flow_index does not reach frames by the capture:\n{plan}"
    );
}

/// A command of the README and the output it shows.
struct Example {
    command: String,
    output: Vec<String>,
}

/// The README's `    $ COMMAND` lines, each with the indented lines after it (its output, `...` for any lines).
fn examples(readme: &str) -> Vec<Example> {
    let mut v: Vec<Example> = Vec::new();
    let mut open = false;
    for line in readme.lines() {
        if let Some(cmd) = line.strip_prefix("    $ ") {
            v.push(Example {
                command: cmd.to_string(),
                output: Vec::new(),
            });
            open = true;
        } else if open && line.starts_with("    ") {
            v.last_mut().unwrap().output.push(line[4..].to_string());
        } else {
            open = false;
        }
    }
    v
}

/// `in 22 ms`, `in 1.5 s`: a run's time, which differs each run.
fn mask_times(s: &str) -> String {
    let mut out = String::new();
    let mut rest = s;
    while let Some(i) = rest.find(" in ") {
        out.push_str(&rest[..i + 4]);
        rest = &rest[i + 4..];
        let n = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        if n > 0 && (rest[n..].starts_with(" ms") || rest[n..].starts_with(" s")) {
            out.push('T');
            rest = &rest[n..];
        }
    }
    out.push_str(rest);
    out
}

/// Whether `got` is `want`, a `...` line of `want` standing for any lines.
fn matches(want: &[String], got: &[String]) -> bool {
    match want.split_first() {
        None => got.is_empty(),
        Some((w, rest)) if w.trim() == "..." => (0..=got.len()).any(|i| matches(rest, &got[i..])),
        Some((w, rest)) => {
            got.first().is_some_and(|g| g.trim_end() == w.trim_end()) && matches(rest, &got[1..])
        }
    }
}

#[test]
fn every_readme_example_prints_what_the_readme_shows() {
    let bin = Command::cargo_bin("traceflow")
        .unwrap()
        .get_program()
        .to_owned();
    let bin = PathBuf::from(bin);
    let path = format!(
        "{}:{}",
        bin.parent().unwrap().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let dir = tempfile::tempdir().unwrap();
    let demo = dir.path().join("demo");
    let mut ran = 0;
    for ex in examples(&read("README.md")) {
        // The test suite itself and the install are not run here; every other command is, in README order.
        let runs = ["traceflow", "sqlite3 flows.db", "bash scripts/demo.sh"];
        if !runs.iter().any(|r| ex.command.starts_with(r)) {
            continue;
        }
        let command = ex.command.replace("/tmp/demo", demo.to_str().unwrap());
        let out = Command::new("sh")
            .arg("-c")
            .arg(format!("{command} 2>&1"))
            .current_dir(if command.starts_with("bash scripts/") {
                repo()
            } else {
                dir.path().to_path_buf()
            })
            .env("PATH", &path)
            .env("TRACEFLOW_BIN", &bin)
            .env_remove("TRACEFLOW_DB")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let text =
            String::from_utf8_lossy(&out.stdout).replace(demo.to_str().unwrap(), "/tmp/demo");
        let got: Vec<String> = text.lines().map(mask_times).collect();
        let want: Vec<String> = ex.output.iter().map(|l| mask_times(l)).collect();
        assert!(
            matches(&want, &got),
            "README example `{}` printed:\n{}\nthe README shows:\n{}",
            ex.command,
            got.join("\n"),
            want.join("\n")
        );
        ran += 1;
    }
    assert!(ran >= 10, "only {ran} README examples ran");
}

/// The `(default X)` each page gives a flag: (the last backticked `--flag` before it on its line, X).
fn documented_defaults(text: &str) -> Vec<(String, String)> {
    let mut v = Vec::new();
    for line in text.lines() {
        for (i, _) in line.match_indices("(default ") {
            let value = &line[i + "(default ".len()..];
            let value = value[..value.find([')', ',', ';', ':']).unwrap_or(value.len())].trim();
            if let Some(f) = line[..i].rfind("`--") {
                let flag = line[f + 3..].split([' ', '=', '`']).next().unwrap();
                v.push((flag.to_string(), value.trim_matches(['*', '`']).to_string()));
            }
        }
    }
    v
}

/// What `--help` gives as `flag`'s default: clap's `[default: X]`, or the one its help text names.
fn help_default(flag: &str) -> Option<String> {
    let cmd = traceflow::cli::command();
    for sub in std::iter::once(&cmd).chain(cmd.get_subcommands()) {
        if let Some(arg) = sub.get_arguments().find(|a| a.get_long() == Some(flag)) {
            let d: Vec<String> = arg
                .get_default_values()
                .iter()
                .map(|v| v.to_string_lossy().into_owned())
                .collect();
            if !d.is_empty() {
                return Some(d.join(","));
            }
            let help = arg.get_help().map(|h| h.to_string()).unwrap_or_default();
            let at = help.find("[default: ")? + "[default: ".len();
            let d = &help[at..];
            return Some(d[..d.find([']', ':', ',']).unwrap_or(d.len())].to_string());
        }
    }
    None
}

#[test]
fn the_defaults_the_docs_name_are_the_codes() {
    let code: BTreeMap<&str, String> = [
        ("jobs", traceflow::cli::ingest::DEFAULT_JOBS.to_string()),
        (
            "max-open-flows",
            traceflow::trace::DEFAULT_MAX_OPEN.to_string(),
        ),
    ]
    .into();
    let mut seen = Vec::new();
    for page in ["README.md", "docs/commands.md"] {
        for (flag, value) in documented_defaults(&read(page)) {
            let help = help_default(&flag)
                .unwrap_or_else(|| panic!("{page}: `--{flag}` has no default in --help"));
            assert_eq!(
                value.replace(',', ""),
                help,
                "{page}: the default of --{flag}"
            );
            if let Some(c) = code.get(flag.as_str()) {
                assert_eq!(&value, c, "{page}: --{flag}'s default in the code");
            }
            seen.push(format!("{page} {flag}"));
        }
    }
    for need in [
        "README.md jobs",
        "README.md max-open-flows",
        "docs/commands.md max-open-flows",
    ] {
        assert!(
            seen.iter().any(|s| s == need),
            "{need}: no `(default N)` found; saw {seen:?}"
        );
    }
    // The schema version: every `schema N` of the README is this build's.
    let readme = read("README.md");
    let mut found = 0;
    for (i, _) in readme.match_indices("schema ") {
        let n: String = readme[i + 7..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if !n.is_empty() {
            assert_eq!(
                n,
                traceflow::store::SCHEMA_VERSION.to_string(),
                "README: `schema {n}`"
            );
            found += 1;
        }
    }
    assert!(found > 0, "the README names no schema version");
}

#[test]
fn the_filter_language_of_the_docs_is_the_parsers() {
    let table = traceflow::filter::terms::table(4);
    assert!(
        read("README.md").contains(&table),
        "README.md's filter table is not src/filter/terms.rs's; paste:\n{table}"
    );
    let help = run(Path::new("unused.db"), &["flows", "--help"]);
    assert!(
        help.stdout.contains(&traceflow::filter::terms::help()),
        "{}",
        help.stdout
    );
    let man = run(Path::new("unused.db"), &["man"]);
    for t in traceflow::filter::terms::TERMS {
        assert!(
            man.stdout.contains(&t.syntax.replace('-', "\\-")),
            "man: no {:?}",
            t.syntax
        );
    }
}

#[test]
fn every_flag_of_every_subcommand_is_in_commands_md() {
    let doc = read("docs/commands.md");
    let cmd = traceflow::cli::command();
    let section = |name: &str| -> String {
        let head = format!("## `traceflow {name}");
        let at = doc
            .find(&head)
            .unwrap_or_else(|| panic!("docs/commands.md has no section {head}`"));
        let body = &doc[at + head.len()..];
        body[..body.find("\n## ").unwrap_or(body.len())].to_string()
    };
    for arg in cmd.get_arguments().filter_map(|a| a.get_long()) {
        assert!(
            doc.contains(&format!("`--{arg}")),
            "docs/commands.md: no global --{arg}"
        );
    }
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let body = section(sub.get_name());
        let longs: Vec<&str> = sub
            .get_arguments()
            .filter(|a| !a.is_global_set())
            .filter_map(|a| a.get_long())
            .collect();
        for l in &longs {
            assert!(
                body.lines()
                    .any(|row| row.starts_with(&format!("| `--{l}"))),
                "docs/commands.md: `traceflow {}` has no table row for --{l}",
                sub.get_name()
            );
        }
        // Each flag has a row in its section's table, and each row names a flag the subcommand has.
        for row in body.lines().filter(|l| l.starts_with("| `--")) {
            let flag = row[5..].split(['`', ' ', '=']).next().unwrap();
            assert!(
                longs.contains(&flag) || cmd.get_arguments().any(|a| a.get_long() == Some(flag)),
                "docs/commands.md: `traceflow {}` has no --{flag}",
                sub.get_name()
            );
        }
    }
}

#[test]
fn no_issue_numbers_and_nothing_missing_that_is_there() {
    for page in pages().into_iter().chain(["CHANGELOG.md".to_string()]) {
        let text = read(&page);
        let lower = text.to_lowercase();
        for (i, _) in lower.match_indices("issue ") {
            let next = lower[i + 6..].chars().next().unwrap_or(' ');
            assert!(
                !next.is_ascii_digit(),
                "{page}: an issue number: {}",
                &text[i..(i + 12).min(text.len())]
            );
        }
        for (i, _) in text.match_indices('#') {
            let next = text[i + 1..].chars().next().unwrap_or(' ');
            assert!(
                !next.is_ascii_digit(),
                "{page}: a #number: {}",
                &text[i..(i + 8).min(text.len())]
            );
        }
        assert!(!lower.contains("not there yet"), "{page}: 'not there yet'");
    }
    // Nor in the code, its comments and the scripts.
    let mut stack: Vec<std::path::PathBuf> = ["src", "tests", "benches", "scripts", "fuzz"]
        .iter()
        .map(|d| repo().join(d))
        .collect();
    while let Some(p) = stack.pop() {
        if p.is_dir() {
            if p.file_name()
                .is_some_and(|n| n == "target" || n == "corpus")
            {
                continue;
            }
            stack.extend(std::fs::read_dir(&p).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        let Ok(text) = std::fs::read_to_string(&p) else {
            continue;
        };
        let lower = text.to_lowercase();
        for (i, _) in lower.match_indices("issue ") {
            let next = lower[i + 6..].chars().next().unwrap_or(' ');
            assert!(
                !next.is_ascii_digit(),
                "{}: an issue number: {}",
                p.display(),
                &text[i..(i + 12).min(text.len())]
            );
        }
    }
    let readme = read("README.md");
    assert!(
        readme.lines().count() <= 350,
        "README.md has {} lines",
        readme.lines().count()
    );
    // .ci/run calls the README's test command.
    assert!(
        readme.contains("bash scripts/test.sh") && read(".ci/run").contains("bash scripts/test.sh")
    );
}
