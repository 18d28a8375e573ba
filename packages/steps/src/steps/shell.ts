import { existsSync, statSync } from 'node:fs';
import { cp, rm } from 'node:fs/promises';
import { basename, join, resolve } from 'node:path';
import { assertInsideWorkspace, boundaryOf, copyResolvingLinks, defineStep, treeHash, type RestoreContext, type Sha256Hex, type WorkspacePath } from '@headstart/core';

interface ShellParams {
  run: string;
  deps: string[];
  outs: string[] | Record<string, string>;
  env: Record<string, string>;
}

const STDERR_TAIL_LINES = 15;

/** Output name → workspace path. A list names each output after its path. */
function outsByName(outs: ShellParams['outs']): Record<string, string> {
  return Array.isArray(outs) ? Object.fromEntries(outs.map((path) => [path, path])) : outs;
}

export default defineStep<ShellParams>({
  name: 'shell',
  version: '1',
  description: 'Runs a command line; `deps` are part of the key, `outs` are stored in the cache and restored on a hit.',
  params: {
    type: 'object',
    additionalProperties: false,
    required: ['run'],
    properties: {
      run: { type: 'string', minLength: 1, description: 'The command line, run by the shell in the pipeline file\'s directory.' },
      deps: { type: 'array', items: { type: 'string' }, default: [], description: 'Files or folders whose content is part of the key.' },
      outs: {
        oneOf: [
          { type: 'array', items: { type: 'string' } },
          { type: 'object', additionalProperties: { type: 'string' } },
        ],
        default: [],
        description: 'Paths the command writes; each is an output (named by its path, or by the map key).',
      },
      env: { type: 'object', additionalProperties: { type: 'string' }, default: {} },
    },
  },
  outputs: (params) => Object.keys(outsByName(params.outs)),
  deps: (params) => params.deps,
  workspacePaths: (params) => [
    ...params.deps.map((path, index): WorkspacePath => ({ path, param: ['deps', index] })),
    ...(Array.isArray(params.outs)
      ? params.outs.map((path, index): WorkspacePath => ({ path, param: ['outs', index] }))
      : Object.entries(params.outs).map(([name, path]): WorkspacePath => ({ path, param: ['outs', name] }))),
  ],
  async run(ctx) {
    const { execa } = await import('execa');
    // Checked when the pipeline loaded; again here, since a link may have appeared since (or on a worker).
    const boundary = boundaryOf(ctx.workdir, [{ path: ctx.cacheDir, what: 'the cache directory' }]);
    const outs = Object.values(outsByName(ctx.params.outs));
    for (const path of outs) assertInsideWorkspace(boundary, path);
    // Like DVC: outs belong to the stage, so a re-run starts without the previous run's files.
    for (const path of outs) await rm(resolve(ctx.workdir, path), { recursive: true, force: true });
    const stderrTail: string[] = [];
    const child = execa(ctx.params.run, {
      shell: true,
      cwd: ctx.workdir,
      env: { ...inputEnvironment(ctx.inputs), ...ctx.params.env },
      cancelSignal: ctx.signal,
      forceKillAfterDelay: 2000,
      reject: false,
      stdin: 'ignore',
      buffer: false,
    });
    child.stdout?.setEncoding('utf8');
    child.stderr?.setEncoding('utf8');
    forEachLine(child.stdout, (line) => ctx.log.info(line));
    forEachLine(child.stderr, (line) => {
      ctx.log.info(line);
      stderrTail.push(line);
      if (stderrTail.length > STDERR_TAIL_LINES) stderrTail.shift();
    });
    const result = await child;
    ctx.signal.throwIfAborted();
    if (result.exitCode !== 0) {
      const how = result.signal ? `was killed by ${result.signal}` : `exited with code ${result.exitCode}`;
      const tail = stderrTail.length > 0 ? `: ${stderrTail.join(' | ')}` : '';
      throw new Error(`command ${how}${tail}`);
    }
    const kinds: Record<string, string> = {};
    for (const [name, path] of Object.entries(outsByName(ctx.params.outs))) {
      const source = resolve(ctx.workdir, path);
      if (!existsSync(source)) throw new Error(`the command did not create ${path} (declared in outs)`);
      // The command may have made the out, or a folder above it, a link out of the workspace.
      assertInsideWorkspace(boundary, path);
      const isDirectory = statSync(source).isDirectory();
      // A folder's artifact is its content; a file's artifact is a folder holding that one file. A link
      // is stored as the bytes it points to (copyResolvingLinks refuses one that leaves the workspace).
      await copyResolvingLinks(source, isDirectory ? ctx.outputs[name]! : join(ctx.outputs[name]!, basename(source)), ctx.workdir, "the pipeline's directory");
      kinds[`out.${name}`] = isDirectory ? 'dir' : 'file';
    }
    return { info: kinds };
  },
  async restore(ctx) {
    const boundary = boundaryOf(ctx.workdir);
    for (const [name, path] of Object.entries(outsByName(ctx.params.outs))) {
      assertInsideWorkspace(boundary, path);
      const target = resolve(ctx.workdir, path);
      if (existsSync(target) && (await matchesArtifact(target, ctx.hashes[name]!, ctx.digest))) continue;
      const artifact = await ctx.output(name);
      const cached = ctx.info[`out.${name}`] === 'dir' ? artifact : join(artifact, basename(target));
      await rm(target, { recursive: true, force: true });
      await cp(cached, target, { recursive: true });
    }
  },
});

/** Whether the workspace copy of an out still holds what the cache has (see run(): file vs folder). */
async function matchesArtifact(target: string, artifactHash: string, digest: RestoreContext['digest']): Promise<boolean> {
  const found = await digest(target);
  if (found.kind === 'dir') return found.hash === artifactHash;
  return treeHash([{ path: basename(target), hash: found.hash as Sha256Hex, size: found.size }]) === artifactHash;
}

/** Each input artifact's directory as `HEADSTART_INPUT_<NAME>` (upper-cased, other characters as `_`). */
function inputEnvironment(inputs: Readonly<Record<string, string>>): Record<string, string> {
  return Object.fromEntries(Object.entries(inputs).map(([name, path]) => [`HEADSTART_INPUT_${name.toUpperCase().replace(/[^A-Z0-9]/g, '_')}`, path]));
}

function forEachLine(stream: NodeJS.ReadableStream | null | undefined, onLine: (line: string) => void): void {
  if (!stream) return;
  let buffered = '';
  stream.on('data', (chunk: string) => {
    buffered += chunk;
    const lines = buffered.split('\n');
    buffered = lines.pop() ?? '';
    for (const line of lines) onLine(line.replace(/\r$/, ''));
  });
  stream.on('end', () => {
    if (buffered) onLine(buffered);
  });
}
