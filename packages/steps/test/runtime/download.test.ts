import { randomBytes } from 'node:crypto';
import { mkdir, readdir, readFile, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import path from 'node:path';
import type { Tensor } from '@tensorflow/tfjs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sha256 } from '@headstart/core';
import { IntegrityError, loadBase, MNIST_CNN_DIR, RuntimeUserError, type BaseModel } from '../../src/runtime/index.js';
import { tempDir, wasm } from './helpers.js';

const tf = await wasm();
const root = await tempDir();
const served = path.join(root, 'www');
const requests: string[] = [];
let server: Server;
let origin: string;

/** The committed mnist_cnn, re-published with its weights split into two shards in a subfolder. */
async function publish(): Promise<{ json: Buffer; shards: Buffer[]; traversal: Buffer }> {
  const json = JSON.parse(await readFile(path.join(MNIST_CNN_DIR, 'model.json'), 'utf8'));
  const weights = await readFile(path.join(MNIST_CNN_DIR, 'weights.bin'));
  const half = Math.floor(weights.length / 2);
  await mkdir(path.join(served, 'm', 'shards'), { recursive: true });
  await writeFile(path.join(served, 'm', 'shards', 'a.bin'), weights.subarray(0, half));
  await writeFile(path.join(served, 'm', 'shards', 'b.bin'), weights.subarray(half));
  json.weightsManifest[0].paths = ['shards/a.bin', 'shards/b.bin'];
  const bytes = Buffer.from(JSON.stringify(json));
  await writeFile(path.join(served, 'm', 'model.json'), bytes);
  json.weightsManifest[0].paths = ['../secret.bin'];
  const traversal = Buffer.from(JSON.stringify(json));
  await writeFile(path.join(served, 'm', 'evil.json'), traversal);
  return { json: bytes, shards: [weights.subarray(0, half), weights.subarray(half)], traversal };
}

const published = await publish();
/** The pin: model.json then its shards in manifest order, as `cat model.json shards/a.bin shards/b.bin | sha256sum` gives it. */
const modelSha = sha256(Buffer.concat([published.json, ...published.shards]));

beforeAll(async () => {
  server = createServer((req, res) => {
    requests.push(req.url ?? '');
    readFile(path.join(served, decodeURIComponent(req.url ?? '/')))
      .then((body) => res.writeHead(200).end(body))
      .catch(() => res.writeHead(404).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  origin = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});
afterAll(() => new Promise<void>((resolve) => server.close(() => resolve())));

async function digitsOf(base: BaseModel): Promise<number[]> {
  const out = tf.tidy(() => base.predict(tf.randomUniform([3, 28, 28, 1], 0, 1, 'float32', 4)) as Tensor);
  const values = Array.from(await out.data());
  out.dispose();
  return values;
}

describe('models from a URL pinned by sha256', () => {
  it('downloads model.json and its shards into the cache, verified, and loads the same model', async () => {
    const cacheDir = path.join(root, 'cache-a');
    const remote = await loadBase(tf, `${origin}/m/model.json`, { cacheDir, sha256: modelSha, includeTop: true });
    const local = await loadBase(tf, 'mnist_cnn', { cacheDir, includeTop: true });
    expect(await digitsOf(remote)).toEqual(await digitsOf(local));
    expect(remote.preprocessing).toEqual(local.preprocessing); // recorded in the model.json's metadata
    expect(requests).toEqual(['/m/model.json', '/m/shards/a.bin', '/m/shards/b.bin']);
    const dir = path.join(cacheDir, 'downloads', modelSha);
    expect((await readdir(dir)).sort()).toEqual(['download.json', 'model.json', 'shards']);
    remote.dispose();
    local.dispose();

    requests.length = 0;
    const again = await loadBase(tf, `${origin}/m/model.json`, { cacheDir, sha256: modelSha, layer: 'conv3_relu' });
    expect(requests).toEqual([]); // served from the cache
    expect(again.info.featureShape).toEqual([64]);
    again.dispose();
  });

  it('refuses a model.json whose sha256 differs from the pin, and caches nothing', async () => {
    const cacheDir = path.join(root, 'cache-b');
    const wrong = sha256('something else');
    const error = await loadBase(tf, `${origin}/m/model.json`, { cacheDir, sha256: wrong }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IntegrityError);
    expect(error).toBeInstanceOf(RuntimeUserError);
    expect((error as Error).message).toBe(
      `${origin}/m/model.json (model.json and its 2 weight files) has sha256 ${modelSha}, but the pipeline pins ${wrong}: the model changed or the pin is wrong`,
    );
    await expect(readdir(path.join(cacheDir, 'downloads'))).rejects.toThrow();
  });

  it('the pin covers the weights: a shard replaced by other bytes of the same size is refused', async () => {
    const cacheDir = path.join(root, 'cache-shard');
    const shard = path.join(served, 'm', 'shards', 'b.bin');
    const good = await readFile(shard);
    const other = randomBytes(good.length);
    await writeFile(shard, other);
    try {
      const error = await loadBase(tf, `${origin}/m/model.json`, { cacheDir, sha256: modelSha }).catch((e: unknown) => e);
      expect(error).toBeInstanceOf(IntegrityError);
      const replaced = sha256(Buffer.concat([published.json, published.shards[0]!, other]));
      expect((error as Error).message).toContain(`has sha256 ${replaced}, but the pipeline pins ${modelSha}`);
      await expect(readdir(path.join(cacheDir, 'downloads'))).rejects.toThrow();
    } finally {
      await writeFile(shard, good);
    }
  });

  it('a pin of model.json alone (which leaves the weights open) is refused, naming the pin to use', async () => {
    const error = await loadBase(tf, `${origin}/m/model.json`, { cacheDir: path.join(root, 'cache-json-only'), sha256: sha256(published.json) }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(IntegrityError);
    expect((error as Error).message).toContain(`has sha256 ${modelSha}, but the pipeline pins ${sha256(published.json)}`);
  });

  it('re-downloads a cached file that no longer matches', async () => {
    const cacheDir = path.join(root, 'cache-c');
    const url = `${origin}/m/model.json`;
    (await loadBase(tf, url, { cacheDir, sha256: modelSha })).dispose();
    const shard = path.join(cacheDir, 'downloads', modelSha, 'shards', 'b.bin');
    const good = await readFile(shard);
    await writeFile(shard, Buffer.alloc(good.length));
    requests.length = 0;
    (await loadBase(tf, url, { cacheDir, sha256: modelSha })).dispose();
    expect(requests).toHaveLength(3);
    expect((await readFile(shard)).equals(good)).toBe(true);
  });

  it.each([
    ['no pin', `/m/model.json`, undefined, /needs its sha256 pinned \(of model\.json and its weight files: cat model\.json <shards in manifest order> \| sha256sum\)/],
    ['a malformed pin', `/m/model.json`, 'abc', /must be 64 hex digits/],
    ['a weight path leaving the folder', `/m/evil.json`, 'traversal', /lists weight file "\.\.\/secret\.bin"; only plain relative paths/],
    ['a missing file', `/m/missing.json`, 'any', /HTTP 404/],
  ])('reports %s as a user error', async (_label, file, pin, message) => {
    const sha = pin === 'traversal' ? sha256(published.traversal) : pin === 'any' ? sha256('') : pin;
    const error = await loadBase(tf, `${origin}${file}`, { cacheDir: path.join(root, 'cache-d'), ...(sha ? { sha256: sha } : {}) }).catch(
      (e: unknown) => e,
    );
    expect(error).toBeInstanceOf(RuntimeUserError);
    expect((error as Error).message).toMatch(message);
  });

  it('allows plain http only to loopback addresses', async () => {
    const options = { cacheDir: path.join(root, 'cache-e'), sha256: modelSha };
    await expect(loadBase(tf, 'http://example.com/model.json', options)).rejects.toThrow(
      'http://example.com/model.json: plain http is allowed only for loopback addresses; use https',
    );
    await expect(loadBase(tf, 'ftp://example.com/model.json', options)).rejects.toThrow(/unknown base/);
  });

  it('loads file: references relative to the pipeline directory', async () => {
    const base = await loadBase(tf, 'file:www/m/model.json', { cacheDir: root, baseDir: root, layer: 'conv2_relu' });
    expect(base.info).toMatchObject({ source: 'file:www/m/model.json', layer: 'conv2_relu', featureShape: [32] });
    base.dispose();
    await expect(loadBase(tf, 'file:nowhere/model.json', { cacheDir: root, baseDir: root })).rejects.toThrow(/cannot read model .*nowhere\/model\.json \(ENOENT\)/);
  });
});
