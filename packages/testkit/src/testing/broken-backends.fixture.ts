/*
 * Not part of the normal test run (it does not end in .test.ts): `suite-detects-bugs.test.ts` runs this file in a
 * child vitest and checks that every deliberately broken backend fails the part of the suite aimed at its bug,
 * while the correct control passes everything.
 */
import type { BackendForwardResultV1, BackendV1 } from '@gen/backend';
import { runBackendConformanceTests } from '../index.js';
import { createMockBackend, type MockBackend } from '../mock/mock-backend.js';

function wrap(inner: MockBackend, patch: Partial<BackendV1>): BackendV1 {
  return {
    specificationVersion: 'v1',
    backendId: inner.backendId,
    model: inner.model,
    capabilities: inner.capabilities,
    warnings: inner.warnings,
    doForward: (options) => inner.doForward(options),
    doRelease: (ids) => inner.doRelease(ids),
    doFork: (from, to) => inner.doFork!(from, to),
    ...(inner.doEmbed === undefined ? {} : { doEmbed: (options) => inner.doEmbed!(options) }),
    stats: () => inner.stats(),
    doDispose: () => inner.doDispose(),
    ...patch,
  };
}

function nudge(result: BackendForwardResultV1, row: number, amount: number): BackendForwardResultV1 {
  const sequence = result.sequences[row]!;
  sequence.logits[0] = sequence.logits[0]! + amount;
  if (sequence.promptLogits !== undefined) {
    const vocab = sequence.logits.length;
    sequence.promptLogits[sequence.promptLogits.length - vocab] = sequence.logits[0]!;
  }
  return result;
}

const common = { releaseRounds: 50, propertyRuns: 3 };
const fakeDirs = [{ name: 'no-model', dir: '/nonexistent-model-dir' }];

