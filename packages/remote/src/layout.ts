import type { StageKey, Sha256Hex } from '@headstart/core';
import type { RemoteLocation } from './remote-url.js';

/**
 * Object names in the bucket. The version prefix lets a future layout live beside this one:
 * blobs are content-addressed like the local store, stage results are named by stage key.
 */
export const LAYOUT_VERSION = 'v1';

export function blobName(location: RemoteLocation, hash: Sha256Hex): string {
  return `${location.prefix}${LAYOUT_VERSION}/cas/sha256/${hash.slice(0, 2)}/${hash}`;
}

export function resultName(location: RemoteLocation, key: StageKey): string {
  return `${location.prefix}${LAYOUT_VERSION}/ac/${key}.json`;
}

export function layoutRoot(location: RemoteLocation): string {
  return `${location.prefix}${LAYOUT_VERSION}/`;
}
