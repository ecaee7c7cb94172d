import {
  AbortError,
  BackendDisposedError,
  BatchLimitError,
  describeModel,
  InvalidInputError,
  PositionLimitError,
  readModelDirectory,
  SequenceError,
  type BackendCapabilitiesV1,
  type BackendForwardOptionsV1,
  type BackendForwardResultV1,
  type BackendModelV1,
  type BackendSequenceResultV1,
  type BackendStatsV1,
  type BackendV1,
  type BackendWarningV1,
} from '@gen/backend';
import * as ort from 'onnxruntime-node';
import { readGraphSignature } from './graph-signature.js';
import type { CacheGroup, SequenceState } from './kv-group.js';
import { graphMentions, resolveModelFile } from './model-file.js';
import type { OnnxBackendSettings } from './onnx-backend-settings.js';
import { executeRun, planRuns, type RowInput, type RowOutput, type RunContext } from './run-batch.js';
import { SerialQueue } from './serial-queue.js';
import { openSession } from './session.js';

function checkPositiveInteger(name: string, value: number | undefined): void {
  if (value !== undefined && (!Number.isInteger(value) || value < 1)) {
    throw new RangeError(`${name} must be a positive integer, got ${value}`);
  }
}

/**
 * Creates a backend that runs a Hugging Face ONNX decoder (`onnx/model*.onnx` of a llama, mistral or qwen2 model
 * directory) with onnxruntime-node.
 *
 * The graph's inputs, outputs, cache shapes and dtypes are read from the session, so exports made by Optimum,
 * onnx-community, `@gen/model-kit` or others load alike (with or without `position_ids`, float32 or float16
 * caches, merged decoders with `use_cache_branch`). Each sequence keeps its own KV cache; a batch may mix new
 * prompts and decode steps of any lengths (past caches left-padded, new tokens right-padded, masks and
 * positions per row). Supports prompt logits, fork (the cache is shared copy-on-write), abort (checked before and
 * after each onnxruntime run: a run itself cannot be interrupted) and overlapping calls (run in call order).
 *
 * @throws {ModelLoadError} `config.json` or the `.onnx` file for `dtype` is missing or unreadable (the message
 *   lists the variants that exist), the graph's cache shapes disagree with `config.json`.
 * @throws {UnsupportedModelError} the architecture is not supported, or the graph is not a decoder with a KV cache.
 * @throws {BackendError} none of `executionProviders` can be loaded.
 */
export async function createOnnxBackend(settings: OnnxBackendSettings): Promise<BackendV1> {
  const maxBatchSize = settings.maxBatchSize ?? 32;
  checkPositiveInteger('maxBatchSize', maxBatchSize);
  checkPositiveInteger('maxPositions', settings.maxPositions);
  checkPositiveInteger('intraOpThreads', settings.intraOpThreads);
  const directory = await readModelDirectory(settings.modelDir);
  const { config } = directory;
  const dtype = settings.dtype ?? 'fp32';
  const file = await resolveModelFile(settings.modelDir, dtype, settings.modelFile);
  const warnings: BackendWarningV1[] = [];
  if (settings.maxPositions !== undefined && settings.maxPositions > config.maxPositions) {
    warnings.push({
      type: 'unsupported-setting',
      setting: 'maxPositions',
      details: `clamped to max_position_embeddings ${config.maxPositions}`,
    });
  }
  const opened = await openSession(file.path, settings, warnings);
  let signature;
  try {
    signature = readGraphSignature(opened.session.inputMetadata, opened.session.outputMetadata, config, file.path);
  } catch (error) {
    await opened.session.release();
    throw error;
  }
  if (
    settings.preferredOutputLocation !== undefined &&
    settings.preferredOutputLocation !== 'cpu' &&
    opened.executionProvider !== 'webgpu'
  ) {
    warnings.push({
      type: 'unsupported-setting',
      setting: 'preferredOutputLocation',
      details: `onnxruntime-node keeps outputs on the device only with the webgpu provider; ${opened.executionProvider} returns CPU tensors`,
    });
  }
  const groupQueryAttention = await graphMentions(file.path, 'GroupQueryAttention');
  const alone =
    signature.attentionMask === undefined
      ? 'the graph has no attention_mask input'
      : signature.fixedBatch !== undefined
        ? 'the graph fixes the batch dimension to 1'
        : groupQueryAttention
          ? 'the graph uses GroupQueryAttention, which expects caches that start at slot 0 of every row'
          : undefined;
  if (alone !== undefined) {
    warnings.push({ type: 'other', message: `${alone}: sequences of a batch run one at a time` });
  }

  const computeDtype =
    file.dtype === undefined || file.dtype === 'fp32' || file.dtype === 'fp16'
      ? signature.logits.type === 'float16'
        ? 'float16'
        : 'float32'
      : file.dtype;
  const settingsReport = {
    file: file.relativePath,
    fileBytes: file.bytes,
    dtype: file.dtype ?? computeDtype,
    kvCacheDtype: signature.kvType,
    logitsDtype: signature.logits.type,
    executionProvider: opened.executionProvider,
    intraOpThreads: settings.intraOpThreads ?? 'auto',
    intraOpSpinning: settings.intraOpSpinning === true,
    graphOptimizationLevel: settings.graphOptimizationLevel ?? 'all',
    preferredOutputLocation: settings.preferredOutputLocation ?? 'cpu',
    onnxruntime: ort.env.versions.node ?? ort.env.versions.common,
    graphInputs: opened.session.inputNames.length,
    positionIds: signature.positionIds !== undefined,
    groupQueryAttention,
  };
  const model = describeModel(directory, {
    dtype: computeDtype,
    ...(settings.maxPositions === undefined ? {} : { maxPositions: settings.maxPositions }),
    details: settingsReport,
  });
  const capabilities: BackendCapabilitiesV1 = {
    maxBatchSize,
    device: opened.device,
    promptLogits: true,
    fork: true,
    details: settingsReport,
  };
  const context: RunContext = {
    session: opened.session,
    signature,
    layout: {
      layers: signature.layers.length,
      kvHeads: signature.kvHeads,
      headDim: signature.headDim,
      kvType: signature.kvType,
    },
    vocabSize: config.vocabSize,
    maxPositions: model.maxPositions,
    paddedBatches: alone === undefined,
    file: file.path,
  };
  return new OnnxBackend(context, model, capabilities, warnings);
}

