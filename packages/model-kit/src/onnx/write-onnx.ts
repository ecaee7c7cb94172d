import { mkdir, open, rm } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { InvalidModelConfigError } from '../errors.js';
import { writeAll } from '../files.js';
import { encodeGraph, encodeModel, type ExternalLocation, type GraphSpec, type OpsetImport } from './onnx-proto.js';
import type { Piece } from './protobuf.js';

/** When to put the weights in a separate `model.onnx_data` file. */
export type ExternalDataMode = 'auto' | 'always' | 'never';

/** Protobuf refuses messages of 2 GiB or more, so larger models must keep their weights outside the proto. */
const protobufLimit = 2 ** 31 - 1;
/** Tensors smaller than this stay inside the model file, as `onnx.save_model`'s default `size_threshold`. */
const externalSizeThreshold = 1024;
/** Each external tensor starts on a page boundary, so onnxruntime can memory-map it. */
const externalAlignment = 4096;

/** What {@link writeOnnxModel} wrote. */
export interface WrittenOnnx {
  modelPath: string;
  modelBytes: number;
  /** The external data file, when one was written. */
  dataPath?: string;
  dataBytes?: number;
}

/**
 * Writes `graph` as `modelPath` (ONNX IR 8, opset `opsetVersion`), streaming each weight from its producer. With
 * external data (forced, or automatic above 2 GiB) the weights go to `<model file name>_data` beside it, named in
 * each tensor's `external_data` (`location`, `offset`, `length`) as Optimum writes them.
 */
export async function writeOnnxModel(options: {
  modelPath: string;
  graph: GraphSpec;
  opsetVersion: number;
  producerVersion: string;
  /** Contrib operator domains the graph uses (for example `com.microsoft` for `MatMulNBits`). */
  extraOpsets?: readonly OpsetImport[];
  externalData?: ExternalDataMode;
  onBytes?: (file: string, written: number, total: number) => void;
}): Promise<WrittenOnnx> {
  const { modelPath, graph } = options;
  await mkdir(dirname(modelPath), { recursive: true });
  const encode = (external: ReadonlyMap<string, ExternalLocation>) =>
    encodeModel({
      graph: encodeGraph(graph, external),
      irVersion: 8,
      opsetVersion: options.opsetVersion,
      producerName: '@gen/model-kit',
      producerVersion: options.producerVersion,
      ...(options.extraOpsets === undefined ? {} : { extraOpsets: options.extraOpsets }),
    });
  const mode = options.externalData ?? 'auto';
  let model = encode(new Map());
  const dataName = `${modelPath.slice(dirname(modelPath).length + 1)}_data`;
  const dataPath = join(dirname(modelPath), dataName);
  if (mode === 'never' && model.byteLength > protobufLimit) {
    throw new InvalidModelConfigError({
      field: 'externalData',
      message: `The model is ${model.byteLength} bytes; ONNX files over 2 GiB need external data (not 'never').`,
    });
  }
  if (mode === 'never' || (mode === 'auto' && model.byteLength <= protobufLimit)) {
    await rm(dataPath, { force: true });
    const modelBytes = await writePieces(modelPath, model.finish(), options.onBytes);
    return { modelPath, modelBytes };
  }
  const external = new Map<string, ExternalLocation>();
  const dataPieces: Piece[] = [];
  let offset = 0;
  for (const tensor of graph.initializers) {
    const length = tensor.data.byteLength;
    if (length < externalSizeThreshold) continue;
    const aligned = Math.ceil(offset / externalAlignment) * externalAlignment;
    if (aligned > offset) dataPieces.push(new Uint8Array(aligned - offset));
    external.set(tensor.name, { location: dataName, offset: aligned, length });
    dataPieces.push(tensor.data);
    offset = aligned + length;
  }
  model = encode(external);
  if (model.byteLength > protobufLimit) throw new Error('The ONNX graph alone exceeds 2 GiB');
  const dataBytes = await writePieces(dataPath, dataPieces, options.onBytes);
  const modelBytes = await writePieces(modelPath, model.finish(), options.onBytes);
  return { modelPath, modelBytes, dataPath, dataBytes };
}

/** Writes pieces in order through a 4 MiB staging buffer (so thousands of small pieces cost few writes). */
async function writePieces(
  path: string,
  pieces: readonly Piece[],
  onBytes?: (file: string, written: number, total: number) => void,
): Promise<number> {
  const total = pieces.reduce((sum, piece) => sum + piece.byteLength, 0);
  const file = await open(path, 'w');
  const staging = new Uint8Array(4 << 20);
  let staged = 0;
  let written = 0;
  const flush = async () => {
    await writeAll(file, staging.subarray(0, staged));
    written += staged;
    staged = 0;
    onBytes?.(path, written, total);
  };
  try {
    for (const piece of pieces) {
      const bytes = piece instanceof Uint8Array ? piece : await piece.produce();
      if (bytes.byteLength !== piece.byteLength) {
        throw new Error(`a lazy field produced ${bytes.byteLength} bytes instead of ${piece.byteLength}`);
      }
      if (staged + bytes.byteLength > staging.byteLength) await flush();
      if (bytes.byteLength >= staging.byteLength) {
        await writeAll(file, bytes);
        written += bytes.byteLength;
        onBytes?.(path, written, total);
      } else {
        staging.set(bytes, staged);
        staged += bytes.byteLength;
      }
    }
    await flush();
  } finally {
    await file.close();
  }
  return total;
}
