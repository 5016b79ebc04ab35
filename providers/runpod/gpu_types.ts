/**
 * The shared accelerator catalog mapped to RunPod's GPU type ids (the `id`
 * of `gpuTypes`, also the `gpuTypeId` of a deploy), with each id's memory
 * and form factor so that a wish such as `A100({ memory: "40GB" })` or
 * `H100({ formFactor: "NVL" })` picks the right ones. The table itself is
 * data, kept beside this module in `gpu_types.json`.
 *
 * @module
 */
import type { Accelerator, FormFactor } from "../../src/accelerators.ts";
import table from "./gpu_types.json" with { type: "json" };

/** One RunPod GPU type id for a catalog model. */
export interface RunPodGpuId {
  /** RunPod's id, e.g. `"NVIDIA GeForce RTX 4090"`. */
  id: string;
  /** Memory per device in GB. */
  memoryGb: number;
  /** The form factor, where the model comes in several. */
  formFactor?: FormFactor;
}

/** The table's shape (`gpu_types.json`). */
export interface RunPodGpuTable {
  /** Where the ids come from. */
  source: string;
  /** Catalog model name → RunPod's GPU type ids for it. */
  types: Record<string, readonly RunPodGpuId[]>;
}

/** Catalog model name → RunPod's GPU type ids for it. */
export const RUNPOD_GPU_TYPES: Readonly<
  Record<string, readonly RunPodGpuId[]>
> = (table as RunPodGpuTable).types;

/** How far a type's memory may be from the catalog's and still count. */
const MEMORY_TOLERANCE = 0.15;

/**
 * RunPod's GPU type ids for an accelerator: its model's ids whose memory is
 * the one asked for (within 15%) and, when one was asked for, whose form
 * factor matches.
 *
 * @param accelerator What the pool asks for.
 * @returns The ids, possibly none.
 *
 * @example
 * ```ts
 * import { accelerators } from "../../src/accelerators.ts";
 * import { runpodGpuIds } from "./gpu_types.ts";
 *
 * console.log(runpodGpuIds(accelerators.A100({ memory: "40GB" })).map((g) => g.id));
 * // ["NVIDIA A100-SXM4-40GB"]
 * ```
 */
export function runpodGpuIds(accelerator: Accelerator): RunPodGpuId[] {
  return (RUNPOD_GPU_TYPES[accelerator.name] ?? []).filter((g) =>
    Math.abs(g.memoryGb - accelerator.memoryGb) <=
      accelerator.memoryGb * MEMORY_TOLERANCE &&
    (!accelerator.formFactor || !g.formFactor ||
      g.formFactor === accelerator.formFactor)
  );
}

/**
 * The catalog model of a RunPod GPU type id, for offers.
 *
 * @param id RunPod's id.
 * @returns The catalog name, or `undefined` for an id the map lacks.
 */
export function catalogNameOf(id: string): string | undefined {
  for (const [name, ids] of Object.entries(RUNPOD_GPU_TYPES)) {
    if (ids.some((g) => g.id === id)) return name;
  }
  return undefined;
}