class OnnxBackend implements BackendV1 {
  readonly specificationVersion = 'v1';
  readonly backendId = 'onnx';
  readonly model: BackendModelV1;
  readonly capabilities: BackendCapabilitiesV1;
  readonly warnings: readonly BackendWarningV1[];
  private context: RunContext | undefined;
  private readonly sequences = new Map<string, SequenceState>();
  private readonly queue = new SerialQueue();

  constructor(
    context: RunContext,
    model: BackendModelV1,
    capabilities: BackendCapabilitiesV1,
    warnings: BackendWarningV1[],
  ) {
    this.context = context;
    this.model = model;
    this.capabilities = capabilities;
    this.warnings = warnings;
  }

  doForward(options: BackendForwardOptionsV1): Promise<BackendForwardResultV1> {
    return this.queue.run(() => this.forward(options));
  }

  doRelease(ids: readonly string[]): Promise<void> {
    return this.queue.run(() => {
      this.live();
      const seen = new Set<string>();
      let problem: SequenceError | undefined;
      for (const id of ids) {
        if (seen.has(id)) {
          problem ??= new SequenceError({
            sequenceId: id,
            reason: 'duplicate',
            message: `id ${JSON.stringify(id)} is listed twice`,
          });
          continue;
        }
        seen.add(id);
        if (!this.sequences.delete(id)) {
          problem ??= new SequenceError({
            sequenceId: id,
            reason: 'unknown',
            message: `cannot release sequence ${JSON.stringify(id)}: it is not live (never created or already released)`,
          });
        }
      }
      if (problem !== undefined) throw problem;
    });
  }

  doFork(fromId: string, toId: string): Promise<void> {
    return this.queue.run(() => {
      this.live();
      const source = this.sequences.get(fromId);
      if (source === undefined) {
        throw new SequenceError({
          sequenceId: fromId,
          reason: 'unknown',
          message: `cannot fork sequence ${JSON.stringify(fromId)}: it is not live (never created or already released)`,
        });
      }
      if (this.sequences.has(toId)) {
        throw new SequenceError({
          sequenceId: toId,
          reason: 'exists',
          message: `cannot fork into ${JSON.stringify(toId)}: that sequence is live`,
        });
      }
      // Cache groups are immutable (each run returns new tensors), so the copy shares the source's until either
      // sequence runs again.
      this.sequences.set(toId, source);
    });
  }

  /**
   * `kvCacheBytes` counts the cache tensors live sequences hold, each shared group once: with no padding held it
   * is `2 x layers x kvHeads x headDim x bytesPerElement x cachedTokens`; padding slots of batched caches count too.
   */
  stats(): BackendStatsV1 {
    let cachedTokens = 0;
    let kvCacheBytes = 0;
    const groups = new Set<CacheGroup>();
    for (const state of this.sequences.values()) {
      cachedTokens += state.length;
      if (!groups.has(state.group)) {
        groups.add(state.group);
        kvCacheBytes += state.group.bytes;
      }
    }
    return { sequences: this.sequences.size, cachedTokens, kvCacheBytes };
  }

