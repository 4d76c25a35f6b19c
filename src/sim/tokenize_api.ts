/**
 * vLLM's `POST /tokenize` and `POST /detokenize` on the sim worker.
 *
 * Rules (vLLM): `/tokenize` takes a chat body (`messages`, with `add_generation_prompt` default
 * true, `continue_final_message`, `tools`) or a completion body (`prompt`), and answers `{count,
 * max_model_len, tokens, token_strs}` (`token_strs` only with `return_token_strs: true`, else
 * null). The ids are the ones the engine computes and caches for the same body sent to the chat or
 * completion endpoint, and so the ones its KV events announce. `/detokenize` takes `{tokens}` and
 * answers `{prompt}`. An unknown model is vLLM's 404.
 *
 * @module
 */

import { errorResponse } from "../util/errors.ts";
import { errorFor, json, readJson, type WorkerCore } from "./generation.ts";

/** Handles `POST /tokenize`. */
export async function tokenizeRequest(core: WorkerCore, req: Request): Promise<Response> {
  const body = await readJson(core, req);
  if (body instanceof Response) return body;
  const model = core.models.resolve(body.model);
  if (model instanceof Response) return model;
  let tokens: Uint32Array;
  try {
    if (body.messages !== undefined) tokens = core.tokenizer.chat(body).tokens;
    else if (body.prompt !== undefined) tokens = core.tokenizer.completion(body).tokens;
    else return errorResponse("bad_request", "give messages (chat) or prompt (completion)");
  } catch (err) {
    return errorFor(core, err);
  }
  const ids = Array.from(tokens);
  let strs: string[] | null = null;
  if (body.return_token_strs === true) {
    strs = [];
    for (const id of ids) strs.push(await core.tokenizer.decode([id]));
  }
  return json({
    count: ids.length,
    max_model_len: core.engine.params.maxModelLen,
    tokens: ids,
    token_strs: strs,
  });
}

/** Handles `POST /detokenize`. */
export async function detokenizeRequest(core: WorkerCore, req: Request): Promise<Response> {
  const body = await readJson(core, req);
  if (body instanceof Response) return body;
  const model = core.models.resolve(body.model);
  if (model instanceof Response) return model;
  const t = body.tokens;
  if (!Array.isArray(t) || !t.every((x) => Number.isInteger(x) && x >= 0 && x <= 0xffffffff)) {
    return errorResponse("bad_request", "tokens must be a list of token ids", { param: "tokens" });
  }
  try {
    return json({ prompt: await core.tokenizer.decode(t as number[]) });
  } catch (err) {
    return errorResponse("bad_request", `cannot decode the tokens: ${err}`, { param: "tokens" });
  }
}
