/**
 * The peer: transformers.js (`@huggingface/transformers`), driven the way its `generate()` drives it
 * (src/models/modeling_utils.js): `_get_logits_processor(generation_config, ...)` builds the processor list
 * (repetition penalty, temperature; top_k / top_p warpers are commented out there), the list is applied to the
 * `[batch, vocab]` logits tensor with the `bigint[][]` histories, then `LogitsSampler.getSampler(generation_config)`
 * (GreedySampler or MultinomialSampler) is awaited on each row `next_tokens_scores[batch_idx]`.
 *
 * `LogitsSampler` is not exported by the package entry, so the generation modules are imported by file path from
 * the package's `src/` (one module graph: Tensor, processors and samplers all come from there).
 */
import { readFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import path from 'node:path';
import { pathToFileURL } from 'node:url';

import { makeHistory } from './logits.js';
import { measureAsync, type Budget, type Stats } from './measure.js';
import { BATCH_ROWS, HISTORY_LENGTH, type ScenarioId } from './ours.js';

/** transformers.js Tensor, as far as the benchmark uses it (numeric indexing goes through its Proxy). */
interface PeerTensor {
  readonly data: Float32Array;
  readonly dims: readonly number[];
  readonly [index: number]: PeerTensor;
}
type TensorConstructor = new (type: 'float32', data: Float32Array, dims: number[]) => PeerTensor;
type ProcessorList = (inputIds: bigint[][], logits: PeerTensor) => PeerTensor;
type PeerSampler = (logits: PeerTensor) => Promise<[bigint, number][]>;

interface PeerApi {
  version: string;
  /** How the modules were loaded. */
  loadedFrom: string;
  Tensor: TensorConstructor;
  newConfig: (config: Record<string, unknown>) => object;
  getLogitsProcessor: (config: object, inputLength: number) => ProcessorList;
  getSampler: (config: object) => PeerSampler;
  seed: (seed: number) => void;
  logSoftmax: (values: Float32Array) => Float32Array;
  topk: (x: PeerTensor, k: number) => Promise<[PeerTensor, PeerTensor]>;
}

export type Peer = { ok: true; api: PeerApi } | { ok: false; error: string };

/** Loads the transformers.js generation modules from the installed package's `src/`. */
export async function loadPeer(): Promise<Peer> {
  try {
    const require = createRequire(import.meta.url);
    const entry = require.resolve('@huggingface/transformers');
    const root = path.resolve(path.dirname(entry), '..');
    const { version } = JSON.parse(readFileSync(path.join(root, 'package.json'), 'utf8')) as { version: string };
    const load = async (file: string): Promise<Record<string, unknown>> =>
      (await import(pathToFileURL(path.join(root, 'src', file)).href)) as Record<string, unknown>;
    const tensorModule = await load('utils/tensor.js');
    const maths = await load('utils/maths.js');
    const random = (await load('utils/random.js')).random as { seed: (seed: number) => void };
    const configuration = await load('generation/configuration_utils.js');
    const sampling = await load('generation/logits_sampler.js');
    const modeling = await load('models/modeling_utils.js');
    const GenerationConfig = configuration.GenerationConfig as new (config: Record<string, unknown>) => object;
    const LogitsSampler = sampling.LogitsSampler as { getSampler: (config: object) => PeerSampler };
    const model = modeling.PreTrainedModel as {
      prototype: { _get_logits_processor: (config: object, length: number, extra: null) => ProcessorList };
    };
    return {
      ok: true,
      api: {
        version,
        loadedFrom: 'its src/ by file path (generation/*, utils/*, models/modeling_utils.js)',
        Tensor: tensorModule.Tensor as TensorConstructor,
        newConfig: (config) => new GenerationConfig(config),
        // generate() calls this._get_logits_processor(...); the method never reads `this`.
        getLogitsProcessor: (config, length) => model.prototype._get_logits_processor.call({}, config, length, null),
        getSampler: (config) => LogitsSampler.getSampler(config),
        seed: random.seed.bind(random),
        logSoftmax: maths.log_softmax as (values: Float32Array) => Float32Array,
        topk: tensorModule.topk as (x: PeerTensor, k: number) => Promise<[PeerTensor, PeerTensor]>,
      },
    };
  } catch (error) {
    return { ok: false, error: error instanceof Error ? error.message : String(error) };
  }
}

/** A peer measurement and the scenario of ours it is compared with. */
export interface PeerScenario {
  id: string;
  /** Our scenario the ratio is taken against. */
  against: ScenarioId;
  label: string;
  /** What the peer does differently (shown next to the ratio). */
  note: string;
  config: Record<string, unknown>;
  /** Also compute log_softmax + topk(5), the logprob and top-5 that greedy generate() does not give. */
  logprobTop5?: boolean;
  batch?: boolean;
}

const PEER_TGI = { do_sample: true, repetition_penalty: 1.1, temperature: 0.8, top_k: 50, top_p: 0.9 };

export const PEER_SCENARIOS: readonly PeerScenario[] = [
  {
    id: 'greedy',
    against: 'greedy-top5',
    label: 'GreedySampler (as generate())',
    note: 'argmax only: score is a constant 0, no logprob, no top-5',
    config: { do_sample: false },
  },
  {
    id: 'greedy-top5',
    against: 'greedy-top5',
    label: 'GreedySampler + log_softmax + topk(5)',
    note: 'same outputs as ours (what a caller must add)',
    config: { do_sample: false },
    logprobTop5: true,
  },
  {
    id: 'tgi',
    against: 'tgi',
    label: 'rep 1.1 + T 0.8 + Multinomial top_k 50',
    note: 'top_p 0.9 is ignored (TopPLogitsWarper is never applied)',
    config: PEER_TGI,
  },
  {
    id: 'top-k0-t1',
    against: 'top-p-t1',
    label: 'Multinomial top_k 0 (full vocab), T 1',
    note: 'top_p ignored: draws from the full vocabulary',
    config: { do_sample: true, top_k: 0, top_p: 0.9 },
  },
  {
    id: 'top-k0-t08',
    against: 'top-p-t08',
    label: 'Multinomial top_k 0 (full vocab), T 0.8',
    note: 'top_p ignored: draws from the full vocabulary',
    config: { do_sample: true, top_k: 0, top_p: 0.9, temperature: 0.8 },
  },
  {
    id: 'batch16',
    against: 'batch16',
    label: `${BATCH_ROWS} rows: processors on [${BATCH_ROWS}, V] + sampler per row`,
    note: 'top_p ignored',
    config: PEER_TGI,
    batch: true,
  },
];

/** Scenarios the peer cannot run, and why. */
export const PEER_UNSUPPORTED: Readonly<Partial<Record<ScenarioId, string>>> = {
  'typical-p': 'GenerationConfig has typical_p, but no processor implements it (never applied)',
  'min-p': 'no min_p option or processor',
  watermark: 'no watermark processor',
};

/** Times one peer scenario on the same rows of logits as ours. */
export async function measurePeer(
  api: PeerApi,
  scenario: PeerScenario,
  pool: readonly Float32Array[],
  budget: Budget,
): Promise<Stats> {
  const vocabSize = pool[0]!.length;
  const rows = scenario.batch === true ? BATCH_ROWS : 1;
  const config = api.newConfig(scenario.config);
  const processors = api.getLogitsProcessor(config, HISTORY_LENGTH);
  const sampler = api.getSampler(config);
  api.seed(42);
  const histories: bigint[][] = [];
  for (let r = 0; r < rows; r++) {
    const seed = rows === 1 ? 1 : 100 + r;
    histories.push(makeHistory(vocabSize, HISTORY_LENGTH, seed).map((id) => BigInt(id)));
  }
  const work = new Float32Array(rows * vocabSize);
  let logits = new api.Tensor('float32', work, [rows, vocabSize]);
  const prepare = (i: number): void => {
    for (let r = 0; r < rows; r++) work.set(pool[(i + r) % pool.length]!, r * vocabSize);
    // generate() gets a fresh [batch, vocab] float32 tensor from the model each step.
    logits = new api.Tensor('float32', work, [rows, vocabSize]);
  };
  const run = async (): Promise<unknown> => {
    const scores = processors(histories, logits);
    let last: unknown;
    for (let r = 0; r < rows; r++) {
      const row = scores[r]!;
      last = await sampler(row);
      if (scenario.logprobTop5 === true) {
        const logprobs = api.logSoftmax(row.data);
        last = await api.topk(new api.Tensor('float32', logprobs, [vocabSize]), 5);
      }
    }
    return last;
  };
  return measureAsync(prepare, run, budget);
}

/** Checks that the peer's greedy argmax equals ours on the same rows (a sanity check of the comparison). */
export async function peerArgmax(api: PeerApi, row: Float32Array): Promise<number> {
  const sampler = api.getSampler(api.newConfig({ do_sample: false }));
  const [[id]] = (await sampler(new api.Tensor('float32', row.slice(), [row.length]))) as [[bigint, number]];
  return Number(id);
}
