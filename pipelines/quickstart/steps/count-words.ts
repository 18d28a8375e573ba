import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { defineStep } from '@headstart/core';

interface Params {
  top: number;
  min_length: number;
}

/** Counts the words of `words.txt` (one per line) and keeps the `top` most frequent. */
export default defineStep<Params>({
  name: 'count-words',
  version: '1',
  description: 'Word frequencies of a tokenised text',
  params: {
    type: 'object',
    additionalProperties: false,
    properties: {
      top: { type: 'integer', minimum: 1, default: 10 },
      min_length: { type: 'integer', minimum: 1, default: 1 },
    },
  },
  inputs: ['words'],
  outputs: ['counts'],
  async run(ctx) {
    const words = readFileSync(join(ctx.inputs['words']!, 'words.txt'), 'utf8').split('\n').filter((w) => w.length >= ctx.params.min_length);
    const counts = new Map<string, number>();
    for (const word of words) counts.set(word, (counts.get(word) ?? 0) + 1);
    const top = [...counts].sort((a, b) => b[1] - a[1] || a[0].localeCompare(b[0])).slice(0, ctx.params.top);
    writeFileSync(join(ctx.outputs['counts']!, 'counts.json'), `${JSON.stringify(Object.fromEntries(top), null, 2)}\n`);
    ctx.log.info(`${words.length} words, ${counts.size} distinct`);
    return { metrics: { words: words.length, distinct: counts.size } };
  },
});
