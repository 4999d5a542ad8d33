//! The layout rules ARCHITECTURE.md states, checked on the source itself:
//! the top-level modules of `src/` import each other without a circle (data
//! flows one way), and no source file grows past the size a reader can hold.

use std::{
    collections::{BTreeMap, BTreeSet},
    fs,
    path::{Path, PathBuf},
};

/// "Keep files under ~500 lines": the tilde is this much slack.
const MAX_LINES: usize = 550;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in fs::read_dir(dir).expect("src/ is readable") {
        let path = entry.expect("directory entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The top-level module a file under `src/` belongs to (`hub` for
/// `src/hub/subscription.rs`), or `None` for the crate roots.
fn module_of(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.strip_suffix(".rs").unwrap_or(first);
    (name != "lib" && name != "main").then(|| name.to_string())
}

fn ident_at(text: &str, at: usize) -> Option<&str> {
    let rest = &text[at..];
    let end = rest
        .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
        .unwrap_or(rest.len());
    (end > 0).then(|| &rest[..end])
}

/// Top-level modules named by `crate::x` and `crate::{x, y::z}` paths.
fn crate_imports(text: &str) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    for (at, _) in text.match_indices("crate::") {
        let after = at + "crate::".len();
        if text[after..].starts_with('{') {
            // Names right after the opening brace or a comma at depth 1.
            let mut depth = 0usize;
            let mut expect_name = false;
            for (i, c) in text[after..].char_indices() {
                match c {
                    '{' => {
                        depth += 1;
                        expect_name = depth == 1;
                    }
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            break;
                        }
                    }
                    ',' if depth == 1 => expect_name = true,
                    c if c.is_whitespace() => {}
                    _ if expect_name => {
                        if let Some(name) = ident_at(text, after + i) {
                            found.insert(name.to_string());
                        }
                        expect_name = false;
                    }
                    _ => {}
                }
            }
        } else if let Some(name) = ident_at(text, after) {
            found.insert(name.to_string());
        }
    }
    found
}

/// The source with `//` comments (doc links included) removed: a link names a
/// module without depending on it.
fn without_comments(text: &str) -> String {
    text.lines()
        .map(|line| match line.find("//") {
            Some(at) if !line[..at].contains('"') => &line[..at],
            _ => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

fn find_cycle(graph: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    // 0 = unvisited, 1 = on the current path, 2 = done.
    fn visit(
        node: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<String, u8>,
        path: &mut Vec<String>,
    ) -> Option<Vec<String>> {
        state.insert(node.to_string(), 1);
        path.push(node.to_string());
        for next in graph.get(node).into_iter().flatten() {
            match state.get(next.as_str()).copied().unwrap_or(0) {
                1 => {
                    let start = path.iter().position(|n| n == next).unwrap_or(0);
                    let mut cycle = path[start..].to_vec();
                    cycle.push(next.clone());
                    return Some(cycle);
                }
                0 => {
                    if let Some(cycle) = visit(next, graph, state, path) {
                        return Some(cycle);
                    }
                }
                _ => {}
            }
        }
        path.pop();
        state.insert(node.to_string(), 2);
        None
    }
    let mut state = BTreeMap::new();
    for node in graph.keys() {
        if state.get(node.as_str()).copied().unwrap_or(0) == 0
            && let Some(cycle) = visit(node, graph, &mut state, &mut Vec::new())
        {
            return Some(cycle);
        }
    }
    None
}

fn sources() -> (PathBuf, Vec<PathBuf>) {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    files.sort();
    (src, files)
}

#[test]
fn top_level_modules_import_each_other_without_a_circle() {
    let (src, files) = sources();
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for file in &files {
        let Some(module) = module_of(&src, file) else {
            continue;
        };
        let text = without_comments(&fs::read_to_string(file).expect("source is UTF-8"));
        let deps = graph.entry(module.clone()).or_default();
        deps.extend(crate_imports(&text).into_iter().filter(|d| *d != module));
    }
    assert!(
        graph.len() > 5,
        "found too few modules in {}",
        src.display()
    );
    if let Some(cycle) = find_cycle(&graph) {
        panic!(
            "import circle between modules of src/: {}",
            cycle.join(" -> ")
        );
    }
}

#[test]
fn no_source_file_is_over_the_size_limit() {
    let (src, files) = sources();
    let long: Vec<String> = files
        .iter()
        .filter_map(|file| {
            let lines = fs::read_to_string(file).ok()?.lines().count();
            (lines > MAX_LINES).then(|| format!("{} ({lines} lines)", file.display()))
        })
        .collect();
    assert!(
        long.is_empty(),
        "files in {} over {MAX_LINES} lines: {long:?}",
        src.display()
    );
}

#[test]
fn the_import_parser_reads_grouped_and_plain_paths() {
    let text = "use crate::{\n    hub::{Hub, Sink},\n    store::Store,\n};\nlet x = crate::metrics::Metrics::new();";
    let found: Vec<String> = crate_imports(text).into_iter().collect();
    assert_eq!(found, ["hub", "metrics", "store"]);
    let graph = BTreeMap::from([
        ("a".to_string(), BTreeSet::from(["b".to_string()])),
        ("b".to_string(), BTreeSet::from(["a".to_string()])),
    ]);
    assert_eq!(
        find_cycle(&graph),
        Some(vec!["a".into(), "b".into(), "a".into()])
    );
}
