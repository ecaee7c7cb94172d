/** Rewrites the field tables of docs/server.md from the route schemas (see src/schemas/docs.ts). */
import { readFileSync, writeFileSync } from 'node:fs';
import { FIELD_TABLES_BEGIN, FIELD_TABLES_END, fieldTables } from '../src/schemas/docs.js';

const path = new URL('../../../docs/server.md', import.meta.url);
const text = readFileSync(path, 'utf8');
const begin = text.indexOf(FIELD_TABLES_BEGIN);
const end = text.indexOf(FIELD_TABLES_END);
if (begin < 0 || end < begin)
  throw new Error(`docs/server.md lacks the markers ${FIELD_TABLES_BEGIN} ... ${FIELD_TABLES_END}`);
writeFileSync(path, `${text.slice(0, begin + FIELD_TABLES_BEGIN.length)}\n\n${fieldTables()}\n\n${text.slice(end)}`);
