import { Type } from '@sinclair/typebox';
import { closedBody, compileBodyCheck, field, required } from './check.js';

const { Array: ArrayOf, Integer, Literal, Number, String, Union, Unknown } = Type;

/**
 * `/v1/embeddings`. The shape of `input` is checked here; what its items must hold (no empty text, token ids in
 * the vocabulary, lengths within the context) is checked by the route, which names the offending item.
 */
export const EmbeddingBody = closedBody(
  {
    input: required(Union([String(), ArrayOf(Union([String(), Number(), ArrayOf(Unknown())]))]), {
      description:
        'A text, texts, token ids, or lists of token ids (at most `max_client_batch_size` inputs, none empty, none longer than the context).',
      expected: 'a string, an array of strings, an array of token ids, or an array of arrays of token ids',
    }),
    model: field(String(), {
      description: 'One model is served, under `--model-id`: any name is accepted.',
      status: 'ignored',
    }),
    encoding_format: field(Union([Literal('float'), Literal('base64')]), {
      description: 'JSON numbers (default), or base64 of little-endian float32 (what the openai SDKs ask for).',
    }),
    dimensions: field(Integer({ minimum: 1 }), {
      description: 'Must equal the model’s hidden size: vectors are not truncated or projected.',
    }),
    user: field(String(), {
      description: 'End-user id for OpenAI’s abuse monitoring: no local meaning.',
      status: 'ignored',
    }),
    pooling: field(Union([Literal('mean'), Literal('last')]), {
      description: 'gen extra: the mean of the final hidden states over the input (default), or the last one’s.',
    }),
  },
  'An OpenAI embeddings request.',
);

/** The compiled check of `/v1/embeddings` bodies. */
export const checkEmbeddingBody = compileBodyCheck(EmbeddingBody);
