/**
 * The prefix layer: routing text of a request → chained chunk hashes → per-worker prefix index.
 *
 * ```ts
 * import { chunkHashes, parseRequest, RadixTree } from "./mod.ts";
 * const req = parseRequest("chat", { messages: [{ role: "user", content: "hello" }] });
 * const hashes = chunkHashes(req.text, 32);
 * const worker = new RadixTree({ maxChunks: 0 });
 * worker.match(hashes); // 0
 * worker.insert(hashes);
 * ```
 *
 * @module
 */

export type { ChunkHashes, PrefixIndex, PrefixIndexStats } from "./types.ts";
export { chunkCount } from "./types.ts";
export { chunkHashes, fnv1a64Hex, utf8 } from "./chunker.ts";
export { CHUNK_BYTES, NODE_BYTES, RadixTree } from "./radix_tree.ts";
export type { RadixTreeOptions, RadixTreeRecount } from "./radix_tree.ts";
export { parseRequest, routingText } from "./routing_text.ts";
export type { ParsedRequest, RequestKind } from "./routing_text.ts";
