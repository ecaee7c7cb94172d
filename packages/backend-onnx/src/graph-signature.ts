import { ModelLoadError, UnsupportedModelError, type DecoderModelConfig } from '@gen/backend';
import type { InferenceSession } from 'onnxruntime-node';

/** Element type of the integer inputs (`input_ids`, `attention_mask`, `position_ids`). */
export type IndexType = 'int64' | 'int32';

/** Element type of the key / value caches and of the logits. */
export type FloatType = 'float32' | 'float16';

/** The names of one layer's cache inputs and outputs. */
export interface LayerNames {
  readonly pastKey: string;
  readonly pastValue: string;
  readonly presentKey: string;
  readonly presentValue: string;
}

/**
 * The two decoder layouts this backend runs:
 *
 * - `standard`: the Optimum / onnx-community layout, `past_key_values.{i}.key|value` `[batch, kv_heads, past,
 *   head_dim]` in and `present.{i}.key|value` `[batch, kv_heads, past + seq, head_dim]` out, with
 *   `attention_mask` (and usually `position_ids`);
 * - `fused`: `GroupQueryAttention` graphs with a shared KV buffer (`@gen/model-kit`'s fused style): inputs
 *   `seqlens_k` and `total_sequence_length` instead of `attention_mask`, past and present of the same fixed
 *   capacity `[batch, kv_heads, capacity, head_dim]`, the present bound to the past buffer so the new entries are
 *   written in place.
 */
export type GraphStyle = 'standard' | 'fused';

/**
 * What a decoder graph takes and returns, discovered from the session's metadata rather than assumed; see
 * {@link GraphStyle}.
 */
export interface GraphSignature {
  readonly style: GraphStyle;
  /** `seqlens_k` (int32 `[batch]`: each row's length after the step, minus one) of fused graphs. */
  readonly seqlensK: string | undefined;
  /** `total_sequence_length` (int32 scalar: the longest row's length after the step) of fused graphs. */
  readonly totalSequenceLength: string | undefined;
  readonly inputIds: { readonly name: string; readonly type: IndexType };
  /** Absent in graphs without padding support: then every run holds one sequence. */
  readonly attentionMask: { readonly name: string; readonly type: IndexType } | undefined;
  /** Absent in graphs that derive positions from `attention_mask`. */
  readonly positionIds: { readonly name: string; readonly type: IndexType } | undefined;
  /** `use_cache_branch` of merged decoders (`decoder_model_merged.onnx`). */
  readonly useCacheBranch: string | undefined;
  /** `num_logits_to_keep` / `logits_to_keep`, when the graph can skip the logits of earlier positions. */
  readonly logitsToKeep: { readonly name: string; readonly type: IndexType } | undefined;
  readonly logits: { readonly name: string; readonly type: FloatType };
  readonly layers: readonly LayerNames[];
  readonly kvType: FloatType;
  readonly kvHeads: number;
  readonly headDim: number;
  /** 1 when the graph's batch dimension is fixed to 1 (then every run holds one sequence), else undefined. */
  readonly fixedBatch: number | undefined;
  /** The output names to fetch: logits, then present key and value of every layer. */
  readonly fetches: readonly string[];
}

const pastPattern = /^past(?:_key_values)?\.(\d+)\.(key|value)$/;
const presentPattern = /^present(?:_key_values)?\.(\d+)\.(key|value)$/;

const expectedInputs =
  'input_ids, attention_mask, position_ids (optional) and past_key_values.{i}.key / past_key_values.{i}.value ' +
  'for every layer (a decoder exported with its KV cache, as Optimum writes it), or input_ids, seqlens_k, ' +
  'total_sequence_length and past_key_values.{i}.key / .value (a fused GroupQueryAttention decoder)';

type TensorMetadata = InferenceSession.ValueMetadata & { isTensor: true };

