export { GgufError, type GgufErrorCode } from './errors.js';
export {
  GGML_TYPE,
  MAX_DIMS,
  elementCount,
  ggmlTypeInfo,
  ggmlTypeName,
  isGgmlType,
  tensorByteLength,
  type GgmlType,
  type GgmlTypeInfo,
  type GgmlTypeName,
} from './types.js';
export {
  bf16BitsToF32,
  bf16FromF32Bits,
  f16BitsToF32,
  f16FromF32Bits,
  f32BitsFromF16Bits,
  f32ToBf16Bits,
  f32ToF16Bits,
} from './float16.js';
export { DEQUANTIZE_TYPES, QUANTIZE_TYPES, dequantize, quantize } from './quants.js';
export {
  GGUF_VALUE_TYPE,
  getArray,
  getBigInt,
  getBoolean,
  getNumber,
  getNumberArray,
  getString,
  kv,
  type GgufArrayInput,
  type GgufArrayItems,
  type GgufArrayValue,
  type GgufBigIntTypeName,
  type GgufNumberTypeName,
  type GgufScalarValue,
  type GgufValue,
  type GgufValueTypeName,
  type MetadataSource,
} from './metadata.js';
export {
  GGUF_DEFAULT_ALIGNMENT,
  GGUF_KEY_ALIGNMENT,
  GGUF_MAGIC,
  GGUF_VERSION,
  dequantizeTensor,
  readGguf,
  type GgufFile,
  type GgufTensorInfo,
  type ReadGgufOptions,
} from './reader.js';
export { MAX_TENSOR_NAME_BYTES, writeGguf, type GgufTensorInput, type GgufWriteInput } from './writer.js';
export { readGgufFile, readGgufTensorData, type ReadGgufFileOptions } from './file.js';
export { END_OF_GENERATION_TOKENS, endOfGenerationIds } from './tokens.js';
