import { describe, expect, it } from 'vitest';
import { formatFailure, loadPipeline, type Failure } from '../src/index.js';
import { testRegistry, writePipeline } from './helpers.js';

async function errorsOf(text: string, overrides: string[] = [], env: Record<string, string> = {}): Promise<string[]> {
  const path = writePipeline(text);
  const result = await loadPipeline(path, { registry: testRegistry, overrides, env });
  if (result.ok) return [];
  return result.error.map((failure: Failure) => formatFailure(failure, path.replace(/\/[^/]+$/, '')));
}

async function load(text: string, overrides: string[] = [], env: Record<string, string> = {}) {
  const result = await loadPipeline(writePipeline(text), { registry: testRegistry, overrides, env });
  if (!result.ok) throw new Error(result.error.map((f) => formatFailure(f)).join('\n'));
  return result.value;
}

describe('pipeline files', () => {
  it('builds stages with defaults filled in and edges from inputs and needs', async () => {
    const pipeline = await load(`
name: demo
stages:
  data: { uses: echo, with: { text: hi } }
  model: { uses: train, inputs: { data: data.out }, with: { epochs: 3 } }
  report: { uses: echo, with: { text: done }, needs: [model] }
`);
    expect(pipeline.name).toBe('demo');
    expect(pipeline.order).toEqual(['data', 'model', 'report']);
    expect(pipeline.stages.get('model')!.params).toEqual({ epochs: 3, lr: 0.001, layers: [] });
    expect(pipeline.stages.get('data')!.params).toEqual({ text: 'hi', times: 1 });
    expect(pipeline.stages.get('report')!.upstream).toEqual(['model']);
  });

  it('interpolates params type-preservingly, env vars as text, and applies --set overrides', async () => {
    const pipeline = await load(
      `
params: { epochs: 5, name: run, nested: { lr: 0.5 } }
stages:
  data: { uses: echo, with: { text: "\${params.name}-\${env.WHO}-\${params.epochs}" } }
  model: { uses: train, inputs: { data: data.out }, with: { epochs: "\${params.epochs}", lr: "\${params.nested.lr}" } }
`,
      ['params.epochs=7', 'model.layers=[1, 2]'],
      { WHO: 'ci' },
    );
    expect(pipeline.stages.get('data')!.params['text']).toBe('run-ci-7');
    expect(pipeline.stages.get('model')!.params).toEqual({ epochs: 7, lr: 0.5, layers: [1, 2] });
  });

  it('keeps $${...} as a literal', async () => {
    const pipeline = await load(`
stages:
  data: { uses: echo, with: { text: "cost: $\${HOME}" } }
`);
    expect(pipeline.stages.get('data')!.params['text']).toBe('cost: ${HOME}');
  });
});

