/**
 * Scans one call object (`{"name": "f", "arguments": {...}}`) a character at a time and reports the name once its
 * string is complete and the arguments' raw text as it grows. Keys may come in either order (arguments written
 * before the name are held until the name is known).
 */
export class CallScanner {
  /** 'start' before `{`; 'key' / 'colon' / 'value' / 'comma' inside; 'done' after `}`; 'broken' on bad syntax. */
  state: 'start' | 'key' | 'colon' | 'value' | 'comma' | 'done' | 'broken' = 'start';
  name: string | undefined;
  private key = '';
  private keyText = '';
  private inKey = false;
  private valueText = '';
  private depth = 0;
  private inString = false;
  private escaped = false;
  private valueStarted = false;
  private held = '';
  /** The raw text of the whole object so far. */
  raw = '';

  constructor(
    private readonly argsKey: 'arguments' | 'parameters',
    private readonly emit: (event: { name?: string; args?: string }) => void,
  ) {}

  private isArgs(): boolean {
    return this.key === this.argsKey || this.key === (this.argsKey === 'arguments' ? 'parameters' : 'arguments');
  }

  push(char: string): void {
    if (this.state === 'done' || this.state === 'broken') return;
    this.raw += char;
    const ws = char === ' ' || char === '\n' || char === '\t' || char === '\r';
    switch (this.state) {
      case 'start':
        if (ws) return;
        this.state = char === '{' ? 'key' : 'broken';
        return;
      case 'key':
        if (!this.inKey) {
          if (ws) return;
          if (char === '}' && this.keyText === '') {
            this.finishObject();
            return;
          }
          if (char !== '"') {
            this.state = 'broken';
            return;
          }
          this.inKey = true;
          this.keyText = '"';
          return;
        }
        this.keyText += char;
        if (this.escaped) this.escaped = false;
        else if (char === '\\') this.escaped = true;
        else if (char === '"') {
          this.inKey = false;
          try {
            this.key = JSON.parse(this.keyText) as string;
          } catch {
            this.state = 'broken';
            return;
          }
          this.keyText = '';
          this.state = 'colon';
        }
        return;
      case 'colon':
        if (ws) return;
        if (char !== ':') this.state = 'broken';
        else {
          this.state = 'value';
          this.valueText = '';
          this.valueStarted = false;
          this.depth = 0;
        }
        return;
      case 'value':
        this.valueChar(char, ws);
        return;
      case 'comma':
        if (ws) return;
        if (char === ',') this.state = 'key';
        else if (char === '}') this.finishObject();
        else this.state = 'broken';
        return;
    }
  }

  private valueChar(char: string, ws: boolean): void {
    if (!this.valueStarted) {
      if (ws) return;
      this.valueStarted = true;
    }
    if (this.inString) {
      if (this.escaped) this.escaped = false;
      else if (char === '\\') this.escaped = true;
      else if (char === '"') this.inString = false;
      this.append(char);
      if (!this.inString && this.depth === 0) this.endValue();
      return;
    }
    if (this.depth === 0 && (char === ',' || char === '}' || ws) && this.valueText !== '') {
      // A scalar ended.
      this.endValue();
      if (char === ',') this.state = 'key';
      else if (char === '}') this.finishObject();
      else this.state = 'comma';
      return;
    }
    if (char === '"') this.inString = true;
    else if (char === '{' || char === '[') this.depth++;
    else if (char === '}' || char === ']') this.depth--;
    if (this.depth < 0) {
      this.state = 'broken';
      return;
    }
    this.append(char);
    if (this.depth === 0 && (char === '}' || char === ']')) this.endValue();
  }

  private append(char: string): void {
    this.valueText += char;
    if (this.isArgs()) {
      if (this.name === undefined) this.held += char;
      else this.emit({ args: char });
    }
  }

  private endValue(): void {
    if (this.key === 'name' && this.name === undefined) {
      let name: unknown;
      try {
        name = JSON.parse(this.valueText);
      } catch {
        name = undefined;
      }
      if (typeof name !== 'string') {
        this.state = 'broken';
        return;
      }
      this.name = name;
      this.emit({ name });
      if (this.held !== '') this.emit({ args: this.held });
      this.held = '';
    }
    this.state = 'comma';
  }

  private finishObject(): void {
    this.state = this.name === undefined ? 'broken' : 'done';
  }
}

/**
 * The name and the raw arguments text of one complete call object, or undefined when `text` is not exactly one
 * well-formed call object (valid JSON, a string name, an object as arguments or none).
 */
export function scanCall(
  text: string,
  argsKey: 'arguments' | 'parameters',
): { name: string; arguments: string } | undefined {
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return undefined;
  let name: string | undefined;
  let args = '';
  const scanner = new CallScanner(argsKey, (event) => {
    if (event.name !== undefined) name = event.name;
    if (event.args !== undefined) args += event.args;
  });
  for (const char of text.trim()) scanner.push(char);
  if (scanner.state !== 'done' || name === undefined || name === '') return undefined;
  if (args === '') return { name, arguments: '{}' };
  let value: unknown;
  try {
    value = JSON.parse(args);
  } catch {
    return undefined;
  }
  if (typeof value === 'string') {
    // Arguments written as a JSON string (OpenAI's wire form): its content must be an object.
    try {
      const inner: unknown = JSON.parse(value);
      if (typeof inner === 'object' && inner !== null && !Array.isArray(inner)) return { name, arguments: value };
    } catch {
      return undefined;
    }
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  return { name, arguments: args };
}
