/**
 * The trace file format: one JSON object a line, `{session_id, pattern, body}` plus its timing and,
 * optionally, `output_tokens`.
 *
 * Timing rule: a trace is closed loop or open loop, never both.
 * - Closed loop: every line has `delay_ms`, the think time after the previous request of its
 *   session completed (the first: after the run started).
 * - Open loop: every line has `arrival_ms`, when the request is sent, ms from the start of the run,
 *   whatever happened to the others (production traces such as Mooncake's are written this way).
 * A line with both, a line with neither, or lines of both kinds in one file are errors that name
 * the lines: reading one kind as the other would silently change the workload.
 *
 * `output_tokens`, when present, is the answer's length in tokens (a positive integer); the
 * offline simulator makes the engine answer with exactly that many tokens (capped at max_tokens).
 *
 * Cost: one `JSON.parse` per line.
 *
 * @module
 */

/** How a trace times its requests. */
export type TraceTiming = "closed" | "open";

/** What the parser checks of one line, whatever its body type. */
export interface TimedLine {
  readonly session_id: string;
  readonly delay_ms?: number;
  readonly arrival_ms?: number;
  readonly output_tokens?: number;
  readonly body: unknown;
}

/** Keeps the first line's timing and checks every later line against it. */
export class TimingCheck {
  #timing: TraceTiming | null = null;
  #firstLine = 0;

  /** The timing every line checked so far has; null before the first. */
  get timing(): TraceTiming | null {
    return this.#timing;
  }

  /** Checks the timing fields of parsed line `v` (1-based `line`); throws naming the lines. */
  check(v: Record<string, unknown>, line: number): TraceTiming {
    const where = `trace line ${line}`;
    const hasDelay = v.delay_ms !== undefined;
    const hasArrival = v.arrival_ms !== undefined;
    if (hasDelay && hasArrival) {
      throw new SyntaxError(
        `${where} has both delay_ms (closed loop) and arrival_ms (open loop); give one of them`,
      );
    }
    if (!hasDelay && !hasArrival) {
      throw new SyntaxError(
        `${where} has neither delay_ms (closed loop: think time after the previous turn) nor ` +
          `arrival_ms (open loop: send time from the start)`,
      );
    }
    const key = hasDelay ? "delay_ms" : "arrival_ms";
    const value = v[key];
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      throw new SyntaxError(`${where}: ${key} must be a number ≥ 0, got ${JSON.stringify(value)}`);
    }
    const timing: TraceTiming = hasDelay ? "closed" : "open";
    if (this.#timing === null) {
      this.#timing = timing;
      this.#firstLine = line;
    } else if (this.#timing !== timing) {
      const name = (t: TraceTiming) =>
        t === "closed" ? "delay_ms (closed loop)" : "arrival_ms (open loop)";
      throw new SyntaxError(
        `${where} has ${name(timing)} but line ${this.#firstLine} has ${name(this.#timing)}: ` +
          `a trace uses one of them on every line`,
      );
    }
    return timing;
  }
}

/**
 * Parses JSONL (blank lines skipped) into checked lines: `session_id` a string, `body` an object,
 * one timing for the whole trace, `output_tokens` a positive integer when present. Errors name
 * the line. Other fields are kept as they are.
 */
export function parseTraceLines(text: string): { lines: TimedLine[]; timing: TraceTiming } {
  const out: TimedLine[] = [];
  const timing = new TimingCheck();
  const lines = text.split("\n");
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i].trim();
    if (line === "") continue;
    const where = `trace line ${i + 1}`;
    let v: unknown;
    try {
      v = JSON.parse(line);
    } catch (err) {
      throw new SyntaxError(`${where} is not JSON: ${(err as Error).message}`);
    }
    if (v === null || typeof v !== "object" || Array.isArray(v)) {
      throw new SyntaxError(`${where} must be a JSON object`);
    }
    const o = v as Record<string, unknown>;
    if (typeof o.session_id !== "string") {
      throw new SyntaxError(`${where}: session_id must be a string`);
    }
    if (o.body === null || typeof o.body !== "object" || Array.isArray(o.body)) {
      throw new SyntaxError(`${where}: body must be an object`);
    }
    timing.check(o, i + 1);
    const ot = o.output_tokens;
    if (ot !== undefined && !(Number.isSafeInteger(ot) && (ot as number) >= 1)) {
      throw new SyntaxError(
        `${where}: output_tokens must be a positive integer, got ${JSON.stringify(ot)}`,
      );
    }
    out.push(o as unknown as TimedLine);
  }
  return { lines: out, timing: timing.timing ?? "closed" };
}
