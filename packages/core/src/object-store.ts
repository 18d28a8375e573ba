import type { RunRecord } from './run-record.js';
import type { StageKey } from './cache-key.js';
import type { Sha256Hex } from './util/digest.js';

/**
 * Where objects and run records live. The local directory is one implementation; a shared remote
 * (S3-compatible) is another. Every object is verified against its hash when it is read, whatever the store.
 */
export interface ObjectStore {
  /** Whether a good copy of the object is there (a corrupt one counts as absent). */
  has(hash: Sha256Hex): Promise<boolean>;
  /** Copies the object's bytes to `destination`; false when the store has no good copy. */
  get(hash: Sha256Hex, destination: string): Promise<boolean>;
  /** Stores the file's bytes under `hash` (the caller computed it). The source file may be moved. */
  put(hash: Sha256Hex, source: string): Promise<void>;
  readRecord(key: StageKey): Promise<RunRecord | undefined>;
  /** Written last, after every object it names: the record's presence is what makes a hit. */
  writeRecord(record: RunRecord): Promise<void>;
}
