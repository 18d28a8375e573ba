import { mkdirSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defineStep, formatFailure, loadPipeline, materialize, openCache, recordRun, runEntryFor, runPipeline, sha256, type Failure, type Reporter, type StepRegistry } from '../src/index.js';
import { redactSecrets, runtimeParams } from '../src/secrets.js';
import { runStageJob } from '../src/stage-runner.js';
import { sha256 as digest } from '../src/util/digest.js';
import { testRegistry, writePipeline } from './helpers.js';

const SECRET = 's3cr3t-token-value';

/** Logs its token and, when asked, fails with it in the message: what a careless step or command does. */
const leakStep = defineStep<{ token: string; fail: boolean }>({
  name: 'leak',
  version: '1',
  params: { type: 'object', additionalProperties: false, properties: { token: { type: 'string' }, fail: { type: 'boolean', default: false } } },
  outputs: ['out'],
  async run(ctx) {
    ctx.log.info(`calling the API with ${ctx.params.token}`);
    if (ctx.params.fail) throw new Error(`401 for token ${ctx.params.token}`);
    writeFileSync(join(ctx.outputs['out']!, 'token.txt'), ctx.params.token);
  },
});

const registry: StepRegistry = { ...testRegistry, steps: new Map([...testRegistry.steps, ['leak', { load: async () => leakStep }]]) };

interface Logged {
  lines: string[];
  reporter: Reporter;
}

function logged(): Logged {
  const lines: string[] = [];
  return { lines, reporter: { stageStarted() {}, stageFinished() {}, log: (_stage, _level, message) => lines.push(message), progress() {}, warn() {} } };
}

async function runWith(file: string, env: Record<string, string>, log = logged()) {
  const loaded = await loadPipeline(file, { registry, env });
  if (!loaded.ok) throw new Error(loaded.error.map((f) => formatFailure(f)).join('\n'));
  const cacheDir = join(dirname(file), 'cache');
  const summary = await runPipeline(loaded.value, { cache: openCache(cacheDir, () => {}), reporter: log.reporter, jobs: 1 });
  await recordRun(cacheDir, runEntryFor(loaded.value, summary, { startedAt: new Date(), git: null, overrides: [] }));
  return { pipeline: loaded.value, summary, cacheDir };
}

/** Every file under `dir` but the object store (where a step's own output may hold what it was given). */
function filesOutsideObjects(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((path) => !path.startsWith('objects') && !path.startsWith('trees'))
    .map((path) => join(dir, path))
    .filter((path) => statSync(path).isFile());
}

describe('${env.X} in with: is a secret', () => {
  const PIPELINE = 'stages:\n  call: { uses: leak, with: { token: "Bearer ${env.API_TOKEN}" } }\n';

  it('runs the step with the value but keys, records, lock file and run log keep the reference', async () => {
    const file = writePipeline(PIPELINE);
    const { summary, cacheDir } = await runWith(file, { API_TOKEN: SECRET });
    const outcome = summary.stages[0]!;
    expect(outcome.status).toBe('ran');
    expect(outcome.record!.keyDocument.params).toEqual({ token: 'Bearer ${env.API_TOKEN}', fail: false });
    expect(outcome.record!.keyDocument.env).toEqual({ sha256: { API_TOKEN: digest(SECRET) }, paths: [['token']] });
    const lock = readFileSync(join(dirname(file), 'headstart.lock'), 'utf8');
    expect(lock).toContain('Bearer ${env.API_TOKEN}');
    expect(lock).not.toContain(SECRET);
    const stored = filesOutsideObjects(cacheDir);
    expect(stored.some((path) => path.includes('runs'))).toBe(true);
    for (const path of stored) expect(readFileSync(path, 'latin1'), path).not.toContain(SECRET);
    // The step itself had the real value.
    const output = await materialize(outcome.record!.outputs['out']!, openCache(cacheDir, () => {}).store);
    expect(readFileSync(join(output, 'token.txt'), 'utf8')).toBe(`Bearer ${SECRET}`);
  });

  it('a new value is a new key, the same value the same key', async () => {
    const file = writePipeline(PIPELINE);
    const first = await runWith(file, { API_TOKEN: SECRET });
    const again = await runWith(file, { API_TOKEN: SECRET });
    const changed = await runWith(file, { API_TOKEN: `${SECRET}-rotated` });
    expect(again.summary.stages[0]!.status).toBe('cached');
    expect(changed.summary.stages[0]!.status).toBe('ran');
    expect(changed.summary.stages[0]!.key).not.toBe(first.summary.stages[0]!.key);
    expect(changed.summary.stages[0]!.why).toEqual(['environment variable API_TOKEN changed']);
  });

  it('masks the value in log lines and in the failure', async () => {
    const file = writePipeline('stages:\n  call: { uses: leak, with: { token: "${env.API_TOKEN}", fail: true } }\n');
    const log = logged();
    const { summary } = await runWith(file, { API_TOKEN: SECRET }, log);
    const failure = summary.stages[0]!.failure as Extract<Failure, { reason: 'stage-failed' }>;
    expect(failure.detail).toBe('401 for token ${env.API_TOKEN}');
    expect(log.lines).toEqual(['calling the API with ${env.API_TOKEN}']);
  });

  it('a stage that names no ${env.…} keeps its key document unchanged (no env field)', async () => {
    const file = writePipeline('stages:\n  a: { uses: echo, with: { text: "hi $${env.X}" } }\n');
    const { summary } = await runWith(file, {});
    expect(summary.stages[0]!.record!.keyDocument).not.toHaveProperty('env');
    expect(summary.stages[0]!.record!.keyDocument.params).toEqual({ text: 'hi ${env.X}', times: 1 });
  });

  it('an escaped reference and a real one in one string stay apart in the key', async () => {
    const one = await loadPipeline(writePipeline('stages:\n  a: { uses: echo, with: { text: "$${env.T} ${env.T}" } }\n'), { registry, env: { T: SECRET } });
    const two = await loadPipeline(writePipeline('stages:\n  a: { uses: echo, with: { text: "${env.T} $${env.T}" } }\n'), { registry, env: { T: SECRET } });
    if (!one.ok || !two.ok) throw new Error('did not load');
    expect(one.value.stages.get('a')!.params['text']).toBe(`\${env.T} ${SECRET}`);
    expect(two.value.stages.get('a')!.params['text']).toBe(`${SECRET} \${env.T}`);
    expect(one.value.stages.get('a')!.keyParams['text']).not.toBe(two.value.stages.get('a')!.keyParams['text']);
  });
});

