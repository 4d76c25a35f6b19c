/**
 * Responses API follow-ups: vLLM keeps a stored response in the memory of the instance that made
 * it, so a request with `previous_response_id` must go back to that worker. The router learns each
 * response's id from the answer as it passes, without buffering: the first `"id":"..."` within the
 * first {@link SCAN_BYTES} bytes of the body (a Response object starts with its id; a stream's first
 * event, `response.created`, carries the response, whose id comes before anything else with one).
 *
 * Memory: at most {@link MAX_IDS} ids of at most {@link MAX_ID_CHARS} characters, least recently
 * used first out (about 10 MB at the cap).
 *
 * @module
 */

/** Bytes of a body scanned for the response id. */
export const SCAN_BYTES = 4096;
/** Response ids remembered at most. */
export const MAX_IDS = 65_536;
/** Longest response id remembered. */
export const MAX_ID_CHARS = 128;

const ID_RE = /"id"\s*:\s*"([^"\\]{1,128})"/;
const decoder = new TextDecoder();

/** The first `"id":"..."` in `text`, or null. */
export function responseIdIn(text: string): string | null {
  const m = ID_RE.exec(text);
  return m === null ? null : m[1];
}

/** Scans body chunks for the response id until found or {@link SCAN_BYTES} were seen. */
export class ResponseIdScan {
  #text = "";
  #seen = 0;
  #done = false;

  /** Feeds a chunk; returns the id once found (then null for every later chunk). */
  push(chunk: Uint8Array): string | null {
    if (this.#done) return null;
    const take = chunk.subarray(0, SCAN_BYTES - this.#seen);
    this.#seen += take.length;
    this.#text += decoder.decode(take, { stream: true });
    const id = responseIdIn(this.#text);
    if (id !== null || this.#seen >= SCAN_BYTES) this.#done = true;
    return id;
  }
}

/** Response id → the value it pins to (a worker), least recently used first. */
export class ResponseOwners<T> {
  readonly #ids = new Map<string, T>();

  get size(): number {
    return this.#ids.size;
  }

  get(id: string): T | undefined {
    return this.#ids.get(id);
  }

  set(id: string, owner: T): void {
    if (id.length > MAX_ID_CHARS) return;
    this.#ids.delete(id);
    this.#ids.set(id, owner);
    if (this.#ids.size > MAX_IDS) this.#ids.delete(this.#ids.keys().next().value!);
  }

  /** Drops every id whose owner fails `keep`. */
  retain(keep: (owner: T) => boolean): void {
    for (const [id, v] of this.#ids) if (!keep(v)) this.#ids.delete(id);
  }
}
