/**
 * The router's own HTTP/1.1 server (ADR 0007): `serveHttp` / `HttpServer`, the request and reply
 * contracts, and `replyFromResponse` for handlers written with the Fetch API.
 *
 * @module
 */

export {
  HTTP_SERVER_DEFAULTS,
  HttpServer,
  type HttpServerOptions,
  type HttpServerStats,
  serveHttp,
} from "./server.ts";
export { replyFromResponse } from "./response_reply.ts";
export { errorReply, httpDate, STATUS_TEXT } from "./reply_writer.ts";
export {
  type BodySource,
  ClientGone,
  type Handler,
  type HeaderList,
  type HttpLog,
  type Reply,
  ServerClosing,
  type ServerRequest,
} from "./types.ts";
