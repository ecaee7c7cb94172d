import { Type } from '@sinclair/typebox';
import { closedBody, compileBodyCheck, field, required } from './check.js';

const { Array: ArrayOf, Boolean, Integer, Number, String, Union } = Type;

/** Together's `/inference` (the request of Together's REST API for language models). */
export const InferenceBody = closedBody(
  {
    model: field(String(), {
      description: 'One model is served, under `--model-id`: any name is accepted.',
      status: 'ignored',
    }),
    prompt: required(String(), { description: 'The prompt.' }),
    max_tokens: field(Integer({ minimum: 1 }), { description: 'Most tokens to generate.' }),
    stop: field(Union([String(), ArrayOf(String())]), { description: 'Stop sequences.' }),
    temperature: field(Number({ minimum: 0 }), { description: 'Softmax temperature; 0 is greedy. Default 1.' }),
    top_p: field(Number(), { description: 'Nucleus sampling mass, in (0, 1].' }),
    top_k: field(Integer(), { description: 'Keep the k most likely tokens; 0 is off.' }),
    repetition_penalty: field(Number(), { description: 'CTRL repetition penalty, > 0.' }),
    logprobs: field(Integer({ minimum: 0, maximum: 20 }), { description: 'Logprobs of the chosen and top n tokens.' }),
    seed: field(Integer(), { description: 'Sampling seed.' }),
    stream_tokens: field(Boolean(), {
      description: 'Stream Server-Sent Events as Together does (`choices[].text` deltas, `data: [DONE]` last).',
    }),
    n: field(Integer({ minimum: 1 }), { description: 'Choices (at most `max_n`); they share the prompt’s cache.' }),
    echo: field(Boolean(), { description: 'Prepend the prompt to each choice’s text.' }),
  },
  'A Together inference request.',
);

/** The compiled check of `/inference` bodies. */
export const checkInferenceBody = compileBodyCheck(InferenceBody);
