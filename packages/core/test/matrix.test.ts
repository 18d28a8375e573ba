import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatFailure, loadPipeline, openCache, runPipeline, selectStages, type Pipeline, type Reporter } from '../src/index.js';
import { testRegistry, writePipeline } from './helpers.js';

async function load(text: string, overrides: string[] = []): Promise<Pipeline> {
  const result = await loadPipeline(writePipeline(text), { registry: testRegistry, overrides, env: {} });
  if (!result.ok) throw new Error(result.error.map((f) => formatFailure(f)).join('\n'));
  return result.value;
}

async function errorsOf(text: string, overrides: string[] = []): Promise<string[]> {
  const path = writePipeline(text);
  const result = await loadPipeline(path, { registry: testRegistry, overrides, env: {} });
  if (result.ok) throw new Error(`expected errors, loaded ${[...result.value.stages.keys()].join(' ')}`);
  return result.error.map((failure) => formatFailure(failure, dirname(path)));
}

const SWEEP = `
matrix: { lr: [0.001, 0.0001], base: [mobilenet_v2, inception_v3] }
stages:
  data: { uses: echo, with: { text: data } }
  prep: { uses: echo, inputs: { d: data.out }, with: { text: prep } }
  extract: { uses: echo, inputs: { d: prep.out }, with: { text: "features of \${matrix.base}" } }
  head: { uses: train, inputs: { data: extract.out }, with: { lr: "\${matrix.lr}", epochs: 2 } }
  eval: { uses: echo, inputs: { m: head.model }, with: { text: eval } }
`;

