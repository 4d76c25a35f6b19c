/**
 * Logger with a level filter and two formats: `json` (one object a line, for log shippers) and
 * `text` (`level msg key=value ...`, for people). The access log is one line per request at `info`.
 *
 * @module
 */

import type { LogLevel } from "../config/types.ts";

const RANK: Record<LogLevel, number> = { debug: 10, info: 20, warn: 30, error: 40 };

/** Where lines go; stdout by default. */
export type LogSink = (line: string) => void;

/** A structured logger. */
export class Logger {
  readonly #min: number;

  constructor(
    readonly level: LogLevel = "info",
    readonly format: "text" | "json" = "json",
    readonly sink: LogSink = (line) => console.log(line),
  ) {
    this.#min = RANK[level];
  }

  /** Whether `level` is written. */
  enabled(level: LogLevel): boolean {
    return RANK[level] >= this.#min;
  }

  debug(msg: string, fields: Record<string, unknown> = {}): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields: Record<string, unknown> = {}): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields: Record<string, unknown> = {}): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields: Record<string, unknown> = {}): void {
    this.log("error", msg, fields);
  }

  /** Writes one line at `level`. */
  log(level: LogLevel, msg: string, fields: Record<string, unknown>): void {
    if (RANK[level] < this.#min) return;
    const time = new Date().toISOString();
    if (this.format === "json") {
      this.sink(JSON.stringify({ time, level, msg, ...fields }));
      return;
    }
    let line = `${time} ${level.toUpperCase()} ${msg}`;
    for (const [k, v] of Object.entries(fields)) {
      if (v === undefined) continue;
      const s = typeof v === "string" ? v : JSON.stringify(v);
      line += ` ${k}=${/[\s"=]/.test(s) ? JSON.stringify(s) : s}`;
    }
    this.sink(line);
  }
}

/** A logger that writes nothing (tests, benchmarks). */
export const silentLogger = new Logger("error", "json", () => {});
