#!/usr/bin/env node
// A minimal solc command line over the npm `solc` module (the official compiler built to WebAssembly), shaped
// for py-solc-x's `compile_standard` and for `forge build --offline`:
//   --version        prints "Version: <long version>" like native solc
//   --standard-json  reads Standard JSON from stdin and writes Standard JSON to stdout
// The stock `solcjs` CLI cannot be used: it prints a warning line before the JSON, calls process.exit right after
// writing (truncating large outputs on a pipe) and resolves no imports. Imports are resolved here against the
// repository root (for contracts/...) and node_modules (for @openzeppelin/...).
'use strict';
const fs = require('fs');
const path = require('path');
const solc = require('solc');

const ROOT = path.resolve(__dirname, '..');
const SEARCH_DIRS = [ROOT, path.join(ROOT, 'node_modules')];

function findImports(importPath) {
  for (const dir of SEARCH_DIRS) {
    const candidate = path.resolve(dir, importPath);
    if (candidate.startsWith(dir) && fs.existsSync(candidate)) {
      return { contents: fs.readFileSync(candidate, 'utf8') };
    }
  }
  return { error: `File not found: ${importPath}` };
}

const args = process.argv.slice(2);
if (args.includes('--version')) {
  process.stdout.write(`solc, the solidity compiler commandline interface\nVersion: ${solc.version()}\n`);
} else if (args.includes('--standard-json')) {
  const chunks = [];
  process.stdin.on('data', (c) => chunks.push(c));
  process.stdin.on('end', () => {
    const output = solc.compile(Buffer.concat(chunks).toString('utf8'), { import: findImports });
    process.stdout.write(output);
  });
} else {
  process.stderr.write('usage: solc-wrapper.js --version | --standard-json < input.json\n');
  process.exitCode = 2;
}
