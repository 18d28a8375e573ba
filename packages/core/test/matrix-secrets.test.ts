import { dirname } from 'node:path';
import { describe, expect, it } from 'vitest';
import { formatFailure, loadPipeline } from '../src/index.js';
import { testRegistry, writePipeline } from './helpers.js';

const SECRET = 's3cr3t-token-value';

async function errorsOf(text: string): Promise<string[]> {
  const path = writePipeline(text);
  const result = await loadPipeline(path, { registry: testRegistry, env: { API_TOKEN: SECRET } });
  if (result.ok) throw new Error(`expected errors, loaded ${[...result.value.stages.keys()].join(' ')}`);
  return result.error.map((failure) => formatFailure(failure, dirname(path)));
}

describe('${env.X} as a matrix value', () => {
  const REFUSED = 'cannot be a matrix value (matrix values become stage ids, which are stored and printed)';

  it("is refused in the pipeline's matrix, at the value, before its value could reach a stage id", async () => {
    const errors = await errorsOf('matrix: { token: [plain, "${env.API_TOKEN}"] }\nstages:\n  call: { uses: echo, with: { text: "${matrix.token}" } }\n');
    expect(errors).toEqual([`headstart.yaml:1:26: matrix axis "token": \${env.API_TOKEN} ${REFUSED}; pass it to the stage's with: instead`]);
    expect(errors.join('\n')).not.toContain(SECRET);
  });

  it("is refused in a stage's own matrix, also inside text around it", async () => {
    const errors = await errorsOf('stages:\n  call:\n    uses: echo\n    matrix: { token: ["Bearer ${env.API_TOKEN}"] }\n    with: { text: "${matrix.token}" }\n');
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatch(/^headstart\.yaml:4:23: matrix axis "token": \$\{env\.API_TOKEN\} cannot be a matrix value/);
    expect(errors[0]).not.toContain(SECRET);
  });
});
