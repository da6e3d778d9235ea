//! `cargo xtask <command>`: the project's automation, in Rust so it runs wherever cargo does.
//!
//! - `lint`: rustfmt check, clippy with `-D warnings` on all targets, rustdoc with
//!   `-D warnings`, and cargo-deny (bans, licenses, sources; installed if missing).
//! - `test [--deep]`: the whole workspace's tests; property tests run 48 cases per property,
//!   `--deep` runs 1024.
//! - `bench [--compare [--publish]] [-- <criterion args>]`: every criterion bench;
//!   `--compare` runs the side-by-side comparison with the peers (a separate package, never
//!   built by CI), and `--publish` then copies its table and chart to `docs/bench/`, the
//!   copy the README shows.
//! - `deny`: cargo-deny only.
//! - `ci`: lint, then test — what `.ci/run` calls.
//!
//! Before the first build each command makes sure of what it needs, so the commands work on
//! a fresh machine with only the Rust toolchain: `protoc` (store-etcd's build needs it) comes
//! from the `protoc-bin-vendored` crate, so no system package is needed to build; `test` and
//! `ci` install the servers the distributed backends are tested against (through their
//! `scripts/*.sh install`, before compiling anything) or stop with a message that names what
//! is missing, how to get it, and how to skip it.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

/// Property-test cases per property in ordinary runs: enough to find shallow bugs while
/// keeping CI short.
const CI_CASES: &str = "48";
/// Cases per property in `--deep` runs.
const DEEP_CASES: &str = "1024";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let (cmd, rest) = match args.split_first() {
        Some((c, r)) => (c.as_str(), r),
        None => ("help", &[][..]),
    };
    let result = match cmd {
        "lint" => lint(),
        "test" => install_services().and_then(|()| test(rest.iter().any(|a| a == "--deep"))),
        "bench" => bench(rest),
        "deny" => deny(),
        "ci" => install_services()
            .and_then(|()| lint())
            .and_then(|()| test(false)),
        _ => {
            eprintln!(
                "usage: cargo xtask <lint | test [--deep] | bench [--compare [--publish]] | deny | ci>"
            );
            return if cmd == "help" {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(2)
            };
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("xtask {cmd}: {e}");
            ExitCode::FAILURE
        }
    }
}

type Result<T = ()> = std::result::Result<T, String>;

fn root() -> PathBuf {
    // xtask/ lives directly under the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_default()
}

