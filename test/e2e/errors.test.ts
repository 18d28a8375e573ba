import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { Rig } from './rig.js';

/** Every result in the cache (not the compiled validators and parsed files): user errors must not change them. */
function cacheListing(rig: Rig): string[] {
  const root = join(rig.dir, '.headstart', 'cache');
  try {
    return (readdirSync(root, { recursive: true }) as string[]).filter((p) => !p.startsWith('validators') && !p.startsWith('parsed')).sort();
  } catch {
    return [];
  }
}

const GOOD = `stages:
  a: { uses: shell, with: { run: "echo a > a.txt", outs: [a.txt] } }
`;

async function expectUserError(pipeline: string, expected: string | RegExp, ...args: string[]) {
  const rig = new Rig();
  rig.write('good.yaml', GOOD);
  await rig.run('run', 'good.yaml');
  const before = cacheListing(rig);
  rig.write('headstart.yaml', pipeline);
  const result = await rig.run('run', ...args);
  expect(result.exitCode).toBe(2);
  const lines = result.stderr.trim().split('\n');
  expect(lines).toHaveLength(1);
  if (typeof expected === 'string') expect(lines[0]).toBe(expected);
  else expect(lines[0]).toMatch(expected);
  expect(result.stderr).not.toMatch(/\n\s+at /);
  expect(cacheListing(rig)).toEqual(before);
}

describe('user errors: one line, file:line:col, exit 2, cache untouched', () => {
  it('invalid YAML', () => expectUserError('stages:\n  a: { uses: shell\n', /^headstart\.yaml:3:1: invalid YAML: /));

  it('unknown step', () => expectUserError('stages:\n  a:\n    uses: shel\n    with: { run: x }\n', 'headstart.yaml:3:11: unknown step "shel" (did you mean "shell"?)'));

  it('misspelt stage key', () => expectUserError('stages:\n  a:\n    uses: shell\n    whith: { run: x }\n', 'headstart.yaml:4:5: unknown key "whith" in stage "a" (did you mean "with"?)'));

  it('bad parameter type', () => expectUserError('stages:\n  a:\n    uses: shell\n    with: { run: x, deps: data }\n', 'headstart.yaml:4:27: stage "a": "deps" must be array'));

  it('misspelt parameter', () => expectUserError('stages:\n  a:\n    uses: shell\n    with: { rn: x }\n', 'headstart.yaml:4:13: stage "a": unknown key "rn" in the parameters of step "shell" (did you mean "run"?)'));

  it('reference to a missing stage', () =>
    expectUserError(
      'stages:\n  data: { uses: shell, with: { run: x, outs: [x] } }\n  b:\n    uses: shell\n    inputs: { d: dat.x }\n    with: { run: x }\n',
      'headstart.yaml:5:18: unknown stage "dat" (did you mean "data"?)',
    ));

  it('reference to a missing output', () =>
    expectUserError(
      'stages:\n  data: { uses: shell, with: { run: x, outs: [x.txt] } }\n  b:\n    uses: shell\n    inputs: { d: data.y.txt }\n    with: { run: x }\n',
      'headstart.yaml:5:18: stage "data" has no output "y.txt" (did you mean "x.txt"?)',
    ));

  it('a cycle', () =>
    expectUserError('stages:\n  a: { uses: shell, with: { run: x }, needs: [b] }\n  b: { uses: shell, with: { run: x }, needs: [a] }\n', 'headstart.yaml:2:3: cycle between stages: a -> b -> a'));

  it('duplicate stage names', () => expectUserError('stages:\n  a: { uses: shell, with: { run: x } }\n  a: { uses: shell, with: { run: y } }\n', 'headstart.yaml:3:3: duplicate stage "a"'));

  it('a missing pipeline file', () => expectUserError(GOOD, 'nope.yaml: no such file', 'nope.yaml'));

  it('a missing local step file', () => expectUserError('stages:\n  a: { uses: ./steps/none.js }\n', 'headstart.yaml:2:14: unknown step "./steps/none.js": steps/none.js does not exist'));

  it('an unknown --stage target', () => expectUserError(GOOD, 'no stage named "ab" (did you mean "a"?)', 'good.yaml', '--stage', 'ab'));

  it('a missing deps path', () => expectUserError('stages:\n  a: { uses: shell, with: { run: x, deps: [missing/] } }\n', /^headstart\.yaml:2:3: stage "a": missing\/ does not exist$/));

  it('an unknown --set param', () => expectUserError('params: { n: 1 }\nstages:\n  a: { uses: shell, with: { run: x } }\n', '--set params.m=2: the pipeline has no param "m"', '--set', 'params.m=2'));
});

describe('failing stages', () => {
  it('a command that exits non-zero fails its stage with the stderr tail, exit 1, and stops new stages', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', `stages:
  bad: { uses: shell, with: { run: "echo working; echo 'disk on fire' >&2; exit 3" } }
  after: { uses: shell, needs: [bad], with: { run: "echo never" } }
`);
    const result = await rig.run('run');
    expect(result.exitCode).toBe(1);
    expect(result.stdout).toContain('[bad] working');
    expect(result.stderr).toContain('stage "bad" failed: command exited with code 3: disk on fire');
    expect(result.stdout).toContain('- after: skipped (upstream bad failed)');
    expect(result.stderr).not.toMatch(/\n\s+at /);
  });

  it('--keep-going runs what does not depend on the failure', async () => {
    const rig = new Rig();
    rig.write('headstart.yaml', `stages:
  bad: { uses: shell, with: { run: "exit 1" } }
  other: { uses: shell, needs: [bad], with: { run: "true" } }
  independent: { uses: shell, with: { run: "echo ok > ok.txt", outs: [ok.txt] } }
`);
    const result = await rig.runJson('--keep-going', '--jobs', '1');
    expect(result.exitCode).toBe(1);
    expect(result.statuses).toEqual({ bad: 'failed', other: 'skipped', independent: 'ran' });
    const noKeepGoing = new Rig();
    noKeepGoing.write('headstart.yaml', rig.read('headstart.yaml'));
    expect((await noKeepGoing.runJson('--jobs', '1')).statuses).toEqual({ bad: 'failed', other: 'skipped', independent: 'skipped' });
  });
});
