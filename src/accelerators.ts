/**
 * Accelerators: a catalog of GPU and AI-chip models, and the
 * `sky.accelerators.*` factories that describe what a pool's nodes need.
 *
 * An {@linkcode Accelerator} is a wish — model, memory per device, devices
 * per node — that each provider maps to its own machine types (on AWS, T4 is
 * `g4dn`, A100 80 GB is `p4de`, and so on).
 *
 * @module
 */
import { ConfigError } from "./errors.ts";
import { distance } from "./_names.ts";

/** Who makes an accelerator. */
export type Manufacturer = "NVIDIA" | "AMD" | "Intel" | "AWS" | "Google";

/** A physical form of a datacenter GPU. */
export type FormFactor = "SXM" | "PCIe" | "NVL";

/** What a pool's nodes need: a model, its memory and how many per node. */
export interface Accelerator {
  /** Marks the value as made by `sky.accelerators`. */
  readonly kind: "accelerator";
  /** The model, as in the catalog, e.g. `"A100"` or `"RTX 4090"`. */
  readonly name: string;
  /** Devices per node. */
  readonly count: number;
  /** Memory per device, e.g. `"80GB"`. */
  readonly memory: string;
  /** Memory per device in GB. */
  readonly memoryGb: number;
  /** Who makes it. */
  readonly manufacturer: Manufacturer;
  /** Its architecture or generation, e.g. `"Hopper"`. */
  readonly architecture: string;
  /** The form factor, when one was asked for. */
  readonly formFactor?: FormFactor;
  /** The CUDA versions it supports (NVIDIA only). */
  readonly cuda?: { readonly min: string; readonly max: string };
}

/**
 * Options of an accelerator factory.
 *
 * @typeParam M The memory variants of the model.
 */
export interface AcceleratorOptions<M extends string = string> {
  /**
   * Devices per node: a whole number, or a fraction below 1 for providers
   * that share a device.
   * @default 1
   */
  count?: number;
  /**
   * Memory per device, for models sold with several (e.g. A100 `"40GB"` or
   * `"80GB"`).
   * @default the model's first variant
   */
  memory?: M;
  /** The form factor (H100, H200 and A100); `"NVL"` implies the NVL memory. */
  formFactor?: FormFactor;
}

/** One model of the catalog. */
export interface AcceleratorSpec {
  /** The model's name, e.g. `"RTX 4090"`. */
  readonly name: string;
  /** Who makes it. */
  readonly manufacturer: Manufacturer;
  /** Its architecture or generation. */
  readonly architecture: string;
  /** Memory variants per device, the default first. */
  readonly memory: readonly string[];
  /** Supported CUDA versions, `[min, max]` (NVIDIA only). */
  readonly cuda?: readonly [string, string];
  /** Form factors it comes in, when it matters. */
  readonly formFactors?: readonly FormFactor[];
}

/**
 * Every model `sky.accelerators` has a factory for, by factory name (the
 * model's name with spaces as underscores): who makes it, its architecture,
 * and its memory variants per device, the default first, separated by `|`.
 * {@linkcode AcceleratorFactories} is derived from it, and
 * `sky.accelerators.catalog` lists the same models as
 * {@linkcode AcceleratorSpec}s (with their CUDA versions and form factors).
 *
 * @example
 * ```ts
 * import { ACCELERATOR_MODELS } from "./accelerators.ts";
 *
 * console.log(ACCELERATOR_MODELS.A100); // ["NVIDIA", "Ampere", "80GB|40GB"]
 * ```
 */
