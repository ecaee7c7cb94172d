#!/usr/bin/env node
// Package hygiene checks (plain Node.js, no dependencies). Run from anywhere: `node scripts/check-packages.mjs`.
//
// Every package under packages/ and apps/ must have a package.json, a README.md and a `test` script.
// Every packages/backend-<id> must also (see docs/contributing/add-a-backend.md):
//   - export its factory `create<Id>Backend` and its settings type `<Id>BackendSettings` from src/index.ts,
//   - depend on @gen/backend,
//   - have a test file under src/ that calls runBackendConformanceTests (from @gen/testkit, a devDependency).
// Exits with status 1 and one line per problem when anything is missing.

import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');
const problems = [];

function report(where, message) {
  problems.push(`${where}: ${message}`);
}

function packageDirs(parent) {
  const dir = path.join(root, parent);
  if (!existsSync(dir)) return [];
  return readdirSync(dir)
    .filter((name) => !name.startsWith('.') && statSync(path.join(dir, name)).isDirectory())
    .map((name) => path.join(parent, name));
}

function readJson(file) {
  try {
    return JSON.parse(readFileSync(file, 'utf8'));
  } catch (error) {
    return error;
  }
}

/** Files under `dir` (recursively, skipping node_modules and dist) whose name satisfies `accept`. */
function findFiles(dir, accept) {
  if (!existsSync(dir)) return [];
  const found = [];
  for (const entry of readdirSync(dir, { withFileTypes: true })) {
    if (entry.name === 'node_modules' || entry.name === 'dist') continue;
    const full = path.join(dir, entry.name);
    if (entry.isDirectory()) found.push(...findFiles(full, accept));
    else if (accept(entry.name)) found.push(full);
  }
  return found;
}

/** Names exported by a TypeScript module's source (export lists, functions, classes, consts, types). */
function exportedNames(source) {
  const names = new Set();
  const withoutComments = source.replace(/\/\*[\s\S]*?\*\//g, '').replace(/\/\/.*$/gm, '');
  for (const match of withoutComments.matchAll(/export\s+(?:type\s+)?\{([^}]*)\}/g)) {
    for (const part of match[1].split(',')) {
      const item = part.trim().replace(/^type\s+/, '');
      if (item === '') continue;
      const alias = item.split(/\s+as\s+/);
      names.add((alias[1] ?? alias[0]).trim());
    }
  }
  for (const match of withoutComments.matchAll(
    /export\s+(?:declare\s+)?(?:async\s+)?(?:function\*?|class|const|let|var|interface|type|enum)\s+([A-Za-z_$][\w$]*)/g,
  )) {
    names.add(match[1]);
  }
  return names;
}

function pascalCase(id) {
  return id
    .split(/[-_]/)
    .filter(Boolean)
    .map((part) => part[0].toUpperCase() + part.slice(1))
    .join('');
}

function checkPackage(relative) {
  const dir = path.join(root, relative);
  const manifestFile = path.join(dir, 'package.json');
  if (!existsSync(manifestFile)) {
    report(relative, 'has no package.json');
    return;
  }
  const manifest = readJson(manifestFile);
  if (manifest instanceof Error) {
    report(relative, `package.json does not parse (${manifest.message})`);
    return;
  }
  if (!existsSync(path.join(dir, 'README.md'))) report(relative, 'has no README.md (add one with a runnable example)');
  if (typeof manifest.scripts?.test !== 'string' || manifest.scripts.test.trim() === '') {
    report(relative, 'package.json has no "test" script (use "vitest run")');
  }

  const folder = path.basename(relative);
  if (!relative.startsWith('packages') || !folder.startsWith('backend-')) return;

  // A backend package.
  const id = folder.slice('backend-'.length);
  const factory = `create${pascalCase(id)}Backend`;
  const settings = `${pascalCase(id)}BackendSettings`;
  const indexFile = path.join(dir, 'src', 'index.ts');
  if (!existsSync(indexFile)) {
    report(relative, `has no src/index.ts (it must export ${factory} and ${settings})`);
  } else {
    const names = [...exportedNames(readFileSync(indexFile, 'utf8'))];
    const factories = names.filter((name) => /^create\w*Backend$/.test(name));
    if (factories.length === 0) {
      report(relative, `src/index.ts exports no create*Backend factory (expected \`${factory}\`)`);
    } else if (!factories.some((name) => name.toLowerCase() === factory.toLowerCase())) {
      report(relative, `src/index.ts exports ${factories.join(', ')} but the factory of ${folder} is \`${factory}\``);
    }
    if (!names.some((name) => name.toLowerCase() === settings.toLowerCase())) {
      report(relative, `src/index.ts does not export the settings type \`${settings}\``);
    }
  }
  const dependencies = { ...manifest.dependencies, ...manifest.peerDependencies };
  if (dependencies['@gen/backend'] === undefined) {
    report(relative, 'package.json does not depend on @gen/backend (the BackendV1 spec it implements)');
  }
  if (manifest.devDependencies?.['@gen/testkit'] === undefined) {
    report(relative, 'package.json has no devDependency on @gen/testkit (the conformance suite)');
  }
  const tests = findFiles(path.join(dir, 'src'), (name) => name.endsWith('.test.ts'));
  const conformance = tests.filter((file) => /\brunBackendConformanceTests\s*\(/.test(readFileSync(file, 'utf8')));
  if (conformance.length === 0) {
    report(relative, 'no src/**/*.test.ts calls runBackendConformanceTests (add src/conformance.test.ts)');
  }
}

const packages = [...packageDirs('packages'), ...packageDirs('apps')];
for (const relative of packages) checkPackage(relative);

if (problems.length > 0) {
  console.error(`check-packages: ${problems.length} problem${problems.length === 1 ? '' : 's'}`);
  for (const problem of problems) console.error(`  - ${problem}`);
  process.exit(1);
}
console.log(`check-packages: ${packages.length} packages OK`);
