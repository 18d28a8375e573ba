import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { Worker, type WorkerOptions } from 'node:worker_threads';

/**
 * A module hook (run in the thread) for when only TypeScript sources exist: it transpiles `.ts` files
 * with the `typescript` package (a devDependency of the workspace) and maps a relative `./x.js` import
 * to `./x.ts` when there is no `x.js`.
 */
const TYPESCRIPT_HOOKS = `
import { existsSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';
let ts;
export function initialize(data) { ts = createRequire(data.from)('typescript'); }
export async function resolve(specifier, context, next) {
  const fromTs = context.parentURL?.endsWith('.ts') && /^\\.\\.?\\//.test(specifier) && specifier.endsWith('.js');
  if (fromTs && !existsSync(fileURLToPath(new URL(specifier, context.parentURL)))) return next(specifier.slice(0, -3) + '.ts', context);
  return next(specifier, context);
}
export async function load(url, context, next) {
  if (!url.endsWith('.ts')) return next(url, context);
  const fileName = fileURLToPath(url);
  const options = { module: ts.ModuleKind.ESNext, target: ts.ScriptTarget.ES2022, verbatimModuleSyntax: true, sourceMap: false };
  const { outputText } = ts.transpileModule(await readFile(fileName, 'utf8'), { fileName, compilerOptions: options });
  return { format: 'module', source: outputText, shortCircuit: true };
}`;

/**
 * Starts a thread running `script`, a compiled module. Where it has not been compiled (unit tests run
 * the TypeScript sources), the thread runs its `.ts` source through a transpiling module hook
 * instead, so tests exercise the same threads a built CLI starts.
 */
export function startThread(script: URL, options: WorkerOptions): Worker {
  if (existsSync(fileURLToPath(script))) return new Worker(script, options);
  const source = new URL(script.href.replace(/\.js$/, '.ts'));
  if (!existsSync(fileURLToPath(source))) throw new Error(`thread script ${fileURLToPath(script)} is missing: build the package`);
  const hooks = `data:text/javascript,${encodeURIComponent(TYPESCRIPT_HOOKS)}`;
  const bootstrap = [
    "import { register } from 'node:module';",
    `register(${JSON.stringify(hooks)}, { data: { from: ${JSON.stringify(import.meta.url)} } });`,
    `await import(${JSON.stringify(source.href)});`,
  ].join('\n');
  return new Worker(new URL(`data:text/javascript,${encodeURIComponent(bootstrap)}`), options);
}