export const ACCELERATOR_MODELS = {
  // NVIDIA datacenter
  K80: ["NVIDIA", "Kepler", "12GB"],
  M60: ["NVIDIA", "Maxwell", "8GB"],
  P4: ["NVIDIA", "Pascal", "8GB"],
  P40: ["NVIDIA", "Pascal", "24GB"],
  P100: ["NVIDIA", "Pascal", "16GB|12GB"],
  V100: ["NVIDIA", "Volta", "32GB|16GB"],
  T4: ["NVIDIA", "Turing", "16GB"],
  T4G: ["NVIDIA", "Turing", "16GB"],
  A2: ["NVIDIA", "Ampere", "16GB"],
  A10: ["NVIDIA", "Ampere", "24GB"],
  A10G: ["NVIDIA", "Ampere", "24GB"],
  A16: ["NVIDIA", "Ampere", "16GB"],
  A30: ["NVIDIA", "Ampere", "24GB"],
  A40: ["NVIDIA", "Ampere", "48GB"],
  A100: ["NVIDIA", "Ampere", "80GB|40GB"],
  A800: ["NVIDIA", "Ampere", "80GB|40GB"],
  L4: ["NVIDIA", "Ada Lovelace", "24GB"],
  L40: ["NVIDIA", "Ada Lovelace", "48GB"],
  L40S: ["NVIDIA", "Ada Lovelace", "48GB"],
  H100: ["NVIDIA", "Hopper", "80GB|94GB"],
  H200: ["NVIDIA", "Hopper", "141GB"],
  GH200: ["NVIDIA", "Hopper", "96GB|144GB"],
  B100: ["NVIDIA", "Blackwell", "192GB"],
  B200: ["NVIDIA", "Blackwell", "180GB|192GB"],
  B300: ["NVIDIA", "Blackwell", "288GB"],
  GB200: ["NVIDIA", "Blackwell", "384GB"],
  GB300: ["NVIDIA", "Blackwell", "288GB"],
  // NVIDIA consumer
  GTX_1050: ["NVIDIA", "Pascal", "2GB"],
  GTX_1050_Ti: ["NVIDIA", "Pascal", "4GB"],
  GTX_1060: ["NVIDIA", "Pascal", "6GB|3GB"],
  GTX_1070: ["NVIDIA", "Pascal", "8GB"],
  GTX_1070_Ti: ["NVIDIA", "Pascal", "8GB"],
  GTX_1080: ["NVIDIA", "Pascal", "8GB"],
  GTX_1080_Ti: ["NVIDIA", "Pascal", "11GB"],
  Titan_Xp: ["NVIDIA", "Pascal", "12GB"],
  GTX_1650: ["NVIDIA", "Turing", "4GB"],
  GTX_1660: ["NVIDIA", "Turing", "6GB"],
  GTX_1660_Super: ["NVIDIA", "Turing", "6GB"],
  GTX_1660_Ti: ["NVIDIA", "Turing", "6GB"],
  RTX_2060: ["NVIDIA", "Turing", "6GB|12GB"],
  RTX_2060_Super: ["NVIDIA", "Turing", "8GB"],
  RTX_2070: ["NVIDIA", "Turing", "8GB"],
  RTX_2070_Super: ["NVIDIA", "Turing", "8GB"],
  RTX_2080: ["NVIDIA", "Turing", "8GB"],
  RTX_2080_Super: ["NVIDIA", "Turing", "8GB"],
  RTX_2080_Ti: ["NVIDIA", "Turing", "11GB"],
  Titan_RTX: ["NVIDIA", "Turing", "24GB"],
  RTX_3050: ["NVIDIA", "Ampere", "8GB|6GB"],
  RTX_3060: ["NVIDIA", "Ampere", "12GB|8GB"],
  RTX_3060_Ti: ["NVIDIA", "Ampere", "8GB"],
  RTX_3060_Laptop: ["NVIDIA", "Ampere", "6GB"],
  RTX_3070: ["NVIDIA", "Ampere", "8GB"],
  RTX_3070_Ti: ["NVIDIA", "Ampere", "8GB"],
  RTX_3080: ["NVIDIA", "Ampere", "10GB|12GB"],
  RTX_3080_Ti: ["NVIDIA", "Ampere", "12GB"],
  RTX_3090: ["NVIDIA", "Ampere", "24GB"],
  RTX_3090_Ti: ["NVIDIA", "Ampere", "24GB"],
  RTX_4060: ["NVIDIA", "Ada Lovelace", "8GB"],
  RTX_4060_Ti: ["NVIDIA", "Ada Lovelace", "8GB|16GB"],
  RTX_4070: ["NVIDIA", "Ada Lovelace", "12GB"],
  RTX_4070_Super: ["NVIDIA", "Ada Lovelace", "12GB"],
  RTX_4070_Ti: ["NVIDIA", "Ada Lovelace", "12GB"],
  RTX_4070_Ti_Super: ["NVIDIA", "Ada Lovelace", "16GB"],
  RTX_4080: ["NVIDIA", "Ada Lovelace", "16GB"],
  RTX_4080_Super: ["NVIDIA", "Ada Lovelace", "16GB"],
  RTX_4090: ["NVIDIA", "Ada Lovelace", "24GB"],
  RTX_4090D: ["NVIDIA", "Ada Lovelace", "24GB"],
  RTX_5060: ["NVIDIA", "Blackwell", "8GB"],
  RTX_5060_Ti: ["NVIDIA", "Blackwell", "16GB|8GB"],
  RTX_5070: ["NVIDIA", "Blackwell", "12GB"],
  RTX_5070_Ti: ["NVIDIA", "Blackwell", "16GB"],
  RTX_5080: ["NVIDIA", "Blackwell", "16GB"],
  RTX_5090: ["NVIDIA", "Blackwell", "32GB"],
  CMP_50HX: ["NVIDIA", "Turing", "10GB"],
  // NVIDIA workstation
  Quadro_P2000: ["NVIDIA", "Pascal", "5GB"],
  Quadro_P4000: ["NVIDIA", "Pascal", "8GB"],
  Titan_V: ["NVIDIA", "Volta", "12GB"],
  Quadro_RTX_4000: ["NVIDIA", "Turing", "8GB"],
  Quadro_RTX_5000: ["NVIDIA", "Turing", "16GB"],
  Quadro_RTX_6000: ["NVIDIA", "Turing", "24GB"],
  Quadro_RTX_8000: ["NVIDIA", "Turing", "48GB"],
  RTX_A2000: ["NVIDIA", "Ampere", "12GB|6GB"],
  RTX_A4000: ["NVIDIA", "Ampere", "16GB"],
  RTX_A4500: ["NVIDIA", "Ampere", "20GB"],
  RTX_A5000: ["NVIDIA", "Ampere", "24GB"],
  RTX_A6000: ["NVIDIA", "Ampere", "48GB"],
  RTX_2000_Ada: ["NVIDIA", "Ada Lovelace", "16GB"],
  RTX_4000_Ada: ["NVIDIA", "Ada Lovelace", "20GB"],
  RTX_4500_Ada: ["NVIDIA", "Ada Lovelace", "24GB"],
  RTX_5000_Ada: ["NVIDIA", "Ada Lovelace", "32GB"],
  RTX_5880_Ada: ["NVIDIA", "Ada Lovelace", "48GB"],
  RTX_6000_Ada: ["NVIDIA", "Ada Lovelace", "48GB"],
  RTX_PRO_4000: ["NVIDIA", "Blackwell", "24GB"],
  RTX_PRO_4500: ["NVIDIA", "Blackwell", "32GB"],
  RTX_PRO_5000: ["NVIDIA", "Blackwell", "48GB"],
  RTX_PRO_6000: ["NVIDIA", "Blackwell", "96GB"],
  // AMD
  MI25: ["AMD", "GCN", "16GB"],
  MI50: ["AMD", "CDNA", "16GB|32GB"],
  MI100: ["AMD", "CDNA", "32GB"],
  MI210: ["AMD", "CDNA2", "64GB"],
  MI250: ["AMD", "CDNA2", "128GB"],
  MI250X: ["AMD", "CDNA2", "128GB"],
  MI300A: ["AMD", "CDNA3", "128GB"],
  MI300X: ["AMD", "CDNA3", "192GB"],
  MI325X: ["AMD", "CDNA3", "256GB"],
  MI355X: ["AMD", "CDNA4", "288GB"],
  Radeon_Pro_V520: ["AMD", "RDNA", "8GB"],
  Radeon_Pro_V710: ["AMD", "RDNA3", "28GB"],
  // AWS
  Trainium1: ["AWS", "Trainium", "32GB"],
  Trainium2: ["AWS", "Trainium", "96GB"],
  Trainium3: ["AWS", "Trainium", "144GB"],
  Inferentia1: ["AWS", "Inferentia", "8GB"],
  Inferentia2: ["AWS", "Inferentia", "32GB"],
  // Intel
  Gaudi: ["Intel", "Gaudi", "32GB"],
  Gaudi2: ["Intel", "Gaudi", "96GB"],
  Gaudi3: ["Intel", "Gaudi", "128GB"],
  // Google
  TPUv2: ["Google", "TPU", "16GB"],
  TPUv3: ["Google", "TPU", "32GB"],
  TPUv4: ["Google", "TPU", "32GB"],
  TPUv5e: ["Google", "TPU", "16GB"],
  TPUv5p: ["Google", "TPU", "95GB"],
  TPUv6e: ["Google", "TPU", "32GB"],
} as const;

