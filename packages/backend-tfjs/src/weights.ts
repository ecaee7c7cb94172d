import { openModelWeights, type DecoderModelConfig, type ModelWeights } from '@gen/backend';
import * as tf from '@tensorflow/tfjs-core';

/** One decoder layer's weights as tfjs tensors, laid out for `x · W` (inputs along rows). */
export interface LayerTensors {
  readonly inputNorm: tf.Tensor1D;
  /** q, k and v projections side by side: `[hidden, (heads + 2 * kvHeads) * headDim]`. */
  readonly qkv: tf.Tensor2D;
  readonly qkvBias: tf.Tensor1D | undefined;
  /** `[heads * headDim, hidden]`. */
  readonly output: tf.Tensor2D;
  readonly outputBias: tf.Tensor1D | undefined;
  readonly postAttentionNorm: tf.Tensor1D;
  /** gate and up projections side by side: `[hidden, 2 * intermediate]`. */
  readonly gateUp: tf.Tensor2D;
  readonly gateUpBias: tf.Tensor1D | undefined;
  /** `[intermediate, hidden]`. */
  readonly down: tf.Tensor2D;
  readonly downBias: tf.Tensor1D | undefined;
}

/** Every weight of the model: tensors on the tfjs backend, plus the embedding table on the host. */
export interface ModelTensors {
  /**
   * `model.embed_tokens.weight` `[vocab, hidden]` kept as a host array: looking up a few rows per step in
   * JavaScript and uploading them is cheaper than a gather on the device, and it is needed there only for that.
   */
  readonly embedTokens: Float32Array;
  readonly layers: readonly LayerTensors[];
  readonly finalNorm: tf.Tensor1D;
  /** `lm_head` (or the tied embedding) transposed: `[hidden, vocab]`. */
  readonly lmHead: tf.Tensor2D;
  /** Bytes of the device tensors. */
  readonly bytes: number;
  dispose(): void;
}

/**
 * Reads the checkpoint tensor by tensor through `@gen/backend`'s safetensors readers (F32 / F16 / BF16, single
 * file or sharded; shapes checked against the config, errors naming the file) and uploads each layer as soon as
 * it is read, so the host never holds more than one layer beyond the embedding. Linear weights are transposed
 * once here (`[out, in]` -> `[in, out]`: the WebAssembly backend's fast XNNPACK path takes only untransposed
 * right-hand operands) and q/k/v and gate/up are concatenated into one product each.
 *
 * @throws {ModelLoadError} from the readers; every tensor uploaded so far is disposed first.
 */
