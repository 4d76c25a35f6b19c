/**
 * Test support for the config tests: the smallest valid config text and a helper that collects a
 * `ConfigError`'s messages.
 *
 * @module
 */

import assert from "node:assert/strict";
import { ConfigError } from "./config_error.ts";

/** A config with one static worker and every other setting at its default. */
export const ONE_WORKER = "workers:\n  - id: a\n    url: http://127.0.0.1:8001\n";

/** The errors `fn` throws as a ConfigError; fails when it throws anything else or nothing. */
export function errorsOf(fn: () => unknown, what = ""): string[] {
  try {
    fn();
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${err}`);
    return err.errors;
  }
  assert.fail(`expected a ConfigError, nothing was thrown${what === "" ? "" : ` (${what})`}`);
}
