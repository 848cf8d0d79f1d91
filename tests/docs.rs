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

/// The keys of a JSON text in the order they are written (nested ones too).
fn key_order(text: &str) -> Vec<String> {
    let mut keys = Vec::new();
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'"' {
            let start = i + 1;
            i += 1;
            while i < bytes.len() && bytes[i] != b'"' {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
            let end = i.min(bytes.len());
            let mut j = end + 1;
            while j < bytes.len() && bytes[j] == b' ' {
                j += 1;
            }
            if bytes.get(j) == Some(&b':') {
                keys.push(text[start..end].to_string());
            }
        }
        i += 1;
    }
    keys
}

/// `got` is what `doc` shows: the same JSON (`time`, `conn` and `epoch` may
/// differ: the clock, connection ids, a stream's name), in the same key
/// order; a line with `…` shows only some of the fields.
fn same_event(doc: &str, got: &str, epoch: &mut Option<String>) -> Result<(), String> {
    use serde_json::Value;
    let partial = doc.contains('…');
    let doc_json = doc.replace(", …}", "}").replace(",…}", "}");
    let want: Value =
        serde_json::from_str(&doc_json).map_err(|e| format!("doc line {doc}: {e}"))?;
    let have: Value = serde_json::from_str(got).map_err(|e| format!("server sent {got}: {e}"))?;
    fn walk(
        want: &Value,
        have: &Value,
        partial: bool,
        epoch: &mut Option<String>,
        path: &str,
    ) -> Result<(), String> {
        match (want, have) {
            (Value::Object(w), Value::Object(h)) => {
                if !partial && w.len() != h.len() {
                    return Err(format!(
                        "{path}: fields {:?} vs {:?}",
                        w.keys().collect::<Vec<_>>(),
                        h.keys().collect::<Vec<_>>()
                    ));
                }
                for (k, wv) in w {
                    let hv = h.get(k).ok_or(format!("{path}.{k} missing"))?;
                    match k.as_str() {
                        "time" | "conn" if wv.is_number() => {
                            if !hv.is_number() {
                                return Err(format!("{path}.{k}: {hv}"));
                            }
                        }
                        "epoch" => {
                            let e = hv.as_str().ok_or(format!("{path}.epoch: {hv}"))?;
                            match epoch {
                                Some(known) if known != e => {
                                    return Err(format!("epoch {e}, earlier {known}"))
                                }
                                Some(_) => {}
                                None => *epoch = Some(e.to_string()),
                            }
                        }
                        _ => walk(wv, hv, false, epoch, &format!("{path}.{k}"))?,
                    }
                }
                Ok(())
            }
            (Value::Array(w), Value::Array(h)) if w.len() == h.len() => w
                .iter()
                .zip(h)
                .try_for_each(|(a, b)| walk(a, b, false, epoch, path)),
            (w, h) if w == h => Ok(()),
            (w, h) => Err(format!("{path}: the doc says {w}, the server {h}")),
        }
    }
    walk(&want, &have, partial, epoch, "")?;
    if !partial && key_order(&doc_json) != key_order(got) {
        return Err(format!("key order: the doc {doc}\n  the server {got}"));
    }
    Ok(())
}

/// docs/protocol.md's sessions, run against a fresh server as written (each
/// block on a connection of its own, one after the other): every event the
/// doc shows is the one the server sends, field for field and in the
/// server's key order.
#[tokio::test]
async fn the_protocol_doc_sessions_are_what_the_server_says() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/protocol.md")).unwrap();
    let blocks: Vec<&str> = doc
        .split("```text\n")
        .skip(1)
        .map(|b| b.split("```").next().unwrap())
        .filter(|b| b.lines().any(|l| l.starts_with("→ {")))
        .collect();
    assert!(blocks.len() >= 2, "the session and the resume");
    let srv = common::TestServer::start_default().await;
    let mut epoch: Option<String> = None;
    let mut failures = Vec::new();
    for block in blocks {
        let mut v1 = common::V1::connect(&srv, "/chat", &[]).await;
        for line in block.lines() {
            if let Some(cmd) = line.strip_prefix("→ ").filter(|c| c.starts_with('{')) {
                let mut cmd = cmd.to_string();
                if let Some(e) = &epoch {
                    // The stream's name is the server's.
                    let shown = "6f1c2a9e.0";
                    cmd = cmd.replace(shown, e);
                }
                v1.ws.send_text(&cmd).await;
            } else if let Some(ev) = line.strip_prefix("← ").filter(|e| e.starts_with('{')) {
                let got = v1.ws.recv_text().await;
                if let Err(why) = same_event(ev, &got, &mut epoch) {
                    failures.push(why);
                }
            }
        }
    }
    srv.stop().await;
    assert!(
        failures.is_empty(),
        "docs/protocol.md differs:\n{}",
        failures.join("\n")
    );
}

/// docs/http-api.md's curls, run as written (in order, against a server
/// with a key and two chat clients in `chat/lobby`, as its examples
/// assume): each answer is the JSON the doc shows, in its key order.
#[tokio::test]
async fn the_http_api_doc_curls_answer_what_the_doc_shows() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let doc = std::fs::read_to_string(root.join("docs/http-api.md")).unwrap();
    const KEY: &str = "0123456789abcdef-docs-key";
    let mut config = common::test_config();
    config.api.key = Some(KEY.into());
    let srv = common::TestServer::start(config).await;
    let mut ann = srv.connect("/chat").await;
    ann.recv_json().await;
    let mut bob = srv.connect("/chat").await;
    bob.recv_json().await;
    ann.recv_json().await;
    let mut examples = 0;
    let mut failures = Vec::new();
    let mut rest = doc.as_str();
    while let Some(at) = rest.find("```sh\ncurl ") {
        let block = &rest[at + 6..];
        let end = block.find("```").unwrap();
        let curl = block[..end].replace("\\\n", " ");
        let after = &block[end + 3..];
        let json_at = after.find("```json\n").expect("a curl's answer follows it");
        let answer = &after[json_at + 8..];
        let answer = &answer[..answer.find("```").unwrap()];
        rest = &after[json_at + 8 + answer.len()..];
        let url = curl
            .split_whitespace()
            .find(|w| w.starts_with("http://"))
            .expect("a URL");
        let path = &url[url.find("/api").expect("an /api path")..];
        let body = curl
            .split_once("-d '")
            .map(|(_, b)| b.split('\'').next().unwrap().to_string());
        let method = if body.is_some() { "POST" } else { "GET" };
        let body = body.map(|b| serde_json::from_str(&b).unwrap());
        let (status, got) = common::api_call(srv.addr, method, path, Some(KEY), body).await;
        examples += 1;
        let want: serde_json::Value = serde_json::from_str(answer.trim()).unwrap();
        if status != 200 || got != want {
            failures.push(format!(
                "{method} {path}: {status} {got}, the doc says {want}"
            ));
        } else if key_order(answer) != key_order(&got.to_string()) {
            failures.push(format!(
                "{method} {path}: key order {got} vs the doc's {}",
                answer.trim()
            ));
        }
    }
    srv.stop().await;
    assert!(examples >= 2, "only {examples} curls");
    assert!(
        failures.is_empty(),
        "docs/http-api.md differs:\n{}",
        failures.join("\n")
    );
}
