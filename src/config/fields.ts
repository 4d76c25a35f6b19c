/**
 * The field tables: every key of the scalar sections (server, router, health, logging, metrics,
 * auth) and of a `workers[]` entry, one row each. The loader (`resolve.ts`), the environment
 * overrides (`env.ts`), `configFromWorkers` and the JSON Schema (`schema.ts`) all read these rows,
 * so a key added here is loaded, checked, overridable from the environment, documented in the
 * schema and listed in `ENV_OVERRIDES` at once.
 *
 * To add a key: one `f(...)` row in its section's table below (YAML key, resolved field, check,
 * default in YAML form, description), the field in `types.ts`' `RouterConfig`, and the key with
 * its default and comment in `config/router.yaml`; then regenerate the schema
 * (`deno run src/config/schema.ts > config/router.schema.json`). A new section: a new entry in
 * `SECTIONS` and `SectionName`. The `sync`, `discovery` and `flow` sections are checked by their
 * own modules; `discovery.worker` uses the `WORKER` table here (every key but `id` and `url`).
 *
 * @module
 */

import {
  apiKey,
  apiKeyList,
  bool,
  byteSize,
  type Check,
  duration,
  envKeys,
  filePath,
  flowMapping,
  headerMap,
  headerName,
  healthPath,
  int,
  kvEndpoint,
  listenAddr,
  modelAliases,
  modelList,
  nonEmpty,
  nullable,
  oneOf,
  optionalUrl,
  pathList,
  ratio,
  seed,
  strategy,
  strategyOptions,
  stringMap,
  topic,
  workerId,
  workerUrl,
} from "./checks.ts";

/** Default `workers[].kv_budget`: prefix index chunks per worker (about 1 M tokens at 32 bytes). */
export const DEFAULT_KV_BUDGET = 131_072;

/** Marks a key with no default. */
export const REQUIRED = Symbol("required");

/** One key of a section or of a `workers[]` entry. */
export interface Field {
  /** YAML key (snake_case). */
  readonly key: string;
  /** Resolved field (camelCase). */
  readonly field: string;
  readonly check: Check;
  /** Default in YAML form, checked like a user value; `REQUIRED`: none. */
  readonly def: unknown;
  /** What the key does, as `config/router.yaml` comments it (the schema's `description`). */
  readonly doc: string;
  /** Reads the key's environment variable; absent: the value is read as a YAML scalar. */
  readonly fromEnv?: (text: string) => unknown;
}

const f = (
  key: string,
  field: string,
  check: Check,
  def: unknown,
  doc: string,
  fromEnv?: (text: string) => unknown,
): Field => ({ key, field, check, def, doc, fromEnv });

/** The scalar sections, by their YAML name. */
export type SectionName =
  | "server"
  | "router"
  | "health"
  | "logging"
  | "metrics"
  | "auth"
  | "tracing";