const broken: Record<string, () => BackendV1> = {
  // Next-token logits of batch members after the first depend on their position in the batch.
  'batch-leak': () => {
    const inner = createMockBackend();
    return wrap(inner, {
      doForward: async (options) => {
        const result = await inner.doForward(options);
        for (let i = 1; i < result.sequences.length; i++) nudge(result, i, 0.01 * i);
        return result;
      },
    });
  },
  // Multi-token appends (prefill) compute the last row slightly differently from single-token decode.
  'chunk-bug': () => {
    const inner = createMockBackend();
    return wrap(inner, {
      doForward: async (options) => {
        const result = await inner.doForward(options);
        options.sequences.forEach((s, i) => {
          if (s.tokens.length > 1) nudge(result, i, 0.01);
        });
        return result;
      },
    });
  },
  // doRelease forgets to free anything.
  'leaky-release': () => {
    const inner = createMockBackend();
    return wrap(inner, { doRelease: () => Promise.resolve() });
  },
  // The signal is never looked at.
  'ignores-abort': () => {
    const inner = createMockBackend();
    return wrap(inner, { doForward: (options) => inner.doForward({ sequences: options.sequences }) });
  },
  // Advertises 16 positions but does not enforce them.
  'no-position-limit': () => {
    const inner = createMockBackend({ maxPositions: 256 });
    return wrap(inner, { model: { ...inner.model, maxPositions: 16 } });
  },
  // Fork copies all but the last token of the source (an off-by-one).
  'fork-off-by-one': () => {
    const inner = createMockBackend();
    return wrap(inner, {
      doFork: async (from, to) => {
        const history = inner.history(from);
        if (history === undefined || history.length < 2) return inner.doFork!(from, to);
        await inner.doForward({ sequences: [{ id: to, tokens: history.slice(0, -1) }] });
      },
    });
  },
  // Returns the same logits whatever the history.
  'constant-logits': () => {
    const inner = createMockBackend();
    return wrap(inner, {
      doForward: async (options) => {
        const result = await inner.doForward(options);
        result.logits.fill(0);
        result.sequences.forEach((s) => s.promptLogits?.fill(0));
        return result;
      },
    });
  },
  // Embeddings of batch members after the first depend on their position in the batch.
  'embed-batch-leak': () => {
    const inner = createMockBackend({ embeddings: true });
    return wrap(inner, {
      doEmbed: async (options) => {
        const vectors = await inner.doEmbed!(options);
        vectors.forEach((vector, i) => (vector[0] = vector[0]! + 0.01 * i));
        return vectors;
      },
    });
  },
  // Mean pooling leaves the first position out (an off-by-one).
  'embed-mean-skips-first': () => {
    const inner = createMockBackend({ embeddings: true });
    return wrap(inner, {
      doEmbed: async (options) => {
        const checked = await inner.doEmbed!(options); // validation and abort as the contract says
        if (options.pooling !== 'mean') return checked;
        const lasts = await Promise.all(
          options.tokens
            .map((tokens) =>
              Array.from({ length: tokens.length }, (_, i) =>
                inner.doEmbed!({ tokens: [Array.from(tokens).slice(0, i + 1)], pooling: 'last' }).then((v) => v[0]!),
              ),
            )
            .map((prefixes) => Promise.all(prefixes)),
        );
        return lasts.map((prefixes) => {
          const kept = prefixes.length > 1 ? prefixes.slice(1) : prefixes;
          return kept[0]!.map((_, d) => kept.reduce((sum, v) => sum + v[d]!, 0) / kept.length);
        });
      },
    });
  },
  // Says it embeds but has no doEmbed.
  'embed-capability-lies': () => {
    const inner = createMockBackend();
    return wrap(inner, { capabilities: { ...inner.capabilities, embeddings: true } });
  },
  // Advertises logitsBuffer but returns fresh arrays.
  'logits-buffer-lies': () => {
    const inner = createMockBackend();
    return wrap(inner, { capabilities: { ...inner.capabilities, logitsBuffer: true } });
  },
  // Writes into logitsBuffer but leaves the rows in fresh arrays too, and scribbles past them.
  'logits-buffer-overrun': () => {
    const inner = createMockBackend();
    return wrap(inner, {
      capabilities: { ...inner.capabilities, logitsBuffer: true },
      doForward: async (options) => {
        const result = await inner.doForward(options);
        const buffer = options.logitsBuffer;
        if (buffer === undefined) return result;
        buffer.set(result.logits.subarray(0, Math.min(result.logits.length, buffer.length)));
        buffer.fill(0, Math.min(result.logits.length, buffer.length));
        const logits = buffer.subarray(0, result.logits.length);
        const vocab = inner.model.vocabSize;
        return {
          ...result,
          logits,
          sequences: result.sequences.map((s, i) => ({ ...s, logits: logits.subarray(i * vocab, (i + 1) * vocab) })),
        };
      },
    });
  },
};

for (const [name, create] of Object.entries(broken)) {
  runBackendConformanceTests({ name: `broken:${name}`, createBackend: () => Promise.resolve(create()), ...common });
}

// Numbers that differ from the oracle's.
runBackendConformanceTests({
  name: 'broken:wrong-numbers',
  createBackend: () => Promise.resolve(createMockBackend({ seed: 1 })),
  oracle: () => Promise.resolve(createMockBackend({ seed: 2 })),
  modelDirs: fakeDirs,
  ...common,
});

// Same logits as the oracle, embeddings slightly off (the same way in every call, so only the oracle part sees it).
runBackendConformanceTests({
  name: 'broken:wrong-embeddings',
  createBackend: () => {
    const inner = createMockBackend({ seed: 1, embeddings: true });
    return Promise.resolve(
      wrap(inner, {
        doEmbed: async (options) => {
          const vectors = await inner.doEmbed!(options);
          for (const vector of vectors) vector[1] = vector[1]! + 1e-3;
          return vectors;
        },
      }),
    );
  },
  oracle: () => Promise.resolve(createMockBackend({ seed: 1, embeddings: true })),
  modelDirs: fakeDirs,
  ...common,
});

// Control: the correct mock passes everything, oracle and embedding parts included.
runBackendConformanceTests({
  name: 'control',
  createBackend: () => Promise.resolve(createMockBackend({ seed: 5, embeddings: true })),
  oracle: () => Promise.resolve(createMockBackend({ seed: 5, embeddings: true })),
  modelDirs: fakeDirs,
  ...common,
});
