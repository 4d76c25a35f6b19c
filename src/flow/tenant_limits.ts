/**
 * Per-tenant limits checked on arrival, before a request queues: a request rate (token bucket)
 * and a cap on requests held at once (waiting or in flight). A request over either is shed with
 * 429 and a `Retry-After`.
 *
 * Rate. A bucket of `burst` tokens refilled at `rps` per second, continuously; a request takes one.
 * An empty bucket refuses, with `Retry-After` = the seconds until one token is back, rounded up
 * (at least 1). A bucket starts full.
 *
 * Concurrency. `max_concurrent` permits per tenant; a permit is held from `admit` until the
 * owner's `release()` (the response ended, or the request was shed). `Retry-After: 1`: a permit
 * comes back when any of the tenant's requests ends, which the router cannot predict.
 *
 * Tenants. Configured tenants (`flow.tenants.limits`) have their own limits and metric label.
 * Every other tenant id gets its own state with the default limits (its own bucket, its own cap),
 * kept in an LRU of at most `max_tracked` ids: an attacker sending random tenant ids makes the
 * router forget the least recently seen ids, not grow. Eviction prefers an idle tenant among the
 * 8 least recent; when those all hold permits, the least recent goes anyway (memory bound first:
 * its requests still release their permits on the forgotten state). A forgotten tenant comes back
 * with a full bucket, so the limits of unlisted tenants are only as strong as tenant ids are hard
 * to mint: take them from API keys, not from a header the client chooses freely.
 *
 * Cost: one map lookup (and an LRU move) and a few arithmetic operations per request.
 *
 * @module
 */

import type { Clock } from "../util/clock.ts";
import { OTHER_TENANT } from "./types.ts";
import type { Shed, TenantLimitConfig, TenantsConfig } from "./types.ts";

/** Least recent unlisted tenants looked at for an idle one to forget. */
const EVICT_SCAN = 8;

/** A token bucket; times in ms on the caller's clock. */
export class TokenBucket {
  readonly ratePerS: number;
  readonly burst: number;
  #tokens: number;
  #at: number;

  constructor(ratePerS: number, burst: number, now: number) {
    if (!(ratePerS > 0) || !(burst >= 1)) {
      throw new RangeError(`a bucket needs rps > 0 and burst ≥ 1, got ${ratePerS}, ${burst}`);
    }
    this.ratePerS = ratePerS;
    this.burst = burst;
    this.#tokens = burst;
    this.#at = now;
  }

  /** Tokens available at `now` (fractional). */
  tokens(now: number): number {
    this.#refill(now);
    return this.#tokens;
  }

