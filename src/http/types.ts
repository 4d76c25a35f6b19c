/**
 * Contracts of the router's own HTTP/1.1 server (`src/http/server.ts`): what a handler receives and
 * what it answers. Plain objects, no `Request`, `Response` or `Headers`: the request path builds
 * none of them (see docs/decisions/0007-own-http1-server.md for why the router owns its listener).
 *
 * @module
 */

/** Headers as `[name, value]` pairs in arrival order, names lower case. */
export type HeaderList = [string, string][];

/** A body read piece by piece; `cancel` stops it and frees what it holds. */
export interface BodySource {
  read(): Promise<ReadableStreamReadResult<Uint8Array>>;
  cancel(reason?: unknown): Promise<void>;
}

/** The client's request as the server parsed it. */
export interface ServerRequest {
  /** Upper-case token as sent (`GET`, `POST`). */
  readonly method: string;
  /** The path of the request target (origin form), without the query: `/v1/chat/completions`. */
  readonly path: string;
  /** The query string with its `?`, or "". */
  readonly search: string;
  /** `1.0` or `1.1`. */
  readonly version: "1.0" | "1.1";
  /** Header fields as received (names lower case; values trimmed, obs-text kept as latin1). */
  readonly headers: HeaderList;
  /** The value of header `name` (lower case), several fields joined with `, `; null when absent. */
  header(name: string): string | null;
  /** The listener's own scheme (never taken from the request line). */
  readonly scheme: "http" | "https";
  readonly remote: { readonly hostname: string; readonly port: number };
  /**
   * Aborted as soon as the server knows the client is gone (its connection closed or failed, or it
   * cut its body short: reason `ClientGone`) or the server force-closes the connection (reason
   * `ServerClosing`).
   */
  readonly signal: AbortSignal;
  /** Whether the request has a body (a `Content-Length` above 0, or chunked). */
  readonly hasBody: boolean;
  /**
   * Reads the whole body. Throws a `RouterError`: `too_large` (413) past `maxBytes` (a declared
   * `Content-Length` over it fails before reading), `request_timeout` (408) when it has not
   * arrived within `timeoutMs`; or a `ClientGone` when the client closed or cut it short. Called at
   * most once; a `100 Continue` is sent first when the client asked for one.
   */
  readBody(maxBytes: number, timeoutMs: number): Promise<Uint8Array<ArrayBuffer>>;
  /** The body as it arrives (for pass-through bodies such as multipart audio); at most once. */
  bodySource(): BodySource;
}

/** A handler's answer. */
export interface Reply {
  readonly status: number;
  readonly statusText?: string;
  /** Hop-by-hop fields and `content-length`/`transfer-encoding` are set by the server. */
  readonly headers: HeaderList;
  /** Null: no body; bytes: sent with `Content-Length`; a source: streamed (chunked on 1.1). */
  readonly body: Uint8Array | BodySource | null;
}

/** A request handler. It should not throw; if it does, the client gets a 500 in OpenAI's shape. */
export type Handler = (req: ServerRequest) => Reply | Promise<Reply>;

/** Why a request's signal was aborted. */
export class ClientGone extends Error {
  constructor(message = "Client closed the connection") {
    super(message);
    this.name = "ClientGone";
  }
}

/** Why a request's signal was aborted when the server itself closed the connection (shutdown). */
export class ServerClosing extends Error {
  constructor(message = "Server is closing the connection") {
    super(message);
    this.name = "ServerClosing";
  }
}

/**
 * Where the server reports what went wrong without a client to tell: a handler that threw, a reply
 * header it dropped, accept errors (rate-limited). `level` and `fields` as the router's `Logger.log`.
 */
export type HttpLog = (
  level: "warn" | "error",
  msg: string,
  fields: Record<string, unknown>,
) => void;
