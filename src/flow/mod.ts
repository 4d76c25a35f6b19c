/**
 * Flow control: the router queue ({@linkcode AdmissionQueue}: bounded, strict priority between
 * classes, deficit round robin across tenants, max wait, 429 with `Retry-After`), per-tenant
 * limits ({@linkcode TenantLimits}: token bucket and concurrency cap, LRU-bounded), who a request
 * is ({@linkcode classOf}, {@linkcode tenantKey}), the `flow:` config section
 * ({@linkcode resolveFlowConfig}) and schedulers for real and virtual time.
 *
 * Wiring into the router (the owner holds one `AdmissionQueue` and one `TenantLimits` per config):
 *
 * ```ts
 * const queue = new AdmissionQueue({
 *   config: flow.queue, scheduler: realScheduler(),
 *   capacity: () => freeSlots(state.backends),   // Σ admitted workers' max_inflight − inflight
 *   weightOf: (t) => tenants.weightOf(t), labelOf: (t) => tenants.labelOf(t), observer,
 * });
 * // proxy.ts, after parse():
 * const c = classOf(req.header(q.classHeader) ?? body[q.classField], q);   // !c.ok → 400
 * const tenant = tenantKey(apiKeyFingerprint ?? req.header(t.header) ?? "");
 * const lim = tenants.admit(tenant);               // !lim.ok → 429 + Retry-After
 * // ... lim.permit.release() when the request ends (relay end, error, shed)
 * let adm = null;
 * if (!anyCandidate(state.backends, tried) || queue.waitingAhead(c.className) > 0) {
 *   const a = await queue.enqueue({ class: c.className, tenant, signal: req.signal });
 *   if (!a.ok) return shedReply(a);                // a.status, a.retryAfterS, a.message
 *   adm = a;
 * }
 * // in the attempt loop: choose() === null on the first attempt with adm set →
 * //   adm = await adm.requeue() (shed → reply), and choose again; otherwise adm.started()
 * //   right after Attempt.begin (or on any exit), exactly once.
 * // capacity frees → queue.onCapacity(): Attempt.settle after inflight--, a health check
 * //   marking a worker up, a breaker closing, a reload adding workers, and a periodic tick
 * //   (breaker cooldowns end with no event).
 * ```
 *
 * @module
 */

export type * from "./types.ts";
export { OTHER_TENANT, SHED_REASONS } from "./types.ts";
export { AdmissionQueue, MAX_LABELS } from "./admission_queue.ts";
export type { AdmissionQueueOptions } from "./admission_queue.ts";
export { TenantLimits, TokenBucket } from "./tenant_limits.ts";
export type { TenantDecision, TenantLimitStats, TenantPermit } from "./tenant_limits.ts";
export { classOf, MAX_TENANT_ID, tenantKey } from "./classify.ts";
export type { ClassResult } from "./classify.ts";
export { NO_LIMIT, resolveFlowConfig } from "./section.ts";
export { realScheduler, VirtualScheduler } from "./scheduler.ts";
export { DecayingRate, retryAfterSeconds } from "./retry_after.ts";