export async function loadModelTensors(modelDir: string, config: DecoderModelConfig): Promise<ModelTensors> {
  const weights = await openModelWeights(modelDir);
  const owned: tf.Tensor[] = [];
  const own = <T extends tf.Tensor>(tensor: T): T => {
    owned.push(tensor);
    return tensor;
  };
  try {
    const { hiddenSize: hidden, intermediateSize: intermediate, vocabSize: vocab, headDim } = config;
    const queryWidth = config.numAttentionHeads * headDim;
    const kvWidth = config.numKeyValueHeads * headDim;
    const read = (name: string, shape: number[]) => weights.readFloat32(name, { shape });
    const vector = async (name: string, size: number) => own(tf.tensor1d(await read(name, [size])));

    const embedTokens = await read('model.embed_tokens.weight', [vocab, hidden]);
    const layers: LayerTensors[] = [];
    for (let i = 0; i < config.numLayers; i++) {
      const prefix = `model.layers.${i}`;
      const linear = (
        name: string,
        parts: readonly { name: string; out: number }[],
        inFeatures: number,
        bias: boolean,
      ) => readLinear(weights, `${prefix}.${name}`, parts, inFeatures, bias, own);
      const attention = [
        { name: 'q_proj', out: queryWidth },
        { name: 'k_proj', out: kvWidth },
        { name: 'v_proj', out: kvWidth },
      ];
      const mlp = [
        { name: 'gate_proj', out: intermediate },
        { name: 'up_proj', out: intermediate },
      ];
      const qkv = await linear('self_attn', attention, hidden, config.qkvBias);
      const output = await linear('self_attn', [{ name: 'o_proj', out: hidden }], queryWidth, config.outputBias);
      const gateUp = await linear('mlp', mlp, hidden, config.mlpBias);
      const down = await linear('mlp', [{ name: 'down_proj', out: hidden }], intermediate, config.mlpBias);
      layers.push({
        inputNorm: await vector(`${prefix}.input_layernorm.weight`, hidden),
        qkv: qkv.weight,
        qkvBias: qkv.bias,
        output: output.weight,
        outputBias: output.bias,
        postAttentionNorm: await vector(`${prefix}.post_attention_layernorm.weight`, hidden),
        gateUp: gateUp.weight,
        gateUpBias: gateUp.bias,
        down: down.weight,
        downBias: down.bias,
      });
    }
    const finalNorm = await vector('model.norm.weight', hidden);
    const head = config.tieWordEmbeddings ? embedTokens : await read('lm_head.weight', [vocab, hidden]);
    const lmHead = own(tf.tensor2d(transpose(head, vocab, hidden), [hidden, vocab]));
    const bytes = owned.reduce((sum, t) => sum + t.size * 4, 0);
    return {
      embedTokens,
      layers,
      finalNorm,
      lmHead,
      bytes,
      dispose: () => {
        for (const t of owned) t.dispose();
        owned.length = 0;
      },
    };
  } catch (error) {
    for (const t of owned) t.dispose();
    throw error;
  } finally {
    await weights.close();
  }
}

/**
 * Reads `parts` (each `[out, inFeatures]`, and an `[out]` bias each when `hasBias`) and packs them transposed side
 * by side into one `[inFeatures, sum(out)]` tensor, with the biases concatenated likewise.
 */
async function readLinear(
  weights: ModelWeights,
  prefix: string,
  parts: readonly { name: string; out: number }[],
  inFeatures: number,
  hasBias: boolean,
  own: <T extends tf.Tensor>(tensor: T) => T,
): Promise<{ weight: tf.Tensor2D; bias: tf.Tensor1D | undefined }> {
  const width = parts.reduce((sum, p) => sum + p.out, 0);
  const packed = new Float32Array(inFeatures * width);
  const bias = hasBias ? new Float32Array(width) : undefined;
  let column = 0;
  for (const part of parts) {
    const name = `${prefix}.${part.name}`;
    const weight = await weights.readFloat32(`${name}.weight`, { shape: [part.out, inFeatures] });
    transposeInto(weight, part.out, inFeatures, packed, width, column);
    if (bias !== undefined) {
      bias.set(await weights.readFloat32(`${name}.bias`, { shape: [part.out] }), column);
    }
    column += part.out;
  }
  return {
    weight: own(tf.tensor2d(packed, [inFeatures, width])),
    bias: bias === undefined ? undefined : own(tf.tensor1d(bias)),
  };
}

function transpose(source: Float32Array, rows: number, columns: number): Float32Array {
  const result = new Float32Array(rows * columns);
  transposeInto(source, rows, columns, result, rows, 0);
  return result;
}

/** Writes `source` (`[rows, columns]`) transposed into columns `[offset, offset + rows)` of `target` (`[columns, width]`). */
function transposeInto(
  source: Float32Array,
  rows: number,
  columns: number,
  target: Float32Array,
  width: number,
  offset: number,
): void {
  const block = 32;
  for (let r0 = 0; r0 < rows; r0 += block) {
    const r1 = Math.min(rows, r0 + block);
    for (let c0 = 0; c0 < columns; c0 += block) {
      const c1 = Math.min(columns, c0 + block);
      for (let r = r0; r < r1; r++) {
        const from = r * columns;
        const to = offset + r;
        for (let c = c0; c < c1; c++) target[c * width + to] = source[from + c]!;
      }
    }
  }
}
