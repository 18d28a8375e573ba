import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import type { ErrorObject } from 'ajv';
import { writeFileAtomic } from './util/atomic-write.js';
import { canonicalJson } from './util/canonical-json.js';
import { sha256 } from './util/digest.js';

/** A compiled JSON Schema check; it fills in defaults where the schema gives them. */
export interface Validator {
  (data: unknown): boolean;
  errors?: ErrorObject[] | null;
}

type Ajv2020Constructor = new (options: object) => { compile(schema: object): Validator };

const require = createRequire(import.meta.url);
const AJV_OPTIONS = { allErrors: true, useDefaults: true, strict: false, verbose: true } as const;
/** Part of each compiled file's name: another ajv or other options compile differently. */
const COMPILER_ID = sha256(`ajv@${(require('ajv/package.json') as { version: string }).version}:${JSON.stringify(AJV_OPTIONS)}`).slice(0, 12);

const compiled = new Map<string, Validator>();
let ajv: { compile(schema: object): Validator } | undefined;

/**
 * Compiling a schema with ajv would be a large share of a fully cached run (timed in BENCHMARKS.md,
 * "bench/engine: a fully cached re-run"), so compiled validators are kept as standalone modules in
 * `directory`, named by the schema's hash, and a later run loads them with a plain `require`.
 */
export function validatorFor(schema: object, directory?: string): Validator {
  const id = `${sha256(canonicalJson(schema)).slice(0, 32)}-${COMPILER_ID}`;
  const known = compiled.get(id);
  if (known) return known;
  const file = directory ? resolve(directory, `${id}.cjs`) : undefined;
  const validator = (file && existsSync(file) && loadCompiled(file)) || compileAndStore(schema, file);
  compiled.set(id, validator);
  return validator;
}

function loadCompiled(file: string): Validator | undefined {
  try {
    return require(file) as Validator;
  } catch {
    return undefined; // written by another ajv, or damaged: compile again
  }
}

function compileAndStore(schema: object, file: string | undefined): Validator {
  if (!file) return compiler().compile(schema);
  const instance = compiler(true);
  const validate = instance.compile(schema);
  const standaloneCode = (require('ajv/dist/standalone/index.js') as { default: (ajv: unknown, fn: unknown) => string }).default(instance, validate);
  // The generated module requires ajv's runtime helpers by package name; point them at this install.
  const runtimeDir = dirname(require.resolve('ajv/dist/runtime/equal.js'));
  const code = standaloneCode.replace(/require\("ajv\/dist\/runtime\/([\w-]+)"\)/g, (_m, name: string) => `require(${JSON.stringify(join(runtimeDir, `${name}.js`))})`);
  mkdirSync(dirname(file), { recursive: true });
  void writeFileAtomic(file, code).catch(() => undefined);
  return validate;
}

function compiler(forStandalone = false): { compile(schema: object): Validator } {
  const { Ajv2020 } = require('ajv/dist/2020.js') as { Ajv2020: Ajv2020Constructor };
  if (forStandalone) return new Ajv2020({ ...AJV_OPTIONS, code: { source: true } });
  ajv ??= new Ajv2020(AJV_OPTIONS);
  return ajv;
}
