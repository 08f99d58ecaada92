//! The external checkers tests hand a service's output to: `promtool check metrics` for the
//! Prometheus text of `/metrics`, and `openapi-spec-validator` for `/openapi.json`. A checker that
//! is not installed fails the test with what to install, never skips it.

use std::io::Write;
use std::process::{Command, Stdio};

const PROMTOOL_HELP: &str =
    "promtool is missing: `apt-get install -y prometheus` (CI's .ci/run does it)";
const VALIDATOR_HELP: &str = "openapi-spec-validator is missing: `python3 -m pip install -r tests/tools/requirements.txt` (CI's .ci/run does it)";

/// Runs `command` with `input` on its standard input; `Err` carries its output when it fails.
fn run_with_stdin(mut command: Command, input: &[u8], help: &str) -> Result<String, String> {
    let mut child = command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{e}; {help}"))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input)
            .map_err(|e| format!("writing to the checker: {e}"))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("waiting for the checker: {e}"))?;
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() {
        Ok(text)
    } else {
        Err(text)
    }
}

/// `promtool check metrics` over `exposition` (Prometheus text). `Ok` only when promtool reports
/// nothing at all: no format error and no lint problem (missing help, wrong suffix, ...).
pub fn promtool_check_metrics(exposition: &str) -> Result<(), String> {
    let mut command = Command::new("promtool");
    command.args(["check", "metrics"]);
    let report = run_with_stdin(command, exposition.as_bytes(), PROMTOOL_HELP)?;
    if report.trim().is_empty() {
        Ok(())
    } else {
        Err(report)
    }
}

/// `openapi-spec-validator` over `document` (an OpenAPI document as JSON).
pub fn validate_openapi(document: &str) -> Result<(), String> {
    let mut command = Command::new("python3");
    command.args(["-m", "openapi_spec_validator", "-"]);
    let missing = Command::new("python3")
        .args(["-c", "import openapi_spec_validator"])
        .output()
        .map(|o| !o.status.success())
        .unwrap_or(true);
    if missing {
        return Err(VALIDATOR_HELP.to_owned());
    }
    run_with_stdin(command, document.as_bytes(), VALIDATOR_HELP).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn promtool_passes_clean_text_and_reports_problems() {
        let clean = "# HELP jobs_total Jobs done\n# TYPE jobs_total counter\njobs_total 1\n";
        assert_eq!(promtool_check_metrics(clean), Ok(()));
        // no help text: a lint problem, which counts
        let bare = "# TYPE jobs_total counter\njobs_total 1\n";
        assert!(promtool_check_metrics(bare).is_err());
        assert!(promtool_check_metrics("not prometheus {").is_err());
    }

    #[test]
    fn the_validator_passes_a_valid_document_and_refuses_a_broken_one() {
        let valid = r#"{"openapi":"3.1.0","info":{"title":"t","version":"1"},"paths":{}}"#;
        assert_eq!(validate_openapi(valid), Ok(()));
        let broken = r#"{"openapi":"3.1.0","info":{"title":"t"},"paths":{"/x":{"get":{"responses":{"200":{}}}}}}"#;
        assert!(validate_openapi(broken).is_err());
    }
}
