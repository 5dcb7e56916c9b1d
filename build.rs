//! Compiles the C datapath in bpf/ into one BPF object with BTF, embedded
//! into the core library. No compiler is needed on the node that runs dpdbg.

use std::env;
use std::path::PathBuf;
use std::process::{Command, exit};

const SOURCES: &[&str] =
    &["bpf/datapath.c", "bpf/kdrop.c", "bpf/include/dpdbg.h", "bpf/test/verifier_reject.c", "bpf/test/btf_maps.c"];
/// Directories of headers the sources include: every file in them is
/// tracked, and the directory itself, so a header added later is too.
const HEADER_DIRS: &[&str] = &["bpf/lib", "bpf/include"];

fn fail(msg: &str) -> ! {
    println!("cargo::error={msg}");
    exit(1);
}

fn find_clang() -> String {
    if let Ok(c) = env::var("CLANG") {
        return c;
    }
    for c in ["clang", "clang-19", "clang-18", "clang-17", "clang-16", "clang-15", "clang-14"] {
        if Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()) {
            return c.to_string();
        }
    }
    fail(
        "clang not found: the BPF datapath needs it to build; install it with `apt-get install -y clang llvm libbpf-dev` or set CLANG=/path/to/clang",
    );
}

fn main() {
    for s in SOURCES {
        println!("cargo::rerun-if-changed={s}");
    }
    for dir in HEADER_DIRS {
        println!("cargo::rerun-if-changed={dir}");
        let entries = std::fs::read_dir(dir).unwrap_or_else(|e| fail(&format!("reading {dir}: {e}")));
        let mut headers: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
        headers.sort();
        for h in headers {
            println!("cargo::rerun-if-changed={}", h.display());
        }
    }
    println!("cargo::rerun-if-env-changed=CLANG");

    let out = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("datapath.o");
    let arch = env::var("CARGO_CFG_TARGET_ARCH").unwrap_or_default();
    // Debian keeps asm/types.h under the multiarch include dir, which clang
    // does not search when targeting bpf.
    let multiarch = match arch.as_str() {
        "x86_64" => "x86_64-linux-gnu",
        "aarch64" => "aarch64-linux-gnu",
        other => other,
    };
    if !std::path::Path::new("/usr/include/bpf/bpf_helpers.h").exists() {
        fail("bpf/bpf_helpers.h not found: install it with `apt-get install -y libbpf-dev`");
    }
    let clang = find_clang();
    let out_dir = PathBuf::from(env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    // The second object exists for the tests: one the verifier must refuse.
    for (src, obj) in [
        ("bpf/datapath.c", out),
        ("bpf/kdrop.c", out_dir.join("kdrop.o")),
        ("bpf/test/verifier_reject.c", out_dir.join("verifier_reject.o")),
        ("bpf/test/btf_maps.c", out_dir.join("btf_maps.o")),
    ] {
        let output = Command::new(&clang)
            .args(["-O2", "-g", "-target", "bpf", "-mcpu=v3", "-Wall", "-Werror"])
            .arg(format!("-I/usr/include/{multiarch}"))
            .args(["-c", src, "-o"])
            .arg(&obj)
            .output()
            .unwrap_or_else(|e| fail(&format!("running {clang}: {e}")));
        if !output.status.success() {
            let stderr = String::from_utf8_lossy(&output.stderr);
            for line in stderr.lines() {
                println!("cargo::warning={line}");
            }
            fail(&format!("{clang} failed to compile {src} (see the warnings above)"));
        }
    }
}
