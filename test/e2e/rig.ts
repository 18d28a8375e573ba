import { execa, type ResultPromise } from 'execa';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parse } from 'yaml';

export const REPO = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
export const CLI = join(REPO, 'packages/cli/dist/bin.js');

export interface CliResult {
  exitCode: number;
  stdout: string;
  stderr: string;
}

/** A temporary project directory and the built `headstart` binary, driven as a user would. */
export class Rig {
  readonly dir = mkdtempSync(join(tmpdir(), 'headstart-e2e-'));

  write(path: string, text: string): string {
    const full = join(this.dir, path);
    mkdirSync(dirname(full), { recursive: true });
    writeFileSync(full, text);
    return full;
  }

  read(path: string): string {
    return readFileSync(join(this.dir, path), 'utf8');
  }

  exists(path: string): boolean {
    return existsSync(join(this.dir, path));
  }

  /** Runs `headstart ...args` to completion. */
  async run(...args: string[]): Promise<CliResult> {
    return this.runWith({}, ...args);
  }

  async runWith(env: Record<string, string>, ...args: string[]): Promise<CliResult> {
    const result = await this.spawn(env, ...args);
    return { exitCode: result.exitCode ?? -1, stdout: String(result.stdout), stderr: String(result.stderr) };
  }

  /** Starts `headstart ...args` without waiting (for kill and concurrency tests). */
  spawn(env: Record<string, string> = {}, ...args: string[]): ResultPromise<{ reject: false }> {
    return execa(process.execPath, [CLI, ...args], { cwd: this.dir, reject: false, env: { HEADSTART_CACHE_DIR: '', NO_COLOR: '1', ...env } }) as ResultPromise<{ reject: false }>;
  }

  /** `headstart run --json`, parsed, with each stage's status by id. */
  async runJson(...args: string[]): Promise<{ exitCode: number; statuses: Record<string, string>; json: RunJson; stderr: string }> {
    const result = await this.run('run', '--json', ...args);
    let json: RunJson;
    try {
      json = JSON.parse(result.stdout) as RunJson;
    } catch {
      throw new Error(`not JSON (exit ${result.exitCode}):\n${result.stdout}\n${result.stderr}`);
    }
    return { exitCode: result.exitCode, json, stderr: result.stderr, statuses: Object.fromEntries(json.stages.map((s) => [s.id, s.status])) };
  }

  lockfile(name = 'headstart.lock'): { stages: Record<string, { key: string; outputs: Record<string, { hash: string }> }> } {
    return parse(this.read(name));
  }
}

export interface RunJson {
  pipeline: string;
  ok: boolean;
  stages: { id: string; status: string; key: string | null; durationMs: number; why?: string[] }[];
}
