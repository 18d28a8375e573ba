import { createHash } from 'node:crypto';
import { readFile, rm } from 'node:fs/promises';
import path from 'node:path';
import type * as Tfjs from '@tensorflow/tfjs';
import { writeFileAtomic } from '@headstart/core';
import { writeDirAtomic } from './atomic-file.js';
import { IntegrityError, RuntimeUserError } from './errors.js';
import { isSha256Hex as isSha256 } from '@headstart/core';
import { MODEL_JSON, manifestBytes, shardPaths } from './model-io.js';

export interface DownloadOptions {
  /**
   * The model's pin (hex): SHA-256 of model.json's bytes followed by those of every weight shard in the
   * order its manifest lists them, so it covers the topology and the weights alike. Computed by
   * `cat model.json <shards in manifest order> | sha256sum`; a wrong pin's error names the right one.
   */
  sha256: string;
  cacheDir: string;
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/** Written into a download directory with its files, naming where they came from; without it the download never finished. */
const RECEIPT = 'download.json';

interface Receipt {
  url: string;
}

/** The pin of a model: SHA-256 over model.json's bytes, then each shard's in manifest order. */
export function modelPin(jsonBytes: Uint8Array, shards: Iterable<Uint8Array>): string {
  const hash = createHash('sha256').update(jsonBytes);
  for (const bytes of shards) hash.update(bytes);
  return hash.digest('hex');
}

/**
 * Fetches a tfjs layers model (model.json and the weight shards its manifest lists) into
 * `<cacheDir>/downloads/<sha256>/`, verified and written atomically, and returns the local model.json
 * path. Later calls use the cached copy without the network while its files still hash to the pin.
 * Only https is allowed, and plain http to a loopback address (local test servers).
 */
export async function downloadModel(url: string, options: DownloadOptions): Promise<string> {
  const source = checkUrl(url);
  const expected = options.sha256.toLowerCase();
  if (!isSha256(expected)) throw new RuntimeUserError(`sha256 for ${url} must be 64 hex digits, got "${options.sha256}"`);
  const dir = path.join(options.cacheDir, 'downloads', expected);
  if (await isIntact(dir)) return path.join(dir, MODEL_JSON);
  await rm(dir, { recursive: true, force: true });
  options.log?.(`downloading ${url}`);
  const jsonBytes = await fetchBytes(source, options.signal);
  const json = parseModelJson(jsonBytes, url);
  const shards = await fetchShards(source, json, options.signal);
  const actual = modelPin(jsonBytes, shards.values());
  if (actual !== expected) {
    throw new IntegrityError(
      `${url} (model.json and its ${shards.size} weight file${shards.size === 1 ? '' : 's'}) has sha256 ${actual}, but the pipeline pins ${expected}: the model changed or the pin is wrong`,
    );
  }
  await writeDirAtomic(dir, async (tmp) => {
    await writeFileAtomic(path.join(tmp, MODEL_JSON), jsonBytes);
    for (const [name, bytes] of shards) await writeFileAtomic(path.join(tmp, name), bytes);
    await writeFileAtomic(path.join(tmp, RECEIPT), JSON.stringify({ url } satisfies Receipt));
  });
  return path.join(dir, MODEL_JSON);
}

export function isLoopback(hostname: string): boolean {
  return hostname === 'localhost' || hostname === '[::1]' || /^127(\.\d{1,3}){3}$/.test(hostname);
}

function checkUrl(url: string): URL {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new RuntimeUserError(`"${url}" is not a URL`);
  }
  if (parsed.protocol === 'https:') return parsed;
  if (parsed.protocol === 'http:' && isLoopback(parsed.hostname)) return parsed;
  if (parsed.protocol === 'http:') throw new RuntimeUserError(`${url}: plain http is allowed only for loopback addresses; use https`);
  throw new RuntimeUserError(`${url}: only https:// model URLs are supported`);
}

async function fetchBytes(url: URL, signal: AbortSignal | undefined): Promise<Uint8Array> {
  let response: Response;
  try {
    response = await fetch(url, signal ? { signal } : {});
  } catch (error) {
    if (signal?.aborted) throw error;
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    throw new RuntimeUserError(`cannot download ${url.href} (${cause?.code ?? cause?.message ?? (error as Error).message})`);
  }
  checkUrl(response.url || url.href); // a redirect must not leave https
  if (!response.ok) throw new RuntimeUserError(`cannot download ${url.href}: HTTP ${response.status} ${response.statusText}`);
  return new Uint8Array(await response.arrayBuffer());
}

function parseModelJson(bytes: Uint8Array, url: string): Tfjs.io.ModelJSON {
  let json: Partial<Tfjs.io.ModelJSON>;
  try {
    json = JSON.parse(Buffer.from(bytes).toString('utf8')) as Partial<Tfjs.io.ModelJSON>;
  } catch {
    throw new RuntimeUserError(`${url} is not JSON`);
  }
  if (!json.modelTopology || !Array.isArray(json.weightsManifest)) {
    throw new RuntimeUserError(`${url} is not a TensorFlow.js layers model.json`);
  }
  return json as Tfjs.io.ModelJSON;
}

/** Shard names must stay inside the download directory: relative, no `..`. */
function checkShardName(name: string, url: string): void {
  const parts = name.split('/');
  if (name.startsWith('/') || parts.some((p) => p === '' || p === '.' || p === '..') || /[\\?#:]/.test(name)) {
    throw new RuntimeUserError(`${url} lists weight file "${name}"; only plain relative paths are supported`);
  }
}

async function fetchShards(base: URL, json: Tfjs.io.ModelJSON, signal: AbortSignal | undefined): Promise<Map<string, Uint8Array>> {
  const shards = new Map<string, Uint8Array>();
  let total = 0;
  for (const name of shardPaths(json)) {
    checkShardName(name, base.href);
    const bytes = await fetchBytes(new URL(name, base), signal);
    shards.set(name, bytes);
    total += bytes.byteLength;
  }
  if (total !== manifestBytes(json)) {
    throw new IntegrityError(`${base.href}: its weight files hold ${total} bytes, its manifest needs ${manifestBytes(json)}`);
  }
  return shards;
}

async function isIntact(dir: string): Promise<boolean> {
  try {
    await readFile(path.join(dir, RECEIPT)); // written last: without it the download never finished
    const jsonBytes = await readFile(path.join(dir, MODEL_JSON));
    const shards = await Promise.all(shardPaths(parseModelJson(jsonBytes, dir)).map((name) => readFile(path.join(dir, name))));
    return modelPin(jsonBytes, shards) === path.basename(dir);
  } catch {
    return false;
  }
}