function tensorMetadata(list: readonly InferenceSession.ValueMetadata[]): Map<string, TensorMetadata> {
  const map = new Map<string, TensorMetadata>();
  for (const m of list) if (m.isTensor) map.set(m.name, m);
  return map;
}

/**
 * Reads the graph's inputs and outputs and checks they describe a decoder with a KV cache that matches
 * `config.json`.
 *
 * @throws {UnsupportedModelError} the graph does not look like a decoder with a KV cache (names the inputs found).
 * @throws {ModelLoadError} (`shape-mismatch`) cache shapes or layer count disagree with `config.json`.
 */
export function readGraphSignature(
  inputs: readonly InferenceSession.ValueMetadata[],
  outputs: readonly InferenceSession.ValueMetadata[],
  config: DecoderModelConfig,
  file: string,
): GraphSignature {
  const inputMap = tensorMetadata(inputs);
  const outputMap = tensorMetadata(outputs);
  const inputNames = inputs.map((m) => m.name);
  const outputNames = outputs.map((m) => m.name);
  const notADecoder = (problem: string): never => {
    const error = new UnsupportedModelError({
      file,
      feature: 'graph inputs',
      value: inputNames,
      supported: [expectedInputs],
    });
    // The generic message says only "unsupported graph inputs"; say what is wrong, and what was found.
    error.message =
      `${file}: not a decoder with a KV cache: ${problem} (inputs ${JSON.stringify(inputNames)}, outputs ` +
      `${JSON.stringify(outputNames)}; expected ${expectedInputs}, and outputs logits and present.{i}.key|value)`;
    throw error;
  };
  const indexInput = (name: string) => {
    const m = inputMap.get(name);
    if (m === undefined) return undefined;
    if (m.type !== 'int64' && m.type !== 'int32') notADecoder(`input ${name} is ${m.type}, not int64 or int32`);
    return { name, type: m.type as IndexType };
  };

  const inputIds = indexInput('input_ids') ?? notADecoder('no input_ids input');
  const attentionMask = indexInput('attention_mask');
  const positionIds = indexInput('position_ids');
  const logitsToKeep = indexInput('num_logits_to_keep') ?? indexInput('logits_to_keep');
  const useCacheBranch = inputMap.has('use_cache_branch') ? 'use_cache_branch' : undefined;
  const int32Input = (name: string) => {
    const m = inputMap.get(name);
    if (m === undefined) return undefined;
    if (m.type !== 'int32') notADecoder(`input ${name} is ${m.type}, not int32`);
    return name;
  };
  const seqlensK = int32Input('seqlens_k');
  const totalSequenceLength = int32Input('total_sequence_length');
  if ((seqlensK === undefined) !== (totalSequenceLength === undefined)) {
    notADecoder('a fused decoder takes both seqlens_k and total_sequence_length');
  }
  const style: GraphStyle = seqlensK === undefined ? 'standard' : 'fused';
  if (style === 'fused' && (attentionMask !== undefined || useCacheBranch !== undefined)) {
    notADecoder('seqlens_k and total_sequence_length come with neither attention_mask nor use_cache_branch');
  }

  const past = new Map<string, string>();
  const known = new Set(
    [inputIds, attentionMask, positionIds, logitsToKeep].flatMap((x) => (x === undefined ? [] : [x.name])),
  );
  if (useCacheBranch !== undefined) known.add(useCacheBranch);
  if (style === 'fused') known.add(seqlensK!).add(totalSequenceLength!);
  for (const name of inputNames) {
    const match = pastPattern.exec(name);
    if (match !== null) past.set(`${match[1]}.${match[2]}`, name);
    else if (!known.has(name)) notADecoder(`input ${name} is not one this backend knows how to feed`);
  }
  if (past.size === 0) notADecoder('no past_key_values inputs: the graph was exported without its KV cache');
  const present = new Map<string, string>();
  for (const name of outputNames) {
    const match = presentPattern.exec(name);
    if (match !== null) present.set(`${match[1]}.${match[2]}`, name);
  }
  const logitsMeta = outputMap.get('logits') ?? notADecoder('no logits output');
  if (logitsMeta.type !== 'float32' && logitsMeta.type !== 'float16') {
    notADecoder(`logits are ${logitsMeta.type}, not float32 or float16`);
  }

  const vocabDim = logitsMeta.shape[logitsMeta.shape.length - 1];
  if (typeof vocabDim === 'number' && vocabDim !== config.vocabSize) {
    throw new ModelLoadError({
      file,
      reason: 'shape-mismatch',
      expected: `logits of ${config.vocabSize} entries per position (vocab_size in ${config.file})`,
      message: `the graph's logits have ${vocabDim} entries per position`,
    });
  }

  const layerCount = past.size / 2;
  const layers: LayerNames[] = [];
  for (let i = 0; i < layerCount; i++) {
    const pastKey = past.get(`${i}.key`);
    const pastValue = past.get(`${i}.value`);
    if (pastKey === undefined || pastValue === undefined) {
      notADecoder(`past_key_values inputs are not numbered 0..${layerCount - 1} with a key and a value each`);
    }
    const presentKey = present.get(`${i}.key`);
    const presentValue = present.get(`${i}.value`);
    if (presentKey === undefined || presentValue === undefined) {
      notADecoder(`no present.${i}.key / present.${i}.value output for past_key_values.${i}`);
    }
    layers.push({ pastKey: pastKey!, pastValue: pastValue!, presentKey: presentKey!, presentValue: presentValue! });
  }
  if (layers.length !== config.numLayers) {
    throw new ModelLoadError({
      file,
      reason: 'shape-mismatch',
      expected: `${config.numLayers} layers of past_key_values (num_hidden_layers in ${config.file})`,
      message: `the graph has KV-cache inputs for ${layers.length} layers`,
    });
  }

  let kvType: FloatType | undefined;
  let fixedBatch: number | undefined;
  for (const layer of layers) {
    for (const name of [layer.pastKey, layer.pastValue, layer.presentKey, layer.presentValue]) {
      const m = inputMap.get(name) ?? outputMap.get(name)!;
      if (m.type !== 'float32' && m.type !== 'float16') notADecoder(`${name} is ${m.type}, not float32 or float16`);
      kvType ??= m.type as FloatType;
      if (m.type !== kvType) notADecoder(`${name} is ${m.type} while other cache tensors are ${kvType}`);
      const shape = m.shape;
      const expectedShape = `[batch, ${config.numKeyValueHeads}, sequence, ${config.headDim}] (num_key_value_heads and head_dim of ${config.file})`;
      const mismatch = () =>
        new ModelLoadError({
          file,
          reason: 'shape-mismatch',
          expected: `${name} of shape ${expectedShape}`,
          message: `${name} has shape [${shape.join(', ')}]`,
        });
      if (shape.length !== 4) throw mismatch();
      const [batch, heads, , dim] = shape;
      if (typeof heads === 'number' && heads !== config.numKeyValueHeads) throw mismatch();
      if (typeof dim === 'number' && dim !== config.headDim) throw mismatch();
      if (typeof batch === 'number') fixedBatch = batch;
    }
  }
  if (fixedBatch !== undefined && fixedBatch !== 1) {
    notADecoder(`the batch dimension is fixed to ${fixedBatch}; only 1 or a free dimension can be fed`);
  }
  return {
    inputIds,
    attentionMask,
    positionIds,
    style,
    seqlensK,
    totalSequenceLength,
    useCacheBranch,
    logitsToKeep,
    logits: { name: 'logits', type: logitsMeta.type as FloatType },
    layers,
    kvType: kvType!,
    kvHeads: config.numKeyValueHeads,
    headDim: config.headDim,
    fixedBatch,
    fetches: ['logits', ...layers.flatMap((l) => [l.presentKey, l.presentValue])],
  };
}
