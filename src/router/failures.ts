/**
 * Failed attempts, classified: what went wrong with one upstream try (for the breaker, the
 * failure counter and the retry decision), and how the client is answered when no retry follows.
 *
 * @module
 */

import { UpstreamTimeout, UpstreamUnreachable } from "../proxy/deadlines.ts";
import { isBadAnswer } from "../proxy/h1_client.ts";
import { H1ProtocolError } from "../proxy/h1_head.ts";
import { type ErrorKind, errorMessage } from "../util/errors.ts";
import type { RetryRule } from "./endpoints.ts";
import type { FailureKind } from "./fault_metrics.ts";

/** Abort reason of attempts cut short by `abortInflight` (shutdown deadline reached). */
export class RouterShutdown extends Error {
  constructor() {
    super("Router is shutting down");
    this.name = "RouterShutdown";
  }
}

/** A failed attempt, classified. */
export interface Failure {
  readonly kind: FailureKind;
  /** How the client is answered when no retry follows. */
  readonly error: ErrorKind;
  readonly message: string;
  /** OpenAI `code` of that answer; default: the kind in snake case (`idle_timeout`). */
  readonly code?: string;
}

/** Classifies a failed attempt from its deadline's abort reason and the error thrown. */
export function classify(reason: unknown, err: unknown, gotHeaders: boolean, id: string): Failure {
  if (reason instanceof UpstreamTimeout) {
    return { kind: reason.kind, error: "timeout", message: reason.message };
  }
  if (!gotHeaders && (outOfDescriptors(err) || outOfDescriptors(reason))) {
    return {
      kind: "fd-exhausted",
      error: "no_worker",
      message: `The router has no file descriptor left to reach worker ${id}: ${
        errorMessage(outOfDescriptors(err) ? err : reason)
      }`,
      code: "router_out_of_descriptors",
    };
  }
  if (reason instanceof UpstreamUnreachable) {
    return { kind: "connect-error", error: "upstream_failed", message: reason.message };
  }
  if (reason instanceof RouterShutdown) {
    return {
      kind: "stream-error",
      error: "no_worker",
      message: reason.message,
      code: "shutting_down",
    };
  }
  if (!gotHeaders && isBadAnswer(err)) {
    return {
      kind: "bad-response",
      error: "upstream_failed",
      message: `Worker ${id} sent a bad response head: ${errorMessage(err)}`,
    };
  }
  return gotHeaders
    ? {
      kind: "stream-error",
      error: "upstream_failed",
      message: `Worker ${id} failed before its first byte: ${errorMessage(err)}`,
    }
    : {
      kind: "connect-error",
      error: "upstream_failed",
      message: `Worker ${id} failed: ${errorMessage(err)}`,
    };
}

/**
 * Whether `err` (or an error in its `cause` chain) is EMFILE or ENFILE: the router's process or the
 * system ran out of file descriptors, so a dial failed through no fault of the worker. A protocol
 * error never counts: its message quotes the worker's own bytes, which may say "(os error 24)".
 */
export function outOfDescriptors(err: unknown): boolean {
  for (let e = err, depth = 0; e instanceof Error && depth < 4; e = e.cause, depth++) {
    if (e instanceof H1ProtocolError) return false;
    const code = (e as { code?: unknown }).code;
    if (code === "EMFILE" || code === "ENFILE") return true;
    if (/\(os error 2[34]\)/.test(e.message)) return true;
  }
  return false;
}

/** Classifies a body that broke after the response started. */
export function midStreamFailure(reason: unknown, err: unknown, id: string): Failure {
  if (reason instanceof UpstreamTimeout || reason instanceof RouterShutdown) {
    return classify(reason, err, true, id);
  }
  return {
    kind: "stream-error",
    error: "upstream_failed",
    message: `Worker ${id} failed mid-stream: ${errorMessage(err)}`,
  };
}

/** The failure of a worker that answered `status` (≥ 500) when a retry follows. */
export function statusFailure(id: string, status: number): Failure {
  return {
    kind: "status-5xx",
    error: "upstream_failed",
    message: `Worker ${id} answered ${status}`,
  };
}

/** OpenAI `code` of a failure's answer. */
export function codeOf(f: Failure): string {
  return f.code ?? f.kind.replaceAll("-", "_");
}

/**
 * Whether another worker may take over after `f`, under the endpoint's retry `rule`: connect
 * failures always (the worker cannot have started the request); under `before-first-byte` also a
 * status ≥ 500, a bad response head (`bad-response`: the worker read the request, so never under
 * `connect-only`), a body that broke before its first byte, and a timeout after the request was
 * sent (first byte, whole request) only when `retryTimeouts` (`router.retry_timeouts`) opts in, so
 * that a slow generation is not run twice by default.
 */
export function retryable(f: Failure, rule: RetryRule, retryTimeouts: boolean): boolean {
  if (f.kind === "fd-exhausted") return false; // another worker fares no better
  if (f.kind === "connect-error" || f.kind === "connect-timeout") return true;
  if (rule === "connect-only") return false;
  if (f.kind === "ttfb-timeout" || f.kind === "timeout") return retryTimeouts;
  return f.kind === "status-5xx" || f.kind === "stream-error" || f.kind === "bad-response";
}
