/**
 * The usage tap on a long stream: 2 000 SSE token events of 104 bytes, as a 2 000-token answer
 * streams from an engine, passed through `tapReader` and drained. Run with `deno task bench:micro`.
 *
 * @module
 */

import { tapReader } from "./usage_tap.ts";

const EVENT = new TextEncoder().encode(
  `data: {"id":"x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"content":"tok "}}]}\n\n`,
);

/** A body source of `n` copies of `EVENT`. */
function events(n: number) {
  let i = 0;
  return {
    read: () =>
      Promise.resolve(
        i++ < n
          ? { done: false as const, value: EVENT }
          : { done: true as const, value: undefined },
      ),
    cancel: () => Promise.resolve(),
  };
}

Deno.bench("tapReader: 2 000 SSE events", async () => {
  const reader = tapReader(events(2000), null, { now: () => 0, sse: true, onDone: () => {} })
    .getReader();
  while (!(await reader.read()).done) { /* drain */ }
});
