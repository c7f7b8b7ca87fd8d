//! `sriov-device-plugin install-cni` run as a process, as the DaemonSet's
//! init container runs it.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn install_cni(from: &Path, to: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .arg("install-cni")
        .arg("--from")
        .arg(from)
        .arg("--to")
        .arg(to)
        .output()
        .unwrap()
}

fn stdout(output: &Output) -> String {
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The one line a failure prints, without its timestamp and level.
fn reason(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr);
    let lines: Vec<&str> = stderr.lines().collect();
    assert_eq!(lines.len(), 1, "one line: {stderr}");
    lines[0].split_once(" ERROR ").unwrap().1.to_string()
}

fn entries(dir: &Path) -> Vec<String> {
    let mut names: Vec<String> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    names
}

/// A script standing in for the CNI: prints `version`, padded to `size`.
fn script(path: &Path, version: &str, size: usize) {
    let mut text = format!("#!/bin/sh\necho {version}\nexit 0\n");
    text.push_str(&"#".repeat(size.saturating_sub(text.len())));
    std::fs::write(path, text).unwrap();
}

/// A CNI directory and two versions to install, `a` and `b`, each large
/// enough that writing it is not one step.
fn two_versions() -> (tempfile::TempDir, PathBuf, [PathBuf; 2]) {
    let dir = tempfile::tempdir().unwrap();
    let to = dir.path().join("bin");
    std::fs::create_dir(&to).unwrap();
    let versions = [dir.path().join("a"), dir.path().join("b")];
    script(&versions[0], "a", 4 << 20);
    script(&versions[1], "b", 4 << 20);
    (dir, to, versions)
}

#[test]
fn installs_then_is_idempotent_then_replaces() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (dir.path().join("sriov-new"), dir.path().join("bin"));
    std::fs::create_dir(&to).unwrap();
    script(&from, "one", 1000);
    // A run killed before its rename left a temporary file.
    std::fs::write(to.join(".sriov.install-4242"), "half").unwrap();

    let first = install_cni(&from, &to);
    assert!(first.status.success(), "{first:?}");
    assert_eq!(stdout(&first), format!("installed {}/sriov", to.display()));
    assert_eq!(entries(&to), ["sriov"]);
    let installed = std::fs::metadata(to.join("sriov")).unwrap();
    assert_eq!(installed.permissions().mode() & 0o777, 0o755);
    assert_eq!(
        std::fs::read(to.join("sriov")).unwrap(),
        std::fs::read(&from).unwrap()
    );

    let again = install_cni(&from, &to);
    assert!(again.status.success(), "{again:?}");
    assert_eq!(
        stdout(&again),
        format!("{}/sriov is up to date", to.display())
    );
    assert_eq!(
        std::fs::metadata(to.join("sriov")).unwrap().ino(),
        installed.ino()
    );

    // Same content, but a copy that lost its mode: installed again.
    std::fs::set_permissions(to.join("sriov"), PermissionsExt::from_mode(0o644)).unwrap();
    let fixed = install_cni(&from, &to);
    assert_eq!(stdout(&fixed), format!("replaced {}/sriov", to.display()));

    script(&from, "two", 1000);
    let upgrade = install_cni(&from, &to);
    assert_eq!(stdout(&upgrade), format!("replaced {}/sriov", to.display()));
    let run = Command::new(to.join("sriov")).output().unwrap();
    assert_eq!(stdout(&run), "two");
    assert_eq!(entries(&to), ["sriov"]);
}

/// A runtime executing the CNI while it is replaced always runs a whole
/// file, the old or the new: never "text file busy", never half a file.
#[test]
fn a_runtime_executing_during_the_upgrade_sees_a_whole_file() {
    let (_dir, to, versions) = two_versions();
    assert!(install_cni(&versions[0], &to).status.success());

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let runtime = {
        let (stop, cni) = (stop.clone(), to.join("sriov"));
        std::thread::spawn(move || {
            let mut runs = 0;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                let run = Command::new(&cni).output().expect("exec the CNI");
                let out = stdout(&run);
                assert!(
                    run.status.success() && (out == "a" || out == "b"),
                    "{run:?}"
                );
                runs += 1;
            }
            runs
        })
    };
    for round in 0..20 {
        let output = install_cni(&versions[(round + 1) % 2], &to);
        assert!(output.status.success(), "{output:?}");
    }
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    assert!(runtime.join().unwrap() > 0);
}

#[test]
fn a_missing_directory_is_one_line_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let from = dir.path().join("sriov");
    script(&from, "one", 100);
    let missing = dir.path().join("opt/cni/bin");
    let output = install_cni(&from, &missing);
    assert!(!output.status.success());
    assert_eq!(
        reason(&output),
        format!("{} does not exist", missing.display())
    );
    assert!(!dir.path().join("opt").exists());

    let output = install_cni(&dir.path().join("nope"), dir.path());
    assert_eq!(
        reason(&output),
        format!(
            "cannot read {}/nope: No such file or directory (os error 2)",
            dir.path().display()
        )
    );
}

/// A read-only mount (the hostPath mounted without write), made for real in
/// a private mount namespace.
#[test]
fn a_read_only_directory_is_one_line_and_leaves_no_partial_file() {
    let dir = tempfile::tempdir().unwrap();
    let (from, to) = (dir.path().join("sriov"), dir.path().join("bin"));
    std::fs::create_dir(&to).unwrap();
    script(&from, "one", 100);
    std::fs::write(to.join("host-local"), "x").unwrap();
    let output = Command::new("unshare")
        .args(["--mount", "--propagation", "private", "sh", "-ec"])
        .arg(
            r#"mount --bind "$2" "$2"; mount -o remount,bind,ro "$2"; exec "$0" install-cni --from "$1" --to "$2""#,
        )
        .arg(env!("CARGO_BIN_EXE_sriov-device-plugin"))
        .arg(&from)
        .arg(&to)
        .output()
        .unwrap();
    assert!(!output.status.success());
    assert_eq!(
        reason(&output),
        format!(
            "cannot write into {}: Read-only file system (os error 30)",
            to.display()
        )
    );
    assert_eq!(entries(&to), ["host-local"]);
}

/// Two installs at once, each the first process of its own PID namespace
/// as in two containers (so with the same temporary name), each removing
/// what it takes for a killed run's temporary file: they take turns, and
/// both succeed every time.
#[test]
fn two_installs_at_once_both_succeed() {
    let (_dir, to, versions) = two_versions();
    for _ in 0..10 {
        let runs: Vec<_> = versions
            .iter()
            .map(|from| {
                Command::new("unshare")
                    .args(["--pid", "--fork"])
                    .arg(env!("CARGO_BIN_EXE_sriov-device-plugin"))
                    .arg("install-cni")
                    .arg("--from")
                    .arg(from)
                    .arg("--to")
                    .arg(&to)
                    .stdout(std::process::Stdio::piped())
                    .stderr(std::process::Stdio::piped())
                    .spawn()
                    .unwrap()
            })
            .collect();
        for run in runs {
            let output = run.wait_with_output().unwrap();
            assert!(output.status.success(), "{output:?}");
        }
        assert_eq!(entries(&to), ["sriov"]);
    }
}
