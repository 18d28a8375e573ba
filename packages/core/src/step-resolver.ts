import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { dirname, extname, isAbsolute, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import type { StepIdentity } from './cache-key.js';
import type { AnyStep, StepDefinition, StepRegistry } from './step.js';
import { sha256 } from './util/digest.js';
import { didYouMean } from './util/suggest.js';

export interface ResolvedStep {
  step: AnyStep;
  identity: StepIdentity;
}

/** Why `uses:` could not be resolved: `unknown` when nothing is there, `invalid` when it is not a step. */
export type StepResolution = { ok: true; value: ResolvedStep } | { ok: false; kind: 'unknown' | 'invalid'; detail: string };

function isPathReference(uses: string): boolean {
  return uses.startsWith('./') || uses.startsWith('../') || isAbsolute(uses);
}

/** Resolves a stage's `uses:`: a built-in step name, a path to a local step file, or an npm package name. */
export async function resolveStep(uses: string, pipelineDir: string, registry: StepRegistry): Promise<StepResolution> {
  const builtin = registry.steps.get(uses);
  if (builtin) {
    const step = await builtin.load();
    const identity: StepIdentity = {
      name: step.name,
      source: 'builtin',
      package: registry.packageName,
      packageVersion: registry.packageVersion,
      version: step.version,
      code: `${registry.packageVersion}+${step.version}`,
    };
    return { ok: true, value: { step, identity } };
  }
  if (isPathReference(uses)) return resolveFileStep(uses, pipelineDir);
  if (/^(@[a-z0-9][\w.-]*\/)?[a-z0-9][\w.-]*$/i.test(uses)) {
    const found = await resolvePackageStep(uses, pipelineDir);
    if (found) return found;
  }
  const hint = didYouMean(uses, registry.steps.keys()) || ` (built-in steps: ${[...registry.steps.keys()].join(', ')})`;
  return { ok: false, kind: 'unknown', detail: hint };
}

async function resolveFileStep(uses: string, pipelineDir: string): Promise<StepResolution> {
  const file = resolve(pipelineDir, uses);
  if (!existsSync(file)) return { ok: false, kind: 'unknown', detail: `: ${relative(process.cwd(), file) || file} does not exist` };
  const code = sha256(await readFile(file));
  const loaded = await importStepModule(file);
  if (!loaded.ok) return loaded;
  const step = loaded.step;
  const identity: StepIdentity = {
    name: step.name,
    source: 'file',
    package: relative(pipelineDir, file).split('\\').join('/'),
    packageVersion: '',
    version: step.version,
    code,
  };
  return { ok: true, value: { step, identity } };
}

async function resolvePackageStep(name: string, pipelineDir: string): Promise<StepResolution | undefined> {
  const packageDir = findPackageDir(name, pipelineDir);
  if (!packageDir) return undefined;
  const manifest = JSON.parse(await readFile(join(packageDir, 'package.json'), 'utf8')) as PackageManifest;
  const entry = join(packageDir, packageEntry(manifest));
  const loaded = await importStepModule(entry);
  if (!loaded.ok) return loaded;
  const version = String(manifest.version ?? '0.0.0');
  const identity: StepIdentity = {
    name: loaded.step.name,
    source: 'package',
    package: String(manifest.name ?? name),
    packageVersion: version,
    version: loaded.step.version,
    code: `${version}+${loaded.step.version}`,
  };
  return { ok: true, value: { step: loaded.step, identity } };
}

interface PackageManifest {
  name?: string;
  version?: string;
  main?: string;
  module?: string;
  exports?: unknown;
}

function findPackageDir(name: string, from: string): string | undefined {
  for (let dir = from; ; dir = dirname(dir)) {
    const candidate = join(dir, 'node_modules', name);
    if (existsSync(join(candidate, 'package.json'))) return candidate;
    if (dirname(dir) === dir) return undefined;
  }
}

function packageEntry(manifest: PackageManifest): string {
  const root = typeof manifest.exports === 'object' && manifest.exports !== null && '.' in manifest.exports
    ? (manifest.exports as Record<string, unknown>)['.']
    : manifest.exports;
  const fromExports = pickCondition(root);
  return fromExports ?? manifest.module ?? manifest.main ?? 'index.js';
}

function pickCondition(target: unknown): string | undefined {
  if (typeof target === 'string') return target;
  if (target === null || typeof target !== 'object') return undefined;
  const conditions = target as Record<string, unknown>;
  for (const condition of ['import', 'node', 'default', 'require']) {
    const picked = pickCondition(conditions[condition]);
    if (picked) return picked;
  }
  return undefined;
}

type ImportedStep = { ok: true; step: AnyStep } | { ok: false; kind: 'invalid'; detail: string };

async function importStepModule(file: string): Promise<ImportedStep> {
  let module: Record<string, unknown>;
  try {
    module = ['.ts', '.mts', '.cts'].includes(extname(file)) ? await importTypeScript(file) : await import(pathToFileURL(file).href);
  } catch (error) {
    return { ok: false, kind: 'invalid', detail: `it failed to load: ${firstLine(error)}` };
  }
  const candidate = (module['default'] ?? module['step']) as Partial<StepDefinition> | undefined;
  const missing = ['name', 'version', 'params', 'outputs', 'run'].filter((field) => candidate?.[field as keyof StepDefinition] === undefined);
  if (!candidate || missing.length > 0) {
    return { ok: false, kind: 'invalid', detail: `its default export must be defineStep({...}) (missing ${missing.join(', ')})` };
  }
  return { ok: true, step: candidate as AnyStep };
}

/** TypeScript step files load through jiti, imported only when a pipeline uses one. */
async function importTypeScript(file: string): Promise<Record<string, unknown>> {
  const { createJiti } = await import('jiti');
  const jiti = createJiti(import.meta.url, { moduleCache: false, fsCache: false });
  return (await jiti.import(file)) as Record<string, unknown>;
}

function firstLine(error: unknown): string {
  const message = error instanceof Error ? error.message : String(error);
  return message.split('\n')[0] ?? message;
}
