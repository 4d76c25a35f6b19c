/**
 * RealTimeLoop: drives an {@linkcode EngineModel} in wall-clock time for the sim worker, with one
 * owner timer that runs only while the engine has work.
 *
 * Rule: a step runs at engine time `(wall − start) / timeScale`; its events are delivered
 * `durationMs × timeScale` of wall time later, and the next step starts when that one was due.
 * Steps already overdue run at once, up to 256 in a row before the loop yields. A step's KV cache
 * events go to `onKvEvents` when its events are delivered (vLLM publishes a step's batch once the
 * step is done); `flushKvEvents` hands over those of the step in flight at once, so an event that
 * happens between (a cache reset) is never published before them.
 *
 * Cost: one timer at a time; O(events) per delivered step.
 *
 * @module
 */

import type { KvEvent } from "../kv_events/types.ts";
import type { EngineModel, EngineRequest } from "./engine.ts";
import type { EngineEvent, StepResult } from "./types.ts";

/** Receives the events of one sequence. */
export type Listener = (ev: EngineEvent) => void;
type Timer = ReturnType<typeof setTimeout>;

/** Runs the engine in real time with one timer, only while it has work. */
export class RealTimeLoop {
  readonly #engine: EngineModel;
  readonly #timeScale: number;
  readonly #listeners = new Map<number, Listener>();
  readonly #t0 = performance.now();
  readonly #onKv: ((events: readonly KvEvent[]) => void) | null;
  #timer: Timer | undefined;
  /** KV events of the step in flight, not handed over yet. */
  #pendingKv: { events: readonly KvEvent[] } | null = null;
  #stopped = false;

  constructor(
    engine: EngineModel,
    timeScale: number,
    onKvEvents?: (events: readonly KvEvent[]) => void,
  ) {
    this.#engine = engine;
    this.#timeScale = timeScale;
    this.#onKv = onKvEvents ?? null;
  }

  /** Hands over the KV events of the step in flight now (see the module comment). */
  flushKvEvents(): void {
    const p = this.#pendingKv;
    if (p === null) return;
    this.#publishKv(p.events);
    p.events = [];
  }

  /** Runs steps if the engine got work some other way than `submit` (a reset that preempted). */
  wake(): void {
    this.#kick();
  }

  /** Engine time now. */
  now(): number {
    return (performance.now() - this.#t0) / this.#timeScale;
  }

  /** Submits and subscribes; throws `EngineError`. */
  submit(req: EngineRequest, fn: Listener): number {
    const id = this.#engine.submit({ ...req, arrivalMs: this.now() });
    this.#listeners.set(id, fn);
    this.#kick();
    return id;
  }

  /** Unsubscribes and frees the sequence if still in the engine. */
  cancel(id: number): void {
    this.#listeners.delete(id);
    this.#engine.cancel(id);
  }

  stop(): void {
    this.#stopped = true;
    if (this.#timer !== undefined) clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /**
   * Runs steps while there is work. A step that follows another starts when that one was due
   * (`from`), not when its timer fired, and steps already overdue run at once, in this loop:
   * timers here fire a millisecond or two late, and nested ones are clamped to at least 4 ms (the
   * HTML timer rule Deno follows), so a chain of one timer per step made the engine more than
   * twice as slow as its time scale at 0.1, and twenty times at 0.01. Steps keep their model-time
   * durations; only their delivery in wall time is caught up.
   */
  #kick(from = performance.now()): void {
    if (this.#timer !== undefined || this.#stopped) return;
    for (let n = 0; n < MAX_STEPS_AT_ONCE && !this.#stopped; n++) {
      const r = this.#engine.step((from - this.#t0) / this.#timeScale);
      if (r === undefined) return;
      const due = from + r.durationMs * this.#timeScale;
      const wait = due - performance.now();
      if (wait > 0) {
        const kv = { events: r.kvEvents };
        this.#pendingKv = kv;
        this.#timer = setTimeout(() => {
          this.#timer = undefined;
          this.#pendingKv = null;
          this.#publishKv(kv.events);
          this.#deliver(r);
          this.#kick(due);
        }, wait);
        return;
      }
      this.#publishKv(r.kvEvents);
      this.#deliver(r); // overdue: its events go out now, and the next step follows
      from = due;
    }
    // A long backlog: let the event loop breathe, then go on from where the clock is.
    if (!this.#stopped) this.#timer = setTimeout(() => (this.#timer = undefined, this.#kick(from)));
  }

  #publishKv(events: readonly KvEvent[]): void {
    if (events.length === 0 || this.#onKv === null) return;
    try {
      this.#onKv(events);
    } catch (err) {
      console.error(`sim worker KV event publishing failed: ${err}`);
    }
  }

  #deliver(r: StepResult): void {
    for (const ev of r.events) {
      const fn = this.#listeners.get(ev.id);
      if (ev.kind === "done") this.#listeners.delete(ev.id);
      if (fn !== undefined) {
        try {
          fn(ev);
        } catch (err) {
          console.error(`sim worker listener failed: ${err}`);
        }
      }
    }
  }
}

/** Overdue steps run back to back before the loop yields to the event loop. */
const MAX_STEPS_AT_ONCE = 256;
