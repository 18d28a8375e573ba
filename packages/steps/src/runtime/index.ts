/**
 * The ML runtime the built-in steps call: backends, the offline model zoo, model and tensor files.
 * Nothing here imports TensorFlow.js at module load; `loadBackend()` does, when a step first asks.
 */
export {
  BACKEND_NAMES,
  backendSetting,
  isBackendName,
  loadBackend,
  tfjsBackendName,
  type BackendName,
  type LoadBackendOptions,
  type LoadedBackend,
  type Tf,
} from './backend.js';
export { BackendUnavailableError, IntegrityError, MemoryBudgetError, RuntimeUserError } from './errors.js';
export { checkMemory, defaultMemoryBudget, tensorBytes, WASM_HEAP_LIMIT_BYTES } from './memory.js';
export { registerWasmKernels } from './wasm-kernels.js';
export { BaseModel, type FrozenBase, type BaseInfo, type Pooling } from './base-model.js';
export { GraphBase, isGraphModel, resolveGraphNode } from './graph-base.js';
export {
  BASES,
  BASE_NAMES,
  isBaseName,
  graphCannotTrain,
  loadBase,
  loadFrozenBase,
  MNIST_CNN_DIR,
  type BaseDescriptor,
  type BaseName,
  type LoadBaseOptions,
} from './zoo.js';
export { convertFromNsfwjs, nsfwjsCacheDir, nsfwjsModelFiles, type NsfwjsModel } from './zoo-nsfwjs.js';
export { downloadModel, type DownloadOptions } from './download.js';
export { describePreprocessing, isPreprocessing, toModelInput, type Preprocessing } from './preprocessing.js';
export { appendGlobalAveragePooling, cutAt, inputShape, layerNames, outputLayerName, setInputSize } from './topology.js';
export { batchNormTrains, freezeBatchNorm, type BatchNormPolicy } from './batch-norm.js';
export {
  fileSystemIO,
  loadModel,
  readModelFiles,
  saveModel,
  writeModelFiles,
  type ModelFiles,
} from './model-io.js';
export { NpyReader, NpyWriter, readNpy, writeNpy, type NpyArray, type NpyDType } from './npy.js';
export { writeDirAtomic } from './atomic-file.js';
