/** Version of llm-cache-router, printed by `--version` and exported on /metrics. */
export const VERSION = "0.1.0";
