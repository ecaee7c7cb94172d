/**
 * Test helper: the `tokenizer.ggml.*` metadata llama.cpp's `convert_hf_to_gguf.py` writes for a Hugging Face
 * tokenizer, computed from a loaded tokenizer and its tokenizer.json (gpt2: tokens by id, token types, merges, the
 * pre-tokenizer name; llama: tokens with scores that rank the merges), written as a real GGUF file with `@gen/gguf`.
 */
import { kv, writeGguf, type GgufValue } from '@gen/gguf';
import type { Tokenizer } from '../types.js';

type Json = Record<string, unknown>;

/** Token types of llama.cpp's converter: special added tokens are CONTROL, other added USER_DEFINED, `<0xNN>` BYTE. */
function tokenTypes(tokenizer: Tokenizer, json: Json, byteTokens: boolean): Int32Array {
  const types = new Int32Array(tokenizer.vocabSize).fill(1);
  for (const token of json['added_tokens'] as { id: number; special: boolean }[]) {
    types[token.id] = token.special ? 3 : 4;
  }
  if (byteTokens) {
    for (let id = 0; id < tokenizer.vocabSize; id++) {
      if (/^<0x[0-9A-F]{2}>$/.test(tokenizer.idToToken(id) ?? '')) types[id] = 6;
    }
  }
  if (tokenizer.unkTokenId !== undefined) types[tokenizer.unkTokenId] = 2;
  return types;
}

function common(tokenizer: Tokenizer, extra: [string, GgufValue][]): Map<string, GgufValue> {
  const metadata = new Map<string, GgufValue>([
    ['general.architecture', kv.string('llama')],
    ['llama.context_length', kv.uint32(tokenizer.modelMaxLength ?? 2048)],
    ...extra,
  ]);
  const id = (key: string, value: number | undefined) => {
    if (value !== undefined) metadata.set(key, kv.uint32(value));
  };
  id('tokenizer.ggml.bos_token_id', tokenizer.bosTokenId);
  id('tokenizer.ggml.eos_token_id', tokenizer.eosTokenId);
  id('tokenizer.ggml.padding_token_id', tokenizer.padTokenId);
  id('tokenizer.ggml.unknown_token_id', tokenizer.unkTokenId);
  if (tokenizer.chatTemplate !== undefined) metadata.set('tokenizer.chat_template', kv.string(tokenizer.chatTemplate));
  return metadata;
}

const tokensOf = (tokenizer: Tokenizer) =>
  Array.from({ length: tokenizer.vocabSize }, (_, id) => tokenizer.idToToken(id) ?? `[PAD${id}]`);

/** A byte-level BPE tokenizer (`tokenizer.ggml.model` gpt2) as GGUF bytes. */
export function gpt2Gguf(
  tokenizer: Tokenizer,
  json: Json,
  pre: string,
  options: { addBos: boolean; eot?: number },
): Uint8Array {
  const model = json['model'] as Json;
  const merges = (model['merges'] as (string | string[])[]).map((m) => (Array.isArray(m) ? m.join(' ') : m));
  const metadata = common(tokenizer, [
    ['tokenizer.ggml.model', kv.string('gpt2')],
    ['tokenizer.ggml.pre', kv.string(pre)],
    ['tokenizer.ggml.tokens', kv.array('string', tokensOf(tokenizer))],
    ['tokenizer.ggml.token_type', kv.array('int32', tokenTypes(tokenizer, json, false))],
    ['tokenizer.ggml.merges', kv.array('string', merges)],
    ['tokenizer.ggml.add_bos_token', kv.bool(options.addBos)],
  ]);
  if (options.eot !== undefined) metadata.set('tokenizer.ggml.eot_token_id', kv.uint32(options.eot));
  return writeGguf({ metadata, tensors: [] });
}

/**
 * A SentencePiece-style BPE tokenizer (`tokenizer.ggml.model` llama) as GGUF bytes: no merges, only scores, as
 * SentencePiece models store them (a piece made by the merge of rank r scores -r; base pieces score 0).
 */
export function llamaGguf(tokenizer: Tokenizer, json: Json): Uint8Array {
  const model = json['model'] as Json;
  const scores = new Float32Array(tokenizer.vocabSize);
  const merges = (model['merges'] as (string | string[])[]).map((m) => (Array.isArray(m) ? m : m.split(' ')));
  const scored = new Set<number>();
  merges.forEach(([left, right], rank) => {
    const id = tokenizer.tokenToId(left! + right!);
    if (id !== undefined && !scored.has(id)) {
      scored.add(id);
      scores[id] = -(rank + 1);
    }
  });
  return writeGguf({
    metadata: common(tokenizer, [
      ['tokenizer.ggml.model', kv.string('llama')],
      ['tokenizer.ggml.tokens', kv.array('string', tokensOf(tokenizer))],
      ['tokenizer.ggml.scores', kv.array('float32', scores)],
      ['tokenizer.ggml.token_type', kv.array('int32', tokenTypes(tokenizer, json, true))],
      ['tokenizer.ggml.add_bos_token', kv.bool(true)],
      ['tokenizer.ggml.add_space_prefix', kv.bool(true)],
    ]),
    tensors: [],
  });
}
