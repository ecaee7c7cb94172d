import { openModelWeights, type DecoderModelConfig } from '@gen/backend';
import * as tf from '@tensorflow/tfjs-core';

/**
 * One decoder layer's weights as tfjs tensors, laid out for `x · W` (inputs along rows). The RMSNorm weights that
 * feed a product are folded into its rows (`(x̂ ⊙ w) · W = x̂ · (diag(w) W)`), which saves a kernel per norm; the
 * products' rounding differs from transformers' by about one float32 ulp per term. Every norm weight here is the
 * effective one (Gemma's stored offset plus one, in float32).
 */
export interface LayerTensors {
  /** q, k and v projections side by side, rows scaled by `input_layernorm.weight`: `[hidden, (heads + 2 * kvHeads) * headDim]`. */
  readonly qkv: tf.Tensor2D;
  readonly qkvBias: tf.Tensor1D | undefined;
  /**
   * Per-head RMSNorm weights of queries and keys (qwen3, gemma3_text): `self_attn.q_norm.weight` for each of the
   * `heads` rows, then `self_attn.k_norm.weight` for each of the `kvHeads`: `[heads + kvHeads, headDim]`.
   */
  readonly queryKeyNorm: tf.Tensor2D | undefined;
  /** `[heads * headDim, hidden]`. */
  readonly output: tf.Tensor2D;
  readonly outputBias: tf.Tensor1D | undefined;
  /** Gemma's `post_attention_layernorm.weight` `[hidden]`: the norm of the attention output (sandwich norms). */
  readonly attentionOutputNorm: tf.Tensor1D | undefined;
  /**
   * gate and up projections, rows scaled by the MLP's input norm (`post_attention_layernorm.weight`, Gemma's
   * `pre_feedforward_layernorm.weight`): `[hidden, intermediate]` each. Kept apart: splitting one fused product
   * costs a copy (SplitV) that takes longer on wasm than the second dispatch.
   */
  readonly gate: tf.Tensor2D;
  readonly gateBias: tf.Tensor1D | undefined;
  readonly up: tf.Tensor2D;
  readonly upBias: tf.Tensor1D | undefined;
  /** `[intermediate, hidden]`. */
  readonly down: tf.Tensor2D;
  readonly downBias: tf.Tensor1D | undefined;
  /** Gemma's `post_feedforward_layernorm.weight` `[hidden]`: the norm of the MLP output. */
  readonly feedforwardOutputNorm: tf.Tensor1D | undefined;
}

/** Every weight of the model: tensors on the tfjs backend, plus the embedding table on the host. */
export interface ModelTensors {
  /**
   * `model.embed_tokens.weight` `[vocab, hidden]` kept as a host array (unscaled: the decoder applies
   * `embeddingScale` to the rows it looks up): looking up a few rows per step in JavaScript and uploading them is
   * cheaper than a gather on the device, and it is needed there only for that.
   */
  readonly embedTokens: Float32Array;
  readonly layers: readonly LayerTensors[];
  /** `lm_head` (or the tied embedding) transposed, rows scaled by `model.norm.weight`: `[hidden, vocab]`. */
  readonly lmHead: tf.Tensor2D;
  /** `model.norm.weight` `[hidden]` itself, for the hidden states of `doEmbed` (the head has it folded in). */
  readonly finalNorm: tf.Tensor1D;
  /** Bytes of the device tensors. */
  readonly bytes: number;
  dispose(): void;
}