/**
 * A row of {@linkcode ACCELERATOR_MODELS}: who makes the model, its
 * architecture, and its memory variants per device, the default first,
 * separated by `|`.
 *
 * @example
 * ```ts
 * import type { AcceleratorModel } from "./accelerators.ts";
 *
 * const h200: AcceleratorModel = ["NVIDIA", "Hopper", "141GB"];
 * console.log(h200[2].split("|")[0]); // "141GB"
 * ```
 */
export type AcceleratorModel = readonly [
  manufacturer: Manufacturer,
  architecture: string,
  memory: string,
];

/** The CUDA versions of each NVIDIA architecture, `[min, max]`. */
const CUDA: Readonly<Record<string, readonly [string, string]>> = {
  Kepler: ["5.5", "10.2"],
  Maxwell: ["6.5", "12.6"],
  Pascal: ["8.0", "12.6"],
  Volta: ["9.0", "12.6"],
  Turing: ["10.0", "13.1"],
  Ampere: ["11.0", "13.1"],
  "Ada Lovelace": ["11.8", "13.1"],
  Hopper: ["11.8", "13.1"],
  Blackwell: ["12.8", "13.1"],
};

/** The models that come in several form factors, and those forms. */
const FORM_FACTORS: Readonly<Record<string, readonly FormFactor[]>> = {
  V100: ["SXM", "PCIe"],
  A100: ["SXM", "PCIe"],
  H100: ["SXM", "PCIe", "NVL"],
  H200: ["SXM", "NVL"],
};