describe('matrix expansion', () => {
  it('expands each stage over the axes it uses and those of its inputs only', async () => {
    const pipeline = await load(SWEEP);
    expect(pipeline.order).toEqual([
      'data',
      'prep',
      'extract@base=mobilenet_v2',
      'extract@base=inception_v3',
      'head@lr=0.001,base=mobilenet_v2',
      'head@lr=0.001,base=inception_v3',
      'head@lr=0.0001,base=mobilenet_v2',
      'head@lr=0.0001,base=inception_v3',
      'eval@lr=0.001,base=mobilenet_v2',
      'eval@lr=0.001,base=inception_v3',
      'eval@lr=0.0001,base=mobilenet_v2',
      'eval@lr=0.0001,base=inception_v3',
    ]);
    const head = pipeline.stages.get('head@lr=0.0001,base=inception_v3')!;
    expect(head.name).toBe('head');
    expect(head.matrix).toEqual({ lr: 0.0001, base: 'inception_v3' });
    expect(head.params).toEqual({ lr: 0.0001, epochs: 2, layers: [] });
    expect(head.inputs).toEqual({ data: { stage: 'extract@base=inception_v3', output: 'out' } });
    expect(pipeline.stages.get('extract@base=mobilenet_v2')!.params['text']).toBe('features of mobilenet_v2');
    expect(pipeline.stages.get('eval@lr=0.001,base=inception_v3')!.upstream).toEqual(['head@lr=0.001,base=inception_v3']);
    expect(pipeline.stages.get('extract@base=inception_v3')!.upstream).toEqual(['prep']);
  });

  it('a stage-level matrix expands that stage and what takes its outputs, nothing upstream', async () => {
    const pipeline = await load(`
stages:
  data: { uses: echo, with: { text: data } }
  head: { uses: train, inputs: { data: data.out }, matrix: { epochs: [1, 2, 3] }, with: { epochs: "\${matrix.epochs}" } }
  eval: { uses: echo, inputs: { m: head.model }, with: { text: "epochs \${matrix.epochs}" } }
`);
    expect(pipeline.order).toEqual(['data', 'head@epochs=1', 'head@epochs=2', 'head@epochs=3', 'eval@epochs=1', 'eval@epochs=2', 'eval@epochs=3']);
    expect(pipeline.stages.get('eval@epochs=3')!.params['text']).toBe('epochs 3');
  });

  it('an input can pick axis values (`stage@axis=value.output`); the axes it leaves open still fan out', async () => {
    const pipeline = await load(`${SWEEP}
  best: { uses: echo, inputs: { a: "head@base=inception_v3,lr=0.0001.model", b: "head@lr=0.001,base=mobilenet_v2.model" }, with: { text: compare } }
  per_base: { uses: echo, inputs: { m: "head@lr=0.001.model" }, with: { text: "\${matrix.base}" } }
`);
    expect(pipeline.stages.get('best')!.inputs).toEqual({
      a: { stage: 'head@lr=0.0001,base=inception_v3', output: 'model' },
      b: { stage: 'head@lr=0.001,base=mobilenet_v2', output: 'model' },
    });
    expect(selectStages(pipeline, 'per_base')).toEqual(['per_base@base=mobilenet_v2', 'per_base@base=inception_v3']);
    expect(pipeline.stages.get('per_base@base=inception_v3')!.inputs['m']!.stage).toBe('head@lr=0.001,base=inception_v3');
  });

  it('`needs:` an expanded stage waits for all its instances (or those the reference picks)', async () => {
    const pipeline = await load(`${SWEEP}
  report: { uses: echo, needs: [eval], with: { text: done } }
  some: { uses: echo, needs: ["extract@base=inception_v3"], with: { text: done } }
`);
    expect(pipeline.stages.get('report')!.upstream).toEqual(selectStages(pipeline, 'eval').sort());
    expect(pipeline.stages.get('some')!.upstream).toEqual(['extract@base=inception_v3']);
  });

  it('a matrix value may come from params, and --set changes it', async () => {
    const text = `
params: { base_lr: 0.01 }
matrix: { lr: ["\${params.base_lr}", 0.5] }
stages:
  head: { uses: train, inputs: { data: d.out }, with: { lr: "\${matrix.lr}" } }
  d: { uses: echo, with: { text: x } }
`;
    expect(selectStages(await load(text), 'head')).toEqual(['head@lr=0.01', 'head@lr=0.5']);
    const overridden = await load(text, ['params.base_lr=0.2']);
    expect(selectStages(overridden, 'head')).toEqual(['head@lr=0.2', 'head@lr=0.5']);
    expect(overridden.stages.get('head@lr=0.2')!.params['lr']).toBe(0.2);
  });

  it('--set STAGE.PARAM applies to every instance; pinning a swept param leaves that axis out', async () => {
    const all = await load(SWEEP, ['head.epochs=7']);
    expect(selectStages(all, 'head').map((id) => all.stages.get(id)!.params['epochs'])).toEqual([7, 7, 7, 7]);
    const pinned = await load(SWEEP, ['head.lr=0.5']);
    expect(selectStages(pinned, 'head')).toEqual(['head@base=mobilenet_v2', 'head@base=inception_v3']);
    const narrowed = await load(SWEEP, ['matrix.lr=0.01']);
    expect(selectStages(narrowed, 'eval')).toEqual(['eval@lr=0.01,base=mobilenet_v2', 'eval@lr=0.01,base=inception_v3']);
  });

  it('ids show values as text when that is shell-safe and distinct, else by position', async () => {
    const pipeline = await load(`
matrix: { path: ["file:models/a b.json", x], odd: ["a/b", "a b"], flag: [true, false] }
stages:
  s: { uses: echo, with: { text: "\${matrix.path} \${matrix.odd} \${matrix.flag}" } }
`);
    expect(pipeline.order[0]).toBe('s@path=file_models_a_b.json,odd=0,flag=true');
    expect(pipeline.stages.get('s@path=x,odd=1,flag=false')!.params['text']).toBe('x a b false');
    for (const id of pipeline.order) expect(id).toMatch(/^[A-Za-z0-9_@=,.+-]+$/);
  });

  it('selects instances by id, by stage name, and by some of their values', async () => {
    const pipeline = await load(SWEEP);
    expect(selectStages(pipeline, 'head')).toHaveLength(4);
    expect(selectStages(pipeline, 'head@lr=0.001,base=inception_v3')).toEqual(['head@lr=0.001,base=inception_v3']);
    expect(selectStages(pipeline, 'head@base=inception_v3,lr=0.001')).toEqual(['head@lr=0.001,base=inception_v3']);
    expect(selectStages(pipeline, 'eval@base=inception_v3')).toEqual(['eval@lr=0.001,base=inception_v3', 'eval@lr=0.0001,base=inception_v3']);
    expect(selectStages(pipeline, 'data')).toEqual(['data']);
    expect(selectStages(pipeline, 'head@lr=9')).toEqual([]);
    expect(selectStages(pipeline, 'heads')).toEqual([]);
  });

  it('an instance has the cache key of the same stage written by hand, so they share the cache', async () => {
    const handWritten = `
stages:
  data: { uses: echo, with: { text: data } }
  prep: { uses: echo, inputs: { d: data.out }, with: { text: prep } }
  extract: { uses: echo, inputs: { d: prep.out }, with: { text: "features of inception_v3" } }
  head: { uses: train, inputs: { data: extract.out }, with: { lr: 0.0001, epochs: 2 } }
`;
    const cache = openCache(join(dirname(writePipeline('stages: {}')), 'cache'), () => {});
    const run = async (pipeline: Pipeline, targets?: string[]) => {
      const summary = await runPipeline(pipeline, { cache, reporter: silent, jobs: 2, ...(targets ? { targets } : {}) });
      return Object.fromEntries(summary.stages.map((outcome) => [outcome.id, { status: outcome.status, key: outcome.key }]));
    };
    const byHand = await run(await load(handWritten));
    const sweep = await load(SWEEP);
    const instances = await run(sweep, selectStages(sweep, 'head@lr=0.0001,base=inception_v3'));
    expect(instances['extract@base=inception_v3']).toEqual({ ...byHand['extract'], status: 'cached' });
    expect(instances['head@lr=0.0001,base=inception_v3']).toEqual({ ...byHand['head'], status: 'cached' });
    expect(Object.keys(instances)).toEqual(['data', 'prep', 'extract@base=inception_v3', 'head@lr=0.0001,base=inception_v3']);
    await cache.close();
  });
});