/**
 * Reads the checkpoint tensor by tensor through `@gen/backend`'s safetensors readers (F32 / F16 / BF16, single
 * file or sharded; shapes checked against the config, errors naming the file) and uploads each layer as soon as
 * it is read, so the host never holds more than one layer beyond the embedding. Linear weights are transposed
 * once here (`[out, in]` -> `[in, out]`: the WebAssembly backend's fast XNNPACK path takes only untransposed
 * right-hand operands) and q/k/v are concatenated into one product (phi3's packed `qkv_proj` already is; its
 * `gate_up_proj` is split into gate and up). Norm weights get `config.normWeightOffset` added (Gemma's `1 + w`).
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
    const readNorm = async (name: string, size: number): Promise<Float32Array> => {
      const stored = await read(name, [size]);
      if (config.normWeightOffset === 0) return stored;
      const effective = new Float32Array(size);
      for (let i = 0; i < size; i++) effective[i] = config.normWeightOffset + stored[i]!;
      return effective;
    };

    const readQueryKeyNorm = async (prefix: string): Promise<tf.Tensor2D> => {
      const { numAttentionHeads: heads, numKeyValueHeads: kvHeads } = config;
      const query = await readNorm(`${prefix}.self_attn.q_norm.weight`, headDim);
      const key = await readNorm(`${prefix}.self_attn.k_norm.weight`, headDim);
      const rows = new Float32Array((heads + kvHeads) * headDim);
      for (let h = 0; h < heads + kvHeads; h++) rows.set(h < heads ? query : key, h * headDim);
      return own(tf.tensor2d(rows, [heads + kvHeads, headDim]));
    };

    const embedTokens = await read('model.embed_tokens.weight', [vocab, hidden]);
    const layers: LayerTensors[] = [];
    for (let i = 0; i < config.numLayers; i++) {
      const prefix = `model.layers.${i}`;
      // Both halves of a packed tensor come from one read.
      const layerTensors = new Map<string, Promise<Float32Array>>();
      const readOnce = (name: string, shape: number[]) => {
        let tensor = layerTensors.get(name);
        if (tensor === undefined) layerTensors.set(name, (tensor = read(name, shape)));
        return tensor;
      };
      const linear = (
        name: string,
        parts: readonly LinearPart[],
        inFeatures: number,
        bias: boolean,
        norm?: Float32Array,
      ) => readLinear(readOnce, `${prefix}.${name}`, parts, inFeatures, bias, norm, own);
      const attention: LinearPart[] = config.packedProjections
        ? [{ name: 'qkv_proj', out: queryWidth + 2 * kvWidth }]
        : [
            { name: 'q_proj', out: queryWidth },
            { name: 'k_proj', out: kvWidth },
            { name: 'v_proj', out: kvWidth },
          ];
      const inputNorm = await readNorm(`${prefix}.input_layernorm.weight`, hidden);
      const postAttentionNorm = await readNorm(`${prefix}.post_attention_layernorm.weight`, hidden);
      const mlpNorm = config.sandwichNorms
        ? await readNorm(`${prefix}.pre_feedforward_layernorm.weight`, hidden)
        : postAttentionNorm;
      const qkv = await linear('self_attn', attention, hidden, config.qkvBias, inputNorm);
      const output = await linear('self_attn', [{ name: 'o_proj', out: hidden }], queryWidth, config.outputBias);
      let gate: LinearTensors;
      let up: LinearTensors;
      if (config.packedProjections) {
        const halves = { name: 'gate_up_proj', out: intermediate, packedRows: 2 * intermediate };
        gate = await linear('mlp', [{ ...halves, fromRow: 0 }], hidden, config.mlpBias, mlpNorm);
        up = await linear('mlp', [{ ...halves, fromRow: intermediate }], hidden, config.mlpBias, mlpNorm);
      } else {
        gate = await linear('mlp', [{ name: 'gate_proj', out: intermediate }], hidden, config.mlpBias, mlpNorm);
        up = await linear('mlp', [{ name: 'up_proj', out: intermediate }], hidden, config.mlpBias, mlpNorm);
      }
      const down = await linear('mlp', [{ name: 'down_proj', out: hidden }], intermediate, config.mlpBias);
      const sandwich = config.sandwichNorms
        ? {
            attentionOutputNorm: own(tf.tensor1d(postAttentionNorm)),
            feedforwardOutputNorm: own(
              tf.tensor1d(await readNorm(`${prefix}.post_feedforward_layernorm.weight`, hidden)),
            ),
          }
        : { attentionOutputNorm: undefined, feedforwardOutputNorm: undefined };
      layers.push({
        qkv: qkv.weight,
        qkvBias: qkv.bias,
        queryKeyNorm: config.queryKeyNorm ? await readQueryKeyNorm(prefix) : undefined,
        output: output.weight,
        outputBias: output.bias,
        gate: gate.weight,
        gateBias: gate.bias,
        up: up.weight,
        upBias: up.bias,
        down: down.weight,
        downBias: down.bias,
        ...sandwich,
      });
    }
    const finalNorm = await readNorm('model.norm.weight', hidden);
    const head = config.tieWordEmbeddings ? embedTokens : await read('lm_head.weight', [vocab, hidden]);
    const finalNormTensor = own(tf.tensor1d(finalNorm));
    const lmHead = own(tf.tensor2d(scaleRows(transpose(head, vocab, hidden), finalNorm), [hidden, vocab]));
    const bytes = owned.reduce((sum, t) => sum + t.size * 4, 0);
    return {
      embedTokens,
      layers,
      lmHead,
      finalNorm: finalNormTensor,
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
 * One tensor (`<prefix>.<name>.weight` `[out, inFeatures]`) of a product, or rows `[fromRow, fromRow + out)` of a
 * packed one with `packedRows` rows.
 */
