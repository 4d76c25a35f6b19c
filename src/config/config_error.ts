/**
 * The one error the config loader throws: every problem found, each on its own line with its path
 * (or environment variable) and value, so an operator fixes them all in one go.
 *
 * @module
 */

/** Every problem found in a configuration, reported together. */
export class ConfigError extends Error {
  /** One line per problem: `<path> <what is wrong>, got <value>`. */
  readonly errors: string[];

  constructor(errors: string[], source?: string) {
    const where = source === undefined ? "" : ` in ${source}`;
    const count = errors.length === 1 ? "1 error" : `${errors.length} errors`;
    super(`Invalid configuration${where} (${count}):\n  - ${errors.join("\n  - ")}`);
    this.name = "ConfigError";
    this.errors = errors;
  }
}
