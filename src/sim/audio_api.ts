/**
 * `POST /v1/audio/transcriptions` and `POST /v1/audio/translations` of the sim worker: a
 * multipart/form-data upload (`file`, `model`, optional `response_format`), answered in OpenAI's
 * (and vLLM's) shape `{text}`, or the bare text with `response_format: "text"`.
 *
 * The engine is not involved: vLLM serves these with an encoder-decoder model (Whisper) whose
 * prompt is audio, which has nothing to share with the text prefix cache. The request takes the
 * API server's turn only. The text is fixed by the kind, the file's name and its size, so a test
 * can tell workers and uploads apart.
 *
 * Errors: a body that is not multipart/form-data, or one without a `file`, is a 400; a body over
 * 25 MiB (OpenAI's limit) is a 413; an unknown model is vLLM's 404.
 *
 * @module
 */

import { errorResponse } from "../util/errors.ts";
import { frontendTurn, gate, json, readBytes, type WorkerCore } from "./generation.ts";

/** Largest upload accepted, as OpenAI's audio endpoints. */
export const MAX_AUDIO_BYTES = 25 * 1024 * 1024;

/** Handles a transcription or a translation. */
export async function audioRequest(
  core: WorkerCore,
  req: Request,
  kind: "transcription" | "translation",
): Promise<Response> {
  const type = req.headers.get("content-type") ?? "";
  if (!/^multipart\/form-data\s*;/i.test(type)) {
    await req.body?.cancel().catch(() => {});
    return errorResponse(
      "bad_request",
      `expected a multipart/form-data body, got ${type || "none"}`,
    );
  }
  const bytes = await readBytes(req, MAX_AUDIO_BYTES);
  if (bytes instanceof Response) return bytes;
  let form: FormData;
  try {
    form = await new Response(bytes, { headers: { "content-type": type } }).formData();
  } catch (err) {
    return errorResponse("bad_request", `malformed multipart body: ${err}`);
  }
  const file = form.get("file");
  if (!(file instanceof File)) {
    return errorResponse("bad_request", "the form has no file field", { param: "file" });
  }
  const model = form.get("model");
  const g = await gate(core, { model: typeof model === "string" ? model : undefined });
  if (g instanceof Response) return g;
  try {
    await frontendTurn(core, 1);
  } catch {
    return errorResponse("no_worker", "sim worker is shutting down");
  }
  const name = file.name === "" || file.name === "blob" ? "audio" : file.name;
  const text = `Simulated ${kind} of ${name} (${file.size} bytes).`;
  if (form.get("response_format") === "text") {
    return new Response(text, { headers: { "content-type": "text/plain; charset=utf-8" } });
  }
  return json({ text });
}
