//! completions/ and man/ are generated from the clap tree and committed; this
//! fails when they are stale. DPDBG_UPDATE_GENERATED=1 rewrites them.

use std::path::Path;

#[test]
fn completions_and_man_pages_are_current() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
    let update = std::env::var_os("DPDBG_UPDATE_GENERATED").is_some();
    let mut stale = Vec::new();
    let files = dpdbg_cli::generated::generated_files();
    assert!(files.len() >= 3 + 1 + 2 + 5, "completions for three shells and a man page per command");
    for (rel, content) in files {
        let path = root.join(&rel);
        if update {
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            std::fs::write(&path, &content).unwrap();
        } else if std::fs::read(&path).ok().as_deref() != Some(content.as_slice()) {
            stale.push(rel);
        }
    }
    assert!(
        stale.is_empty(),
        "stale generated files {stale:?}: run `DPDBG_UPDATE_GENERATED=1 cargo test -p dpdbg-cli --test generated`"
    );
}
