/**
 * KV cache events from engines: ZMTP transport, decoding, per-worker subscriptions, and a
 * vLLM-like publisher for the simulated engine.
 *
 * @module
 */

export { type ConnectOptions, connectZmtp, subscribe } from "./client.ts";
export {
  type PeerInfo,
  ZmtpConnection,
  ZmtpError,
  type ZmtpHandlers,
  type ZmtpOptions,
} from "./connection.ts";
export { type DecodeStats, KvEventDecoder } from "./decode.ts";
export {
  encodeBatch,
  type EncodeOptions,
  type WireAllBlocksCleared,
  type WireBlockRemoved,
  type WireBlockStored,
  type WireEvent,
  type WireHash,
} from "./encode.ts";
export { formatEndpoint, parseEndpoint, type TcpEndpoint } from "./endpoint.ts";
export {
  KvEventPublisher,
  type KvEventPublisherOptions,
  type PublishOptions,
} from "./publisher.ts";
export { type ReplayedBatch, type ReplayResult, requestReplay } from "./replay.ts";
export { PubServer, RouterServer, type ServerOptions } from "./server.ts";
export {
  type ClearReason,
  type KvEventSink,
  KvEventSubscriber,
  type KvEventSubscriberOptions,
  type SubscriberCounters,
  type SubscriberState,
} from "./subscriber.ts";
export type * from "./types.ts";
export { DEFAULT_LIMITS, type FrameLimits } from "./zmtp.ts";
