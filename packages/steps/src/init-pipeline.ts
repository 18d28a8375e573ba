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
  /** The whole recipe after the head: LR finder, unfreeze, fine-tune with a schedule and discriminative rates, TTA. */
  fineTune?: boolean;
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
 * (class folders with images, or train|val|test/<class>/ folders); with `fineTune`, the fine-tuning recipe
 * follows the head. Never overwrites a pipeline file.
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
  await writeFile(file, imageFolderPipeline(basename(dir), summary, options.fineTune ?? false), { flag: 'wx' });
  return summary;
}

function imageFolderPipeline(name: string, s: InitSummary, fineTune: boolean): string {
  const shown = s.classes.length <= 8 ? s.classes.join(', ') : `${s.classes.slice(0, 8).join(', ')}, …`;
  const layout = s.splits.length > 0 ? `${s.splits.join('/')}/<class>/ folders` : 'one folder per class';
  const made = `# Made by \`headstart ${fineTune ? 'init --fine-tune' : 'init'}\` for ${s.data}/: ${s.classes.length} classes (${shown}), ${s.images} images, ${layout}.`;
  return `${made}
${fineTune ? FINE_TUNE_INTRO : TRANSFER_INTRO}name: ${yamlString(name)}
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
${fineTune ? FINE_TUNE_STAGES : TRANSFER_STAGES}`;
}

const TRANSFER_INTRO = `# Transfer learning: a pretrained MobileNetV2 (from the offline zoo, nothing is downloaded) turns each
# image into features once; a small new head learns your classes on them. Run \`headstart run\`, then
# change a setting and run again: only the stages it affects re-run (\`headstart status\` says why).
`;

const TRANSFER_STAGES = `  head:
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

const FINE_TUNE_INTRO = `# The whole fine-tuning recipe, in the two phases of Keras's transfer-learning guide and fastai's
# \`learn.fine_tune\`: a pretrained MobileNetV2 (from the offline zoo, nothing is downloaded) stays frozen
# while a new head learns your classes; then the top of the base is unfrozen and trained with the rate an
# LR finder suggests, a one-cycle schedule, smaller rates for lower blocks and label smoothing; the test
# split is scored with test-time augmentation. Each stage is cached: change a setting, run again, and only
# the stages it affects re-run (\`headstart status\` says why; \`headstart report\` plots the curves).
`;

const FINE_TUNE_STAGES = `  head:
    uses: train-head           # phase 1, Keras's base.trainable = False: only the new head trains, on cached features
    inputs: { features: features.features }
    with:
      layers: [{ dense: 128, activation: relu }, { dropout: 0.2 }]   # Keras: Dense(128, relu), Dropout(0.2), then the classifier
      epochs: 30
      lr: 0.001                # Adam's learning rate (optimizer: adam | sgd | rmsprop)
      label_smoothing: 0.1     # Keras's CategoricalCrossentropy(label_smoothing=0.1): 10 % of each target spread over all classes
      early_stopping: { patience: 5, monitor: val_accuracy }   # EarlyStopping(restore_best_weights=True)
  unfreeze:
    uses: unfreeze             # phase 2 starts: fastai's learn.unfreeze(), but only the top of the base
    inputs: { model: head.model }
    with: { from_layer: block_13_expand }   # blocks 13-16 and the head train; BatchNormalization stays in inference mode
  find:
    uses: lr-find              # fastai's learn.lr_find(): trains a copy at a growing rate; the model itself never changes
    inputs: { model: unfreeze.model, dataset: prep.dataset }
    with: { start_lr: 1.0e-7, end_lr: 1, iterations: 100, suggest: valley }   # suggest: valley | steep | minimum
  finetune:
    uses: fine-tune            # Keras: compile with a low rate, then fit the unfrozen layers again
    # The rate comes from find (its lr.json); drop \`lr: find.lr\` and set lr: 0.0001 below to choose it yourself.
    inputs: { model: unfreeze.model, dataset: prep.dataset, lr: find.lr }
    with:
      lr_scale: 1              # the rate used = find's suggestion × lr_scale (fastai often halves it: 0.5)
      epochs: 8
      # fastai's fit_one_cycle: the rate rises from lr/25 to lr over 30 % of the batches, then falls to min_lr (0).
      # Also: constant | cosine | step | plateau (Keras's ReduceLROnPlateau), with warmup_epochs, min_lr…
      schedule: { type: one_cycle, pct_start: 0.3 }
      # Discriminative rates (fastai's slice(lo, hi), timm's layer_decay): the head trains at the full
      # rate, the top unfrozen block at 0.7 × it, each block below at 0.7 × the rate of the block above.
      layer_decay: 0.7
      label_smoothing: 0.1     # as in the head
      early_stopping: { patience: 3, monitor: val_accuracy }   # keeps the best val epoch
  eval:
    uses: evaluate
    inputs: { model: finetune.model, dataset: prep.dataset }
    # Test-time augmentation: each image's prediction averaged with its mirror image's; metrics.json has
    # the accuracy with and without it (leave it out when a mirror image means something else: text, digits).
    with: { split: test, tta: { flip: true } }
# Next: \`headstart predict --model finetune IMAGE…\` classifies new images and \`headstart export --stage
# finetune --out web\` writes the model for the browser. To unfreeze gradually, chain more phases: a second
# unfreeze (from_layer: block_10_expand) on finetune.model, then a second fine-tune (see the README).
`;

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
