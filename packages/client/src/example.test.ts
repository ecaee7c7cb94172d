import { describe, expect, it } from 'vitest';
import { main } from '../examples/quickstart.js';
import { startFakeTgiServer } from '../test/fake-tgi-server.js';

describe('examples/quickstart.ts', () => {
  it('runs against the fake TGI server', async () => {
    const fake = await startFakeTgiServer();
    const lines: string[] = [];
    try {
      await main(fake.url, (line) => lines.push(line));
    } finally {
      await fake.close();
    }
    expect(lines).toEqual([
      'model: fake/tiny-llama (max total tokens: 2048)',
      'healthy: true',
      'generate: " Rayleigh scattering — 日本語 👍."',
      '  finish reason: eos_token, tokens: 9',
      '  stream finished: eos_token',
      'stream: " Rayleigh scattering — 日本語 👍."',
      expect.stringMatching(/^tokens: 1 \d+ \d+$/),
      'validation: `temperature` must be strictly positive',
      'ValidationError (HTTP 422): `stop` supports up to 4 stop sequences. Given: 5',
    ]);
  });
});
