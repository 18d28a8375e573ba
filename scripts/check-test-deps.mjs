#!/usr/bin/env node
// Runs before `pnpm test`: the queue test starts a real redis-server and the report test opens the
// report in Debian's Chromium, so on a fresh machine they would fail deep inside vitest. As root with
// apt-get (a fresh container, CI) this installs them, as .ci/run used to; otherwise it says, in one
// line, what to install, and exits 1 before turbo starts.
import { spawnSync } from 'node:child_process';
import { accessSync, constants } from 'node:fs';
import { delimiter, join } from 'node:path';

/** test/e2e/report.test.ts launches this path. */
const CHROMIUM = '/usr/bin/chromium';

function isExecutable(file) {
  try {
    accessSync(file, constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

function onPath(command) {
  return (process.env.PATH ?? '').split(delimiter).some((dir) => dir !== '' && isExecutable(join(dir, command)));
}

/** Debian package names of what the tests need and this machine lacks. */
function missingPackages() {
  return [onPath('redis-server') ? null : 'redis-server', isExecutable(CHROMIUM) ? null : 'chromium'].filter(Boolean);
}

function aptInstall(packages) {
  console.log(`pnpm test: installing ${packages.join(' and ')} (apt-get), which the tests need`);
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
  for (const args of [['update', '-qq'], ['install', '-y', '-qq', ...packages]]) {
    if (spawnSync('apt-get', args, { stdio: ['ignore', 'ignore', 'inherit'], env }).status !== 0) return;
  }
}

let missing = missingPackages();
if (missing.length > 0 && process.getuid?.() === 0 && onPath('apt-get')) {
  aptInstall(missing);
  missing = missingPackages();
}
if (missing.length > 0) {
  console.error(`pnpm test needs ${missing.join(' and ')}: apt-get install ${missing.join(' ')}`);
  process.exit(1);
}