/** The catalog, in the order of {@linkcode ACCELERATOR_MODELS}; the factories and name look-ups are built from it. */
const CATALOG: readonly AcceleratorSpec[] = Object.entries(ACCELERATOR_MODELS)
  .map(([key, model]: [string, AcceleratorModel]) => {
    const [manufacturer, architecture, memory] = model;
    const cuda = manufacturer === "NVIDIA" ? CUDA[architecture] : undefined;
    const formFactors = FORM_FACTORS[key];
    return {
      name: key.replaceAll("_", " "),
      manufacturer,
      architecture,
      memory: memory.split("|"),
      ...(cuda ? { cuda } : {}),
      ...(formFactors ? { formFactors: [...formFactors] } : {}),
    };
  });

/**
 * A factory of {@linkcode accelerators}.
 *
 * @typeParam M The model's memory variants.
 */
export type AcceleratorFactory<M extends string> = (
  options?: AcceleratorOptions<M>,
) => Accelerator;

/**
 * One factory per model of {@linkcode ACCELERATOR_MODELS}, named after it
 * with spaces as underscores (`RTX_4090`, `Quadro_RTX_8000`), each taking
 * the model's own memory variants: NVIDIA datacenter (`T4`, `A100`, `H100`,
 * `B200`, …), consumer (`RTX_4090`, `GTX_1080_Ti`, …) and workstation
 * (`RTX_A6000`, `RTX_6000_Ada`, …) GPUs, AMD Instinct and Radeon Pro (`MI300X`,
 * …), AWS Trainium and Inferentia, Intel Gaudi and Google TPUs.
 */
export type AcceleratorFactories = {
  readonly [K in keyof typeof ACCELERATOR_MODELS]: AcceleratorFactory<
    (typeof ACCELERATOR_MODELS)[K][2] extends `${infer A}|${infer B}` ? A | B
      : (typeof ACCELERATOR_MODELS)[K][2]
  >;
};

/** What `sky.accelerators` holds: the factories, and lookup by name. */
export type Accelerators = AcceleratorFactories & {
  /**
   * Looks a model up by name, forgiving case, spaces and dashes; `"H100:8"`
   * asks for eight.
   */
  byName(name: string, options?: AcceleratorOptions): Accelerator;
  /** Every model of the catalog. */
  readonly catalog: readonly AcceleratorSpec[];
};

