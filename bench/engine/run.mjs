#!/usr/bin/env node
// Engine benchmark: a fully cached re-run and `status` of a 50-stage pipeline whose every stage depends
// on one 10,000-file folder. Usage: node bench/engine/run.mjs [--stages 50] [--files 10000] [--repeat 7]
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const { values } = parseArgs({ options: { stages: { type: 'string', default: '50' }, files: { type: 'string', default: '10000' }, repeat: { type: 'string', default: '7' } } });
const [stages, files, repeat] = [Number(values.stages), Number(values.files), Number(values.repeat)];
const cli = resolve(dirname(fileURLToPath(import.meta.url)), '../../packages/cli/dist/bin.js');
const dir = mkdtempSync(join(tmpdir(), 'headstart-bench-engine-'));

function makeProject() {
  const past = new Date(Date.now() - 3600_000);
  for (let i = 0; i < files; i++) {
    const sub = join(dir, 'data', `d${i % 100}`);
    if (i < 100) mkdirSync(sub, { recursive: true });
    const file = join(sub, `f${i}.txt`);
    writeFileSync(file, `file ${i}\n`);
    utimesSync(file, past, past);
  }
  const lines = ['name: engine-bench', 'stages:'];
  for (let i = 0; i < stages; i++) {
    lines.push(`  s${i}: { uses: shell, with: { run: "echo ${i} > out${i}.txt", deps: [data], outs: [out${i}.txt] } }`);
  }
  writeFileSync(join(dir, 'headstart.yaml'), `${lines.join('\n')}\n`);
}

function timeCommand(args) {
  const samples = [];
  for (let i = 0; i < repeat; i++) {
    const start = process.hrtime.bigint();
    const result = spawnSync(process.execPath, [cli, ...args], { cwd: dir, encoding: 'utf8' });
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
    if (result.status !== 0) throw new Error(`headstart ${args.join(' ')} exited ${result.status}: ${result.stderr}`);
    if (args[0] === 'run' && !result.stdout.split('\n').filter(Boolean).every((line) => line.endsWith(': cached'))) {
      throw new Error(`expected a fully cached run, got:\n${result.stdout}`);
    }
  }
  samples.sort((a, b) => a - b);
  return { min: samples[0], median: samples[Math.floor(samples.length / 2)], max: samples[samples.length - 1] };
}

makeProject();
const coldStart = process.hrtime.bigint();
execFileSync(process.execPath, [cli, 'run', '--quiet'], { cwd: dir, stdio: 'ignore' });
const coldMs = Number(process.hrtime.bigint() - coldStart) / 1e6;
const nodeOnly = (() => {
  const samples = [];
  for (let i = 0; i < repeat; i++) {
    const start = process.hrtime.bigint();
    spawnSync(process.execPath, ['-e', '0']);
    samples.push(Number(process.hrtime.bigint() - start) / 1e6);
  }
  return samples.sort((a, b) => a - b)[Math.floor(samples.length / 2)];
})();
const rows = [
  ['fully cached `run`', timeCommand(['run'])],
  ['`status`', timeCommand(['status'])],
];
rmSync(join(dir, '.headstart/cache/index.json'));
const noIndex = timeCommand(['status']);

console.log(`headstart engine benchmark: ${stages} stages, each with deps on one ${files}-file folder (${repeat} runs each)\n`);
console.log('| command | min | median | max |');
console.log('| --- | ---: | ---: | ---: |');
for (const [name, t] of rows) console.log(`| ${name} | ${t.min.toFixed(0)} ms | ${t.median.toFixed(0)} ms | ${t.max.toFixed(0)} ms |`);
console.log(`\nfirst (cold) run, ${stages} shell stages: ${coldMs.toFixed(0)} ms; \`node -e 0\` alone: ${nodeOnly.toFixed(0)} ms`);
console.log(`\`status\` with the stat index deleted first (first run only re-reads all ${files} files; later runs use the rebuilt index): min ${noIndex.min.toFixed(0)} / max ${noIndex.max.toFixed(0)} ms`);
rmSync(dir, { recursive: true, force: true });