  doDispose(): Promise<void> {
    return this.queue.run(async () => {
      const context = this.context;
      this.context = undefined;
      this.sequences.clear();
      await context?.session.release();
    });
  }

  private live(): RunContext {
    if (this.context === undefined) throw new BackendDisposedError(this.backendId);
    return this.context;
  }

  private validate(options: BackendForwardOptionsV1): RowInput[] {
    const { vocabSize, maxPositions } = this.model;
    const inputs = options.sequences;
    if (inputs.length === 0) throw new InvalidInputError({ message: 'doForward needs at least one sequence' });
    if (inputs.length > this.capabilities.maxBatchSize) {
      throw new BatchLimitError({ batchSize: inputs.length, maxBatchSize: this.capabilities.maxBatchSize });
    }
    const seen = new Set<string>();
    return inputs.map((input, index) => {
      const { id, tokens } = input;
      if (typeof id !== 'string') {
        throw new InvalidInputError({ message: `sequence id must be a string, got ${typeof id}` });
      }
      if (seen.has(id)) {
        throw new SequenceError({
          sequenceId: id,
          reason: 'duplicate',
          message: `id ${JSON.stringify(id)} appears twice in one batch`,
        });
      }
      seen.add(id);
      if (tokens.length === 0) {
        throw new InvalidInputError({
          sequenceId: id,
          message: `sequence ${JSON.stringify(id)} has no tokens to append`,
        });
      }
      for (let i = 0; i < tokens.length; i++) {
        const token = tokens[i]!;
        if (!Number.isInteger(token) || token < 0 || token >= vocabSize) {
          throw new InvalidInputError({
            sequenceId: id,
            message: `sequence ${JSON.stringify(id)}: token ${i} is ${token}, not an integer in [0, ${vocabSize})`,
          });
        }
      }
      const state = this.sequences.get(id);
      const start = state?.length ?? 0;
      if (input.startPosition !== undefined && input.startPosition !== start) {
        throw state === undefined
          ? new SequenceError({
              sequenceId: id,
              reason: 'unknown',
              message: `sequence ${JSON.stringify(id)} is not live (never created or already released), but startPosition is ${input.startPosition}`,
            })
          : new SequenceError({
              sequenceId: id,
              reason: 'position-mismatch',
              message: `sequence ${JSON.stringify(id)} holds ${start} tokens, but startPosition is ${input.startPosition}`,
            });
      }
      if (start + tokens.length > maxPositions) {
        throw new PositionLimitError({ sequenceId: id, requestedPositions: start + tokens.length, maxPositions });
      }
      return {
        index,
        id,
        tokens: tokens instanceof Int32Array ? tokens : Int32Array.from(tokens),
        state,
        start,
        wantPromptLogits: input.wantPromptLogits === true,
      };
    });
  }

  private async forward(options: BackendForwardOptionsV1): Promise<BackendForwardResultV1> {
    const context = this.live();
    AbortError.throwIfAborted(options.signal);
    const rows = this.validate(options);
    const vocabSize = this.model.vocabSize;
    const runs = planRuns(rows, context, this.capabilities.maxBatchSize);
    // One run: it may hand over onnxruntime's logits array as the result; several runs fill a shared one.
    let logits: Float32Array | undefined = runs.length === 1 ? undefined : new Float32Array(rows.length * vocabSize);
    const outputs: RowOutput[] = [];
    for (const run of runs) {
      AbortError.throwIfAborted(options.signal);
      const result = await executeRun(run, context, logits);
      logits = result.logits;
      outputs.push(...result.outputs);
    }
    if (logits === undefined) throw new Error('unreachable: a call has at least one run');
    AbortError.throwIfAborted(options.signal);

    // Commit: nothing above this line changed a sequence or the set of live sequences.
    const results: BackendSequenceResultV1[] = new Array(rows.length);
    for (const output of outputs) {
      const { index, id } = output.input;
      this.sequences.set(id, output.state);
      results[index] = {
        id,
        logits: logits.subarray(index * vocabSize, (index + 1) * vocabSize),
        length: output.state.length,
        ...(output.promptLogits === undefined ? {} : { promptLogits: output.promptLogits }),
      };
    }
    return { logits, sequences: results, warnings: [] };
  }
}
