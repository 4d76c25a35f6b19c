/**
 * Errors in the exact shape vLLM's OpenAI server sends them, for the cases a router must tell
 * apart (vLLM's `create_error_response`): `{"error": {"message", "type", "param", "code"}}` with
 * `code` the HTTP status as an integer and `type` vLLM's class name (`NotFoundError`,
 * `InvalidUserInput`, `BadRequestError`) or OpenAI's `invalid_request_error`. Anthropic's endpoint
 * answers in Anthropic's shape `{"type": "error", "error": {"type", "message"}}`.
 *
 * @module
 */

/** A vLLM-shaped error response. */
export function vllmError(
  status: number,
  type: string,
  message: string,
  param: string | null = null,
): Response {
  return new Response(JSON.stringify({ error: { message, type, param, code: status } }), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** vLLM's answer to a request for a model it does not serve. */
export function modelNotFound(model: string): Response {
  return vllmError(404, "NotFoundError", `The model \`${model}\` does not exist.`, "model");
}

/** Anthropic's error types by status. */
const ANTHROPIC_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  404: "not_found_error",
  413: "request_too_large",
  500: "api_error",
  503: "overloaded_error",
};

/** An Anthropic-shaped error response. */
export function anthropicError(status: number, message: string): Response {
  const type = ANTHROPIC_TYPES[status] ?? "api_error";
  return new Response(JSON.stringify({ type: "error", error: { type, message } }), {
    status,
    headers: { "content-type": "application/json" },
  });
}

/** An error response's status and message (to re-shape it for another API). */
export async function errorParts(res: Response): Promise<{ status: number; message: string }> {
  try {
    const j = await res.json();
    const message = typeof j?.error?.message === "string" ? j.error.message : res.statusText;
    return { status: res.status, message };
  } catch {
    return { status: res.status, message: res.statusText };
  }
}
