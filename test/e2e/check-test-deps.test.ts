import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO } from './rig.js';

const SCRIPT = join(REPO, 'scripts/check-test-deps.mjs');
const hasChromium = existsSync('/usr/bin/chromium');
const made: string[] = [];

afterAll(() => {
  for (const dir of made) rmSync(dir, { recursive: true, force: true });
});

/** A PATH of one fresh folder holding only node (and what a test adds): no redis-server, no apt-get. */
function barePath(): string {
  const bin = mkdtempSync(join(tmpdir(), 'headstart-bin-'));
  made.push(bin);
  symlinkSync(process.execPath, join(bin, 'node'));
  return bin;
}

function checkWith(path: string) {
  return execa(process.execPath, [SCRIPT], { env: { PATH: path }, extendEnv: false, reject: false });
}

describe('pnpm test checks for redis-server and chromium before turbo starts', () => {
  it('says in one line what to install when redis-server is not on PATH and it cannot install it', async () => {
    const result = await checkWith(barePath());
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toBe('');
    const missing = hasChromium ? 'redis-server' : 'redis-server and chromium';
    const packages = hasChromium ? 'redis-server' : 'redis-server chromium';
    expect(result.stderr).toBe(`pnpm test needs ${missing}: apt-get install ${packages}`);
  });

  it.runIf(hasChromium)('passes silently when what the tests need is there', async () => {
    const bin = barePath();
    symlinkSync(execFileSync('sh', ['-c', 'command -v redis-server'], { encoding: 'utf8' }).trim(), join(bin, 'redis-server'));
    const result = await checkWith(bin);
    expect({ exitCode: result.exitCode, stderr: result.stderr, stdout: result.stdout }).toEqual({ exitCode: 0, stderr: '', stdout: '' });
  });

  it.runIf(hasChromium && process.getuid?.() === 0)('as root with apt-get, installs what is missing and goes on', async () => {
    const bin = barePath();
    const calls = join(bin, 'apt-get.calls');
    // A stand-in apt-get that records its arguments and "installs" redis-server into the same folder.
    writeFileSync(join(bin, 'apt-get'), `#!/bin/sh\necho "$*" >> ${calls}\nprintf '#!/bin/sh\\n' > ${bin}/redis-server\n/bin/chmod +x ${bin}/redis-server\n`);
    chmodSync(join(bin, 'apt-get'), 0o755);
    const result = await checkWith(bin);
    expect(readFileSync(calls, 'utf8')).toBe('update -qq\ninstall -y -qq redis-server\n');
    expect(result.exitCode, result.stderr).toBe(0);
    expect(result.stdout).toBe('pnpm test: installing redis-server (apt-get), which the tests need');
  });
});
