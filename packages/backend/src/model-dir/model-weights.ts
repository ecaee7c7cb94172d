import { access } from 'node:fs/promises';
import path from 'node:path';
import { ModelLoadError } from '../errors.js';
import { ConfigFields } from './config-fields.js';
import { isJsonObject, readJsonFile } from './json-file.js';
import { openSafetensors, type ReadTensorOptions, type SafetensorsFile, type TensorInfo } from './safetensors.js';

/** File name of single-file weights. */
export const SAFETENSORS_FILE = 'model.safetensors';
/** File name of the index of sharded weights. */
export const SAFETENSORS_INDEX_FILE = 'model.safetensors.index.json';

/**
 * The weights of a model directory, single-file or sharded, behind one name lookup. Reads are on demand (see
 * {@link SafetensorsFile}); close it when loading is done.
 */
export interface ModelWeights {
  /** The model directory. */
  readonly modelDir: string;
  /** The safetensors files in use (one, or every shard). */
  readonly files: readonly string[];
  /** Tensor names, in file / index order. */
  names(): string[];
  /** True when a tensor of this name exists. */
  has(name: string): boolean;
  /** Header facts of a tensor, or `undefined` when absent. */
  info(name: string): TensorInfo | undefined;
  /**
   * Reads a tensor as float32 (see {@link SafetensorsFile.readFloat32}).
   *
   * @throws {ModelLoadError} `missing-tensor` naming the file it was looked for in, `shape-mismatch`,
   *   `unsupported-dtype`.
   */
  readFloat32(name: string, options?: ReadTensorOptions): Promise<Float32Array>;
  /** Closes every file. Idempotent. */
  close(): Promise<void>;
}

/**
 * Opens the weights of a Hugging Face model directory: `model.safetensors` when present (as transformers
 * prefers), else the shards listed in `model.safetensors.index.json` (`weight_map`: tensor name -> shard file).
 * Every header is validated up front, and every tensor of the index must be in the shard it names.
 *
 * @throws {ModelLoadError} `missing-file` (neither file, or a shard named by the index), `invalid-json` /
 *   `invalid-config` (a bad index), `missing-tensor` (a shard lacks a tensor the index puts there), and the
 *   header errors of {@link openSafetensors}.
 */
export async function openModelWeights(modelDir: string): Promise<ModelWeights> {
  const single = path.join(modelDir, SAFETENSORS_FILE);
  if (await exists(single)) {
    const file = await openSafetensors(single);
    return new SingleFileWeights(modelDir, file);
  }
  const indexFile = path.join(modelDir, SAFETENSORS_INDEX_FILE);
  if (!(await exists(indexFile))) {
    throw new ModelLoadError({
      file: modelDir,
      reason: 'missing-file',
      expected: `${SAFETENSORS_FILE} or ${SAFETENSORS_INDEX_FILE} with its shards (only safetensors weights are read)`,
      message: 'no safetensors weights in the model directory',
    });
  }
  const index = await readJsonFile(indexFile, { expected: 'a safetensors index with a `weight_map` object' });
  const weightMap = new ConfigFields(indexFile, index).raw('weight_map');
  if (!isJsonObject(weightMap) || !Object.values(weightMap).every((v) => typeof v === 'string')) {
    throw new ModelLoadError({
      file: indexFile,
      reason: 'invalid-config',
      expected: '`weight_map` to map tensor names to shard file names',
      message: 'missing or malformed `weight_map`',
    });
  }
  const map = weightMap as Record<string, string>;
  const shards = new Map<string, SafetensorsFile>();
  try {
    const root = path.resolve(modelDir);
    for (const shardName of new Set(Object.values(map))) {
      const shardPath = path.resolve(root, shardName);
      if (path.dirname(shardPath) !== root) {
        throw new ModelLoadError({
          file: indexFile,
          reason: 'invalid-config',
          expected: 'shard file names inside the model directory',
          message: `weight_map names shard ${JSON.stringify(shardName)}`,
        });
      }
      try {
        shards.set(shardName, await openSafetensors(shardPath));
      } catch (error) {
        if (ModelLoadError.isInstance(error) && error.reason === 'missing-file') {
          throw new ModelLoadError({
            file: shardPath,
            reason: 'missing-file',
            expected: `the shard named in ${SAFETENSORS_INDEX_FILE}`,
            message: 'shard not found',
            cause: error,
          });
        }
        throw error;
      }
    }
    const tensors = new Map<string, SafetensorsFile>();
    for (const [name, shardName] of Object.entries(map)) {
      const shard = shards.get(shardName)!;
      if (!shard.tensors.has(name)) {
        throw new ModelLoadError({
          file: shard.file,
          reason: 'missing-tensor',
          expected: `tensor "${name}" (${SAFETENSORS_INDEX_FILE} puts it in this shard)`,
          message: `tensor "${name}" is not in this shard`,
        });
      }
      tensors.set(name, shard);
    }
    return new ShardedWeights(modelDir, indexFile, [...shards.values()], tensors);
  } catch (error) {
    await Promise.all([...shards.values()].map((s) => s.close()));
    throw error;
  }
}

async function exists(file: string): Promise<boolean> {
  try {
    await access(file);
    return true;
  } catch {
    return false;
  }
}

class SingleFileWeights implements ModelWeights {
  readonly modelDir: string;
  readonly files: readonly string[];
  private readonly file: SafetensorsFile;

  constructor(modelDir: string, file: SafetensorsFile) {
    this.modelDir = modelDir;
    this.file = file;
    this.files = [file.file];
  }

  names(): string[] {
    return [...this.file.tensors.keys()];
  }

  has(name: string): boolean {
    return this.file.tensors.has(name);
  }

  info(name: string): TensorInfo | undefined {
    return this.file.tensors.get(name);
  }

  readFloat32(name: string, options?: ReadTensorOptions): Promise<Float32Array> {
    return this.file.readFloat32(name, options);
  }

  close(): Promise<void> {
    return this.file.close();
  }
}

class ShardedWeights implements ModelWeights {
  readonly modelDir: string;
  readonly files: readonly string[];
  private readonly indexFile: string;
  private readonly shards: readonly SafetensorsFile[];
  private readonly tensors: ReadonlyMap<string, SafetensorsFile>;

  constructor(
    modelDir: string,
    indexFile: string,
    shards: readonly SafetensorsFile[],
    tensors: ReadonlyMap<string, SafetensorsFile>,
  ) {
    this.modelDir = modelDir;
    this.indexFile = indexFile;
    this.shards = shards;
    this.tensors = tensors;
    this.files = shards.map((s) => s.file);
  }

  names(): string[] {
    return [...this.tensors.keys()];
  }

  has(name: string): boolean {
    return this.tensors.has(name);
  }

  info(name: string): TensorInfo | undefined {
    return this.tensors.get(name)?.tensors.get(name);
  }

  readFloat32(name: string, options?: ReadTensorOptions): Promise<Float32Array> {
    const shard = this.tensors.get(name);
    if (shard === undefined) {
      return Promise.reject(
        new ModelLoadError({
          file: this.indexFile,
          reason: 'missing-tensor',
          expected: `"${name}" in weight_map`,
          message: `tensor "${name}" is not in the index`,
        }),
      );
    }
    return shard.readFloat32(name, options);
  }

  async close(): Promise<void> {
    await Promise.all(this.shards.map((s) => s.close()));
  }
}
