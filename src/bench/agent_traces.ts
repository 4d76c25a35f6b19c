/**
 * Agent-shaped sessions for generated traces: forked tool loops and agentic sessions with growing
 * tool outputs (the shapes issue 19 calls "unseen": no strategy was tuned on them).
 *
 * - `fork`: a parent agent forks `FORK_BRANCHES` (4) sub-agents that run side by side. Sessions
 *   `g × B … g × B + B − 1` are the branches of group `g`. The group's parent context is the
 *   system prompt, the tools, the task and three tool steps with 600–3000-byte results (about 12
 *   KB with the default system prompt). Branch 0 is the parent: its turn 0 is the parent context
 *   alone (the request whose answer forks), and it goes on as a branch. Branches 1…B−1 start
 *   `FORK_DELAY_MS` plus the think time after the group (`forkStartMs`: the parent's answer and
 *   the tool's run), within 20 ms of each other, each with the parent context plus its own first
 *   tool step. Every branch then adds one tool step (200–1500 bytes of result) a turn. So several
 *   requests for one long prefix arrive together: computed already on the parent's worker when
 *   the parent was fast, still pending there when it was not (recorded at pick time, not yet
 *   prefilled: vLLM issues 9643 and 29387 are about same-prefix requests arriving together); in
 *   an open-loop trace the branches may even arrive before the parent.
 * - `agentic`: one agent per session; turn 0 is the task, each later turn adds one tool call and
 *   its result, and the results grow by a factor of about 1.6 a turn from 512 bytes, capped at 16
 *   KiB (with 8 turns the last prompt is about 30 KB). Each turn's new, uncached part grows, so a
 *   worker that holds a session is worth more, and costs more to pile onto, every turn. A session
 *   ends early when its prompt would pass `AGENT_MAX_PROMPT_BYTES` (96 KiB, about 24 k tokens):
 *   an agent that runs out of context stops there (within a 32 k-token model length).
 *
 * Content comes from rngs derived from (seed, shape, group or session), so it does not depend on
 * how many sessions a trace has.
 *
 * @module
 */

import type { ChatMessage, ChatRequestBody, ToolDef } from "./types.ts";
import { deriveRng, TOOLS, toolStep, varied, wordText } from "./trace_text.ts";

/** Builds one request body from its messages (and the tools it offers). */
export type BodyOf = (messages: ChatMessage[], tools?: readonly ToolDef[]) => ChatRequestBody;

/** Bytes of the tools' JSON in every prompt. */
const TOOLS_BYTES = JSON.stringify(TOOLS).length;

/** Branches per fork group. */
export const FORK_BRANCHES = 4;

/** The parent context shared by every branch of fork group `g`. */
function forkParent(seed: number, sys: string, g: number): ChatMessage[] {
  const rng = deriveRng(seed, "fork", g);
  const parent: ChatMessage[] = [
    { role: "system", content: sys },
    { role: "user", content: wordText(rng, varied(rng, 150, 900)) },
  ];
  for (let s = 0; s < 3; s++) {
    parent.push(...toolStep(rng, `call_${g}_p${s}`, varied(rng, 600, 3000)));
  }
  return parent;
}

/** The `turns` requests of fork session `i` (branch `i mod B` of group `⌊i / B⌋`). */
export function forkSession(
  seed: number,
  sys: string,
  i: number,
  turns: number,
  bodyOf: BodyOf,
  branches = FORK_BRANCHES,
): ChatRequestBody[] {
  const g = Math.floor(i / branches);
  const b = i % branches;
  const hist = forkParent(seed, sys, g);
  const rng = deriveRng(seed, "fork", g, "branch", b);
  const out: ChatRequestBody[] = [];
  if (b === 0) out.push(bodyOf(hist, TOOLS));
  for (let k = out.length; k < turns; k++) {
    hist.push(...toolStep(rng, `call_${g}_${b}_${k}`));
    out.push(bodyOf(hist, TOOLS));
  }
  return out;
}

/** How long after its parent's first request a fork group's other branches start, ms. */
export const FORK_DELAY_MS = 2000;

/**
 * When fork session `i` starts, ms: the parent (branch 0) at its group's start, uniform in
 * [0, staggerMs]; the other branches `FORK_DELAY_MS + thinkMs` later, within 20 ms of each other.
 */
export function forkStartMs(
  seed: number,
  i: number,
  staggerMs: number,
  thinkMs: number,
  branches = FORK_BRANCHES,
): number {
  const g = Math.floor(i / branches);
  const b = i % branches;
  const group = staggerMs > 0 ? deriveRng(seed, "fork-start", g).int(staggerMs + 1) : 0;
  if (b === 0) return group;
  return group + FORK_DELAY_MS + thinkMs + deriveRng(seed, "fork-start", g, b).int(21);
}

/** Bytes of the first tool result of an agentic session, its growth a turn, and its cap. */
const AGENT_FIRST_RESULT = 512;
const AGENT_GROWTH = 1.6;
const AGENT_MAX_RESULT = 16384;
/** An agentic session ends before a turn whose prompt would be longer than this, bytes. */
export const AGENT_MAX_PROMPT_BYTES = 98304;

/** The `turns` requests of agentic session `i`; see the module comment. */
export function agenticSession(
  seed: number,
  sys: string,
  i: number,
  turns: number,
  bodyOf: BodyOf,
): ChatRequestBody[] {
  const rng = deriveRng(seed, "agentic", i);
  const hist: ChatMessage[] = [
    { role: "system", content: sys },
    { role: "user", content: wordText(rng, varied(rng, 150, 900)) },
  ];
  const out: ChatRequestBody[] = [bodyOf(hist, TOOLS)];
  let size = sys.length + (hist[1].content?.length ?? 0) + TOOLS_BYTES;
  for (let k = 1; k < turns; k++) {
    const grown = AGENT_FIRST_RESULT * Math.pow(AGENT_GROWTH, k - 1) * (0.75 + 0.5 * rng.next());
    const bytes = Math.min(AGENT_MAX_RESULT, Math.round(grown));
    const step = toolStep(rng, `call_${i}_${k}`, bytes);
    size += bytes + (step[0].tool_calls?.[0].function.arguments.length ?? 0);
    if (size > AGENT_MAX_PROMPT_BYTES) break;
    hist.push(...step);
    out.push(bodyOf(hist, TOOLS));
  }
  return out;
}
