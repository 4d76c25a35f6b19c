/**
 * The simulated engine: a vLLM V1-like engine model with a prefix-cached KV store
 * ({@linkcode EngineModel}), its profiles, the OpenAI-compatible sim worker
 * ({@linkcode startSimWorker}) and the offline simulator ({@linkcode simulate}).
 *
 * @module
 */

export type * from "./types.ts";
export { answerText, EngineError, EngineModel, tokenText } from "./engine.ts";
export type { EngineOptions, EngineRequest, EngineStats } from "./engine.ts";
export {
  ANSWER_LENGTH_FORMS,
  DEFAULT_ANSWER_LENGTH,
  drawAnswerLength,
  formatAnswerLength,
  parseAnswerLength,
} from "./answer_length.ts";
export type { AnswerLengthModel } from "./answer_length.ts";
export { ApiFrontend } from "./frontend.ts";
export { getProfile, PROFILE_NAMES, profileFigures, PROFILES } from "./profiles.ts";
export type { EngineProfile, ProfileFigures } from "./profiles.ts";
export { startSimWorker } from "./server.ts";
export type { LoraModule, SimKvEventsOptions, SimWorker, SimWorkerOptions } from "./server.ts";
export { ModelRegistry } from "./models.ts";
export { loadSimTokenizer, pseudoTokenizer } from "./sim_tokenizer.ts";
export type { PromptTokens, SimTokenizer } from "./sim_tokenizer.ts";
export { pseudoText, pseudoTokenIds } from "./token_ids.ts";
export type { PromptRef } from "./engine.ts";
export { parseTrace, quantile, simulate, summarize } from "./offline.ts";
export type { RunSummary, SimulateOptions, SimulateResult } from "./offline.ts";
export { chatPromptText, GENERATION_PROMPT } from "./chat_template.ts";
