//! `shakedown list`: the shipped scenarios (recursing into sub-directories such as `bugs/`) with
//! their descriptions.

use std::path::{Path, PathBuf};

use super::args::ListArgs;
use crate::exit;
use crate::scenario::load_file;

/// Every `*.yaml` under `dir`, sorted.
pub fn scenario_files(dir: &Path) -> std::io::Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(current) = pending.pop() {
        for entry in std::fs::read_dir(&current)? {
            let path = entry?.path();
            if path.is_dir() {
                pending.push(path);
            } else if path.extension().is_some_and(|e| e == "yaml" || e == "yml") {
                files.push(path);
            }
        }
    }
    files.sort();
    Ok(files)
}

/// Print one aligned line per scenario.
pub(super) fn run(args: &ListArgs) -> u8 {
    let files = match scenario_files(&args.dir) {
        Ok(files) => files,
        Err(e) => {
            eprintln!("shakedown list: cannot read {}: {e}", args.dir.display());
            return exit::BAD_INPUT;
        }
    };
    let rows: Vec<(String, String)> = files
        .iter()
        .map(|file| match load_file(file, &[]) {
            Ok(loaded) => (file.display().to_string(), loaded.scenario.description),
            Err(_) => (file.display().to_string(), "(invalid: run `shakedown validate` on it)".into()),
        })
        .collect();
    let width = rows.iter().map(|(f, _)| f.len()).max().unwrap_or(0);
    for (file, description) in rows {
        println!("{file:width$}  {}", description.trim());
    }
    exit::PASS
}