describe('a stage run elsewhere (a queue worker) takes ${env.X} from its own environment', () => {
  async function keyed() {
    const file = writePipeline('stages:\n  call: { uses: leak, with: { token: "${env.API_TOKEN}" } }\n');
    const loaded = await loadPipeline(file, { registry, env: { API_TOKEN: SECRET } });
    if (!loaded.ok) throw new Error('did not load');
    const stage = loaded.value.stages.get('call')!;
    return { keyParams: stage.keyParams, env: stage.envKey!, seed: 0 };
  }

  it('fills in the value when it hashes to the key', async () => {
    const { keyParams, env } = await keyed();
    const document = { keyVersion: 1 as const, step: leakStep as never, params: keyParams, inputs: {}, deps: {}, seed: 0, env };
    expect(runtimeParams(document, { API_TOKEN: SECRET }).params).toEqual({ token: SECRET, fail: false });
  });

  it('refuses an unset or different value with a user error', async () => {
    const { keyParams, env } = await keyed();
    const document = { keyVersion: 1 as const, step: leakStep as never, params: keyParams, inputs: {}, deps: {}, seed: 0, env };
    expect(() => runtimeParams(document, {})).toThrow('environment variable API_TOKEN is not set here');
    expect(() => runtimeParams(document, { API_TOKEN: 'other' })).toThrow('environment variable API_TOKEN here differs from the value the stage was keyed with');
    const cache = openCache(join(dirname(writePipeline('')), 'cache'), () => {});
    const job = { key: 'k' as never, stage: 'call', uses: 'leak', workdir: '/', keyDocument: document, inputs: {}, outputs: ['out'] };
    await expect(runStageJob(job, leakStep, cache, { signal: new AbortController().signal, log() {}, progress() {} }, {})).rejects.toMatchObject({ name: 'StepUserError' });
  });

  it('does not mask values shorter than 4 characters', () => {
    expect(redactSecrets('yes: abc, abcd', { SHORT: 'abc', LONG: 'abcd' })).toBe('yes: abc, ${env.LONG}');
  });
});

describe('keys that reach Object.prototype', () => {
  async function errorsOf(text: string, overrides: string[] = []): Promise<string[]> {
    const path = writePipeline(text);
    const result = await loadPipeline(path, { registry, overrides, env: {} });
    return result.ok ? [] : result.error.map((failure) => formatFailure(failure, dirname(path)));
  }

  it('--set params.__proto__.x is refused and pollutes nothing', async () => {
    const errors = await errorsOf('params: { a: 1 }\nstages:\n  a: { uses: echo, with: { text: hi } }\n', ['params.__proto__.polluted=1']);
    expect(({} as Record<string, unknown>)['polluted']).toBeUndefined();
    expect(errors).toEqual(['--set params.__proto__.polluted=1: "__proto__" cannot be a key']);
  });

  it('--set STAGE.constructor… and a __proto__ key inside a --set value are refused', async () => {
    const text = 'stages:\n  a: { uses: echo, with: { text: hi } }\n';
    expect(await errorsOf(text, ['constructor.with=1'])).toEqual(['--set constructor.with=1: "constructor" cannot be a key']);
    expect(await errorsOf(text, ['toString.with=1'])).toEqual(['--set toString.with=1: no stage "toString"']);
    expect(Object.hasOwn(Object.prototype.toString, 'with')).toBe(false);
    expect(await errorsOf(text, ['a.text={__proto__: {x: 1}}'])).toEqual(['--set a.text={__proto__: {x: 1}}: the value is not valid YAML: "__proto__" cannot be a key']);
  });

  it('a __proto__, constructor or prototype key in the file is refused where it is', async () => {
    expect(await errorsOf('stages:\n  a: { uses: echo, with: { text: hi, __proto__: { x: 1 } } }\n')).toEqual(['headstart.yaml:2:38: "__proto__" cannot be a key']);
    expect(await errorsOf('params:\n  prototype: 1\nstages:\n  a: { uses: echo, with: { text: hi } }\n')).toEqual(['headstart.yaml:2:3: "prototype" cannot be a key']);
  });

  it('${params.constructor} is not found (an own key only)', async () => {
    expect(await errorsOf('params: { a: 1 }\nstages:\n  a: { uses: echo, with: { text: "${params.constructor}" } }\n')).toEqual([
      'headstart.yaml:3:34: cannot interpolate "${params.constructor}": "params" has no "constructor"',
    ]);
  });
});

