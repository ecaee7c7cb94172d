/**
 * A JSON object whose keys keep the order given. Plain objects enumerate integer-like keys ("10", "2024") first,
 * which would scramble an id-ordered vocabulary; this keeps `tokenizer.json` in id order as real files are.
 */
export class OrderedObject {
  constructor(readonly entries: ReadonlyArray<readonly [string, unknown]>) {}
}

/**
 * `JSON.stringify(value, null, 2)` plus a final newline, honouring {@link OrderedObject}; with `sortKeys`, plain
 * objects' keys are sorted (as Python's `json.dumps(sort_keys=True)` in transformers' `save_pretrained`).
 */
export function stringifyJson(value: unknown, options: { sortKeys?: boolean } = {}): string {
  return `${render(value, '', options.sortKeys ?? false)}\n`;
}

function render(value: unknown, indent: string, sortKeys: boolean): string {
  const inner = `${indent}  `;
  if (value instanceof OrderedObject) return renderEntries(value.entries, indent, sortKeys);
  if (Array.isArray(value)) {
    if (value.length === 0) return '[]';
    return `[\n${value.map((item) => inner + render(item, inner, sortKeys)).join(',\n')}\n${indent}]`;
  }
  if (typeof value === 'object' && value !== null) {
    const keys = Object.keys(value);
    if (sortKeys) keys.sort();
    return renderEntries(
      keys.map((key) => [key, (value as Record<string, unknown>)[key]] as const),
      indent,
      sortKeys,
    );
  }
  return JSON.stringify(value) ?? 'null';
}

function renderEntries(entries: ReadonlyArray<readonly [string, unknown]>, indent: string, sortKeys: boolean): string {
  const present = entries.filter(([, item]) => item !== undefined);
  if (present.length === 0) return '{}';
  const inner = `${indent}  `;
  const lines = present.map(([key, item]) => `${inner}${JSON.stringify(key)}: ${render(item, inner, sortKeys)}`);
  return `{\n${lines.join(',\n')}\n${indent}}`;
}
