import type { ExportedPreprocessing } from './image-decoding.js';
import type { ModelMetadata } from './model-artifact.js';

/** The README of an exported model: what the files are and how to classify an image in the browser. */
export function browserReadme(p: ExportedPreprocessing, metadata: ModelMetadata): string {
  const { image } = p;
  const classes = metadata.classes.length <= 12 ? metadata.classes.join(', ') : `${metadata.classes.slice(0, 12).join(', ')}, …`;
  return `# Exported model

A TensorFlow.js layers model exported by \`headstart export\`. It needs nothing but
\`@tensorflow/tfjs\`: no custom layers, and the \`headstart\` entry in model.json's
\`userDefinedMetadata\` is informational only.

| file | what it holds |
| --- | --- |
| \`model.json\`, \`weights.bin\` | the model (input [n, ${p.inputSize}, ${p.inputSize}, ${p.channels}] float32, NHWC) |
| \`labels.json\` | the ${metadata.classes.length} class names in output order (${classes}) |
| \`preprocessing.json\` | how to turn an image into the model's input (below) |

${outputNote(metadata)}

## Preparing an image (preprocessing.json)

The model was trained on images prepared in this order; do the same:

1. Decode the image, apply its EXIF orientation, and flatten transparency onto \`image.background\`
   (${image.background}).
2. Resize it to \`image.size\` × \`image.size\` (${image.size} × ${image.size}) by \`image.fit\` (${image.fit}):
   \`fill\` stretches it, \`cover\` scales it to cover the square and crops the centre, \`contain\`
   scales it to fit and pads with the background. headstart resampled with sharp's lanczos3
   (\`image.kernel\`); a canvas's smoothing is close but not bit-identical.
3. If \`inputSize\` (${p.inputSize}) differs from \`image.size\`, resize bilinearly to \`inputSize\`.
4. Channels (\`channels\`: ${p.channels}): ${p.channels === 1 ? 'gray = 0.299 R + 0.587 G + 0.114 B' : 'R, G, B'}.
5. Scale each value: \`pixel * (range[1] - range[0]) / 255 + range[0]\` (range [${p.range[0]}, ${p.range[1]}]).

## In the browser

\`\`\`js
import * as tf from '@tensorflow/tfjs';

const base = '/model';  // where these files are served
const model = await tf.loadLayersModel(\`\${base}/model.json\`);
const labels = await (await fetch(\`\${base}/labels.json\`)).json();
const pre = await (await fetch(\`\${base}/preprocessing.json\`)).json();

/** An <img>, <canvas> or ImageBitmap as the model's input, following preprocessing.json. */
function toInput(source) {
  const { size, fit, background } = pre.image;
  const canvas = new OffscreenCanvas(size, size);
  const context = canvas.getContext('2d');
  context.fillStyle = background;
  context.fillRect(0, 0, size, size);
  const [w, h] = [source.naturalWidth ?? source.width, source.naturalHeight ?? source.height];
  const scale = fit === 'cover' ? Math.max(size / w, size / h) : Math.min(size / w, size / h);
  if (fit === 'fill') context.drawImage(source, 0, 0, size, size);
  else context.drawImage(source, (size - w * scale) / 2, (size - h * scale) / 2, w * scale, h * scale);
  return tf.tidy(() => {
    let x = tf.browser.fromPixels(canvas, 3).toFloat().expandDims(0);
    if (pre.inputSize !== size) x = tf.image.resizeBilinear(x, [pre.inputSize, pre.inputSize], false, true);
    if (pre.channels === 1) x = x.mul([0.299, 0.587, 0.114]).sum(-1, true);
    return x.mul((pre.range[1] - pre.range[0]) / 255).add(pre.range[0]);
  });
}

const input = toInput(document.querySelector('img'));
const probabilities = await model.predict(input).data();
input.dispose();
${metadata.binary ? 'const best = probabilities[0] >= 0.5 ? labels[1] : labels[0];' : 'const best = labels[probabilities.indexOf(Math.max(...probabilities))];'}
\`\`\`

In Node, \`headstart predict --model <this folder> IMAGE…\` prepares images exactly as training did.
`;
}

function outputNote(metadata: ModelMetadata): string {
  if (metadata.binary) {
    return `The model is binary: its one output column is the probability of \`${metadata.classes[1]}\` (labels[1]); \`${metadata.classes[0]}\` has 1 minus it.`;
  }
  return 'The output is one probability per class (softmax), in the order of labels.json.';
}