describe('matrix errors name file:line:col', () => {
  it('an unknown axis, with a suggestion', async () => {
    expect(await errorsOf('matrix: { lr: [1, 2] }\nstages:\n  a: { uses: train, inputs: { data: b.out }, with: { lr: "${matrix.lrr}" } }\n  b: { uses: echo, with: { text: x } }\n')).toEqual([
      'headstart.yaml:3:58: cannot interpolate "${matrix.lrr}": no matrix axis "lrr" (did you mean "lr"?)',
    ]);
    expect(await errorsOf('stages:\n  a: { uses: echo, with: { text: "${matrix.lr}" } }\n')).toEqual([
      'headstart.yaml:2:34: cannot interpolate "${matrix.lr}": no matrix axis "lr"',
    ]);
  });

  it('another stage\'s axis', async () => {
    expect(await errorsOf('stages:\n  a: { uses: echo, matrix: { n: [1, 2] }, with: { text: "${matrix.n}" } }\n  b: { uses: echo, with: { text: "${matrix.n}" } }\n')).toEqual([
      'headstart.yaml:3:34: cannot interpolate "${matrix.n}": matrix axis "n" belongs to stage "a": only it and the stages taking inputs from it can use it',
    ]);
  });

  it('an empty axis, a value that is not a scalar, a duplicate value', async () => {
    expect(await errorsOf('matrix: { lr: [] }\nstages:\n  a: { uses: echo, with: { text: x } }\n')).toEqual([
      'headstart.yaml:1:15: "matrix.lr" must NOT have fewer than 1 items',
    ]);
    expect(await errorsOf('stages:\n  a:\n    uses: echo\n    matrix: { n: [1, { x: 2 }] }\n    with: { text: "${matrix.n}" }\n')).toEqual([
      'headstart.yaml:4:18: "stages.a.matrix.n.1" must be string,number,boolean',
    ]);
    expect(await errorsOf('params: { l: [1] }\nmatrix: { n: [1, "${params.l}"] }\nstages:\n  a: { uses: echo, with: { text: "${matrix.n}" } }\n')).toEqual([
      'headstart.yaml:2:18: matrix axis "n": [1] is not a string, number or boolean',
    ]);
    expect(await errorsOf('params: { one: 1 }\nmatrix: { n: [1, "${params.one}"] }\nstages:\n  a: { uses: echo, with: { text: "${matrix.n}" } }\n')).toEqual([
      'headstart.yaml:2:18: matrix axis "n" lists 1 twice',
    ]);
  });

  it('an axis name that is not an identifier', async () => {
    expect(await errorsOf('matrix: { learning-rate: [1] }\nstages:\n  a: { uses: echo, with: { text: x } }\n')).toEqual([
      'headstart.yaml:1:11: invalid name "learning-rate" in the matrix (an axis name is a letter or _, then letters, digits or _)',
    ]);
  });

  it('a stage axis that collides with a pipeline axis or an upstream stage\'s axis', async () => {
    expect(await errorsOf('matrix: { n: [1] }\nstages:\n  a: { uses: echo, matrix: { n: [2] }, with: { text: "${matrix.n}" } }\n')).toEqual([
      'headstart.yaml:3:30: matrix axis "n" is already an axis of the pipeline\'s matrix',
    ]);
    expect(await errorsOf(`stages:
  a: { uses: echo, matrix: { n: [1, 2] }, with: { text: "\${matrix.n}" } }
  b: { uses: train, inputs: { data: a.out }, matrix: { n: [3] }, with: { epochs: "\${matrix.n}" } }
`)).toEqual(['headstart.yaml:3:56: matrix axis "n" is already an axis of upstream stage "a"']);
    expect(await errorsOf(`stages:
  a: { uses: echo, matrix: { n: [1, 2] }, with: { text: "\${matrix.n}" } }
  b: { uses: echo, matrix: { n: [3, 4] }, with: { text: "\${matrix.n}" } }
  c: { uses: echo, inputs: { x: a.out, y: b.out }, with: { text: c } }
`)).toEqual(['headstart.yaml:4:43: stage "c" takes inputs expanded over two matrix axes named "n" (of stages "a" and "b"); rename one']);
  });

  it('a reference that picks an axis or value the upstream stage does not have', async () => {
    const [axis] = await errorsOf(`${SWEEP}  x: { uses: echo, inputs: { m: "head@lrr=0.001.model" }, with: { text: x } }\n`);
    expect(axis).toBe('headstart.yaml:9:33: head@lrr=0.001.model: stage "head" has no matrix axis "lrr" (did you mean "lr"?)');
    const [value] = await errorsOf(`${SWEEP}  x: { uses: echo, inputs: { m: "head@lr=0.1.model" }, with: { text: x } }\n`);
    expect(value).toBe('headstart.yaml:9:33: head@lr=0.1.model: stage "head" has no such value of matrix axis "lr" (its values: 0.001, 0.0001)');
    const [plain] = await errorsOf(`${SWEEP}  x: { uses: echo, needs: ["data@lr=0.1"], with: { text: x } }\n`);
    expect(plain).toBe('headstart.yaml:9:28: data@lr=0.1: stage "data" is not expanded by a matrix');
  });

  it('a mistake all instances share is reported once', async () => {
    expect(await errorsOf('matrix: { n: [1, 2, 3] }\nstages:\n  a: { uses: echo, with: { text: "${matrix.n}", times: many } }\n')).toEqual([
      'headstart.yaml:3:56: stage "a@n=1": "times" must be integer',
    ]);
  });

  it('a cycle among matrix stages names the stages of the file', async () => {
    expect(await errorsOf(`matrix: { n: [1, 2] }
stages:
  a: { uses: echo, inputs: { x: b.out }, with: { text: "\${matrix.n}" } }
  b: { uses: echo, inputs: { x: a.out }, with: { text: b } }
`)).toEqual([expect.stringMatching(/^headstart\.yaml:\d:3: cycle between stages: (a -> b -> a|b -> a -> b)$/)]);
  });

  it('--set with an instance id, and of an axis the matrix lacks', async () => {
    expect(await errorsOf(SWEEP, ['head@lr=0.001.epochs=3'])).toEqual(['--set head@lr=0.001.epochs=3: a --set applies to all instances of a stage: name the stage without @…']);
    expect(await errorsOf(SWEEP, ['matrix.bsae=[x]'])).toEqual(['--set matrix.bsae=[x]: the pipeline\'s matrix has no axis "bsae" (did you mean "base"?)']);
    expect(await errorsOf(SWEEP, ['matrix.lr=[]'])).toEqual(['--set matrix.lr=[]: expected a value or a list of strings, numbers or booleans']);
  });
});

const silent: Reporter = { stageStarted() {}, stageFinished() {}, log() {}, progress() {}, warn() {} };