/** Scalar sections, in the order errors are reported. */
export const SECTIONS: Readonly<Record<SectionName, readonly Field[]>> = {
  server: [
    f(
      "addr",
      "addr",
      listenAddr,
      ":8080",
      `Listen address "host:port"; an empty host means all interfaces.`,
    ),
    f(
      "read_timeout",
      "readTimeoutMs",
      duration(true),
      "30s",
      "Time allowed to read a request body.",
    ),
    f(
      "shutdown_timeout",
      "shutdownTimeoutMs",
      duration(false),
      "10s",
      "On SIGTERM, time in-flight streams get to finish.",
    ),
    f(
      "max_body_bytes",
      "maxBodyBytes",
      byteSize(1),
      "8MiB",
      `Largest request body accepted (413 above it). Bytes, or "512KiB", "8MiB", "1MB", ...`,
    ),
    f(
      "max_header_bytes",
      "maxHeaderBytes",
      byteSize(1),
      "16KiB",
      "Largest request header block accepted on /v1/* (400 above it). Engines behind uvicorn " +
        "refuse header blocks over 16KiB; a larger one would reach them and count against " +
        "their breaker.",
    ),
    f(
      "max_json_depth",
      "maxJsonDepth",
      int(1),
      64,
      "Deepest JSON nesting accepted in a request body (400 deeper).",
    ),
    f(
      "header_timeout",
      "headerTimeoutMs",
      duration(true),
      "10s",
      "Time a client gets to send a whole request head (a slow client is closed after it).",
    ),
    f(
      "idle_timeout",
      "idleTimeoutMs",
      duration(true),
      "60s",
      "A client's kept-alive connection with no request in progress is closed after this.",
    ),
    f(
      "max_connections",
      "maxConnections",
      int(1),
      4096,
      "Client connections open at most; more are closed at once. Keep it below the process's " +
        "file-descriptor limit (docs/deploy.md).",
    ),
    f(
      "drain_delay",
      "drainDelayMs",
      duration(false),
      "5s",
      "On SIGTERM, /readyz answers 503 at once while the listener keeps serving this long (load " +
        "balancers take the pod out), then it closes and in-flight requests get " +
        "shutdown_timeout to finish.",
    ),
  ],
  router: [
    f(
      "strategy",
      "strategy",
      strategy,
      "costaware",
      "Routing strategy (docs/strategies.md; the default is chosen in docs/decisions/0010).",
    ),
    f("chunk_size", "chunkSize", int(1), 32, "Bytes of routing text per prefix chunk."),
    f(
      "min_match_chunks",
      "minMatchChunks",
      int(0),
      2,
      "prefixaware: below this many matched chunks, route least-loaded instead " +
        "(reason fallback-...).",
    ),
    f(
      "saturation_inflight",
      "saturationInflight",
      int(0),
      8,
      "prefixaware: a best match with this many requests in flight spills to the next good " +
        "match; 0 turns the valve off.",
    ),
    f(
      "max_retries",
      "maxRetries",
      int(0),
      2,
      "Retries on another worker, only while no byte has reached the client.",
    ),
    f(
      "seed",
      "seed",
      nullable(seed),
      null,
      "Seed of the routing random source (tie-breaks); null = different per process.",
    ),
    f(
      "strategy_options",
      "strategyOptions",
      strategyOptions,
      {},
      "Strategy-specific numeric options by name; absent ones take the strategy's published " +
        "defaults (docs/strategies.md lists them). An option the strategy does not know, or a " +
        "value out of its range, is an error. Example for sglang-cache-aware: " +
        "{cache_threshold: 0.5}",
      flowMapping,
    ),
    f(
      "session_header",
      "sessionHeader",
      headerName,
      "x-session-id",
      "Request header whose value pins a session to the worker that served it, while that " +
        `worker is admitted (any strategy). "" turns session affinity off.`,
    ),
    f(
      "retry_timeouts",
      "retryTimeouts",
      bool,
      false,
      "Whether an attempt that timed out after it was sent (first byte, whole request) is " +
        "retried on another worker. Off: only failures where the worker cannot have started " +
        "the request (connect) are retried, so a slow generation is not run twice.",
    ),
    f(
      "index_max_bytes",
      "indexMaxBytes",
      byteSize(1024),
      "256MiB",
      "Memory all workers' prefix indexes may use together; each worker gets an equal share, " +
        "bounding its chunks and nodes (docs/reliability.md).",
    ),
    f(
      "index",
      "index",
      oneOf(["approximate", "precise"]),
      "approximate",
      "How the router knows what each engine caches: approximate (what it sent where, in chunks of " +
        "its routing text, corrected by the engines' cached_tokens) or precise (the engines' own " +
        "KV cache events over ZMQ, indexed by token blocks; needs workers[].kv_events and the " +
        "request's tokens: a `tokenizers` entry for the model, else the worker's /tokenize).",
    ),
    f(
      "block_size",
      "blockSize",
      int(1),
      16,
      "precise: the engines' KV block size in tokens (vLLM --block-size, SGLang --page-size).",
    ),
    f(
      "predict_ttl",
      "predictTtlMs",
      duration(false),
      "2s",
      "precise: how long a routed request's blocks count as held on its worker before the " +
        "engine's event confirms them (a burst of one new prefix does not scatter meanwhile).",
    ),
    f(
      "model_aliases",
      "modelAliases",
      modelAliases,
      {},
      "Public model names mapped to the names the workers serve, e.g. {gpt-4o: llama-3.1-8b}.",
      flowMapping,
    ),
    f(
      "passthrough_paths",
      "passthroughPaths",
      pathList,
      [],
      "Extra paths proxied as they are to a worker serving the body's model, chosen by the " +
        "strategy with no prefix match (any worker when the body names none), e.g. " +
        "[/v1/load_lora_adapter].",
    ),
    f(
      "upstream_client",
      "upstreamClient",
      oneOf(["native", "fetch"]),
      "native",
      "How requests reach http:// workers: native (the router's keep-alive HTTP/1.1 client, " +
        "faster; docs/decisions/0005-own-http1-client.md) or fetch (Deno's). https:// workers " +
        "always use fetch.",
    ),
  ],
  health: [
    f(
      "interval",
      "intervalMs",
      duration(false),
      "5s",
      "Active health check period; 0s turns checks off (the circuit breaker still works).",
    ),
    f(
      "path",
      "path",
      healthPath,
      "/health",
      "Path probed on each worker: /health (vLLM, SGLang, llama-server) or /v1/models.",
    ),
    f("timeout", "timeoutMs", duration(true), "2s", "Probe timeout."),
    f(
      "scrape_metrics",
      "scrapeMetrics",
      bool,
      false,
      "Read each engine's Prometheus /metrics (queue depth, KV cache usage: vLLM, SGLang and " +
        "llama-server names) every scrape_interval; leastloaded and costaware then count the " +
        "engine's own queue, which other clients fill too (docs/strategies.md).",
    ),
    f(
      "scrape_interval",
      "scrapeIntervalMs",
      duration(true),
      "1s",
      "How often engine metrics are read (signals older than 3 intervals are ignored).",
    ),
  ],
  logging: [
    f("level", "level", oneOf(["debug", "info", "warn", "error"]), "info", "Log verbosity."),
    f("format", "format", oneOf(["text", "json"]), "json", "Log line format."),
  ],
  metrics: [
    f("enabled", "enabled", bool, true, "Serve Prometheus text at GET /metrics."),
    f(
      "addr",
      "addr",
      nullable(listenAddr),
      null,
      `Separate admin listener "host:port" for /metrics (and /healthz, /readyz); null = the ` +
        "main port.",
    ),
  ],
  auth: [
    f(
      "api_keys",
      "apiKeys",
      apiKeyList,
      [],
      `Keys clients must send as "Authorization: Bearer <key>"; none configured = no auth. ` +
        "The environment variable ROUTER_AUTH_API_KEYS (comma-separated) replaces this list.",
      envKeys,
    ),
    f(
      "api_keys_file",
      "apiKeysFile",
      nullable(filePath),
      null,
      "File with one key per line (blank lines and # comments skipped), read at start and on " +
        "SIGHUP; its keys join api_keys. A relative path is taken from the config file's " +
        "directory. null = none.",
    ),
    f(
      "protect_metrics",
      "protectMetrics",
      bool,
      false,
      "Whether GET /metrics needs a key too. /healthz and /readyz never do.",
    ),
    f(
      "forward_client_auth",
      "forwardClientAuth",
      bool,
      false,
      "Whether the client's Authorization header is sent on to the worker (a worker api_key " +
        "wins).",
    ),
  ],
  tracing: [
    f(
      "endpoint",
      "endpoint",
      optionalUrl,
      "",
      `OTLP/HTTP collector base URL, e.g. http://otel-collector:4318 (spans are POSTed as JSON ` +
        `to <endpoint>/v1/traces); "" turns tracing off.`,
    ),
    f(
      "headers",
      "headers",
      headerMap,
      {},
      "Extra headers for the collector (authentication).",
      flowMapping,
    ),
    f("service_name", "serviceName", nonEmpty, "llm-cache-router", "The resource's service.name."),
    f(
      "resource_attributes",
      "resourceAttributes",
      stringMap,
      {},
      "More resource attributes, e.g. {deployment.environment: prod}.",
      flowMapping,
    ),
    f(
      "sample_ratio",
      "sampleRatio",
      ratio,
      1,
      "Share of new traces recorded (a client's traceparent decides for its own trace).",
    ),
    f("max_batch_size", "maxBatchSize", int(1), 512, "Spans in one export request at most."),
    f(
      "max_queue_size",
      "maxQueueSize",
      int(1),
      2048,
      "Ended spans waiting for export at most; more are dropped and counted.",
    ),
    f("flush_interval", "flushIntervalMs", duration(true), "5s", "Longest wait before an export."),
    f("export_timeout", "exportTimeoutMs", duration(true), "10s", "Time allowed for one export."),
    f("max_retries", "maxRetries", int(0), 5, "Retries of a batch the collector refused for now."),
  ],
};