interface LinearPart {
  readonly name: string;
  readonly out: number;
  readonly fromRow?: number;
  readonly packedRows?: number;
}

interface LinearTensors {
  readonly weight: tf.Tensor2D;
  readonly bias: tf.Tensor1D | undefined;
}

/**
 * Reads the `parts` (each `<prefix>.<name>.weight`, or a row range of it, and the matching `[out]` bias when
 * `hasBias`) and packs them transposed side by side into one `[inFeatures, sum(out)]` tensor, with the biases
 * concatenated likewise; row `i` is multiplied by `norm[i]` when a norm weight is given.
 */
async function readLinear(
  read: (name: string, shape: number[]) => Promise<Float32Array>,
  prefix: string,
  parts: readonly LinearPart[],
  inFeatures: number,
  hasBias: boolean,
  norm: Float32Array | undefined,
  own: <T extends tf.Tensor>(tensor: T) => T,
): Promise<LinearTensors> {
  const width = parts.reduce((sum, p) => sum + p.out, 0);
  const packed = new Float32Array(inFeatures * width);
  const bias = hasBias ? new Float32Array(width) : undefined;
  let column = 0;
  for (const part of parts) {
    const name = `${prefix}.${part.name}`;
    const rows = part.packedRows ?? part.out;
    const from = part.fromRow ?? 0;
    const weight = await read(`${name}.weight`, [rows, inFeatures]);
    const slice = weight.subarray(from * inFeatures, (from + part.out) * inFeatures);
    transposeInto(slice, part.out, inFeatures, packed, width, column);
    if (bias !== undefined) {
      const values = await read(`${name}.bias`, [rows]);
      bias.set(values.subarray(from, from + part.out), column);
    }
    column += part.out;
  }
  if (norm !== undefined) scaleRows(packed, norm);
  return {
    weight: own(tf.tensor2d(packed, [inFeatures, width])),
    bias: bias === undefined ? undefined : own(tf.tensor1d(bias)),
  };
}

/** Multiplies row `i` of the row-major matrix `matrix` (`scale.length` rows) by `scale[i]`, in place. */
function scaleRows(matrix: Float32Array, scale: Float32Array): Float32Array {
  const width = matrix.length / scale.length;
  for (let i = 0; i < scale.length; i++) {
    const s = scale[i]!;
    for (let j = i * width; j < (i + 1) * width; j++) matrix[j] = matrix[j]! * s;
  }
  return matrix;
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
