/**
 * `@gen/structured` benchmarks: `pnpm --filter @gen/structured bench [-- --steps N]`.
 */
import { printMaskBench, runMaskBench } from './mask.js';

const at = process.argv.indexOf('--steps');
const steps = at >= 0 ? Number(process.argv[at + 1]) : 3000;
printMaskBench(runMaskBench(steps));
