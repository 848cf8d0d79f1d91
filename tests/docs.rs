//! The docs stay true to the code: every row of docs/SECURITY.md's bad-input
//! table cites the tests that prove it, those tests exist, and they check the
//! counter the row promises.

mod common;

use std::path::{Path, PathBuf};

/// One row of the bad-input table.
struct Row {
    input: String,
    /// Metric names (with their labels) from the "counter that moves" column.
    counters: Vec<String>,
    /// `file::test` or `module::path::tests::test` citations.
    tests: Vec<String>,
}

fn rows(doc: &str) -> Vec<Row> {
    let table = doc
        .split("## Bad-input table")
        .nth(1)
        .expect("docs/SECURITY.md has a bad-input table");
    table
        .lines()
        .skip_while(|l| !l.starts_with('|'))
        .take_while(|l| l.starts_with('|'))
        .skip(2) // the header and its separator
        .map(|line| {
            let cells: Vec<&str> = line.trim_matches('|').split(" | ").collect();
            assert_eq!(cells.len(), 4, "a row has four cells: {line}");
            Row {
                input: cells[0].trim().to_string(),
                counters: counters(cells[2]),
                tests: backticked(cells[3]),
            }
        })
        .collect()
}

/// The counters of a cell; `{label="v"}` alone is shorthand for the
/// preceding counter with those labels.
fn counters(cell: &str) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    for item in backticked(cell) {
        if item.starts_with("roomcast_") {
            out.push(item);
        } else if item.starts_with('{') {
            let last = out.last().expect("a label set follows a counter");
            let base = last.split('{').next().unwrap().to_string();
            out.push(base + item.as_str());
        }
    }
    out
}

fn backticked(cell: &str) -> Vec<String> {
    cell.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

/// The source file and function name a citation names.
fn cited(root: &Path, name: &str) -> (PathBuf, String, bool) {
    let parts: Vec<&str> = name.split("::").collect();
    assert!(
        parts.len() >= 2
            && parts
                .iter()
                .all(|p| !p.is_empty() && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')),
        "{name} is not a test path"
    );
    let test = parts[parts.len() - 1].to_string();
    if parts.len() == 2 {
        return (
            root.join("tests").join(format!("{}.rs", parts[0])),
            test,
            false,
        );
    }
    // A unit test inside src/, e.g. ws::decoder::tests::x.
    let modules: Vec<&str> = parts[..parts.len() - 1]
        .iter()
        .copied()
        .filter(|p| *p != "tests")
        .collect();
    let base = root.join("src").join(modules.join("/"));
    let file = [
        base.with_extension("rs"),
        base.join("mod.rs"),
        base.join("tests.rs"),
    ]
    .into_iter()
    .find(|f| std::fs::read_to_string(f).is_ok_and(|s| s.contains(&format!("fn {test}("))))
    .unwrap_or_else(|| base.with_extension("rs"));
    (file, test, true)
}

/// The body of `fn name(` in `source`, from its opening brace to the
/// matching one (braces inside string and char literals do not count).
fn body<'a>(source: &'a str, name: &str) -> Option<&'a str> {
    let start = source.find(&format!("fn {name}("))?;
    let open = start + source[start..].find('{')?;
    let bytes = source.as_bytes();
    let (mut i, mut depth) = (open, 0);
    while i < bytes.len() {
        match bytes[i] {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(&source[open..=i]);
                }
            }
            b'r' if source[i..].starts_with("r#\"") => {
                i += source[i + 3..].find("\"#")? + 4;
            }
            b'"' => {
                i += 1;
                while bytes[i] != b'"' {
                    i += if bytes[i] == b'\\' { 2 } else { 1 };
                }
            }
            b'\'' if bytes.get(i + 2) == Some(&b'\'') => i += 2,
            _ => {}
        }
        i += 1;
    }
    None
}

/// Whether a test body checks `counter` (`name{label="value"}`, as a Rust
/// string literal would spell it): named in a statement that asserts or
/// reads a metric, not in a comment or a message.
fn names_counter(body: &str, counter: &str) -> bool {
    let escaped = counter.replace('"', "\\\"");
    [counter, escaped.as_str()].iter().any(|needle| {
        body.match_indices(needle).any(|(at, _)| {
            let line_start = body[..at].rfind('\n').map_or(0, |i| i + 1);
            if body[line_start..at].trim_start().starts_with("//") {
                return false;
            }
            let start = body[..at].rfind([';', '{', '}']).map_or(0, |i| i + 1);
            let end = body[at..].find(';').map_or(body.len(), |i| at + i);
            let statement = &body[start..end];
            [
                "assert",
                "metric(",
                "wait_metric(",
                "wait_for_metric(",
                "metric_of(",
                "metric_value(",
            ]
            .iter()
            .any(|check| statement.contains(check))
        })
    })
}

/// Every row cites at least one test; each cited test exists; each
/// integration test cited checks at least one of its row's counters; and
/// each counter of a row is checked by at least one of its tests.
#[test]
fn security_table_rows_are_proven_by_their_tests() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/SECURITY.md")).unwrap();
    let rows = rows(&doc);
    assert!(rows.len() >= 25, "only {} rows", rows.len());
    for row in &rows {
        assert!(!row.tests.is_empty(), "row {:?} cites no test", row.input);
        let mut bodies = Vec::new();
        for name in &row.tests {
            let (file, test, unit) = cited(root, name);
            let source = std::fs::read_to_string(&file)
                .unwrap_or_else(|_| panic!("{name}: {} does not exist", file.display()));
            let body = body(&source, &test)
                .unwrap_or_else(|| panic!("{name}: no test `{test}` in {}", file.display()))
                .to_string();
            if !unit && !row.counters.is_empty() {
                assert!(
                    row.counters.iter().any(|c| names_counter(&body, c)),
                    "row {:?}: {name} checks none of {:?}",
                    row.input,
                    row.counters
                );
            }
            bodies.push(body);
        }
        for counter in &row.counters {
            assert!(
                bodies.iter().any(|b| names_counter(b, counter)),
                "row {:?}: no cited test checks {counter}",
                row.input
            );
        }
    }
}

