import type { LanguageNode } from './ast.js';
import { regexNode } from './regex.js';

const DAY31 = '(0[1-9]|[12][0-9]|3[01])';
const DAY30 = '(0[1-9]|[12][0-9]|30)';
const LEAP_YEAR = '([0-9]{2}(0[48]|[2468][048]|[13579][26])|([02468][048]|[13579][26])00)';
const DATE =
  `([0-9]{4}-(0[13578]|1[02])-${DAY31}|[0-9]{4}-(0[469]|11)-${DAY30}|[0-9]{4}-02-(0[1-9]|1[0-9]|2[0-8])|` +
  `${LEAP_YEAR}-02-29)`;
const TIME = '([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?([zZ]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])';

/**
 * The `format` values compiled exactly (a sound subset of what ajv-formats accepts), as patterns over code points.
 * `date`: day checked against the month and leap years; `time`: timezone required, no leap second;
 * `email`: a practical subset (dot-atom local part of `[A-Za-z0-9_+-]`, dotted DNS labels).
 */
export const FORMAT_PATTERNS: Readonly<Record<string, string>> = {
  date: DATE,
  time: TIME,
  'date-time': `${DATE}[tT]${TIME}`,
  uuid: '[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}',
  email:
    '[A-Za-z0-9_+-]+(\\.[A-Za-z0-9_+-]+)*@([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?\\.)+[A-Za-z]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?',
  ipv4: '((25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])\\.){3}(25[0-5]|2[0-4][0-9]|1[0-9][0-9]|[1-9]?[0-9])',
};

/** The language of a supported format, or undefined. */
export function formatNode(format: string): LanguageNode | undefined {
  const pattern = FORMAT_PATTERNS[format];
  return pattern === undefined ? undefined : regexNode(pattern);
}

/** The `format` values supported (others throw UnsupportedSchemaError). */
export const SUPPORTED_FORMATS: readonly string[] = Object.keys(FORMAT_PATTERNS);
