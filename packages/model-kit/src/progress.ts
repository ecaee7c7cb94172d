import type { WriteProgress } from './write-model-dir.js';

/** Where progress is drawn: a stream with `write`, and whether it is a terminal. */
export interface ProgressOutput {
  write(text: string): unknown;
  isTTY?: boolean;
}

const megabyte = 1024 * 1024;

/**
 * Turns {@link WriteProgress} events into human output: on a terminal, one bar per file redrawn in place
 * (`\r`); otherwise plain lines, one per file every 25% (so logs stay short).
 */
export function createProgressReporter(output: ProgressOutput): {
  report: (progress: WriteProgress) => void;
  finish: () => void;
} {
  let currentFile: string | undefined;
  let lastQuarter = -1;
  let lastDraw = 0;
  const endLine = () => {
    if (output.isTTY && currentFile !== undefined) output.write('\n');
  };
  return {
    report({ file, bytesWritten, totalBytes }) {
      if (file !== currentFile) {
        endLine();
        currentFile = file;
        lastQuarter = -1;
        lastDraw = 0;
      }
      const fraction = totalBytes === 0 ? 1 : bytesWritten / totalBytes;
      const sizes = `${(bytesWritten / megabyte).toFixed(1)}/${(totalBytes / megabyte).toFixed(1)} MB`;
      if (output.isTTY) {
        const now = Date.now();
        if (fraction < 1 && now - lastDraw < 100) return;
        lastDraw = now;
        const width = 30;
        const filled = Math.round(fraction * width);
        const bar = `${'#'.repeat(filled)}${'.'.repeat(width - filled)}`;
        output.write(`\r${file.padEnd(28)} [${bar}] ${(fraction * 100).toFixed(0).padStart(3)}% ${sizes}`);
      } else {
        const quarter = Math.floor(fraction * 4);
        if (quarter === lastQuarter) return;
        lastQuarter = quarter;
        output.write(`${file}: ${(fraction * 100).toFixed(0)}% (${sizes})\n`);
      }
    },
    finish: endLine,
  };
}