const normalize = (name: string) => name.toLowerCase().replace(/[\s_-]+/g, "");

const BY_NORMAL = new Map<string, AcceleratorSpec>(
  CATALOG.map((spec) => [
    normalize(spec.name),
    spec,
  ]),
);

function gb(memory: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(GB|TB)$/i.exec(memory.trim());
  if (!match) return NaN;
  return Number(match[1]) * (match[2].toUpperCase() === "TB" ? 1024 : 1);
}

function make(
  spec: AcceleratorSpec,
  options: AcceleratorOptions = {},
): Accelerator {
  if (typeof options !== "object" || options === null) {
    throw new ConfigError(
      `Invalid options for accelerator ${spec.name}: expected an object, got ${typeof options}`,
    );
  }
  const unknown = Object.keys(options).filter((k) =>
    !["count", "memory", "formFactor"].includes(k)
  );
  if (unknown.length > 0) {
    throw new ConfigError(
      `Invalid options for accelerator ${spec.name}: unknown option(s) ${
        unknown.map((k) => `'${k}'`).join(", ")
      } (expected count, memory, formFactor)`,
    );
  }
  const count = options.count ?? 1;
  if (
    typeof count !== "number" || !Number.isFinite(count) || count <= 0 ||
    (count > 1 && !Number.isInteger(count))
  ) {
    throw new ConfigError(
      `Invalid accelerator ${spec.name}: 'count' must be a positive whole number (or a fraction below 1), got ${
        JSON.stringify(count)
      }`,
    );
  }
  const formFactor = options.formFactor;
  if (formFactor !== undefined && !spec.formFactors?.includes(formFactor)) {
    throw new ConfigError(
      `Invalid accelerator ${spec.name}: 'formFactor' must be ${
        spec.formFactors?.map((f) => `"${f}"`).join(" or ") ??
          "left out (the model has one form)"
      }, got ${JSON.stringify(formFactor)}`,
    );
  }
  const wanted = options.memory ??
    (formFactor === "NVL"
      ? spec.memory[spec.memory.length - 1]
      : spec.memory[0]);
  const memory = spec.memory.find((m) => gb(m) === gb(String(wanted)));
  if (memory === undefined) {
    throw new ConfigError(
      `Invalid accelerator ${spec.name}: 'memory' must be ${
        spec.memory.map((m) => `"${m}"`).join(" or ")
      }, got ${JSON.stringify(wanted)}`,
    );
  }
  return Object.freeze({
    kind: "accelerator" as const,
    name: spec.name,
    count,
    memory,
    memoryGb: gb(memory),
    manufacturer: spec.manufacturer,
    architecture: spec.architecture,
    ...(formFactor ? { formFactor } : {}),
    ...(spec.cuda
      ? { cuda: Object.freeze({ min: spec.cuda[0], max: spec.cuda[1] }) }
      : {}),
  });
}

/**
 * Catalog models whose names are close to `name`, closest first.
 *
 * @param name A model name, possibly misspelt.
 * @param limit How many to return at most.
 * @returns Model names.
 *
 * @example
 * ```ts
 * import { suggestAccelerators } from "./accelerators.ts";
 *
 * console.log(suggestAccelerators("H10")); // ["H100", "A10", ...]
 * ```
 */
export function suggestAccelerators(name: string, limit = 3): string[] {
  const wanted = normalize(name);
  return [...BY_NORMAL.entries()]
    .map(([normal, spec]) => ({
      name: spec.name,
      score: distance(wanted, normal) -
        (normal.startsWith(wanted) || wanted.startsWith(normal) ? 1.5 : 0),
    }))
    .filter((c) => c.score <= Math.max(2, wanted.length / 3))
    .sort((a, b) => a.score - b.score || a.name.localeCompare(b.name))
    .slice(0, limit)
    .map((c) => c.name);
}

