/**
 * The shared accelerator catalog mapped to RunPod's GPU type ids (the `id`
 * of `gpuTypes`, also the `gpuTypeId` of a deploy), with each id's memory
 * and form factor so that a wish such as `A100({ memory: "40GB" })` or
 * `H100({ formFactor: "NVL" })` picks the right ones.
 *
 * @module
 */
import type { Accelerator, FormFactor } from "../../src/accelerators.ts";

/** One RunPod GPU type id for a catalog model. */
export interface RunPodGpuId {
  /** RunPod's id, e.g. `"NVIDIA GeForce RTX 4090"`. */
  id: string;
  /** Memory per device in GB. */
  memoryGb: number;
  /** The form factor, where the model comes in several. */
  formFactor?: FormFactor;
}

const gpu = (
  id: string,
  memoryGb: number,
  formFactor?: FormFactor,
): RunPodGpuId => ({ id, memoryGb, ...(formFactor ? { formFactor } : {}) });

/** Catalog model name → RunPod's GPU type ids for it. */
export const RUNPOD_GPU_TYPES: Readonly<
  Record<string, readonly RunPodGpuId[]>
> = {
  "V100": [
    gpu("Tesla V100-PCIE-16GB", 16, "PCIe"),
    gpu("Tesla V100-SXM2-16GB", 16, "SXM"),
    gpu("Tesla V100-SXM2-32GB", 32, "SXM"),
  ],
  "A30": [gpu("NVIDIA A30", 24)],
  "A40": [gpu("NVIDIA A40", 48)],
  "A100": [
    gpu("NVIDIA A100 80GB PCIe", 80, "PCIe"),
    gpu("NVIDIA A100-SXM4-80GB", 80, "SXM"),
    gpu("NVIDIA A100-SXM4-40GB", 40, "SXM"),
  ],
  "L4": [gpu("NVIDIA L4", 24)],
  "L40": [gpu("NVIDIA L40", 48)],
  "L40S": [gpu("NVIDIA L40S", 48)],
  "H100": [
    gpu("NVIDIA H100 PCIe", 80, "PCIe"),
    gpu("NVIDIA H100 80GB HBM3", 80, "SXM"),
    gpu("NVIDIA H100 NVL", 94, "NVL"),
  ],
  "H200": [gpu("NVIDIA H200", 141, "SXM"), gpu("NVIDIA H200 NVL", 141, "NVL")],
  "B200": [gpu("NVIDIA B200", 180)],
  "RTX 3070": [gpu("NVIDIA GeForce RTX 3070", 8)],
  "RTX 3080": [gpu("NVIDIA GeForce RTX 3080", 10)],
  "RTX 3080 Ti": [gpu("NVIDIA GeForce RTX 3080 Ti", 12)],
  "RTX 3090": [gpu("NVIDIA GeForce RTX 3090", 24)],
  "RTX 3090 Ti": [gpu("NVIDIA GeForce RTX 3090 Ti", 24)],
  "RTX 4070 Ti": [gpu("NVIDIA GeForce RTX 4070 Ti", 12)],
  "RTX 4080": [gpu("NVIDIA GeForce RTX 4080", 16)],
  "RTX 4080 Super": [gpu("NVIDIA GeForce RTX 4080 SUPER", 16)],
  "RTX 4090": [gpu("NVIDIA GeForce RTX 4090", 24)],
  "RTX 5080": [gpu("NVIDIA GeForce RTX 5080", 16)],
  "RTX 5090": [gpu("NVIDIA GeForce RTX 5090", 32)],
  "RTX A2000": [gpu("NVIDIA RTX A2000", 6)],
  "RTX A4000": [gpu("NVIDIA RTX A4000", 16)],
  "RTX A4500": [gpu("NVIDIA RTX A4500", 20)],
  "RTX A5000": [gpu("NVIDIA RTX A5000", 24)],
  "RTX A6000": [gpu("NVIDIA RTX A6000", 48)],
  "RTX 2000 Ada": [gpu("NVIDIA RTX 2000 Ada Generation", 16)],
  "RTX 4000 Ada": [gpu("NVIDIA RTX 4000 Ada Generation", 20)],
  "RTX 5000 Ada": [gpu("NVIDIA RTX 5000 Ada Generation", 32)],
  "RTX 6000 Ada": [gpu("NVIDIA RTX 6000 Ada Generation", 48)],
  "RTX PRO 6000": [
    gpu("NVIDIA RTX PRO 6000 Blackwell Server Edition", 96),
    gpu("NVIDIA RTX PRO 6000 Blackwell Workstation Edition", 96),
  ],
  "MI300X": [gpu("AMD Instinct MI300X OAM", 192)],
};

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
