import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { defineStep, describeParamSource, formatFailure, loadPipeline, openCache, runPipeline, type Reporter, type StageOutcome, type StepRegistry } from '../src/index.js';
import { testRegistry, writePipeline } from './helpers.js';

/** Writes `{ "lr": value }` as lr.json; `note` changes the key but not the bytes (early cut-off). */
const suggestStep = defineStep<{ value: number; note: string }>({
  name: 'suggest',
  version: '1',
  params: { type: 'object', additionalProperties: false, properties: { value: { type: 'number' }, note: { type: 'string', default: '' } } },
  outputs: ['lr'],
  async run(ctx) {
    writeFileSync(join(ctx.outputs['lr']!, 'lr.json'), JSON.stringify({ lr: ctx.params.value, curve: [] }));
  },
});

/** Like a training step: `lr` from its param, or from the optional `lr` input × `lr_scale`. */
const fitStep = defineStep<{ lr: number; lr_scale: number }>({
  name: 'fit',
  version: '1',
  params: { type: 'object', additionalProperties: false, properties: { lr: { type: 'number', default: 0.1 }, lr_scale: { type: 'number', default: 1 } } },
  inputs: ['data'],
  optionalInputs: ['lr'],
  paramInputs: { lr: { input: 'lr', file: 'lr.json', field: 'lr', scale: 'lr_scale' } },
  outputs: ['model'],
  async run(ctx) {
    const dir = ctx.inputs['lr'];
    const lr = dir === undefined ? ctx.params.lr : (JSON.parse(readFileSync(join(dir, 'lr.json'), 'utf8')) as { lr: number }).lr * ctx.params.lr_scale;
    writeFileSync(join(ctx.outputs['model']!, 'lr.txt'), String(lr));
    return { metrics: { lr } };
  },
});

const registry: StepRegistry = { ...testRegistry, steps: new Map([...testRegistry.steps, ['suggest', { load: async () => suggestStep }], ['fit', { load: async () => fitStep }]]) };
const quiet: Reporter = { stageStarted() {}, stageFinished() {}, log() {}, progress() {}, warn() {} };

async function errorsOf(text: string): Promise<string[]> {
  const path = writePipeline(text);
  const result = await loadPipeline(path, { registry, env: {} });
  return result.ok ? [] : result.error.map((failure) => formatFailure(failure, dirname(path)));
}

function pipelineText(suggest: string, fit = '{ data: data.out, lr: find.lr }', fitWith = '{ lr_scale: 0.5 }'): string {
  return `stages:
  data: { uses: echo, with: { text: x } }
  find: { uses: suggest, with: ${suggest} }
  fit: { uses: fit, inputs: ${fit}, with: ${fitWith} }
`;
}

/** Runs (or dry-runs) the pipeline file at `file` on its own cache; the outcome of each stage by id. */
async function run(file: string, dryRun = false): Promise<Record<string, StageOutcome>> {
  const loaded = await loadPipeline(file, { registry, env: {} });
  if (!loaded.ok) throw new Error(loaded.error.map((f) => formatFailure(f)).join('\n'));
  const cache = openCache(join(dirname(file), 'cache'), () => {});
  const summary = await runPipeline(loaded.value, { cache, reporter: quiet, jobs: 1, dryRun });
  await cache.close();
  return Object.fromEntries(summary.stages.map((outcome) => [outcome.id, outcome]));
}

describe('optional inputs', () => {
  it('may be wired or left out; an unknown input and a missing required one are still refused', async () => {
    expect(await errorsOf(pipelineText('{ value: 0.01 }'))).toEqual([]);
    expect(await errorsOf(pipelineText('{ value: 0.01 }', '{ data: data.out }', '{}'))).toEqual([]);
    expect(await errorsOf(pipelineText('{ value: 0.01 }', '{ data: data.out, lrr: find.lr }', '{}'))).toEqual(['headstart.yaml:4:47: step "fit" has no input "lrr" (did you mean "lr"?)']);
    expect(await errorsOf(pipelineText('{ value: 0.01 }', '{ lr: find.lr }'))).toEqual(['headstart.yaml:4:3: stage "fit" is missing input "data" (step "fit" reads it)']);
  });

  it('a param its input sets cannot be written in with: too, nor its scale without the input', async () => {
    expect(await errorsOf(pipelineText('{ value: 0.01 }', '{ data: data.out, lr: find.lr }', '{ lr: 0.3 }'))).toEqual([
      'headstart.yaml:4:70: stage "fit": "lr" is set by input "lr" × lr_scale: remove it from with:, or leave the input out',
    ]);
    expect(await errorsOf(pipelineText('{ value: 0.01 }', '{ data: data.out }', '{ lr_scale: 2 }'))).toEqual([
      'headstart.yaml:4:57: stage "fit": "lr_scale" scales input "lr", which the stage does not wire (inputs: { lr: STAGE.OUTPUT })',
    ]);
  });

  it('a wired optional input is keyed by content: same bytes stay cached, new bytes re-run the consumer', async () => {
    const file = writePipeline(pipelineText('{ value: 0.01 }'));
    const first = await run(file);
    expect(first['fit']).toMatchObject({ status: 'ran', record: { metrics: { lr: 0.005 } } });

    writeFileSync(file, pipelineText('{ value: 0.01, note: again }'));
    const sameBytes = await run(file);
    expect(sameBytes['find']!.status).toBe('ran');
    expect(sameBytes['fit']).toMatchObject({ status: 'cached', key: first['fit']!.key });

    writeFileSync(file, pipelineText('{ value: 0.02 }'));
    const newBytes = await run(file);
    expect(newBytes['fit']).toMatchObject({ status: 'ran', why: ['input lr changed'], record: { metrics: { lr: 0.01 } } });

    writeFileSync(file, pipelineText('{ value: 0.02 }', '{ data: data.out }', '{}'));
    expect((await run(file))['fit']).toMatchObject({ status: 'ran', record: { metrics: { lr: 0.1 } } });
  });

  it('a dry run says where a param comes from, with the value once the upstream result is cached', async () => {
    const file = writePipeline(pipelineText('{ value: 0.004 }'));
    const before = await run(file, true);
    expect(before['fit']!.sources).toEqual([{ param: 'lr', from: 'find.lr', scale: { param: 'lr_scale', value: 0.5 } }]);
    expect(describeParamSource(before['fit']!.sources![0]!)).toBe('lr ← find.lr × lr_scale 0.5');

    await run(file);
    const after = await run(file, true);
    expect(after['fit']!.status).toBe('cached');
    expect(describeParamSource(after['fit']!.sources![0]!)).toBe('lr ← find.lr 0.004 × lr_scale 0.5 = 0.002');
    expect(after['data']!.sources).toBeUndefined();

    writeFileSync(file, pipelineText('{ value: 0.004 }', '{ data: data.out }', '{}'));
    expect((await run(file, true))['fit']!.sources).toBeUndefined();
  });

  it('a step whose param names an input it does not declare optional is a bug in the step', () => {
    expect(() => defineStep({ name: 'bad', version: '1', params: {}, inputs: ['lr'], paramInputs: { lr: { input: 'lr', file: 'lr.json', field: 'lr' } }, outputs: [], async run() {} })).toThrow(
      'step bad: param lr is set by input lr, which is not in optionalInputs',
    );
  });
});
