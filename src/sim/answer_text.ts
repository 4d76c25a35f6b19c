/**
 * The simulated engine's answer text: generated token `i` is four ASCII bytes from a fixed cycle,
 * so answers are stable and a next turn that carries the answer in its history reuses its blocks.
 *
 * @module
 */

/** The text of generated token `i`: four ASCII bytes from a fixed cycle, so answers are stable. */
const ANSWER_CYCLE = "The simulated engine writes this same calm answer. ";
const ANSWER_CYCLE_TEXT = ANSWER_CYCLE.repeat(4); // 204 chars = 51 tokens of 4 bytes

/** The text of generated token `i` (exactly `bytesPerToken` ASCII characters). */
export function tokenText(i: number, bytesPerToken = 4): string {
  const start = (i * bytesPerToken) % (ANSWER_CYCLE_TEXT.length - bytesPerToken);
  return ANSWER_CYCLE_TEXT.slice(start, start + bytesPerToken);
}

/** The whole answer of `n` tokens, as a client would receive it. */
export function answerText(n: number, bytesPerToken = 4): string {
  let s = "";
  for (let i = 0; i < n; i++) s += tokenText(i, bytesPerToken);
  return s;
}
