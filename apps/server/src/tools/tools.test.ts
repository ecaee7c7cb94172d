import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { detectToolCallFormat, parseToolCalls, TOOL_CALL_FORMATS, type ToolCallFormatName } from './formats.js';
import { ToolCallStream, type ToolStreamEvent } from './stream.js';

const NAMES = new Set(['get_weather', 'search', 'add']);

function render(format: ToolCallFormatName, calls: { name: string; args: unknown }[], pretty: boolean): string {
  const key = format === 'llama3' ? 'parameters' : 'arguments';
  const json = (call: { name: string; args: unknown }) =>
    pretty
      ? JSON.stringify({ name: call.name, [key]: call.args }, null, 2)
      : JSON.stringify({ name: call.name, [key]: call.args });
  if (format === 'hermes') return calls.map((call) => `<tool_call>\n${json(call)}\n</tool_call>`).join('\n');
  if (format === 'mistral') return `[${calls.map(json).join(', ')}]`;
  return calls.map(json).join('; ');
}

/** Streams `text` in the given chunk sizes and folds the events into content and calls. */
function streamed(format: ToolCallFormatName, text: string, sizes: number[]) {
  const stream = new ToolCallStream(format);
  const events: ToolStreamEvent[] = [];
  let at = 0;
  let i = 0;
  while (at < text.length) {
    const size = Math.max(1, sizes[i++ % sizes.length] ?? 1);
    events.push(...stream.push(text.slice(at, at + size)));
    at += size;
  }
  events.push(...stream.finish());
  let content = '';
  const calls: { name: string; arguments: string }[] = [];
  for (const event of events) {
    if (event.type === 'content') content += event.text;
    else if (event.type === 'call') {
      expect(event.index).toBe(calls.length);
      calls.push({ name: event.name, arguments: '' });
    } else calls[event.index]!.arguments += event.text;
  }
  return { content, calls };
}

const args = fc.dictionary(
  fc.string({ minLength: 1, maxLength: 6 }),
  fc.oneof(fc.string(), fc.integer(), fc.boolean(), fc.constant(null), fc.array(fc.integer(), { maxLength: 3 })),
  { maxKeys: 4 },
);
const call = fc.record({ name: fc.constantFrom(...NAMES), args });

describe('tool-call formats', () => {
  it('detects the format from the chat template', () => {
    expect(detectToolCallFormat('{% if tools %}<tool_call>{% endif %}')).toBe('hermes');
    expect(detectToolCallFormat("{{ '[TOOL_CALLS]' }}")).toBe('mistral');
    expect(detectToolCallFormat('Environment: ipython')).toBe('llama3');
    expect(detectToolCallFormat('{{ messages }}')).toBeUndefined();
    expect(detectToolCallFormat(undefined)).toBeUndefined();
  });

  for (const format of TOOL_CALL_FORMATS) {
    it(`${format}: parsed and streamed calls agree, whatever the chunking`, () => {
      fc.assert(
        fc.property(
          fc.array(call, { minLength: 1, maxLength: 3 }),
          fc.boolean(),
          fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 5 }),
          (calls, pretty, sizes) => {
            const text = render(format, calls, pretty);
            const parsed = parseToolCalls(format, text, NAMES);
            expect(parsed.calls.map((c) => c.name)).toEqual(calls.map((c) => c.name));
            parsed.calls.forEach((c, i) => expect(JSON.parse(c.arguments)).toEqual(calls[i]!.args));
            expect(parsed.content).toBeNull();
            const live = streamed(format, text, sizes);
            expect(live.calls).toEqual(parsed.calls);
            expect(live.content.trim()).toBe('');
          },
        ),
      );
    });

    it(`${format}: text without calls is all content, streamed unchanged`, () => {
      fc.assert(
        fc.property(
          fc.string().filter((s) => !s.includes('<tool_call>') && !/^\s*[[{]/.test(s)),
          fc.array(fc.integer({ min: 1, max: 5 }), { minLength: 1, maxLength: 4 }),
          (text, sizes) => {
            expect(parseToolCalls(format, text, NAMES)).toEqual({ content: text, calls: [] });
            expect(streamed(format, text, sizes)).toEqual({ content: text, calls: [] });
          },
        ),
      );
    });
  }

  it('hermes: content before the calls is kept', () => {
    const text = 'Let me look that up.\n<tool_call>\n{"name": "search", "arguments": {"q": "x"}}\n</tool_call>';
    expect(parseToolCalls('hermes', text, NAMES)).toEqual({
      content: 'Let me look that up.',
      calls: [{ name: 'search', arguments: '{"q": "x"}' }],
    });
    const live = streamed('hermes', text, [3]);
    expect(live.content.trim()).toBe('Let me look that up.');
    expect(live.calls).toEqual([{ name: 'search', arguments: '{"q": "x"}' }]);
  });

  it('keeps the arguments as the model wrote them, and accepts arguments before the name', () => {
    const text = '<tool_call>\n{"arguments": {"a": 1,  "b": [2]}, "name": "add"}\n</tool_call>';
    expect(parseToolCalls('hermes', text, NAMES).calls).toEqual([{ name: 'add', arguments: '{"a": 1,  "b": [2]}' }]);
    expect(streamed('hermes', text, [1]).calls).toEqual([{ name: 'add', arguments: '{"a": 1,  "b": [2]}' }]);
  });

  it('malformed or unknown calls are content, never invented calls', () => {
    for (const text of [
      '<tool_call>\n{"name": "search", "arguments": {"q": }\n</tool_call>',
      '<tool_call>\n{"name": "delete_everything", "arguments": {}}\n</tool_call>',
      '<tool_call>\n{"arguments": {}}\n</tool_call>',
      '<tool_call>\n{"name": "search", "arguments": [1]}\n</tool_call>',
    ]) {
      expect(parseToolCalls('hermes', text, NAMES)).toEqual({ content: text, calls: [] });
    }
    expect(parseToolCalls('llama3', '{"answer": 42}', NAMES).calls).toEqual([]);
    expect(parseToolCalls('mistral', '[1, 2]', NAMES).calls).toEqual([]);
  });

  it('an unclosed last hermes block (EOS right after the JSON) still counts', () => {
    const text = '<tool_call>\n{"name": "search", "arguments": {"q": "y"}}\n';
    expect(parseToolCalls('hermes', text, NAMES).calls).toEqual([{ name: 'search', arguments: '{"q": "y"}' }]);
  });

  it('arguments written as a JSON string are passed on as that string, streamed or not', () => {
    fc.assert(
      fc.property(
        fc.constantFrom(...TOOL_CALL_FORMATS),
        fc.array(call, { minLength: 1, maxLength: 3 }),
        fc.array(fc.integer({ min: 1, max: 7 }), { minLength: 1, maxLength: 5 }),
        (format, calls, sizes) => {
          const text = render(
            format,
            calls.map((c) => ({ name: c.name, args: JSON.stringify(c.args) })),
            false,
          );
          const parsed = parseToolCalls(format, text, NAMES);
          expect(parsed.calls).toEqual(calls.map((c) => ({ name: c.name, arguments: JSON.stringify(c.args) })));
          expect(streamed(format, text, sizes).calls).toEqual(parsed.calls);
        },
      ),
    );
  });
});
