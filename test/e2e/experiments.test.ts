import { execFileSync } from 'node:child_process';
import { copyFileSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { REPO, Rig } from './rig.js';

function git(rig: Rig, ...args: string[]): string {
  return execFileSync('git', args, { cwd: rig.dir, encoding: 'utf8' });
}

/** mnist-tiny in a git repository whose first commit holds the pipeline and its lock file. */
async function committedProject(): Promise<Rig> {
  const rig = new Rig();
  copyFileSync(join(REPO, 'pipelines/mnist-tiny.yaml'), join(rig.dir, 'headstart.yaml'));
  rig.write('.gitignore', '.headstart/\n');
  git(rig, 'init', '-q');
  git(rig, 'config', 'user.email', 'ci@example.com');
  git(rig, 'config', 'user.name', 'ci');
  const first = await rig.run('run');
  expect(first.exitCode, first.stderr).toBe(0);
  git(rig, 'add', '.');
  git(rig, 'commit', '-qm', 'baseline');
  return rig;
}

describe('runs, compare and metrics', () => {
  it('lists runs with commit and changed params, compares them, and diffs metrics against a revision', async () => {
    const rig = await committedProject();
    const commit = git(rig, 'rev-parse', '--short=7', 'HEAD').trim();

    const shown = await rig.run('metrics', 'show', '--json');
    const metrics = JSON.parse(shown.stdout) as { stage: string; metric: string; value: number }[];
    const accuracy = metrics.find((m) => m.stage === 'eval' && m.metric === 'accuracy')!.value;
    expect(accuracy).toBeGreaterThan(0.5);

    const unchanged = JSON.parse((await rig.run('metrics', 'diff', '--json')).stdout) as { rows: { stage: string; metric: string; delta?: number }[] };
    expect(unchanged.rows.length).toBe(metrics.length);
    expect(unchanged.rows.every((row) => row.delta === 0)).toBe(true);

    expect((await rig.run('run', '--set', 'head.lr=0.01')).exitCode).toBe(0);
    const diff = JSON.parse((await rig.run('metrics', 'diff', 'HEAD', '--json')).stdout) as { rows: { stage: string; metric: string; before: number; after: number; delta: number }[] };
    const evalRow = diff.rows.find((row) => row.stage === 'eval' && row.metric === 'accuracy')!;
    expect(evalRow.before).toBe(accuracy);
    expect(evalRow.delta).toBeCloseTo(evalRow.after - accuracy, 6);
    const markdown = (await rig.run('metrics', 'diff', '--md')).stdout;
    expect(markdown).toMatch(/^### headstart metrics: HEAD → working tree/);
    expect(markdown).toMatch(/\| eval +\| accuracy +\|/);

    const runs = (await rig.run('runs')).stdout;
    expect(runs).toMatch(new RegExp(`#2 .*\\| ${commit} .*head\\.lr=0\\.01`));
    const listed = JSON.parse((await rig.run('runs', '--json')).stdout) as { number: number; git: { commit: string; dirty: boolean } | null; keyMetrics: Record<string, number> }[];
    expect(listed.map((run) => run.number)).toEqual([1, 2]);
    expect(listed[0]!.git).toBeNull();
    // The state the run started from: the lock file it rewrote does not make it dirty.
    expect(listed[1]!.git).toMatchObject({ dirty: false });
    expect(listed[1]!.git!.commit.startsWith(commit)).toBe(true);
    expect(listed[1]!.keyMetrics['eval.accuracy']).toBe(evalRow.after);

    const compared = JSON.parse((await rig.run('compare', '1', 'latest', '--json')).stdout) as { runs: number[]; rows: { name: string; values: unknown[] }[] };
    expect(compared.runs).toEqual([1, 2]);
    expect(compared.rows.find((row) => row.name === 'head.lr')!.values).toEqual([0.003, 0.01]);
    expect(compared.rows.find((row) => row.name === 'eval.accuracy')!.values).toEqual([accuracy, evalRow.after]);
    expect(compared.rows.some((row) => row.name === 'prep.size')).toBe(false);

    const best = await rig.run('compare', '--best', 'eval.accuracy');
    const winner = accuracy >= evalRow.after ? 1 : 2;
    expect(best.stderr).toContain(`best by eval.accuracy: run #${winner}`);
    expect((await rig.run('compare', '7')).exitCode).toBe(2);
  });

  it('max_drop fails the run with exit 3 when a metric fell further than allowed against the baseline', async () => {
    const rig = await committedProject();
    const lock = JSON.parse(rig.read('headstart.lock').replace(/^#.*\n/, '')) as { stages: Record<string, { metrics: Record<string, number> }> };
    const achieved = lock.stages['eval']!.metrics['accuracy']!;
    lock.stages['eval']!.metrics['accuracy'] = 1;
    rig.write('headstart.lock', JSON.stringify(lock, null, 2));
    git(rig, 'commit', '-qam', 'a baseline that scored 1.0');

    const worse = await rig.run('run', '--set', 'eval.max_drop.accuracy=0.01');
    expect(worse.exitCode, worse.stderr).toBe(3);
    expect(worse.stderr).toContain(`stage "eval": accuracy fell from 1 (HEAD) to ${achieved}`);
    expect(worse.stderr).toContain('more than max_drop 0.01');

    expect((await rig.run('run', '--set', 'eval.max_drop.accuracy=1')).exitCode).toBe(0);
    const noBaseline = await rig.run('run', '--set', 'eval.max_drop.accuracy=0.01', '--baseline', 'no-such-branch');
    expect(noBaseline.exitCode).toBe(0);
    expect(noBaseline.stderr).toContain('warning: max_drop not checked: no git revision "no-such-branch"');
  });
});

describe('the GitHub Actions examples', () => {
  it.each(['headstart.yml', 'shared-cache.yml'])('%s uses only headstart commands and options that exist', async (file) => {
    const workflow = parse(readFileSync(join(REPO, 'examples/ci', file), 'utf8')) as { jobs: Record<string, { steps: { run?: string }[] }> };
    const scripts = Object.values(workflow.jobs).flatMap((job) => job.steps.flatMap((step) => (step.run ? [step.run] : [])));
    const invocations = scripts.join('\n').match(/headstart (?:metrics )?[a-z]+[^\n|>)]*/g) ?? [];
    expect(invocations.length).toBeGreaterThanOrEqual(3);
    const rig = new Rig();
    for (const invocation of invocations) {
      const words = invocation.split(/\s+/).slice(1);
      const command = words[0] === 'metrics' ? words.slice(0, 2) : words.slice(0, 1);
      const help = await rig.run(...command, '--help');
      expect(help.exitCode, invocation).toBe(0);
      for (const flag of words.filter((word) => word.startsWith('--'))) expect(help.stdout, `${invocation}: ${flag}`).toContain(flag);
    }
  });
});
