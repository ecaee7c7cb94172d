const marker = Symbol.for('gen.structured.error');

/**
 * Base class of every error thrown by `@gen/structured`.
 *
 * Use {@link StructuredError.isInstance} rather than `instanceof`: it also recognises errors thrown by another
 * installed copy of this package (the marker is a global `Symbol.for`).
 */
export class StructuredError extends Error {
  readonly [marker] = true;

  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = 'StructuredError';
  }

  /** True when `error` is a {@link StructuredError} from any copy of this package. */
  static isInstance(error: unknown): error is StructuredError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[marker] === true;
  }
}

const schemaMarker = Symbol.for('gen.structured.error.unsupported-schema');

/**
 * A JSON Schema uses a keyword (or a value of a keyword) that the compiler does not constrain exactly.
 *
 * The compiler never ignores a keyword that restricts the language: it throws this instead, so a server can answer
 * with a 4xx naming {@link UnsupportedSchemaError.keyword} rather than decode unconstrained.
 */
export class UnsupportedSchemaError extends StructuredError {
  readonly [schemaMarker] = true;
  /** The keyword that is not supported, for example `pattern` or `format`. */
  readonly keyword: string;
  /** JSON Pointer of the keyword itself, for example `/properties/name/uniqueItems` (the root is ``). */
  readonly schemaPath: string;

  constructor(keyword: string, schemaPath: string, detail?: string) {
    super(
      `JSON Schema keyword \`${keyword}\` is not supported${detail ? ` (${detail})` : ''} at ${schemaPath === '' ? '/' : schemaPath}.`,
    );
    this.name = 'UnsupportedSchemaError';
    this.keyword = keyword;
    this.schemaPath = schemaPath;
  }

  /** True when `error` is an {@link UnsupportedSchemaError} from any copy of this package. */
  static override isInstance(error: unknown): error is UnsupportedSchemaError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[schemaMarker] === true;
  }
}

const regexMarker = Symbol.for('gen.structured.error.unsupported-regex');

/**
 * A regular expression is malformed or uses a feature outside the supported subset (backreferences, lookaround,
 * word boundaries, anchors other than a leading `^` / trailing `$`, flags).
 */
export class UnsupportedRegexError extends StructuredError {
  readonly [regexMarker] = true;
  /** The feature that is not supported or the syntax problem, for example `lookahead` or `unbalanced parenthesis`. */
  readonly feature: string;
  /** Index in the pattern (UTF-16 code units) where the problem was found. */
  readonly position: number;

  constructor(feature: string, position: number, pattern: string) {
    super(`Regex feature not supported: ${feature} at position ${position} of /${pattern}/.`);
    this.name = 'UnsupportedRegexError';
    this.feature = feature;
    this.position = position;
  }

  /** True when `error` is an {@link UnsupportedRegexError} from any copy of this package. */
  static override isInstance(error: unknown): error is UnsupportedRegexError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[regexMarker] === true;
  }
}

const grammarMarker = Symbol.for('gen.structured.error.invalid-grammar');

/**
 * The grammar is not usable: a bad shape (unknown `type`, a schema that is not an object or boolean), a dangling
 * `$ref`, a language that contains no string at all (`false`, an empty `enum`, `minItems > maxItems`), or a grammar
 * that would exceed the automaton size limit.
 */
export class InvalidGrammarError extends StructuredError {
  readonly [grammarMarker] = true;

  constructor(message: string) {
    super(message);
    this.name = 'InvalidGrammarError';
  }

  /** True when `error` is an {@link InvalidGrammarError} from any copy of this package. */
  static override isInstance(error: unknown): error is InvalidGrammarError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[grammarMarker] === true;
  }
}

const violationMarker = Symbol.for('gen.structured.error.constraint-violation');

/** A token was fed to {@link TokenConstraint.advance} that the constraint does not allow in that state. */
export class ConstraintViolationError extends StructuredError {
  readonly [violationMarker] = true;
  /** The rejected token id. */
  readonly tokenId: number;

  constructor(tokenId: number, reason: string) {
    super(`Token ${tokenId} is not allowed by the constraint: ${reason}.`);
    this.name = 'ConstraintViolationError';
    this.tokenId = tokenId;
  }

  /** True when `error` is a {@link ConstraintViolationError} from any copy of this package. */
  static override isInstance(error: unknown): error is ConstraintViolationError {
    return typeof error === 'object' && error !== null && (error as Record<symbol, unknown>)[violationMarker] === true;
  }
}