function byName(name: string, options: AcceleratorOptions = {}): Accelerator {
  if (typeof name !== "string" || name.trim() === "") {
    throw new ConfigError(
      `Invalid accelerator: expected a model name such as "T4" or "H100:8", got ${
        JSON.stringify(name)
      }`,
    );
  }
  const match = /^(.*?)(?::(\d+))?$/.exec(name.trim())!;
  const spec = BY_NORMAL.get(normalize(match[1]));
  if (!spec) {
    const close = suggestAccelerators(match[1]);
    throw new ConfigError(
      `Unknown accelerator '${match[1]}'${
        close.length > 0 ? `: did you mean ${close.join(", ")}?` : ""
      } (sky.accelerators.catalog lists every model)`,
    );
  }
  return make(
    spec,
    match[2] === undefined ? options : { ...options, count: Number(match[2]) },
  );
}

const factories: Record<string, unknown> = {};
for (const spec of CATALOG) {
  factories[spec.name.replace(/ /g, "_")] = (options?: AcceleratorOptions) =>
    make(spec, options);
}

/**
 * The accelerator factories, one per model of the catalog, plus
 * {@linkcode Accelerators.byName} for names known only at run time.
 *
 * Each factory takes `count` (devices per node, default 1), `memory` (for
 * models sold with several sizes) and, for H100, H200 and A100,
 * `formFactor`.
 *
 * @example
 * ```ts
 * import * as sky from "../mod.ts";
 *
 * const t4 = sky.accelerators.T4();
 * const a100 = sky.accelerators.A100({ memory: "40GB", count: 8 });
 * const h100 = sky.accelerators.byName("h100:8");
 * console.log(t4.memory, a100.memoryGb, h100.count); // "16GB" 40 8
 * ```
 */
export const accelerators: Accelerators = Object.freeze({
  ...factories,
  byName,
  catalog: CATALOG,
}) as unknown as Accelerators;

/** Whether a value was made by `sky.accelerators`. */
export function isAccelerator(value: unknown): value is Accelerator {
  return typeof value === "object" && value !== null &&
    (value as { kind?: unknown }).kind === "accelerator" &&
    typeof (value as { name?: unknown }).name === "string";
}

/**
 * Resolves the pool's `accelerator` option: an accelerator, a model name
 * (`"T4"`, `"H100:8"`) or nothing.
 *
 * @param value The option's value.
 * @returns The accelerator, or `undefined`.
 * @throws {ConfigError} When the name is unknown (with close names) or the value is neither.
 *
 * @example
 * ```ts
 * import { resolveAccelerator } from "./accelerators.ts";
 *
 * console.log(resolveAccelerator("L4:2")?.count); // 2
 * ```
 */
export function resolveAccelerator(value: unknown): Accelerator | undefined {
  if (value === undefined) return undefined;
  if (typeof value === "string") return byName(value);
  if (isAccelerator(value)) {
    const spec = BY_NORMAL.get(normalize(value.name));
    if (!spec) return byName(value.name);
    return value;
  }
  throw new ConfigError(
    `Invalid accelerator: expected sky.accelerators.T4() or a name such as "T4", got ${
      value === null ? "null" : typeof value
    }`,
  );
}

/**
 * Describes an accelerator for messages: `"2x A100 (40GB)"`.
 *
 * @param accelerator The accelerator.
 * @returns A short description.
 *
 * @example
 * ```ts
 * import { accelerators, describeAccelerator } from "./accelerators.ts";
 *
 * console.log(describeAccelerator(accelerators.A100({ count: 2 }))); // "2x A100 (80GB)"
 * ```
 */
export function describeAccelerator(accelerator: Accelerator): string {
  return `${accelerator.count}x ${accelerator.name} (${accelerator.memory})`;
}

/**
 * An accelerator's name with its count when more than one, as events and
 * the dashboard show it: `"A100:8"`, `"T4"`.
 *
 * @param accelerator Its name and count (an accelerator, or an offer's).
 * @returns The label.
 *
 * @example
 * ```ts
 * import { acceleratorLabel } from "./accelerators.ts";
 *
 * console.log(acceleratorLabel({ name: "A100", count: 8 })); // "A100:8"
 * console.log(acceleratorLabel({ name: "T4", count: 1 })); // "T4"
 * ```
 */
export function acceleratorLabel(
  accelerator: { name: string; count: number },
): string {
  return `${accelerator.name}${
    accelerator.count > 1 ? `:${accelerator.count}` : ""
  }`;
}