describe('hostile pipeline files are one line each', () => {
  async function errorsOfFile(path: string, overrides: string[] = [], cacheDir?: string): Promise<string[]> {
    const result = await loadPipeline(path, { registry, overrides, env: {}, ...(cacheDir ? { cacheDir } : {}) });
    return result.ok ? [] : result.error.map((failure) => formatFailure(failure, dirname(path)));
  }

  it('an alias bomb', async () => {
    const levels = ['a: &a [x, x, x, x, x, x, x, x, x]', ...'bcdefgh'.split('').map((name, i) => `${name}: &${name} [${Array(9).fill(`*${'abcdefg'[i]}`).join(', ')}]`)];
    const path = writePipeline(`${levels.join('\n')}\nstages:\n  s: { uses: echo, with: { text: hi } }\n`);
    expect(await errorsOfFile(path)).toEqual(['headstart.yaml:2:8: invalid YAML: aliases expand to too much data (more than 1000 aliased nodes)']);
  });

  it('mappings nested 2,000 deep', async () => {
    const deep = Array.from({ length: 2000 }, (_, i) => `${' '.repeat(i)}k:`).join('\n');
    const path = writePipeline(`stages: {}\nx:\n${deep.replace(/^/gm, '  ')} 1\n`);
    expect(await errorsOfFile(path)).toEqual(['headstart.yaml:67:67: invalid YAML: nested more than 64 levels deep']);
  });

  it('a --set value that is not valid YAML', async () => {
    const path = writePipeline('params: { size: 1 }\nstages:\n  s: { uses: echo, with: { text: hi } }\n');
    const errors = await errorsOfFile(path, ['params.size=[1,2']);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^--set params\.size=\[1,2: the value is not valid YAML: /);
  });

  it('a byte that is not UTF-8, with its line', async () => {
    const path = writePipeline('');
    writeFileSync(path, Buffer.concat([Buffer.from('stages:\n  s:\n    uses: echo\n    with: { text: "caf'), Buffer.from([0xe9]), Buffer.from('" }\n')]));
    expect(await errorsOfFile(path)).toEqual(['headstart.yaml:4:23: invalid YAML: the file is not valid UTF-8 (byte 0xe9); save it as UTF-8']);
  });

  it('a duplicate key inside with:, even in a file remembered by older checks', async () => {
    const text = 'stages:\n  s:\n    uses: echo\n    with:\n      text: first\n      text: second\n';
    const path = writePipeline(text);
    const cacheDir = join(dirname(path), 'cache');
    // What the previous version remembered for this text (it passed its checks).
    mkdirSync(join(cacheDir, 'parsed'), { recursive: true });
    writeFileSync(join(cacheDir, 'parsed', `${sha256(text)}.json`), JSON.stringify({ stages: { s: { uses: 'echo', with: { text: 'second' } } } }));
    expect(await errorsOfFile(path, [], cacheDir)).toEqual(['headstart.yaml:6:7: invalid YAML: duplicate key "text" (an earlier one in the same mapping would be ignored)']);
    expect(await errorsOfFile(path)).toEqual(['headstart.yaml:6:7: invalid YAML: duplicate key "text" (an earlier one in the same mapping would be ignored)']);
  });

  it('a second YAML document is refused, not dropped', async () => {
    const path = writePipeline('stages:\n  a: { uses: echo, with: { text: x } }\n---\nstages:\n  b: { uses: echo, with: { text: y } }\n');
    expect(await errorsOfFile(path)).toEqual(['headstart.yaml:3:1: invalid YAML: a second YAML document (after `---`); a pipeline file holds one']);
  });

  it('a duplicate stage keeps its own message', async () => {
    const path = writePipeline('stages:\n  a: { uses: echo, with: { text: x } }\n  a: { uses: echo, with: { text: y } }\n');
    expect(await errorsOfFile(path)).toEqual(['headstart.yaml:3:3: duplicate stage "a"']);
  });
});
