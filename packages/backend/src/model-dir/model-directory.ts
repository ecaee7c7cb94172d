import type { BackendModelV1 } from '../v1/index.js';
import {
  generationDefaults,
  readGenerationConfig,
  resolveEosTokenIds,
  type GenerationConfig,
} from './generation-config.js';
import { readModelConfig, type DecoderModelConfig } from './model-config.js';

/** The configuration files of a Hugging Face model directory, parsed (weights are opened separately). */
export interface ModelDirectory {
  /** The directory. */
  readonly dir: string;
  /** `config.json`. */
  readonly config: DecoderModelConfig;
  /** `generation_config.json`, when present. */
  readonly generationConfig: GenerationConfig | undefined;
}

/**
 * Reads `config.json` (required) and `generation_config.json` (optional) of a model directory.
 *
 * @throws {ModelLoadError} see {@link readModelConfig} and {@link readGenerationConfig}.
 */
export async function readModelDirectory(dir: string): Promise<ModelDirectory> {
  const [config, generationConfig] = await Promise.all([readModelConfig(dir), readGenerationConfig(dir)]);
  return { dir, config, generationConfig };
}

/**
 * The `BackendV1.model` description of a model directory, for backends that load one.
 *
 * @param options.dtype The dtype the backend computes in.
 * @param options.maxPositions A lower position limit than `max_position_embeddings`, when the backend has one.
 */
export function describeModel(
  directory: ModelDirectory,
  options: { dtype: string; maxPositions?: number; details?: Record<string, unknown> },
): BackendModelV1 {
  const { config, generationConfig } = directory;
  return {
    architecture: config.architecture,
    modelType: config.modelType,
    vocabSize: config.vocabSize,
    maxPositions: Math.min(options.maxPositions ?? config.maxPositions, config.maxPositions),
    eosTokenIds: resolveEosTokenIds(config, generationConfig),
    bosTokenId: generationConfig?.bosTokenId ?? config.bosTokenId,
    dtype: options.dtype,
    numLayers: config.numLayers,
    hiddenSize: config.hiddenSize,
    numAttentionHeads: config.numAttentionHeads,
    numKeyValueHeads: config.numKeyValueHeads,
    headDim: config.headDim,
    generationDefaults: generationDefaults(generationConfig),
    details: {
      checkpointDtype: config.torchDtype,
      ropeTheta: config.ropeTheta,
      ropeScaling: config.ropeScaling,
      slidingWindow: config.slidingWindow,
      tieWordEmbeddings: config.tieWordEmbeddings,
      ...options.details,
    },
  };
}
