import { createRequire } from 'node:module';
import type { BuiltinStep, StepRegistry } from '@headstart/core';

const manifest = createRequire(import.meta.url)('../package.json') as { name: string; version: string };

/** Built-in steps, loaded only when a pipeline uses them (so a cached run imports no ML library). */
const builtins: Record<string, BuiltinStep> = {
  shell: { load: async () => (await import('./steps/shell.js')).default },
};

export const builtinSteps: StepRegistry = {
  packageName: manifest.name,
  packageVersion: manifest.version,
  steps: new Map(Object.entries(builtins)),
};