  /** Takes one token at `now`: 0 when taken, else the ms until one is available (none taken). */
  take(now: number): number {
    this.#refill(now);
    // A hair of tolerance: refills summed in steps (0.998 + 0.002) must not fall short of 1.
    if (this.#tokens >= 1 - 1e-9) {
      this.#tokens = Math.max(0, this.#tokens - 1);
      return 0;
    }
    return ((1 - this.#tokens) / this.ratePerS) * 1000;
  }

  #refill(now: number): void {
    if (now <= this.#at) return;
    this.#tokens = Math.min(this.burst, this.#tokens + ((now - this.#at) * this.ratePerS) / 1000);
    this.#at = now;
  }
}

/** A tenant's hold on one of its concurrent-request permits. */
export interface TenantPermit {
  /** The tenant's metric label: its id when configured, else `other`. */
  readonly label: string;
  /** Gives the permit back; later calls do nothing. */
  release(): void;
}

/** The outcome of `TenantLimits.admit`. */
export type TenantDecision = { readonly ok: true; readonly permit: TenantPermit } | Shed;

interface TenantState {
  readonly limit: TenantLimitConfig;
  readonly bucket: TokenBucket | null;
  active: number;
}

/** Counters of one tenant label. */
export interface TenantLimitStats {
  readonly active: number;
  readonly rateLimited: number;
  readonly concurrencyLimited: number;
}

/** Per-tenant rate and concurrency limits; see the module comment. */
export class TenantLimits {
  readonly #clock: Clock;
  #config: TenantsConfig;
  #listed = new Map<string, TenantState>();
  /** Unlisted tenants, least recently seen first. */
  readonly #lru = new Map<string, TenantState>();
  readonly #counts = new Map<string, { rateLimited: number; concurrencyLimited: number }>();
  #otherActive = 0;

  constructor(config: TenantsConfig, clock: Clock) {
    this.#clock = clock;
    this.#config = config;
    this.update(config);
  }

  /** Unlisted tenants tracked now (at most `max_tracked`). */
  get tracked(): number {
    return this.#lru.size;
  }

  /**
   * Takes a new config. A listed tenant whose limits did not change keeps its bucket and permits;
   * others start afresh (requests in flight release on their old state). Unlisted tenants are
   * forgotten when the default limits changed.
   */
  update(config: TenantsConfig): void {
    const now = this.#clock.now();
    const listed = new Map<string, TenantState>();
    for (const [id, limit] of Object.entries(config.limits)) {
      const old = this.#listed.get(id);
      listed.set(id, old !== undefined && sameLimit(old.limit, limit) ? old : newState(limit, now));
    }
    if (!sameLimit(config.default, this.#config.default)) this.#lru.clear();
    this.#listed = listed;
    this.#config = config;
    while (this.#lru.size > config.maxTracked) this.#evict();
  }

  /** The metric label of `tenant`: its id when configured, else `other`. */
  labelOf(tenant: string): string {
    return this.#listed.has(tenant) ? tenant : OTHER_TENANT;
  }

  /** DRR weight of `tenant`. */
  weightOf(tenant: string): number {
    return (this.#listed.get(tenant)?.limit ?? this.#config.default).weight;
  }

  /** Checks `tenant`'s limits for one new request; on success the caller must release the permit. */
  admit(tenant: string): TenantDecision {
    const now = this.#clock.now();
    const listed = this.#listed.get(tenant);
    const state = listed ?? this.#unlisted(tenant, now);
    const label = listed !== undefined ? tenant : OTHER_TENANT;
    const limit = state.limit;
    if (limit.maxConcurrent > 0 && state.active >= limit.maxConcurrent) {
      this.#count(label).concurrencyLimited++;
      return shed(
        "concurrency_limited",
        1,
        `Too many requests in progress for this tenant: the limit is ${limit.maxConcurrent}`,
      );
    }
    if (state.bucket !== null) {
      const waitMs = state.bucket.take(now);
      if (waitMs > 0) {
        this.#count(label).rateLimited++;
        return shed(
          "rate_limited",
          Math.max(1, Math.ceil(waitMs / 1000)),
          `Rate limit of ${limit.rps} requests per second (burst ${limit.burst}) exceeded ` +
            `for this tenant`,
        );
      }
    }
    state.active++;
    if (listed === undefined) this.#otherActive++;
    let held = true;
    return {
      ok: true,
      permit: {
        label,
        release: () => {
          if (!held) return;
          held = false;
          state.active--;
          if (listed === undefined) this.#otherActive--;
        },
      },
    };
  }

  /** Counters by label (configured tenants and `other`). */
  stats(): Record<string, TenantLimitStats> {
    const out: Record<string, TenantLimitStats> = {};
    const add = (label: string, active: number) => {
      const c = this.#counts.get(label);
      out[label] = {
        active,
        rateLimited: c?.rateLimited ?? 0,
        concurrencyLimited: c?.concurrencyLimited ?? 0,
      };
    };
    for (const [id, s] of this.#listed) add(id, s.active);
    add(OTHER_TENANT, this.#otherActive);
    return out;
  }

  #count(label: string): { rateLimited: number; concurrencyLimited: number } {
    let c = this.#counts.get(label);
    if (c === undefined) {
      // Labels are listed tenants or `other`: bounded by the config.
      c = { rateLimited: 0, concurrencyLimited: 0 };
      this.#counts.set(label, c);
    }
    return c;
  }

  /** The state of an unlisted tenant, created (and the LRU trimmed) when new; marks it recent. */
  #unlisted(tenant: string, now: number): TenantState {
    const lru = this.#lru;
    let s = lru.get(tenant);
    if (s !== undefined) {
      lru.delete(tenant);
      lru.set(tenant, s);
      return s;
    }
    s = newState(this.#config.default, now);
    if (this.#config.maxTracked < 1) return s;
    while (lru.size >= this.#config.maxTracked) this.#evict();
    lru.set(tenant, s);
    return s;
  }

  #evict(): void {
    let scanned = 0;
    for (const [id, s] of this.#lru) {
      if (s.active === 0) {
        this.#lru.delete(id);
        return;
      }
      if (++scanned >= EVICT_SCAN) break;
    }
    const oldest = this.#lru.keys().next();
    if (!oldest.done) this.#lru.delete(oldest.value);
  }
}

function newState(limit: TenantLimitConfig, now: number): TenantState {
  return {
    limit,
    bucket: limit.rps > 0 ? new TokenBucket(limit.rps, Math.max(1, limit.burst), now) : null,
    active: 0,
  };
}

function sameLimit(a: TenantLimitConfig, b: TenantLimitConfig): boolean {
  return a.rps === b.rps && a.burst === b.burst && a.maxConcurrent === b.maxConcurrent &&
    a.weight === b.weight;
}

function shed(
  reason: "rate_limited" | "concurrency_limited",
  retryAfterS: number,
  message: string,
): Shed {
  return { ok: false, reason, status: 429, retryAfterS, message, waitedMs: 0 };
}
