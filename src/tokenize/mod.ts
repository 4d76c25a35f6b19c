/**
 * The tokenize layer: a chat or completion request body → the token ids the engine will compute,
 * for precise (KV-event) routing.
 *
 * ```ts
 * import { loadLocalTokenizer, EngineTokenizer, TokenizeError } from "./mod.ts";
 * const qwen = await loadLocalTokenizer({
 *   tokenizerJson: "/models/Qwen3-8B/tokenizer.json",
 *   tokenizerConfig: "/models/Qwen3-8B/tokenizer_config.json",
 * });
 * const { tokens } = await qwen.tokenize({ kind: "chat", body });     // Uint32Array
 * const remote = new EngineTokenizer({ url: "http://10.0.0.5:8000", model: "Qwen/Qwen3-8B" });
 * try {
 *   await remote.tokenize({ kind: "completion", body, signal });
 * } catch (err) {
 *   if (!(err instanceof TokenizeError)) throw err; // else: route approximately
 * }
 * ```
 *
 * A router config entry could read (paths are the model's Hugging Face files; the optional
 * settings mirror the engine's flags, so set them as the engine is started):
 *
 * ```yaml
 * tokenizers:
 *   - model: Qwen/Qwen3-8B
 *     tokenizer_json: /models/Qwen3-8B/tokenizer.json
 *     tokenizer_config: /models/Qwen3-8B/tokenizer_config.json
 *     chat_template: /models/Qwen3-8B/chat_template.jinja   # optional, vLLM --chat-template
 *     content_format: auto                # vLLM --chat-template-content-format
 *     chat_template_kwargs: {}            # vLLM --default-chat-template-kwargs
 *     cache_bytes: 33554432               # section cache budget; 0 turns reuse off
 *   - model: meta-llama/Llama-3.1-8B-Instruct
 *     engine: { timeout_ms: 2000, max_response_bytes: 8388608, max_in_flight: 64 }
 * ```
 *
 * @module
 */

export type {
  RequestKind,
  RequestTokenizer,
  TokenizeErrorReason,
  TokenizeRequest,
  TokenizeResult,
  TokenizerStats,
} from "./types.ts";
export { TokenizeError } from "./types.ts";
export {
  DEFAULT_CACHE_BYTES,
  DEFAULT_MAX_CHARS,
  loadLocalTokenizer,
  LocalTokenizer,
  specialTokenVariables,
} from "./local_tokenizer.ts";
export type { LocalTokenizerFiles, LocalTokenizerOptions } from "./local_tokenizer.ts";
export { EngineTokenizer } from "./engine_tokenizer.ts";
export type { EngineTokenizerOptions } from "./engine_tokenizer.ts";
export { ChatRenderer, detectContentFormat } from "./chat_render.ts";
export type { ChatFlags } from "./request_fields.ts";
export type { EncodeOutcome } from "./section_encoder.ts";
export type { ChatRendererOptions, ContentFormat } from "./chat_render.ts";
