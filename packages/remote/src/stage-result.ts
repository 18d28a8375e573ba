import { hostname } from 'node:os';
import { isSha256Hex, stageKey, type RunRecord, type StageKey } from '@headstart/core';

/**
 * A stage result as stored remotely: the run record (outputs with hash and size, key document,
 * metrics) plus who produced it with which headstart version.
 */
export interface StageResultDocument extends RunRecord {
  headstartVersion: string;
  producer: { host: string; platform: string };
}

export function renderStageResult(record: RunRecord, headstartVersion: string): Buffer {
  const document: StageResultDocument = { ...record, headstartVersion, producer: { host: hostname(), platform: `${process.platform}-${process.arch}` } };
  return Buffer.from(JSON.stringify(document, null, 2));
}

/**
 * The run record in a stored stage result, or a reason it cannot be trusted. Besides the shape, the
 * key document must hash to the key it is stored under, and every output must name a well-formed hash.
 */
export function parseStageResult(bytes: Buffer, key: StageKey): RunRecord | string {
  let document: Partial<StageResultDocument>;
  try {
    document = JSON.parse(bytes.toString('utf8')) as Partial<StageResultDocument>;
  } catch {
    return 'it is not JSON';
  }
  if (document?.recordVersion !== 1 || document.key !== key) return 'it is not a headstart stage result for this key';
  const outputs = document.outputs;
  if (typeof outputs !== 'object' || outputs === null || !Object.values(outputs).every((ref) => isSha256Hex(ref?.hash) && typeof ref.size === 'number')) {
    return 'its outputs are malformed';
  }
  if (!document.keyDocument || stageKey(document.keyDocument) !== key) return 'its key document does not hash to its key';
  const record = { ...document } as Partial<StageResultDocument>;
  delete record.headstartVersion;
  delete record.producer;
  return record as RunRecord;
}