/** Keys of one `workers[]` entry. */
export const WORKER: readonly Field[] = [
  f(
    "id",
    "id",
    workerId,
    REQUIRED,
    "Unique, [A-Za-z0-9._-]+; used in X-Router-Backend and metric labels.",
  ),
  f("url", "url", workerUrl, REQUIRED, "The server's base URL, http or https, without /v1."),
  f(
    "kv_budget",
    "kvBudget",
    int(0),
    DEFAULT_KV_BUDGET,
    "Prefix index capacity in chunks: about the engine's KV cache tokens x 4 / chunk_size " +
      "(131072 chunks of 32 bytes stand for about 1 M tokens); 0 = only router.index_max_bytes " +
      "bounds it.",
  ),
  f(
    "models",
    "models",
    modelList,
    null,
    "Models (and LoRA adapters) this worker serves; null = learned from its /v1/models, " +
      "refreshed at the health interval.",
  ),
  f(
    "max_inflight",
    "maxInflight",
    int(0),
    0,
    "Requests in flight at most; a worker at its cap takes no new request. 0 = no cap.",
  ),
  f(
    "timeout",
    "timeoutMs",
    duration(false),
    "0s",
    "Whole-request timeout: headers, body and stream together; 0s = none (a long generation " +
      "is not cut; ttfb_timeout and idle_timeout catch a hung worker).",
  ),
  f(
    "connect_timeout",
    "connectTimeoutMs",
    duration(false),
    "5s",
    "No connection within this time: the attempt fails (and is retried elsewhere). 0s = off.",
  ),
  f(
    "ttfb_timeout",
    "ttfbTimeoutMs",
    duration(false),
    "5m",
    "Time to the first response body byte; 504 (or a retry) when it passes. Non-streaming " +
      "requests get their first byte only when the whole answer is done. 0s = off.",
  ),
  f(
    "idle_timeout",
    "idleTimeoutMs",
    duration(false),
    "30s",
    "Longest pause between two body chunks once the body started; the stream then ends with " +
      "an SSE error event. 0s = off.",
  ),
  f(
    "breaker_threshold",
    "breakerThreshold",
    int(1),
    5,
    "Consecutive failures (connect errors, timeouts and broken bodies before the first byte, " +
      "status >= 500) that open the circuit breaker.",
  ),
  f(
    "breaker_cooldown",
    "breakerCooldownMs",
    duration(false),
    "30s",
    "Time the breaker stays open before one probe request is let through.",
  ),
  f("api_key", "apiKey", nullable(apiKey), null, "Bearer token sent upstream; null = none."),
  f(
    "metrics_url",
    "metricsUrl",
    nullable(workerUrl),
    null,
    "Where the engine's Prometheus metrics are (health.scrape_metrics); null = <url>/metrics.",
  ),
  f(
    "kv_events",
    "kvEvents",
    kvEndpoint,
    null,
    "precise: the engine's KV-event PUB endpoint, tcp://host:port ({host} = this worker's URL " +
      "host), as vLLM --kv-events-config endpoint; null = none.",
  ),
  f(
    "kv_events_replay",
    "kvEventsReplay",
    kvEndpoint,
    null,
    "precise: the engine's replay endpoint (vLLM replay_endpoint), used to fill gaps; null = none.",
  ),
  f(
    "kv_events_topic",
    "kvEventsTopic",
    topic,
    "",
    'precise: the topic the engine publishes on (vLLM kv-events-config topic); "" = any.',
  ),
];

/** Keys of `discovery.worker`: a `workers[]` entry's, but `id` and `url`. */
export const WORKER_TEMPLATE: readonly Field[] = WORKER.filter((fd) =>
  fd.key !== "id" && fd.key !== "url"
);

/** Keys of the document's top level. */
export const TOP_KEYS: readonly string[] = [
  ...Object.keys(SECTIONS),
  "workers",
  "sync",
  "discovery",
  "tokenizers",
  "flow",
];