/// A `cargo` command in the workspace root, with `PROTOC` pointing at a protoc binary
/// (store-etcd's build runs it): the caller's `PROTOC` if set, else the one vendored in the
/// `protoc-bin-vendored` crate, so that building needs no system package.
fn cargo() -> Command {
    let mut c = Command::new(env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    c.current_dir(root());
    if env::var_os("PROTOC").is_none() {
        match protoc_bin_vendored::protoc_bin_path() {
            Ok(path) => {
                c.env("PROTOC", path);
            }
            Err(e) => eprintln!(
                "warning: no vendored protoc for this platform ({e}); store-etcd's build will look \
                 for `protoc` on PATH (Debian: apt-get install protobuf-compiler)"
            ),
        }
    }
    c
}

fn run(mut cmd: Command) -> Result {
    eprintln!("$ {}", describe(&cmd));
    let status = cmd
        .status()
        .map_err(|e| format!("cannot start {}: {e}", describe(&cmd)))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{}` failed ({status})", describe(&cmd)))
    }
}

fn describe(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&a.to_string_lossy());
    }
    s
}

fn lint() -> Result {
    dependency_rule()?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;
    let mut clippy = cargo();
    clippy.args(["clippy", "--workspace", "--all-targets", "--", "-D", "warnings"]);
    run(clippy)?;
    let mut doc = cargo();
    doc.args(["doc", "--workspace", "--no-deps"])
        .env("RUSTDOCFLAGS", "-D warnings");
    run(doc)?;
    deny()
}

fn deny() -> Result {
    let installed = cargo()
        .args(["deny", "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !installed {
        let mut install = cargo();
        install.args(["install", "--locked", "cargo-deny"]);
        run(install)?;
    }
    // cargo-deny reads the metadata of every platform's dependencies; fetch them first so the
    // check itself can run offline.
    let mut fetch = cargo();
    fetch.args(["fetch", "--quiet"]);
    run(fetch)?;
    let mut check = cargo();
    check.args(["deny", "--offline", "check", "bans", "licenses", "sources"]);
    run(check)
}

/// Servers some crates test against: (script name, opt-out variable).
const SERVICES: &[(&str, &str)] = &[
    ("etcd", "STORE_SKIP_ETCD"),
    ("seaweedfs", "STORE_SKIP_S3"),
    ("redis", "STORE_SKIP_REDIS"),
];

fn test(deep: bool) -> Result {
    let mut t = cargo();
    t.args(["test", "--workspace"]);
    t.env("PROPTEST_CASES", if deep { DEEP_CASES } else { CI_CASES });
    if deep {
        t.env("STORE_DEEP", "1");
    }
    let started = start_services(&mut t)?;
    let result = run(t);
    for svc in started {
        let mut stop = Command::new("bash");
        stop.arg(root().join("scripts").join(format!("{svc}.sh")))
            .arg("stop")
            .current_dir(root());
        if let Err(e) = run(stop) {
            eprintln!("warning: {e}");
        }
    }
    result
}

/// Installs the servers of [`SERVICES`] (unless opted out) before anything compiles, so a
/// missing one is reported at once, not after a long build.
fn install_services() -> Result {
    for &(svc, opt_out) in SERVICES {
        let script = root().join("scripts").join(format!("{svc}.sh"));
        if !script.exists() || env::var_os(opt_out).is_some_and(|v| v == "1") {
            continue;
        }
        let mut install = Command::new("bash");
        install.arg(&script).arg("install").current_dir(root());
        run(install).map_err(|e| {
            format!(
                "{e}\n{svc} is needed by the tests and could not be installed; see the top of \
                 scripts/{svc}.sh for what it installs and how (it needs root for apt-get or pip), \
                 or set {opt_out}=1 to run without it (its tests then say they are skipped)"
            )
        })?;
    }
    Ok(())
}

/// The workspace's dependency rule: every `store-*` library crate depends, outside
/// dev-dependencies, on no workspace crate but `store-core`. Read from `cargo metadata`.
fn dependency_rule() -> Result {
    let mut meta = cargo();
    meta.args(["metadata", "--format-version", "1", "--no-deps"]);
    eprintln!("$ {}", describe(&meta));
    let out = meta
        .output()
        .map_err(|e| format!("cannot run cargo metadata: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "cargo metadata failed: {}",
            String::from_utf8_lossy(&out.stderr)
        ));
    }
    let json: serde_json::Value =
        serde_json::from_slice(&out.stdout).map_err(|e| format!("cargo metadata output: {e}"))?;
    let violations = rule_violations(&json);
    if violations.is_empty() {
        Ok(())
    } else {
        Err(format!(
            "dependency rule broken (a store-* crate may depend only on store-core, \
             apart from dev-dependencies):\n  {}",
            violations.join("\n  ")
        ))
    }
}

/// `crate -> dependency` for every normal or build dependency of a `store-*` workspace
/// package on another `store-*` package other than `store-core`.
fn rule_violations(metadata: &serde_json::Value) -> Vec<String> {
    let mut found = Vec::new();
    let packages = metadata["packages"]
        .as_array()
        .map(Vec::as_slice)
        .unwrap_or_default();
    for package in packages {
        let name = package["name"].as_str().unwrap_or_default();
        if !name.starts_with("store-") || name == "store-benches" || name == "store-tests" {
            continue;
        }
        let deps = package["dependencies"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        for dep in deps {
            let dep_name = dep["name"].as_str().unwrap_or_default();
            let dev = dep["kind"].as_str() == Some("dev");
            if dep_name.starts_with("store-") && dep_name != "store-core" && !dev {
                found.push(format!("{name} -> {dep_name}"));
            }
        }
    }
    found
}

/// Starts each service whose script exists (unless its opt-out variable is set) and passes
/// the endpoints its script reports to the test command. Returns the services started.
fn start_services(t: &mut Command) -> Result<Vec<&'static str>> {
    let mut started = Vec::new();
    for &(svc, opt_out) in SERVICES {
        let script = root().join("scripts").join(format!("{svc}.sh"));
        if !script.exists() {
            continue;
        }
        if env::var_os(opt_out).is_some_and(|v| v == "1") {
            eprintln!("{opt_out}=1: not starting {svc}; its tests will say they are skipped");
            continue;
        }
        let mut start = Command::new("bash");
        start.arg(&script).arg("start").current_dir(root());
        run(start).map_err(|e| format!("{e}\n(set {opt_out}=1 to run without {svc})"))?;
        started.push(svc);
        let env_file = root().join("target").join("services").join(svc).join("env");
        let text = std::fs::read_to_string(&env_file).map_err(|e| format!("{}: {e}", env_file.display()))?;
        for line in text.lines() {
            let line = line.trim().trim_start_matches("export ").trim();
            if let Some((k, v)) = line.split_once('=') {
                t.env(k.trim(), v.trim().trim_matches('"').trim_matches('\''));
            }
        }
    }
    Ok(started)
}

fn bench(rest: &[String]) -> Result {
    let own: Vec<&String> = rest.iter().take_while(|a| *a != "--").collect();
    let compare = own.iter().any(|a| *a == "--compare");
    let publish = own.iter().any(|a| *a == "--publish");
    let passthrough: Vec<&String> = rest.iter().skip_while(|a| *a != "--").skip(1).collect();
    if publish && (!compare || !passthrough.is_empty()) {
        return Err(
            "--publish needs --compare and a full run (no filter after `--`): \
                    the published table must cover every row"
                .into(),
        );
    }
    if compare {
        let mut c = cargo();
        c.args([
            "run",
            "--release",
            "--manifest-path",
            "benches/compare/Cargo.toml",
            "--",
        ]);
        c.args(&passthrough);
        // Share the workspace's target directory so common dependencies build once.
        c.env("CARGO_TARGET_DIR", root().join("target").join("compare"));
        run(c)?;
        if publish {
            publish_comparison()?;
        }
        return Ok(());
    }
    let mut b = cargo();
    b.args(["bench", "-p", "store-benches", "--"]);
    b.args(&passthrough);
    run(b)
}

/// Where the README's copy of the comparison table starts and ends.
const TABLE_START: &str = "<!-- bench-compare:start -->";
const TABLE_END: &str = "<!-- bench-compare:end -->";

/// Copies the comparison's table and chart (just written by the run) to `docs/bench/`, and
/// the table into the README between its markers.
fn publish_comparison() -> Result {
    let (from, to) = (root().join("target/bench-compare"), root().join("docs/bench"));
    std::fs::create_dir_all(&to).map_err(|e| format!("create {}: {e}", to.display()))?;
    for file in ["report.md", "ratios.svg"] {
        std::fs::copy(from.join(file), to.join(file))
            .map_err(|e| format!("copy {file} to {}: {e}", to.display()))?;
    }
    let table = std::fs::read_to_string(to.join("report.md")).map_err(|e| format!("read report.md: {e}"))?;
    let readme_path = root().join("README.md");
    let readme = std::fs::read_to_string(&readme_path).map_err(|e| format!("read README.md: {e}"))?;
    let readme = replace_between(&readme, TABLE_START, TABLE_END, table.trim())
        .ok_or_else(|| format!("README.md lacks the {TABLE_START} … {TABLE_END} markers"))?;
    std::fs::write(&readme_path, readme).map_err(|e| format!("write README.md: {e}"))?;
    eprintln!("published to {} and README.md", to.display());
    Ok(())
}

/// `text` with what lies between `start` and `end` replaced by `content` on lines of its
/// own; `None` if the markers are missing or out of order.
fn replace_between(text: &str, start: &str, end: &str, content: &str) -> Option<String> {
    let open = text.find(start)? + start.len();
    let close = open + text[open..].find(end)?;
    Some(format!("{}\n{content}\n{}", &text[..open], &text[close..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_dependency_rule_allows_core_and_dev_dependencies_only() {
        let metadata = serde_json::json!({ "packages": [
            { "name": "store-multi", "dependencies": [
                { "name": "store-core", "kind": null },
                { "name": "store-testkit", "kind": "dev" },
                { "name": "tokio", "kind": null } ] },
            { "name": "store-record", "dependencies": [
                { "name": "store-memory", "kind": null },
                { "name": "store-fs", "kind": "build" } ] },
            { "name": "store-benches", "dependencies": [ { "name": "store-fs", "kind": null } ] },
        ]});
        assert_eq!(
            rule_violations(&metadata),
            ["store-record -> store-memory", "store-record -> store-fs"]
        );
    }

    #[test]
    fn replaces_only_between_the_markers() {
        let text = "a\n<!-- s -->\nold\ntable\n<!-- e -->\nb\n";
        assert_eq!(
            replace_between(text, "<!-- s -->", "<!-- e -->", "new").as_deref(),
            Some("a\n<!-- s -->\nnew\n<!-- e -->\nb\n")
        );
        assert_eq!(
            replace_between("no markers", "<!-- s -->", "<!-- e -->", "x"),
            None
        );
        assert_eq!(
            replace_between("<!-- e --><!-- s -->", "<!-- s -->", "<!-- e -->", "x"),
            None
        );
    }
}
