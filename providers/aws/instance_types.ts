/**
 * Which EC2 instance families carry which accelerator, and which families
 * serve CPU-only pools. The families narrow the `DescribeInstanceTypes`
 * query; the accelerators EC2 reports for each type (name, count, memory)
 * decide.
 *
 * @module
 */
import type { Accelerator } from "../../src/accelerators.ts";

/** EC2 families per catalog model (and per memory variant where EC2 splits them). */
export const EC2_FAMILIES: Readonly<Record<string, readonly string[]>> = {
  "K80": ["p2"],
  "M60": ["g3", "g3s"],
  "V100": ["p3", "p3dn"],
  "V100:16GB": ["p3"],
  "V100:32GB": ["p3dn"],
  "T4": ["g4dn"],
  "T4G": ["g5g"],
  "A10G": ["g5"],
  "L4": ["g6", "gr6"],
  "L40S": ["g6e"],
  "A100": ["p4d", "p4de"],
  "A100:40GB": ["p4d"],
  "A100:80GB": ["p4de"],
  "H100": ["p5"],
  "H200": ["p5e", "p5en"],
  "B200": ["p6-b200"],
  "GB200": ["p6e-gb200"],
  "Radeon Pro V520": ["g4ad"],
  "Gaudi": ["dl1"],
  "Trainium1": ["trn1", "trn1n"],
  "Trainium2": ["trn2"],
  "Inferentia1": ["inf1"],
  "Inferentia2": ["inf2"],
};

/** Names EC2 reports (`GpuInfo`, `NeuronInfo`) for each catalog model. */
const EC2_NAMES: Readonly<Record<string, readonly string[]>> = {
  "T4G": ["T4g", "T4G"],
  "Trainium1": ["Trainium", "Trainium1"],
  "Inferentia1": ["Inferentia", "Inferentia1"],
  "Gaudi": ["Gaudi HL-205", "Gaudi"],
};

/** Families for pools without accelerators, by architecture. */
export const CPU_FAMILIES: Readonly<
  Record<"x86_64" | "arm64", readonly string[]>
> = {
  x86_64: [
    "t3",
    "t3a",
    "m5",
    "m6i",
    "m6a",
    "m7i",
    "m7a",
    "c5",
    "c6i",
    "c6a",
    "c7i",
    "c7a",
    "r5",
    "r6i",
    "r7i",
  ],
  arm64: ["t4g", "m6g", "m7g", "c6g", "c7g", "r6g", "r7g"],
};

/**
 * The EC2 families that carry an accelerator.
 *
 * @param accelerator The accelerator.
 * @returns The families, empty when EC2 has none.
 *
 * @example
 * ```ts
 * import { accelerators } from "../../src/accelerators.ts";
 * import { familiesFor } from "./instance_types.ts";
 *
 * console.log(familiesFor(accelerators.A100({ memory: "40GB" }))); // ["p4d"]
 * ```
 */
export function familiesFor(accelerator: Accelerator): readonly string[] {
  return EC2_FAMILIES[`${accelerator.name}:${accelerator.memory}`] ??
    EC2_FAMILIES[accelerator.name] ?? [];
}

/**
 * Whether an accelerator name reported by EC2 is the catalog model.
 *
 * @param model The catalog model, e.g. `"Trainium1"`.
 * @param reported EC2's name, e.g. `"Trainium"`.
 */
export function sameModel(model: string, reported: string): boolean {
  const norm = (s: string) => s.toLowerCase().replace(/[\s_-]+/g, "");
  return norm(model) === norm(reported) ||
    (EC2_NAMES[model] ?? []).some((n) => norm(n) === norm(reported));
}

/** The family of an instance type: `g4dn.xlarge` → `g4dn`. */
export function familyOf(instanceType: string): string {
  return instanceType.split(".")[0];
}
