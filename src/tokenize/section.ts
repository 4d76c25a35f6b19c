/**
 * The `tokenizers:` section of the router config: per model, the files of its tokenizer, for
 * precise mode (`router.index: precise`), which needs each request's tokens exactly as the engine
 * computes them. A model without an entry is tokenized by one of its workers (`POST /tokenize`).
 *
 * ```yaml
 * tokenizers:
 *   - model: Qwen/Qwen3-8B                    # the served name (after aliases)
 *     tokenizer_json: /models/qwen3/tokenizer.json
 *     tokenizer_config: /models/qwen3/tokenizer_config.json
 *     chat_template: null                      # a file; the engine's --chat-template, if any
 *     cache_bytes: 32MiB                       # tokenizer prefix cache (follow-up turns)
 * ```
 *
 * Relative paths are taken from the config file's directory. Messages follow the loader's form.
 *
 * @module
 */

import { parseByteSize } from "../config/duration.ts";
import { type JsonSchema, objectSchema, orNull } from "../config/json_schema.ts";
import { mapping, show, unknownKeys } from "../config/validate.ts";

/** One model's tokenizer files. */
export interface TokenizerSpec {
  readonly model: string;
  readonly tokenizerJson: string;
  readonly tokenizerConfig: string;
  readonly chatTemplate: string | null;
  /** Byte budget of the tokenizer's prefix cache. */
  readonly cacheBytes: number;
}

const KEYS = ["model", "tokenizer_json", "tokenizer_config", "chat_template", "cache_bytes"];
const DEFAULT_CACHE_BYTES = 32 * 1024 * 1024;

/** The section as JSON Schema, for `config/router.schema.json`. */
export const TOKENIZERS_SCHEMA: JsonSchema = {
  type: ["array", "null"],
  description: "precise mode: per model, its tokenizer files (else the worker's /tokenize).",
  items: objectSchema(
    {
      model: { type: "string", minLength: 1, description: "The served model name." },
      tokenizer_json: { type: "string", minLength: 1, description: "Path of tokenizer.json." },
      tokenizer_config: {
        type: "string",
        minLength: 1,
        description: "Path of tokenizer_config.json.",
      },
      chat_template: {
        ...orNull({ type: "string", minLength: 1 }),
        default: null,
        description: "A Jinja chat template file replacing the config's (the engine's " +
          "--chat-template), or null.",
      },
      cache_bytes: {
        type: ["string", "integer"],
        default: "32MiB",
        description: "Byte budget of the tokenizer's prefix cache.",
      },
    },
    { required: ["model", "tokenizer_json", "tokenizer_config"] },
    false,
  ),
};

/** Resolves `tokenizers:`; relative paths against `baseDir` (the config file's directory). */
export function resolveTokenizersConfig(
  raw: unknown,
  baseDir: string | null,
  path = "tokenizers",
): { value: TokenizerSpec[]; errors: string[] } {
  const errors: string[] = [];
  if (raw === undefined || raw === null) return { value: [], errors };
  if (!Array.isArray(raw)) {
    errors.push(`${path} must be a list of tokenizer entries, got ${show(raw)}`);
    return { value: [], errors };
  }
  const out: TokenizerSpec[] = [];
  const seen = new Set<string>();
  raw.forEach((item, i) => {
    const at = `${path}[${i}]`;
    const m = mapping(item, at, errors);
    if (m === null) return;
    unknownKeys(m, KEYS, at, errors);
    const text = (key: string, nullable = false): string | null => {
      const v = m[key];
      if (nullable && (v === undefined || v === null)) return null;
      if (typeof v === "string" && v.trim() !== "") return v;
      errors.push(
        `${at}.${key} must be a non-empty string${nullable ? " or null" : ""}, got ${show(v)}`,
      );
      return null;
    };
    const file = (key: string, nullable = false): string | null => {
      const v = text(key, nullable);
      return v === null || v.startsWith("/") || baseDir === null ? v : `${baseDir}/${v}`;
    };
    const model = text("model");
    const tokenizerJson = file("tokenizer_json");
    const tokenizerConfig = file("tokenizer_config");
    const chatTemplate = file("chat_template", true);
    let cacheBytes = DEFAULT_CACHE_BYTES;
    if (m.cache_bytes !== undefined) {
      try {
        cacheBytes = parseByteSize(m.cache_bytes as string | number);
      } catch {
        errors.push(`${at}.cache_bytes must be a size such as "32MiB", got ${show(m.cache_bytes)}`);
      }
    }
    if (model !== null && seen.has(model)) {
      errors.push(`${at}.model must be unique, got ${show(model)}`);
    }
    if (model !== null) seen.add(model);
    if (model !== null && tokenizerJson !== null && tokenizerConfig !== null) {
      out.push({ model, tokenizerJson, tokenizerConfig, chatTemplate, cacheBytes });
    }
  });
  return { value: out, errors };
}
