/**
 * The models a sim worker serves: base model names and LoRA adapters, as vLLM's
 * `OpenAIServingModels` keeps them.
 *
 * Rules (vLLM):
 * - Base names (`--model`, repeatable, or `--served-model-name`): every name is the same model
 *   (one engine, one prefix cache), the first being the one responses name. `/v1/models` lists
 *   each as `{id, object: "model", created, owned_by: "vllm", root, parent: null, max_model_len,
 *   permission: [one model_permission]}`.
 * - Adapters (`--lora NAME[=PATH]`, or loaded at run time): listed after the base names with
 *   `root` their path, `parent` the first base name and `max_model_len` null. Each gets vLLM's
 *   integer id (a counter from 1, kept when reloaded in place); its blocks carry the adapter in
 *   their hash, so they never match the base model's.
 * - A request's `model`: absent or a base name → the base model; an adapter's name → that adapter;
 *   anything else → vLLM's 404 `The model \`x\` does not exist.`. A worker given no model names
 *   serves `sim-<profile>` leniently instead: any unknown name runs on the base model, as before,
 *   for benches whose traces name another model.
 * - `POST /v1/load_lora_adapter {lora_name, lora_path, load_inplace?}` and
 *   `POST /v1/unload_lora_adapter {lora_name}` (only with `allowRuntimeLora`, vLLM's
 *   `VLLM_ALLOW_RUNTIME_LORA_UPDATING`; otherwise the routes do not exist): vLLM's texts and
 *   errors (400 `InvalidUserInput` for a missing field or an adapter already loaded, 404
 *   `NotFoundError` for unloading an unknown one). At most `maxLoras` adapters (default 64): past
 *   it a load is a 400, so a client cannot grow the list without bound.
 *
 * @module
 */

import type { LoraRef } from "./types.ts";
import { modelNotFound, vllmError } from "./vllm_errors.ts";

/** A LoRA adapter given at start. */
export interface LoraModule {
  readonly name: string;
  /** Where vLLM would load it from; the sim only lists it. Default `/loras/<name>`. */
  readonly path?: string;
}

/** Settings of a {@linkcode ModelRegistry}. */
export interface ModelRegistryOptions {
  /** Served base names, first = the one responses name; at least one. */
  readonly names: readonly string[];
  /** Whether an unknown model is a 404 (true) or runs on the base model (false). */
  readonly strict: boolean;
  /** The base model's `root` (its path or Hugging Face id). */
  readonly root: string;
  readonly maxModelLen: number;
  readonly loras?: readonly LoraModule[];
  /** Adapters held at most. Default 64. */
  readonly maxLoras?: number;
  /** `created` of the model cards, seconds. */
  readonly created: number;
}

/** A request's model, resolved. */
export interface ResolvedModel {
  /** The name responses carry: the adapter's, else the first base name. */
  readonly name: string;
  readonly lora: LoraRef | null;
}

interface Adapter extends LoraRef {
  readonly path: string;
}

function text(body: string, status = 200): Response {
  return new Response(body, { status, headers: { "content-type": "text/plain; charset=utf-8" } });
}

/** Base models and adapters of one worker. */
export class ModelRegistry {
  readonly #o: ModelRegistryOptions;
  readonly #names: Set<string>;
  readonly #adapters = new Map<string, Adapter>();
  readonly #maxLoras: number;
  #nextLoraId = 1;

  constructor(options: ModelRegistryOptions) {
    if (options.names.length === 0) throw new RangeError("a worker serves at least one model");
    this.#o = options;
    this.#names = new Set(options.names);
    this.#maxLoras = options.maxLoras ?? 64;
    for (const l of options.loras ?? []) {
      if (this.#names.has(l.name) || this.#adapters.has(l.name)) {
        throw new RangeError(`model name ${JSON.stringify(l.name)} is given twice`);
      }
      this.#add(l.name, l.path ?? `/loras/${l.name}`);
    }
  }