/// The parser above finds what it should (so the test above cannot pass by
/// reading nothing).
#[test]
fn the_table_parser_reads_rows_counters_and_tests() {
    let doc = "x\n## Bad-input table\n\n| a | b | c | d |\n|---|---|---|---|\n\
               | bad | 400 | `roomcast_x_total{reason=\"y\"}` | `f::t1`, `g::t2` |\n\
               | other | 426 | — | `h::t3` |\n\
               | two | 503 / 429 | `roomcast_r_total{reason=\"a\"}` / `{reason=\"b\"}` | `i::t4` |\n\nafter\n";
    let rows = rows(doc);
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[2].counters,
        [
            "roomcast_r_total{reason=\"a\"}",
            "roomcast_r_total{reason=\"b\"}"
        ]
    );
    assert_eq!(rows[0].counters, ["roomcast_x_total{reason=\"y\"}"]);
    assert_eq!(rows[0].tests, ["f::t1", "g::t2"]);
    assert!(rows[1].counters.is_empty());
    let src = "fn t1() {\n    assert(\"roomcast_x_total{reason=\\\"y\\\"}\");\n    x(\"{\", '{');\n}\nfn t2() { }\n";
    assert!(names_counter(
        body(src, "t1").unwrap(),
        &rows[0].counters[0]
    ));
    assert!(!names_counter(
        body(src, "t2").unwrap(),
        &rows[0].counters[0]
    ));
}

/// A counter counts as checked only where a statement asserts or reads a
/// metric: not in a comment, not in a log line.
#[test]
fn a_counter_only_in_a_comment_or_a_message_is_not_checked() {
    let c = "roomcast_x_total{kind=\"y\"}";
    let literal = "roomcast_x_total{kind=\\\"y\\\"}";
    assert!(!names_counter(&format!("{{ // checks {c}\n ok(); }}"), c));
    assert!(!names_counter(
        &format!("{{ eprintln!(\"{literal}\"); }}"),
        c
    ));
    assert!(names_counter(
        &format!("{{ assert_eq!(\n srv.metric(\"{literal}\").await,\n 1.0\n); }}"),
        c
    ));
    assert!(names_counter(
        &format!("{{ let v = wait_for_metric(addr, \"{literal}\", 1.0, WAIT).await; }}"),
        c
    ));
}

/// README's metrics table lists every metric the server exports, and in
/// each metric's row every value its labels take (histogram buckets and
/// script hook names aside).
#[tokio::test]
async fn the_readme_lists_every_metric_and_label_value() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let readme = std::fs::read_to_string(root.join("README.md")).unwrap();
    let rows: Vec<&str> = readme
        .lines()
        .filter(|l| l.starts_with("| `roomcast_"))
        .collect();
    let srv = common::TestServer::start_default().await;
    let scrape = srv.get("/metrics").await.body;
    srv.stop().await;
    let mut missing = Vec::new();
    for line in scrape.lines().filter(|l| l.starts_with("roomcast_")) {
        let sample = line.rsplit_once(' ').map_or(line, |(s, _)| s);
        let (name, labels) = sample.split_once('{').unwrap_or((sample, ""));
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| name.strip_suffix(s))
            .unwrap_or(name);
        let Some(row) = rows
            .iter()
            .find(|r| row_names(r).iter().any(|n| n == family))
        else {
            missing.push(format!("{family} (no row)"));
            continue;
        };
        for pair in labels
            .trim_end_matches('}')
            .split(',')
            .filter(|p| !p.is_empty())
        {
            let (label, value) = pair.split_once('=').unwrap();
            let value = value.trim_matches('"');
            if label == "le" || label == "hook" || label == "version" {
                continue;
            }
            if !row.contains(&format!("`{value}`")) {
                missing.push(format!("{family}{{{label}=\"{value}\"}}"));
            }
        }
    }
    missing.sort();
    missing.dedup();
    assert!(
        missing.is_empty(),
        "README's metrics table lacks: {missing:#?}"
    );
}

/// The metric names a README row's first cell lists: backticked names (their
/// labels cut), where `_closed_total` after `roomcast_connections_opened_total`
/// stands for `roomcast_connections_closed_total`.
fn row_names(row: &str) -> Vec<String> {
    let cell = row
        .trim_start_matches('|')
        .split(" | ")
        .next()
        .unwrap_or("");
    let mut names: Vec<String> = Vec::new();
    for token in cell.split('`').skip(1).step_by(2) {
        let token = token.split('{').next().unwrap_or(token);
        if token.starts_with('_') {
            let Some(prev) = names.last() else { continue };
            let drop = token.matches('_').count();
            let parts: Vec<&str> = prev.split('_').collect();
            let keep = parts.len().saturating_sub(drop);
            names.push(format!("{}{token}", parts[..keep].join("_")));
        } else {
            names.push(token.to_string());
        }
    }
    names
}
