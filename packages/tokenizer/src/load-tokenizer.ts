import { readdir, readFile, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { TokenizerError } from './errors.js';
import { readGgufTokenizerFiles } from './gguf.js';
import { HfTokenizer, type ParsedTokenizerFiles } from './hf-tokenizer.js';
import type { Tokenizer, TokenizerFiles, TokenizerSource } from './types.js';

function parseJsonObject(value: string | Record<string, unknown>, source: string): Record<string, unknown> {
  let parsed: unknown = value;
  if (typeof value === 'string') {
    try {
      parsed = JSON.parse(value);
    } catch (error) {
      throw new TokenizerError(`${source} is not valid JSON: ${(error as Error).message}`, { cause: error });
    }
  }
  if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) {
    throw new TokenizerError(`${source} must hold a JSON object`);
  }
  return parsed as Record<string, unknown>;
}

async function readOptional(path: string): Promise<string | undefined> {
  try {
    return await readFile(path, 'utf8');
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new TokenizerError(`Cannot read ${path}: ${(error as Error).message}`, { cause: error });
  }
}

/** The one `.gguf` file of a directory without tokenizer.json, if it has exactly one. */
async function ggufIn(dir: string): Promise<string | undefined> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch {
    return undefined;
  }
  const ggufs = names.filter((name) => name.toLowerCase().endsWith('.gguf')).sort();
  if (ggufs.length > 1) {
    throw new TokenizerError(
      `${dir} has no tokenizer.json and several GGUF files (${ggufs.join(', ')}): pass the path of one of them`,
    );
  }
  return ggufs.length === 1 ? join(dir, ggufs[0]!) : undefined;
}

async function readModelDir(dir: string): Promise<ParsedTokenizerFiles> {
  const tokenizerPath = join(dir, 'tokenizer.json');
  const configPath = join(dir, 'tokenizer_config.json');
  const generationPath = join(dir, 'generation_config.json');
  const [tokenizerText, configText, generationText, jinjaText, chatTemplateJsonText] = await Promise.all([
    readOptional(tokenizerPath),
    readOptional(configPath),
    readOptional(generationPath),
    readOptional(join(dir, 'chat_template.jinja')),
    readOptional(join(dir, 'chat_template.json')),
  ]);
  if (tokenizerText === undefined) {
    const gguf = await ggufIn(dir);
    if (gguf !== undefined) return fromFiles(await readGgufTokenizerFiles(gguf));
    throw new TokenizerError(
      `${tokenizerPath} does not exist: @gen/tokenizer needs the fast-tokenizer file tokenizer.json ` +
        `(models that ship only a SentencePiece tokenizer.model or vocab.json + merges.txt must be converted first)`,
    );
  }
  let chatTemplate = jinjaText;
  if (chatTemplate === undefined && chatTemplateJsonText !== undefined) {
    const template = parseJsonObject(chatTemplateJsonText, join(dir, 'chat_template.json'))['chat_template'];
    if (typeof template === 'string') chatTemplate = template;
  }
  return {
    tokenizerJson: parseJsonObject(tokenizerText, tokenizerPath),
    tokenizerConfig: configText === undefined ? undefined : parseJsonObject(configText, configPath),
    generationConfig: generationText === undefined ? undefined : parseJsonObject(generationText, generationPath),
    chatTemplate,
    sources: {
      tokenizerJson: tokenizerPath,
      tokenizerConfig: configPath,
      chatTemplate:
        configText === undefined
          ? `${configPath} does not exist and neither does chat_template.jinja`
          : `${configPath} has no "chat_template" and ${dir} has no chat_template.jinja`,
    },
  };
}

function fromFiles(files: TokenizerFiles): ParsedTokenizerFiles {
  const source = files.source ?? 'the given tokenizer files';
  const optional = (value: string | Record<string, unknown> | null | undefined, name: string) =>
    value === undefined || value === null ? undefined : parseJsonObject(value, `${name} (${source})`);
  const tokenizerConfig = optional(files.tokenizerConfig, 'tokenizer_config.json');
  return {
    tokenizerJson: parseJsonObject(files.tokenizerJson, `tokenizer.json (${source})`),
    tokenizerConfig,
    generationConfig: optional(files.generationConfig, 'generation_config.json'),
    chatTemplate: files.chatTemplate ?? undefined,
    sources: {
      tokenizerJson: `tokenizer.json (${source})`,
      tokenizerConfig: `tokenizer_config.json (${source})`,
      chatTemplate:
        tokenizerConfig === undefined
          ? `no tokenizer_config.json and no chat template were given (${source})`
          : `tokenizer_config.json has no "chat_template" (${source})`,
    },
  };
}

/**
 * Loads a Hugging Face tokenizer.
 *
 * From a model directory it reads `tokenizer.json` (required), `tokenizer_config.json`, `generation_config.json`
 * (for its eos ids) and, when the config has no `chat_template`, `chat_template.jinja` or `chat_template.json`.
 * A GGUF file (its path, or a directory holding one GGUF file and no tokenizer.json) works too: the tokenizer and chat
 * template come from its `tokenizer.ggml.*` metadata ({@link tokenizerFilesFromGguf}). Alternatively pass the files'
 * contents ({@link TokenizerFiles}).
 *
 * @example
 * ```ts
 * const tokenizer = await loadTokenizer('/models/Llama-3.2-1B-Instruct');
 * const prompt = tokenizer.applyChatTemplate([{ role: 'user', content: 'Hi!' }], { addGenerationPrompt: true });
 * const ids = tokenizer.encode(prompt, { addSpecialTokens: false });
 * ```
 * @throws {TokenizerError} when `tokenizer.json` is missing, a file is not JSON, or the tokenizer cannot be built.
 */
export async function loadTokenizer(source: TokenizerSource): Promise<Tokenizer> {
  let files: ParsedTokenizerFiles;
  if (typeof source !== 'string') files = fromFiles(source);
  else if (await isFile(source)) files = fromFiles(await readGgufTokenizerFiles(source));
  else files = await readModelDir(source);
  return new HfTokenizer(files);
}

async function isFile(path: string): Promise<boolean> {
  try {
    return (await stat(path)).isFile();
  } catch {
    return false;
  }
}
