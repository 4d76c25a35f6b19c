/**
 * Test helper: the heap in use after a full garbage collection, for tests that check what a cache
 * keeps alive. `gc` is exposed at run time (`--expose-gc` set through `node:v8`, the function
 * taken from a new `node:vm` context), so the tests run under a plain `deno test`.
 *
 * @module
 */

import v8 from "node:v8";
import vm from "node:vm";

let gc: (() => void) | undefined;

/** Bytes of heap in use after a full collection. */
export function heapAfterGc(): number {
  if (gc === undefined) {
    v8.setFlagsFromString("--expose-gc");
    gc = vm.runInNewContext("gc") as () => void;
  }
  gc();
  return v8.getHeapStatistics().used_heap_size;
}
