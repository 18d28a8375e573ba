import type * as Tfjs from '@tensorflow/tfjs';

/** The `@tensorflow/tfjs` namespace; every runtime function takes it rather than importing it. */
export type Tf = typeof Tfjs;