  /** The first base name. */
  get base(): string {
    return this.#o.names[0];
  }

  /** Adapter names loaded now. */
  get adapters(): string[] {
    return [...this.#adapters.keys()];
  }

  /** The request's model, or vLLM's 404 (400 when `model` is not a string). */
  resolve(model: unknown): ResolvedModel | Response {
    if (model === undefined || model === null || model === "") {
      return { name: this.base, lora: null };
    }
    if (typeof model !== "string") {
      return vllmError(
        400,
        "BadRequestError",
        `model must be a string, got ${typeof model}`,
        "model",
      );
    }
    const a = this.#adapters.get(model);
    if (a !== undefined) return { name: a.name, lora: { name: a.name, id: a.id } };
    if (this.#names.has(model) || !this.#o.strict) return { name: this.base, lora: null };
    return modelNotFound(model);
  }

  /** The `/v1/models` body. */
  list(): unknown {
    const perm = (i: number) => [{
      id: `modelperm-sim${i.toString(16).padStart(8, "0")}`,
      object: "model_permission",
      created: this.#o.created,
      allow_create_engine: false,
      allow_sampling: true,
      allow_logprobs: true,
      allow_search_indices: false,
      allow_view: true,
      allow_fine_tuning: false,
      organization: "*",
      group: null,
      is_blocking: false,
    }];
    const card = (
      i: number,
      id: string,
      root: string,
      parent: string | null,
      len: number | null,
    ) => ({
      id,
      object: "model",
      created: this.#o.created,
      owned_by: "vllm",
      root,
      parent,
      max_model_len: len,
      permission: perm(i),
    });
    const data = this.#o.names.map((n, i) => card(i, n, this.#o.root, null, this.#o.maxModelLen));
    let i = data.length;
    for (const a of this.#adapters.values()) data.push(card(i++, a.name, a.path, this.base, null));
    return { object: "list", data };
  }

  /** `POST /v1/load_lora_adapter`. */
  load(body: Record<string, unknown>): Response {
    const name = body.lora_name;
    const path = body.lora_path;
    if (typeof name !== "string" || name === "" || typeof path !== "string" || path === "") {
      return vllmError(
        400,
        "InvalidUserInput",
        "Both 'lora_name' and 'lora_path' must be provided.",
      );
    }
    const inplace = body.load_inplace === true;
    const old = this.#adapters.get(name);
    if (old !== undefined && !inplace) {
      return vllmError(
        400,
        "InvalidUserInput",
        `The lora adapter '${name}' has already been loaded. If you want to load the adapter ` +
          "in place, set 'load_inplace' to True.",
      );
    }
    if (this.#names.has(name)) {
      return vllmError(400, "InvalidUserInput", `'${name}' is the name of a base model`);
    }
    if (old === undefined && this.#adapters.size >= this.#maxLoras) {
      return vllmError(400, "InvalidUserInput", `at most ${this.#maxLoras} LoRA adapters are held`);
    }
    if (old !== undefined) this.#adapters.set(name, { ...old, path });
    else this.#add(name, path);
    return text(`Success: LoRA adapter '${name}' added successfully.`);
  }

  /** `POST /v1/unload_lora_adapter`. */
  unload(body: Record<string, unknown>): Response {
    const name = body.lora_name;
    if (typeof name !== "string" || name === "") {
      return vllmError(
        400,
        "InvalidUserInput",
        "'lora_name' needs to be provided to unload a LoRA adapter.",
      );
    }
    if (!this.#adapters.delete(name)) {
      return vllmError(404, "NotFoundError", `The lora adapter '${name}' cannot be found.`);
    }
    return text(`Success: LoRA adapter '${name}' removed successfully.`);
  }

  #add(name: string, path: string): void {
    this.#adapters.set(name, { name, id: this.#nextLoraId++, path });
  }
}
