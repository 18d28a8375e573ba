import { existsSync } from 'node:fs';
import { mkdir, writeFile } from 'node:fs/promises';
import { basename, join, relative, resolve, sep } from 'node:path';
import { StepUserError } from '@headstart/core';
import { SPLITS, type Split } from './data/dataset.js';
import { scanImageFolder } from './data/image-folder.js';

export const INIT_TEMPLATES = ['image-folder'] as const;
export type InitTemplate = (typeof INIT_TEMPLATES)[number];

export interface InitOptions {
  /** The project folder; created if missing. */
  dir: string;
  template: InitTemplate;
  /** The image folder; `<dir>/data` by default. */
  data?: string;
  /** How messages name a path (relative to the current directory, say). */
  show?: (path: string) => string;
}

export interface InitSummary {
  file: string;
  /** The image folder as the pipeline names it (relative to the pipeline's folder). */
  data: string;
  classes: string[];
  images: number;
  /** The predefined splits the folder has (train/, val/, test/); empty when it is one folder per class. */
  splits: Split[];
}

const PIPELINE_FILE = 'headstart.yaml';

/**
 * Writes `<dir>/headstart.yaml` for an image folder, after checking the folder the way load-data will
 * (class folders with images, or train|val|test/<class>/ folders). Never overwrites a pipeline file.
 */
export async function initPipeline(options: InitOptions): Promise<InitSummary> {
  const show = options.show ?? ((path: string) => path);
  const dir = resolve(options.dir);
  const file = join(dir, PIPELINE_FILE);
  if (existsSync(file)) throw new StepUserError(`${show(file)}: already exists; not overwriting it (remove it, or init another folder)`);
  const dataDir = resolve(options.data ?? join(dir, 'data'));
  if (!options.data && !existsSync(dataDir)) {
    throw new StepUserError(`${show(dataDir)}: not found; put the images in data/<class>/ or pass --data PATH (a folder with one subfolder of images per class)`);
  }
  const { classes, images } = await scanImageFolder(dataDir, show);
  const splits = SPLITS.filter((split) => images.some((image) => image.split === split));
  if (splits.length > 0 && !splits.includes('train')) throw new StepUserError(`${show(dataDir)}: has ${splits.join(' and ')} folders but no train/ folder`);
  const data = relative(dir, dataDir).split(sep).join('/') || '.';
  const summary: InitSummary = { file, data, classes, images: images.length, splits };
  await mkdir(dir, { recursive: true });
  await writeFile(file, imageFolderPipeline(basename(dir), summary), { flag: 'wx' });
  return summary;
}

function imageFolderPipeline(name: string, s: InitSummary): string {
  const shown = s.classes.length <= 8 ? s.classes.join(', ') : `${s.classes.slice(0, 8).join(', ')}, …`;
  const layout = s.splits.length > 0 ? `${s.splits.join('/')}/<class>/ folders` : 'one folder per class';
  return `# Made by \`headstart init\` for ${s.data}/: ${s.classes.length} classes (${shown}), ${s.images} images, ${layout}.
# Transfer learning: a pretrained MobileNetV2 (from the offline zoo, nothing is downloaded) turns each
# image into features once; a small new head learns your classes on them. Run \`headstart run\`, then
# change a setting and run again: only the stages it affects re-run (\`headstart status\` says why).
name: ${yamlString(name)}
seed: 42
params: { image_size: 96 }   # 96 px keeps MobileNetV2 quick on a CPU; 224 is its native size
stages:
  data:
    uses: load-data
    with: { source: image-folder, path: ${yamlString(s.data)} }
  prep:
    uses: preprocess           # every image resized to image_size × image_size RGB
    inputs: { dataset: data.dataset }
${splitSettings(s.splits)}
  features:
    uses: extract-features     # the frozen base runs once per image; its features are cached
    inputs: { dataset: prep.dataset }
    with: { base: mobilenet_v2, splits: [train, val] }   # the head never sees test features
  head:
    uses: train-head
    inputs: { features: features.features }
    with:
      layers: [{ dense: 128, activation: relu }, { dropout: 0.2 }]
      epochs: 30
      lr: 0.001
      early_stopping: { patience: 5, monitor: val_accuracy }
  eval:
    uses: evaluate
    inputs: { model: head.model, dataset: prep.dataset }
    with: { split: test }      # add fail_under: { accuracy: 0.9 } to fail CI below it
# Next: \`headstart predict --model head IMAGE…\` classifies new images, \`headstart export --stage head
# --out web\` writes the model for the browser, and unfreeze + fine-tune stages (see the README) can
# adapt the top of the base to your images.
`;
}

/** Plain when that reads back as the same string, else double-quoted (JSON is valid YAML). */
function yamlString(text: string): string {
  return /^[A-Za-z_][\w./-]*$/.test(text) && !/^(true|false|null|yes|no|on|off)$/i.test(text) ? text : JSON.stringify(text);
}

/** prep's split settings for the folder's layout, with the reason as a comment. */
function splitSettings(splits: readonly Split[]): string {
  if (splits.length === 0) return '    with: { size: "${params.image_size}", split: { train: 0.8, val: 0.1, test: 0.1 } }   # per class';
  if (!splits.includes('test')) {
    return '    # no test/ folder: every image is split again, 80/10/10 per class\n    with: { size: "${params.image_size}", keep_splits: false, split: { train: 0.8, val: 0.1, test: 0.1 } }';
  }
  if (!splits.includes('val')) return '    with: { size: "${params.image_size}", val_from_train: 0.1 }   # no val/ folder: 10 % of train per class';
  return '    with: { size: "${params.image_size}" }   # the folder\'s own train/val/test split';
}
