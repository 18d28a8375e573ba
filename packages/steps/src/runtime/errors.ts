import { StepUserError } from '@headstart/core';

/**
 * Errors a user can cause through a pipeline's parameters or environment (a bad model reference, a
 * checksum that does not match, a backend that cannot load here). Like every StepUserError, the engine
 * prints the message as one line and exits with code 2; anything else thrown by the runtime is a bug.
 */
export class RuntimeUserError extends StepUserError {
  override readonly name: string = 'RuntimeUserError';
}

/** A backend named by `--backend` or `HEADSTART_BACKEND` cannot be loaded on this machine. */
export class BackendUnavailableError extends RuntimeUserError {
  override readonly name: string = 'BackendUnavailableError';
  constructor(
    readonly backend: string,
    readonly reason: string,
  ) {
    super(`backend ${backend} is not available: ${reason}`);
  }
}

/** Tensor memory would exceed the budget (on wasm, a failed allocation corrupts the module silently). */
export class MemoryBudgetError extends RuntimeUserError {
  override readonly name: string = 'MemoryBudgetError';
}

/** Downloaded or cached bytes do not match the checksum they are pinned to. */
export class IntegrityError extends RuntimeUserError {
  override readonly name: string = 'IntegrityError';
}
