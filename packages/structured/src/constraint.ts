import type { LogitsProcessor, SequenceProcessor } from '@gen/sampling';
import { ConstraintViolationError, StructuredError } from './errors.js';
import { TokenMaskIndex } from './token-index.js';
import type { ByteAutomaton } from './types.js';
import type { TokenVocabulary } from './vocabulary.js';

/** Options of {@link createConstraintProcessor}. */
export interface ConstraintOptions {
  /** The processor's name, for errors and metrics. Default `constraint`. */
  name?: string;
}

/** The per-sequence side of a constraint: where in the automaton the output is. */
export interface ConstraintState extends SequenceProcessor {
  /** The automaton state after the tokens accepted so far. */
  readonly state: number;
  /** Whether the output so far is complete (EOS allowed here). */
  readonly complete: boolean;
  /** Whether EOS was accepted: the constrained output is finished. */
  readonly finished: boolean;
}

class SequenceConstraint implements ConstraintState {
  finished = false;

  constructor(
    private readonly index: TokenMaskIndex,
    public state: number,
  ) {}

  get complete(): boolean {
    return this.index.automaton.isAccepting(this.state);
  }

  apply(logits: Float32Array): void {
    if (this.finished) {
      // Past EOS (with `ignore_eos`): only EOS again.
      const eos = this.index.vocabulary.eosTokenIds;
      const kept = eos.map((id) => logits[id]!);
      logits.fill(-Infinity);
      eos.forEach((id, i) => (logits[id] = kept[i]!));
      return;
    }
    if (this.index.apply(logits, this.state) === 0) {
      throw new StructuredError(
        'No token of the vocabulary can continue the constrained output here: the grammar needs bytes no token spells.',
      );
    }
  }

  accept(token: number): void {
    if (this.finished) return;
    if (this.index.vocabulary.eosTokenIds.includes(token)) {
      if (!this.complete) throw new ConstraintViolationError(token, 'end of sequence before the output is complete');
      this.finished = true;
      return;
    }
    const next = this.index.advance(this.state, token);
    if (next < 0) throw new ConstraintViolationError(token, 'its bytes leave the language');
    this.state = next;
  }

  fork(): SequenceConstraint {
    const copy = new SequenceConstraint(this.index, this.state);
    copy.finished = this.finished;
    return copy;
  }
}

/**
 * A logits processor (for `@gen/sampling`'s `SamplerOptions.processors` or the engine's
 * `GenerationParameters.logitsProcessors`) that holds each sequence's output to the language of an automaton: tokens
 * that would leave it get -Infinity, EOS only once the output is complete. Each sequence's state is a
 * {@link ConstraintState} (`complete`, `finished`), so a server can tell a length cut-off mid-object from a complete
 * output.
 *
 * Pass a {@link TokenMaskIndex} (masks shared with every other processor on it: see {@link maskIndexFor}) or an
 * automaton and its vocabulary (a new index).
 *
 * @throws {StructuredError} from `apply` when no token at all can continue the output (the grammar needs bytes no
 *   token spells); {@link ConstraintViolationError} from `accept` for a token the mask did not allow.
 */
export function createConstraintProcessor(
  source: TokenMaskIndex | ByteAutomaton,
  vocabulary?: TokenVocabulary,
  options: ConstraintOptions = {},
): LogitsProcessor {
  let index: TokenMaskIndex;
  if (source instanceof TokenMaskIndex) {
    index = source;
  } else {
    if (vocabulary === undefined)
      throw new StructuredError('createConstraintProcessor: an automaton needs a vocabulary');
    index = new TokenMaskIndex(source, vocabulary);
  }
  return {
    name: options.name ?? 'constraint',
    changesArgmax: true,
    createState: () => new SequenceConstraint(index, index.automaton.start),
  };
}

/** A constraint processor straight from an automaton (its own index, no cache), for custom automata. */
export function constraintFromAutomaton(automaton: ByteAutomaton, vocabulary: TokenVocabulary): LogitsProcessor {
  return createConstraintProcessor(automaton, vocabulary);
}

/** The {@link ConstraintState} of a sequence processor made by a constraint processor, or undefined for others. */
export function constraintState(processor: SequenceProcessor): ConstraintState | undefined {
  return processor instanceof SequenceConstraint ? processor : undefined;
}
