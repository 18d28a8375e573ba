import { mkdirSync, symlinkSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO, Rig } from './rig.js';

const UPPER_JS = `
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
export default {
  name: 'upper', version: '1',
  params: { type: 'object', additionalProperties: false, properties: { suffix: { type: 'string', default: '!' } } },
  inputs: ['text'],
  outputs: ['text'],
  async run(ctx) {
    const text = readFileSync(join(ctx.inputs.text, 'a.txt'), 'utf8').trim();
    ctx.log.info('seed ' + ctx.seed);
    writeFileSync(join(ctx.outputs.text, 'a.txt'), text.toUpperCase() + ctx.params.suffix);
    return { metrics: { length: text.length } };
  },
};
`;

/** A TypeScript step importing the real @headstart/core API, as a user would write it. */
const COUNT_TS = `
import { readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineStep } from '@headstart/core';

interface Params { label: string }

export default defineStep<Params>({
  name: 'count-files',
  version: '1',
  params: { type: 'object', required: ['label'], properties: { label: { type: 'string' } } },
  inputs: ['dir'],
  outputs: ['count'],
  async run(ctx) {
    const n: number = readdirSync(ctx.inputs['dir']!).length;
    writeFileSync(join(ctx.outputs['count']!, 'count.txt'), \`\${ctx.params.label}=\${n}\`);
  },
});
`;

function project(): Rig {
  const rig = new Rig();
  // Give the project the same node_modules a user's would have: @headstart/core installed.
  mkdirSync(join(rig.dir, 'node_modules/@headstart'), { recursive: true });
  symlinkSync(join(REPO, 'packages/core'), join(rig.dir, 'node_modules/@headstart/core'));
  rig.write('steps/upper.js', UPPER_JS);
  rig.write('steps/count.ts', COUNT_TS);
  rig.write('node_modules/headstart-step-reverse/package.json', JSON.stringify({ name: 'headstart-step-reverse', version: '2.1.0', type: 'module', exports: { '.': { import: './index.js' } } }));
  rig.write('node_modules/headstart-step-reverse/index.js', `
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
export default { name: 'reverse', version: '3', params: { type: 'object' }, inputs: ['text'], outputs: ['text'],
  async run(ctx) { writeFileSync(join(ctx.outputs.text, 'a.txt'), [...readFileSync(join(ctx.inputs.text, 'a.txt'), 'utf8')].reverse().join('')); } };
`);
  rig.write('headstart.yaml', `
seed: 7
stages:
  make: { uses: shell, with: { run: "mkdir -p out && echo hello > out/a.txt", outs: { text: out } } }
  upper: { uses: ./steps/upper.js, inputs: { text: make.text } }
  count: { uses: ./steps/count.ts, inputs: { dir: make.text }, with: { label: files } }
  reverse: { uses: headstart-step-reverse, inputs: { text: upper.text } }
`);
  return rig;
}

describe('steps from files and packages', () => {
  it('runs a local .js step, a local .ts step and an npm package step, and caches them', async () => {
    const rig = project();
    const first = await rig.runJson();
    expect(first.exitCode).toBe(0);
    expect(first.statuses).toEqual({ make: 'ran', upper: 'ran', count: 'ran', reverse: 'ran' });
    expect(first.stderr).toContain('[upper] seed 7');
    expect(first.json.stages.find((s) => s.id === 'upper')).toMatchObject({ metrics: { length: 5 } });
    const lock = rig.lockfile() as unknown as { stages: Record<string, { step: Record<string, string>; metrics?: Record<string, number> }> };
    expect(lock.stages['reverse']!.step).toMatchObject({ source: 'package', package: 'headstart-step-reverse', packageVersion: '2.1.0', version: '3' });
    expect(lock.stages['upper']!.step).toMatchObject({ source: 'file', package: 'steps/upper.js' });
    expect(lock.stages['upper']!.metrics).toEqual({ length: 5 });
    expect((await rig.runJson()).statuses).toEqual({ make: 'cached', upper: 'cached', count: 'cached', reverse: 'cached' });
  });

  it('editing a local step file invalidates its stage and says why', async () => {
    const rig = project();
    await rig.runJson();
    rig.write('steps/upper.js', UPPER_JS.replace("'!'", "'?'"));
    const rerun = await rig.runJson();
    expect(rerun.statuses).toEqual({ make: 'cached', upper: 'ran', count: 'cached', reverse: 'ran' });
    expect(rerun.json.stages.find((s) => s.id === 'upper')!.why![0]).toMatch(/^step upper changed \(code [0-9a-f]{8} -> code [0-9a-f]{8}\)$/);
  });

  it('a step whose quality gate fails exits 3, on the run that made it and on cached runs', async () => {
    const rig = project();
    rig.write('steps/gate.js', `export default { name: 'gate', version: '1', params: { type: 'object', properties: { min: { type: 'number' } } }, outputs: ['metrics'],
      async run(ctx) { const accuracy = 0.8; return { metrics: { accuracy }, failedChecks: accuracy < ctx.params.min ? [\`accuracy \${accuracy} is below \${ctx.params.min}\`] : [] }; } };`);
    rig.write('gate.yaml', 'stages:\n  eval: { uses: ./steps/gate.js, with: { min: 0.9 } }\n');
    const first = await rig.run('run', 'gate.yaml');
    expect(first.exitCode).toBe(3);
    expect(first.stderr.trim()).toBe('stage "eval": accuracy 0.8 is below 0.9');
    const cached = await rig.run('run', 'gate.yaml');
    expect(cached.stdout).toContain('· eval: cached');
    expect(cached.exitCode).toBe(3);
    expect((await rig.run('run', 'gate.yaml', '--set', 'eval.min=0.5')).exitCode).toBe(0);
  });

  it('a module that is not a step is a clear error', async () => {
    const rig = project();
    rig.write('steps/notastep.js', 'export const x = 1;\n');
    rig.write('bad.yaml', 'stages:\n  a: { uses: ./steps/notastep.js }\n');
    const result = await rig.run('validate', 'bad.yaml');
    expect(result.exitCode).toBe(2);
    expect(result.stderr.trim()).toBe('bad.yaml:2:14: "./steps/notastep.js" is not a valid step: its default export must be defineStep({...}) (missing name, version, params, outputs, run)');
  });
});
