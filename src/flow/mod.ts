/**
 * Flow control: the router queue ({@linkcode AdmissionQueue}: bounded, strict priority between
 * classes, deficit round robin across tenants, max wait, 429 with `Retry-After`), per-tenant
 * limits ({@linkcode TenantLimits}: token bucket and concurrency cap, LRU-bounded), who a request
 * is ({@linkcode classOf}, {@linkcode tenantKey}), the `flow:` config section
 * ({@linkcode resolveFlowConfig}) and schedulers for real and virtual time.
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
