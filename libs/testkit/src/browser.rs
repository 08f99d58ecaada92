//! Browser tests: a Python script of `tests/browser/` (Playwright driving Debian's chromium, every
//! request to another origin blocked) run against a service a Rust test started in-process.

use std::path::PathBuf;
use std::process::Command;

const SETUP_HELP: &str = "install the browser test tools: `python3 -m pip install -r tests/browser/requirements.txt` \
and `apt-get install -y chromium` (CI's .ci/run does both)";

/// The repository's `tests/browser` folder.
pub fn scripts_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/browser")
}

/// Runs `tests/browser/<script>` with `args` and returns its standard output; fails the test with
/// the script's output when it fails, and with what to install when the tools are missing.
#[allow(clippy::panic)] // reason: a test helper fails the test by panicking
pub async fn run_script(script: &str, args: &[String]) -> String {
    let path = scripts_dir().join(script);
    let args = args.to_vec();
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .arg(&path)
            .args(&args)
            .env("PYTHONDONTWRITEBYTECODE", "1")
            .output()
    })
    .await;
    let output = match output {
        Ok(Ok(output)) => output,
        Ok(Err(e)) => panic!("cannot run python3 for the browser test {script}: {e}; {SETUP_HELP}"),
        Err(e) => panic!("browser test {script} did not finish: {e}"),
    };
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "browser test {script} failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    stdout
}