describe('pipeline errors name file:line:col', () => {
  it('invalid YAML', async () => {
    expect(await errorsOf('stages:\n  a: [uses: echo\n')).toEqual([expect.stringMatching(/^headstart\.yaml:3:1: invalid YAML: /)]);
  });

  it('misspelt key in a stage, with a suggestion', async () => {
    expect(await errorsOf('stages:\n  a:\n    usse: echo\n')).toEqual(['headstart.yaml:3:5: unknown key "usse" in stage "a" (did you mean "uses"?)']);
  });

  it('unknown step, with a suggestion', async () => {
    expect(await errorsOf('stages:\n  a: { uses: ecoh }\n')).toEqual(['headstart.yaml:2:14: unknown step "ecoh" (did you mean "echo"?)']);
  });

  it('a parameter of the wrong type', async () => {
    expect(await errorsOf('stages:\n  a:\n    uses: echo\n    with: { text: hi, times: many }\n')).toEqual([
      'headstart.yaml:4:30: stage "a": "times" must be integer',
    ]);
  });

  it('a misspelt parameter, with a suggestion', async () => {
    expect(await errorsOf('stages:\n  a:\n    uses: echo\n    with: { txt: hi }\n')).toEqual([
      'headstart.yaml:4:13: stage "a": unknown key "txt" in the parameters of step "echo" (did you mean "text"?)',
    ]);
  });

  it('a reference to a missing stage and to a missing output', async () => {
    const errors = await errorsOf(`stages:
  data: { uses: echo, with: { text: x } }
  m1: { uses: train, inputs: { data: dta.out } }
  m2: { uses: train, inputs: { data: data.outt } }
`);
    expect(errors).toEqual([
      'headstart.yaml:3:38: unknown stage "dta" (did you mean "data"?)',
      'headstart.yaml:4:38: stage "data" has no output "outt" (did you mean "out"?)',
    ]);
  });

  it('an input the step does not read, and a missing one', async () => {
    const errors = await errorsOf(`stages:
  data: { uses: echo, with: { text: x } }
  m: { uses: train, inputs: { dataa: data.out } }
`);
    expect(errors[0]).toBe('headstart.yaml:3:31: step "train" has no input "dataa" (did you mean "data"?)');
    expect(errors[1]).toBe('headstart.yaml:3:3: stage "m" is missing input "data" (step "train" reads it)');
  });

  it('a cycle names its stages', async () => {
    const errors = await errorsOf(`stages:
  a: { uses: echo, with: { text: x }, needs: [c] }
  b: { uses: echo, with: { text: x }, needs: [a] }
  c: { uses: echo, with: { text: x }, needs: [b] }
`);
    expect(errors).toEqual([expect.stringMatching(/^headstart\.yaml:\d+:3: cycle between stages: (a -> b -> c -> a|b -> c -> a -> b|c -> a -> b -> c)$/)]);
  });

  it('a stage name that is not an identifier', async () => {
    expect(await errorsOf('stages:\n  1a: { uses: echo, with: { text: x } }\n')).toEqual([
      'headstart.yaml:2:3: invalid name "1a" in stages (a stage name is a letter, then letters, digits, _ or -)',
    ]);
  });

  it('a remote: that is not an s3:// URL', async () => {
    expect(await errorsOf('remote: https://example.com/cache\nstages:\n  a: { uses: echo, with: { text: x } }\n')).toEqual([
      'headstart.yaml:1:9: "remote" must look like "s3://bucket" or "s3://bucket/prefix"',
    ]);
    expect((await load('remote: s3://team-cache/headstart\nstages:\n  a: { uses: echo, with: { text: x } }\n')).remote).toBe('s3://team-cache/headstart');
  });

  it('duplicate stage names', async () => {
    expect(await errorsOf('stages:\n  a: { uses: echo, with: { text: x } }\n  a: { uses: echo, with: { text: y } }\n')).toEqual([
      'headstart.yaml:3:3: duplicate stage "a"',
    ]);
  });

  it('an unknown param in ${...}, with a suggestion', async () => {
    expect(await errorsOf('params: { epochs: 1 }\nstages:\n  a: { uses: echo, with: { text: "${params.epoch}" } }\n')).toEqual([
      'headstart.yaml:3:34: cannot interpolate "${params.epoch}": "params" has no "epoch" (did you mean "${params.epochs}"?)',
    ]);
  });

  it('an unset environment variable', async () => {
    expect(await errorsOf('stages:\n  a: { uses: echo, with: { text: "${env.NOPE_X}" } }\n')).toEqual([
      'headstart.yaml:2:34: cannot interpolate "${env.NOPE_X}": environment variable NOPE_X is not set',
    ]);
  });

  it('a bad --set override', async () => {
    expect(await errorsOf('params: { epochs: 1 }\nstages:\n  a: { uses: echo, with: { text: x } }\n', ['params.epoch=2'])).toEqual([
      '--set params.epoch=2: the pipeline has no param "epoch" (did you mean "epochs"?)',
    ]);
    expect(await errorsOf('stages:\n  a: { uses: echo, with: { text: x } }\n', ['b.text=2'])).toEqual(['--set b.text=2: no stage "b"']);
  });

  it('a missing file', async () => {
    const result = await loadPipeline('/nonexistent/pipeline.yaml', { registry: testRegistry });
    expect(result.ok).toBe(false);
    if (!result.ok) expect(formatFailure(result.error[0]!, '/')).toBe('nonexistent/pipeline.yaml: no such file');
  });
});
