import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { loadPipeline, openCache, runPipeline, type Reporter } from '../src/index.js';
import { testRegistry, writePipeline } from './helpers.js';

/** A local step file, byte for byte: its sha256 is part of the key, so any edit here changes the pins. */
const LOCAL_STEP = `import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
export default {
  name: 'upper',
  version: '3',
  params: { type: 'object', additionalProperties: false, properties: { suffix: { type: 'string', default: '!' }, deps: { type: 'array', items: { type: 'string' }, default: [] } } },
  inputs: ['text'],
  outputs: ['out'],
  deps: (params) => params.deps,
  async run(ctx) {
    const text = readFileSync(join(ctx.inputs.text, 'text.txt'), 'utf8');
    writeFileSync(join(ctx.outputs.out, 'upper.txt'), text.toUpperCase() + ctx.params.suffix);
  },
};
`;

const PIPELINE = `
seed: 7
params: { word: hello }
stages:
  make: { uses: echo, with: { text: "\${params.word}", times: 2 } }
  up:   { uses: ./steps/upper.mjs, inputs: { text: make.out }, with: { deps: [data/notes.txt] } }
`;

const silent: Reporter = { stageStarted() {}, stageFinished() {}, log() {}, progress() {}, warn() {} };

/**
 * DVC pins the whole key document: this runs a real pipeline (a registry step, then a local step file with a
 * `deps` file) through loading, interpolation, schema defaults and the executor, and pins what each stage's
 * key is made of and the key itself. A change here invalidates every user's cache: bump KEY_VERSION on purpose.
 */
describe('golden cache key through a real pipeline', () => {
  it('pins the key document and the key of each stage', async () => {
    const file = writePipeline(PIPELINE);
    const dir = dirname(file);
    mkdirSync(join(dir, 'steps'));
    writeFileSync(join(dir, 'steps/upper.mjs'), LOCAL_STEP);
    mkdirSync(join(dir, 'data'));
    writeFileSync(join(dir, 'data/notes.txt'), 'a note\n');
    const loaded = await loadPipeline(file, { registry: testRegistry, env: {} });
    if (!loaded.ok) throw new Error(JSON.stringify(loaded.error));
    const summary = await runPipeline(loaded.value, { cache: openCache(join(dir, 'cache'), () => {}), reporter: silent, jobs: 1 });
    const [make, up] = summary.stages;
    expect(up!.record!.keyDocument).toEqual({
      keyVersion: 1,
      step: { name: 'upper', source: 'file', package: 'steps/upper.mjs', packageVersion: '', version: '3', code: '581ea1cd949aa7f4db16543e59176a06e5126dacadb0bb64d13664c9770f02eb' },
      params: { suffix: '!', deps: ['data/notes.txt'] },
      inputs: { text: '9bd7b8334529e081b5a3501079db1cc05aa6408fbae2820eeea42ef6545216cb' },
      deps: { 'data/notes.txt': '037279912cb60d7be67228853b057cc642443b4ce29b8a5a5bfbb68234b0b962' },
      seed: 7,
    });
    expect(make!.record!.keyDocument.params).toEqual({ text: 'hello', times: 2 });
    expect({ make: make!.key, up: up!.key }).toEqual({ make: '0f8ea4e035be1c24c081ab89e8d11b9ee0ef11ff6e41423e9581dbad8186ea5f', up: '23a608d2d8698f5f20197430b2ab0ed441827105e293dbc154ad57b4ac63a6fb' });
  });
});
