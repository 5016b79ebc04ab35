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
import { distance } from "./_options.ts";

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

const CUDA_KEPLER = ["5.5", "10.2"] as const;
const CUDA_MAXWELL = ["6.5", "12.6"] as const;
const CUDA_PASCAL = ["8.0", "12.6"] as const;
const CUDA_VOLTA = ["9.0", "12.6"] as const;
const CUDA_TURING = ["10.0", "13.1"] as const;
const CUDA_AMPERE = ["11.0", "13.1"] as const;
const CUDA_ADA = ["11.8", "13.1"] as const;
const CUDA_HOPPER = ["11.8", "13.1"] as const;
const CUDA_BLACKWELL = ["12.8", "13.1"] as const;

function nv(
  name: string,
  architecture: string,
  memory: string[],
  cuda: readonly [string, string],
  formFactors?: FormFactor[],
): AcceleratorSpec {
  return {
    name,
    manufacturer: "NVIDIA",
    architecture,
    memory,
    cuda,
    ...(formFactors ? { formFactors } : {}),
  };
}

function other(
  name: string,
  manufacturer: Exclude<Manufacturer, "NVIDIA">,
  architecture: string,
  memory: string[],
): AcceleratorSpec {
  return { name, manufacturer, architecture, memory };
}

/** The catalog, by family; the factories and name look-ups are built from it. */
const CATALOG: readonly AcceleratorSpec[] = [
  // NVIDIA datacenter
  nv("K80", "Kepler", ["12GB"], CUDA_KEPLER),
  nv("M60", "Maxwell", ["8GB"], CUDA_MAXWELL),
  nv("P4", "Pascal", ["8GB"], CUDA_PASCAL),
  nv("P40", "Pascal", ["24GB"], CUDA_PASCAL),
  nv("P100", "Pascal", ["16GB", "12GB"], CUDA_PASCAL),
  nv("V100", "Volta", ["32GB", "16GB"], CUDA_VOLTA, ["SXM", "PCIe"]),
  nv("T4", "Turing", ["16GB"], CUDA_TURING),
  nv("T4G", "Turing", ["16GB"], CUDA_TURING),
  nv("A2", "Ampere", ["16GB"], CUDA_AMPERE),
  nv("A10", "Ampere", ["24GB"], CUDA_AMPERE),
  nv("A10G", "Ampere", ["24GB"], CUDA_AMPERE),
  nv("A16", "Ampere", ["16GB"], CUDA_AMPERE),
  nv("A30", "Ampere", ["24GB"], CUDA_AMPERE),
  nv("A40", "Ampere", ["48GB"], CUDA_AMPERE),
  nv("A100", "Ampere", ["80GB", "40GB"], CUDA_AMPERE, ["SXM", "PCIe"]),
  nv("A800", "Ampere", ["80GB", "40GB"], CUDA_AMPERE),
  nv("L4", "Ada Lovelace", ["24GB"], CUDA_ADA),
  nv("L40", "Ada Lovelace", ["48GB"], CUDA_ADA),
  nv("L40S", "Ada Lovelace", ["48GB"], CUDA_ADA),
  nv("H100", "Hopper", ["80GB", "94GB"], CUDA_HOPPER, [
    "SXM",
    "PCIe",
    "NVL",
  ]),
  nv("H200", "Hopper", ["141GB"], CUDA_HOPPER, ["SXM", "NVL"]),
  nv("GH200", "Hopper", ["96GB", "144GB"], CUDA_HOPPER),
  nv("B100", "Blackwell", ["192GB"], CUDA_BLACKWELL),
  nv("B200", "Blackwell", ["180GB", "192GB"], CUDA_BLACKWELL),
  nv("B300", "Blackwell", ["288GB"], CUDA_BLACKWELL),
  nv("GB200", "Blackwell", ["384GB"], CUDA_BLACKWELL),
  nv("GB300", "Blackwell", ["288GB"], CUDA_BLACKWELL),
  // NVIDIA consumer
  nv("GTX 1050", "Pascal", ["2GB"], CUDA_PASCAL),
  nv("GTX 1050 Ti", "Pascal", ["4GB"], CUDA_PASCAL),
  nv("GTX 1060", "Pascal", ["6GB", "3GB"], CUDA_PASCAL),
  nv("GTX 1070", "Pascal", ["8GB"], CUDA_PASCAL),
  nv("GTX 1070 Ti", "Pascal", ["8GB"], CUDA_PASCAL),
  nv("GTX 1080", "Pascal", ["8GB"], CUDA_PASCAL),
  nv("GTX 1080 Ti", "Pascal", ["11GB"], CUDA_PASCAL),
  nv("Titan Xp", "Pascal", ["12GB"], CUDA_PASCAL),
  nv("GTX 1650", "Turing", ["4GB"], CUDA_TURING),
  nv("GTX 1660", "Turing", ["6GB"], CUDA_TURING),
  nv("GTX 1660 Super", "Turing", ["6GB"], CUDA_TURING),
  nv("GTX 1660 Ti", "Turing", ["6GB"], CUDA_TURING),
  nv("RTX 2060", "Turing", ["6GB", "12GB"], CUDA_TURING),
  nv("RTX 2060 Super", "Turing", ["8GB"], CUDA_TURING),
  nv("RTX 2070", "Turing", ["8GB"], CUDA_TURING),
  nv("RTX 2070 Super", "Turing", ["8GB"], CUDA_TURING),
  nv("RTX 2080", "Turing", ["8GB"], CUDA_TURING),
  nv("RTX 2080 Super", "Turing", ["8GB"], CUDA_TURING),
  nv("RTX 2080 Ti", "Turing", ["11GB"], CUDA_TURING),
  nv("Titan RTX", "Turing", ["24GB"], CUDA_TURING),
  nv("RTX 3050", "Ampere", ["8GB", "6GB"], CUDA_AMPERE),
  nv("RTX 3060", "Ampere", ["12GB", "8GB"], CUDA_AMPERE),
  nv("RTX 3060 Ti", "Ampere", ["8GB"], CUDA_AMPERE),
  nv("RTX 3060 Laptop", "Ampere", ["6GB"], CUDA_AMPERE),
  nv("RTX 3070", "Ampere", ["8GB"], CUDA_AMPERE),
  nv("RTX 3070 Ti", "Ampere", ["8GB"], CUDA_AMPERE),
  nv("RTX 3080", "Ampere", ["10GB", "12GB"], CUDA_AMPERE),
  nv("RTX 3080 Ti", "Ampere", ["12GB"], CUDA_AMPERE),
  nv("RTX 3090", "Ampere", ["24GB"], CUDA_AMPERE),
  nv("RTX 3090 Ti", "Ampere", ["24GB"], CUDA_AMPERE),
  nv("RTX 4060", "Ada Lovelace", ["8GB"], CUDA_ADA),
  nv("RTX 4060 Ti", "Ada Lovelace", ["8GB", "16GB"], CUDA_ADA),
  nv("RTX 4070", "Ada Lovelace", ["12GB"], CUDA_ADA),
  nv("RTX 4070 Super", "Ada Lovelace", ["12GB"], CUDA_ADA),
  nv("RTX 4070 Ti", "Ada Lovelace", ["12GB"], CUDA_ADA),
  nv("RTX 4070 Ti Super", "Ada Lovelace", ["16GB"], CUDA_ADA),
  nv("RTX 4080", "Ada Lovelace", ["16GB"], CUDA_ADA),
  nv("RTX 4080 Super", "Ada Lovelace", ["16GB"], CUDA_ADA),
  nv("RTX 4090", "Ada Lovelace", ["24GB"], CUDA_ADA),
  nv("RTX 4090D", "Ada Lovelace", ["24GB"], CUDA_ADA),
  nv("RTX 5060", "Blackwell", ["8GB"], CUDA_BLACKWELL),
  nv("RTX 5060 Ti", "Blackwell", ["16GB", "8GB"], CUDA_BLACKWELL),
  nv("RTX 5070", "Blackwell", ["12GB"], CUDA_BLACKWELL),
  nv("RTX 5070 Ti", "Blackwell", ["16GB"], CUDA_BLACKWELL),
  nv("RTX 5080", "Blackwell", ["16GB"], CUDA_BLACKWELL),
  nv("RTX 5090", "Blackwell", ["32GB"], CUDA_BLACKWELL),
  nv("CMP 50HX", "Turing", ["10GB"], CUDA_TURING),
  // NVIDIA workstation
  nv("Quadro P2000", "Pascal", ["5GB"], CUDA_PASCAL),
  nv("Quadro P4000", "Pascal", ["8GB"], CUDA_PASCAL),
  nv("Titan V", "Volta", ["12GB"], CUDA_VOLTA),
  nv("Quadro RTX 4000", "Turing", ["8GB"], CUDA_TURING),
  nv("Quadro RTX 5000", "Turing", ["16GB"], CUDA_TURING),
  nv("Quadro RTX 6000", "Turing", ["24GB"], CUDA_TURING),
  nv("Quadro RTX 8000", "Turing", ["48GB"], CUDA_TURING),
  nv("RTX A2000", "Ampere", ["12GB", "6GB"], CUDA_AMPERE),
  nv("RTX A4000", "Ampere", ["16GB"], CUDA_AMPERE),
  nv("RTX A4500", "Ampere", ["20GB"], CUDA_AMPERE),
  nv("RTX A5000", "Ampere", ["24GB"], CUDA_AMPERE),
  nv("RTX A6000", "Ampere", ["48GB"], CUDA_AMPERE),
  nv("RTX 2000 Ada", "Ada Lovelace", ["16GB"], CUDA_ADA),
  nv("RTX 4000 Ada", "Ada Lovelace", ["20GB"], CUDA_ADA),
  nv("RTX 4500 Ada", "Ada Lovelace", ["24GB"], CUDA_ADA),
  nv("RTX 5000 Ada", "Ada Lovelace", ["32GB"], CUDA_ADA),
  nv("RTX 5880 Ada", "Ada Lovelace", ["48GB"], CUDA_ADA),
  nv("RTX 6000 Ada", "Ada Lovelace", ["48GB"], CUDA_ADA),
  nv("RTX PRO 4000", "Blackwell", ["24GB"], CUDA_BLACKWELL),
  nv("RTX PRO 4500", "Blackwell", ["32GB"], CUDA_BLACKWELL),
  nv("RTX PRO 5000", "Blackwell", ["48GB"], CUDA_BLACKWELL),
  nv("RTX PRO 6000", "Blackwell", ["96GB"], CUDA_BLACKWELL),
  // AMD
  other("MI25", "AMD", "GCN", ["16GB"]),
  other("MI50", "AMD", "CDNA", ["16GB", "32GB"]),
  other("MI100", "AMD", "CDNA", ["32GB"]),
  other("MI210", "AMD", "CDNA2", ["64GB"]),
  other("MI250", "AMD", "CDNA2", ["128GB"]),
  other("MI250X", "AMD", "CDNA2", ["128GB"]),
  other("MI300A", "AMD", "CDNA3", ["128GB"]),
  other("MI300X", "AMD", "CDNA3", ["192GB"]),
  other("MI325X", "AMD", "CDNA3", ["256GB"]),
  other("MI355X", "AMD", "CDNA4", ["288GB"]),
  other("Radeon Pro V520", "AMD", "RDNA", ["8GB"]),
  other("Radeon Pro V710", "AMD", "RDNA3", ["28GB"]),
  // AWS
  other("Trainium1", "AWS", "Trainium", ["32GB"]),
  other("Trainium2", "AWS", "Trainium", ["96GB"]),
  other("Trainium3", "AWS", "Trainium", ["144GB"]),
  other("Inferentia1", "AWS", "Inferentia", ["8GB"]),
  other("Inferentia2", "AWS", "Inferentia", ["32GB"]),
  // Intel
  other("Gaudi", "Intel", "Gaudi", ["32GB"]),
  other("Gaudi2", "Intel", "Gaudi", ["96GB"]),
  other("Gaudi3", "Intel", "Gaudi", ["128GB"]),
  // Google
  other("TPUv2", "Google", "TPU", ["16GB"]),
  other("TPUv3", "Google", "TPU", ["32GB"]),
  other("TPUv4", "Google", "TPU", ["32GB"]),
  other("TPUv5e", "Google", "TPU", ["16GB"]),
  other("TPUv5p", "Google", "TPU", ["95GB"]),
  other("TPUv6e", "Google", "TPU", ["32GB"]),
];

/**
 * A factory of {@linkcode accelerators}.
 *
 * @typeParam M The model's memory variants.
 */
export type AcceleratorFactory<M extends string> = (
  options?: AcceleratorOptions<M>,
) => Accelerator;

/**
 * One factory per model of the catalog, named after it with spaces as
 * underscores, each taking the model's own memory variants.
 */
export interface AcceleratorFactories {
  /** NVIDIA K80 (Kepler; 12GB). */
  readonly K80: AcceleratorFactory<"12GB">;
  /** NVIDIA M60 (Maxwell; 8GB). */
  readonly M60: AcceleratorFactory<"8GB">;
  /** NVIDIA P4 (Pascal; 8GB). */
  readonly P4: AcceleratorFactory<"8GB">;
  /** NVIDIA P40 (Pascal; 24GB). */
  readonly P40: AcceleratorFactory<"24GB">;
  /** NVIDIA P100 (Pascal; 16GB or 12GB). */
  readonly P100: AcceleratorFactory<"16GB" | "12GB">;
  /** NVIDIA V100 (Volta; 32GB or 16GB). */
  readonly V100: AcceleratorFactory<"32GB" | "16GB">;
  /** NVIDIA T4 (Turing; 16GB). */
  readonly T4: AcceleratorFactory<"16GB">;
  /** NVIDIA T4G (Turing; 16GB). */
  readonly T4G: AcceleratorFactory<"16GB">;
  /** NVIDIA A2 (Ampere; 16GB). */
  readonly A2: AcceleratorFactory<"16GB">;
  /** NVIDIA A10 (Ampere; 24GB). */
  readonly A10: AcceleratorFactory<"24GB">;
  /** NVIDIA A10G (Ampere; 24GB). */
  readonly A10G: AcceleratorFactory<"24GB">;
  /** NVIDIA A16 (Ampere; 16GB). */
  readonly A16: AcceleratorFactory<"16GB">;
  /** NVIDIA A30 (Ampere; 24GB). */
  readonly A30: AcceleratorFactory<"24GB">;
  /** NVIDIA A40 (Ampere; 48GB). */
  readonly A40: AcceleratorFactory<"48GB">;
  /** NVIDIA A100 (Ampere; 80GB or 40GB). */
  readonly A100: AcceleratorFactory<"80GB" | "40GB">;
  /** NVIDIA A800 (Ampere; 80GB or 40GB). */
  readonly A800: AcceleratorFactory<"80GB" | "40GB">;
  /** NVIDIA L4 (Ada Lovelace; 24GB). */
  readonly L4: AcceleratorFactory<"24GB">;
  /** NVIDIA L40 (Ada Lovelace; 48GB). */
  readonly L40: AcceleratorFactory<"48GB">;
  /** NVIDIA L40S (Ada Lovelace; 48GB). */
  readonly L40S: AcceleratorFactory<"48GB">;
  /** NVIDIA H100 (Hopper; 80GB or 94GB). */
  readonly H100: AcceleratorFactory<"80GB" | "94GB">;
  /** NVIDIA H200 (Hopper; 141GB). */
  readonly H200: AcceleratorFactory<"141GB">;
  /** NVIDIA GH200 (Hopper; 96GB or 144GB). */
  readonly GH200: AcceleratorFactory<"96GB" | "144GB">;
  /** NVIDIA B100 (Blackwell; 192GB). */
  readonly B100: AcceleratorFactory<"192GB">;
  /** NVIDIA B200 (Blackwell; 180GB or 192GB). */
  readonly B200: AcceleratorFactory<"180GB" | "192GB">;
  /** NVIDIA B300 (Blackwell; 288GB). */
  readonly B300: AcceleratorFactory<"288GB">;
  /** NVIDIA GB200 (Blackwell; 384GB). */
  readonly GB200: AcceleratorFactory<"384GB">;
  /** NVIDIA GB300 (Blackwell; 288GB). */
  readonly GB300: AcceleratorFactory<"288GB">;
  /** NVIDIA GTX 1050 (Pascal; 2GB). */
  readonly GTX_1050: AcceleratorFactory<"2GB">;
  /** NVIDIA GTX 1050 Ti (Pascal; 4GB). */
  readonly GTX_1050_Ti: AcceleratorFactory<"4GB">;
  /** NVIDIA GTX 1060 (Pascal; 6GB or 3GB). */
  readonly GTX_1060: AcceleratorFactory<"6GB" | "3GB">;
  /** NVIDIA GTX 1070 (Pascal; 8GB). */
  readonly GTX_1070: AcceleratorFactory<"8GB">;
  /** NVIDIA GTX 1070 Ti (Pascal; 8GB). */
  readonly GTX_1070_Ti: AcceleratorFactory<"8GB">;
  /** NVIDIA GTX 1080 (Pascal; 8GB). */
  readonly GTX_1080: AcceleratorFactory<"8GB">;
  /** NVIDIA GTX 1080 Ti (Pascal; 11GB). */
  readonly GTX_1080_Ti: AcceleratorFactory<"11GB">;
  /** NVIDIA Titan Xp (Pascal; 12GB). */
  readonly Titan_Xp: AcceleratorFactory<"12GB">;
  /** NVIDIA GTX 1650 (Turing; 4GB). */
  readonly GTX_1650: AcceleratorFactory<"4GB">;
  /** NVIDIA GTX 1660 (Turing; 6GB). */
  readonly GTX_1660: AcceleratorFactory<"6GB">;
  /** NVIDIA GTX 1660 Super (Turing; 6GB). */
  readonly GTX_1660_Super: AcceleratorFactory<"6GB">;
  /** NVIDIA GTX 1660 Ti (Turing; 6GB). */
  readonly GTX_1660_Ti: AcceleratorFactory<"6GB">;
  /** NVIDIA RTX 2060 (Turing; 6GB or 12GB). */
  readonly RTX_2060: AcceleratorFactory<"6GB" | "12GB">;
  /** NVIDIA RTX 2060 Super (Turing; 8GB). */
  readonly RTX_2060_Super: AcceleratorFactory<"8GB">;
  /** NVIDIA RTX 2070 (Turing; 8GB). */
  readonly RTX_2070: AcceleratorFactory<"8GB">;
  /** NVIDIA RTX 2070 Super (Turing; 8GB). */
  readonly RTX_2070_Super: AcceleratorFactory<"8GB">;
  /** NVIDIA RTX 2080 (Turing; 8GB). */
  readonly RTX_2080: AcceleratorFactory<"8GB">;
  /** NVIDIA RTX 2080 Super (Turing; 8GB). */
  readonly RTX_2080_Super: AcceleratorFactory<"8GB">;
  /** NVIDIA RTX 2080 Ti (Turing; 11GB). */
  readonly RTX_2080_Ti: AcceleratorFactory<"11GB">;
  /** NVIDIA Titan RTX (Turing; 24GB). */
  readonly Titan_RTX: AcceleratorFactory<"24GB">;
  /** NVIDIA RTX 3050 (Ampere; 8GB or 6GB). */
  readonly RTX_3050: AcceleratorFactory<"8GB" | "6GB">;
  /** NVIDIA RTX 3060 (Ampere; 12GB or 8GB). */
  readonly RTX_3060: AcceleratorFactory<"12GB" | "8GB">;
  /** NVIDIA RTX 3060 Ti (Ampere; 8GB). */
  readonly RTX_3060_Ti: AcceleratorFactory<"8GB">;
  /** NVIDIA RTX 3060 Laptop (Ampere; 6GB). */
  readonly RTX_3060_Laptop: AcceleratorFactory<"6GB">;
  /** NVIDIA RTX 3070 (Ampere; 8GB). */
  readonly RTX_3070: AcceleratorFactory<"8GB">;
  /** NVIDIA RTX 3070 Ti (Ampere; 8GB). */
  readonly RTX_3070_Ti: AcceleratorFactory<"8GB">;
  /** NVIDIA RTX 3080 (Ampere; 10GB or 12GB). */
  readonly RTX_3080: AcceleratorFactory<"10GB" | "12GB">;
  /** NVIDIA RTX 3080 Ti (Ampere; 12GB). */
  readonly RTX_3080_Ti: AcceleratorFactory<"12GB">;
  /** NVIDIA RTX 3090 (Ampere; 24GB). */
  readonly RTX_3090: AcceleratorFactory<"24GB">;
  /** NVIDIA RTX 3090 Ti (Ampere; 24GB). */
  readonly RTX_3090_Ti: AcceleratorFactory<"24GB">;
  /** NVIDIA RTX 4060 (Ada Lovelace; 8GB). */
  readonly RTX_4060: AcceleratorFactory<"8GB">;
  /** NVIDIA RTX 4060 Ti (Ada Lovelace; 8GB or 16GB). */
  readonly RTX_4060_Ti: AcceleratorFactory<"8GB" | "16GB">;
  /** NVIDIA RTX 4070 (Ada Lovelace; 12GB). */
  readonly RTX_4070: AcceleratorFactory<"12GB">;
  /** NVIDIA RTX 4070 Super (Ada Lovelace; 12GB). */
  readonly RTX_4070_Super: AcceleratorFactory<"12GB">;
  /** NVIDIA RTX 4070 Ti (Ada Lovelace; 12GB). */
  readonly RTX_4070_Ti: AcceleratorFactory<"12GB">;
  /** NVIDIA RTX 4070 Ti Super (Ada Lovelace; 16GB). */
  readonly RTX_4070_Ti_Super: AcceleratorFactory<"16GB">;
  /** NVIDIA RTX 4080 (Ada Lovelace; 16GB). */
  readonly RTX_4080: AcceleratorFactory<"16GB">;
  /** NVIDIA RTX 4080 Super (Ada Lovelace; 16GB). */
  readonly RTX_4080_Super: AcceleratorFactory<"16GB">;
  /** NVIDIA RTX 4090 (Ada Lovelace; 24GB). */
  readonly RTX_4090: AcceleratorFactory<"24GB">;
  /** NVIDIA RTX 4090D (Ada Lovelace; 24GB). */
  readonly RTX_4090D: AcceleratorFactory<"24GB">;
  /** NVIDIA RTX 5060 (Blackwell; 8GB). */
  readonly RTX_5060: AcceleratorFactory<"8GB">;
  /** NVIDIA RTX 5060 Ti (Blackwell; 16GB or 8GB). */
  readonly RTX_5060_Ti: AcceleratorFactory<"16GB" | "8GB">;
  /** NVIDIA RTX 5070 (Blackwell; 12GB). */
  readonly RTX_5070: AcceleratorFactory<"12GB">;
  /** NVIDIA RTX 5070 Ti (Blackwell; 16GB). */
  readonly RTX_5070_Ti: AcceleratorFactory<"16GB">;
  /** NVIDIA RTX 5080 (Blackwell; 16GB). */
  readonly RTX_5080: AcceleratorFactory<"16GB">;
  /** NVIDIA RTX 5090 (Blackwell; 32GB). */
  readonly RTX_5090: AcceleratorFactory<"32GB">;
  /** NVIDIA CMP 50HX (Turing; 10GB). */
  readonly CMP_50HX: AcceleratorFactory<"10GB">;
  /** NVIDIA Quadro P2000 (Pascal; 5GB). */
  readonly Quadro_P2000: AcceleratorFactory<"5GB">;
  /** NVIDIA Quadro P4000 (Pascal; 8GB). */
  readonly Quadro_P4000: AcceleratorFactory<"8GB">;
  /** NVIDIA Titan V (Volta; 12GB). */
  readonly Titan_V: AcceleratorFactory<"12GB">;
  /** NVIDIA Quadro RTX 4000 (Turing; 8GB). */
  readonly Quadro_RTX_4000: AcceleratorFactory<"8GB">;
  /** NVIDIA Quadro RTX 5000 (Turing; 16GB). */
  readonly Quadro_RTX_5000: AcceleratorFactory<"16GB">;
  /** NVIDIA Quadro RTX 6000 (Turing; 24GB). */
  readonly Quadro_RTX_6000: AcceleratorFactory<"24GB">;
  /** NVIDIA Quadro RTX 8000 (Turing; 48GB). */
  readonly Quadro_RTX_8000: AcceleratorFactory<"48GB">;
  /** NVIDIA RTX A2000 (Ampere; 12GB or 6GB). */
  readonly RTX_A2000: AcceleratorFactory<"12GB" | "6GB">;
  /** NVIDIA RTX A4000 (Ampere; 16GB). */
  readonly RTX_A4000: AcceleratorFactory<"16GB">;
  /** NVIDIA RTX A4500 (Ampere; 20GB). */
  readonly RTX_A4500: AcceleratorFactory<"20GB">;
  /** NVIDIA RTX A5000 (Ampere; 24GB). */
  readonly RTX_A5000: AcceleratorFactory<"24GB">;
  /** NVIDIA RTX A6000 (Ampere; 48GB). */
  readonly RTX_A6000: AcceleratorFactory<"48GB">;
  /** NVIDIA RTX 2000 Ada (Ada Lovelace; 16GB). */
  readonly RTX_2000_Ada: AcceleratorFactory<"16GB">;
  /** NVIDIA RTX 4000 Ada (Ada Lovelace; 20GB). */
  readonly RTX_4000_Ada: AcceleratorFactory<"20GB">;
  /** NVIDIA RTX 4500 Ada (Ada Lovelace; 24GB). */
  readonly RTX_4500_Ada: AcceleratorFactory<"24GB">;
  /** NVIDIA RTX 5000 Ada (Ada Lovelace; 32GB). */
  readonly RTX_5000_Ada: AcceleratorFactory<"32GB">;
  /** NVIDIA RTX 5880 Ada (Ada Lovelace; 48GB). */
  readonly RTX_5880_Ada: AcceleratorFactory<"48GB">;
  /** NVIDIA RTX 6000 Ada (Ada Lovelace; 48GB). */
  readonly RTX_6000_Ada: AcceleratorFactory<"48GB">;
  /** NVIDIA RTX PRO 4000 (Blackwell; 24GB). */
  readonly RTX_PRO_4000: AcceleratorFactory<"24GB">;
  /** NVIDIA RTX PRO 4500 (Blackwell; 32GB). */
  readonly RTX_PRO_4500: AcceleratorFactory<"32GB">;
  /** NVIDIA RTX PRO 5000 (Blackwell; 48GB). */
  readonly RTX_PRO_5000: AcceleratorFactory<"48GB">;
  /** NVIDIA RTX PRO 6000 (Blackwell; 96GB). */
  readonly RTX_PRO_6000: AcceleratorFactory<"96GB">;
  /** AMD MI25 (GCN; 16GB). */
  readonly MI25: AcceleratorFactory<"16GB">;
  /** AMD MI50 (CDNA; 16GB or 32GB). */
  readonly MI50: AcceleratorFactory<"16GB" | "32GB">;
  /** AMD MI100 (CDNA; 32GB). */
  readonly MI100: AcceleratorFactory<"32GB">;
  /** AMD MI210 (CDNA2; 64GB). */
  readonly MI210: AcceleratorFactory<"64GB">;
  /** AMD MI250 (CDNA2; 128GB). */
  readonly MI250: AcceleratorFactory<"128GB">;
  /** AMD MI250X (CDNA2; 128GB). */
  readonly MI250X: AcceleratorFactory<"128GB">;
  /** AMD MI300A (CDNA3; 128GB). */
  readonly MI300A: AcceleratorFactory<"128GB">;
  /** AMD MI300X (CDNA3; 192GB). */
  readonly MI300X: AcceleratorFactory<"192GB">;
  /** AMD MI325X (CDNA3; 256GB). */
  readonly MI325X: AcceleratorFactory<"256GB">;
  /** AMD MI355X (CDNA4; 288GB). */
  readonly MI355X: AcceleratorFactory<"288GB">;
  /** AMD Radeon Pro V520 (RDNA; 8GB). */
  readonly Radeon_Pro_V520: AcceleratorFactory<"8GB">;
  /** AMD Radeon Pro V710 (RDNA3; 28GB). */
  readonly Radeon_Pro_V710: AcceleratorFactory<"28GB">;
  /** AWS Trainium1 (Trainium; 32GB). */
  readonly Trainium1: AcceleratorFactory<"32GB">;
  /** AWS Trainium2 (Trainium; 96GB). */
  readonly Trainium2: AcceleratorFactory<"96GB">;
  /** AWS Trainium3 (Trainium; 144GB). */
  readonly Trainium3: AcceleratorFactory<"144GB">;
  /** AWS Inferentia1 (Inferentia; 8GB). */
  readonly Inferentia1: AcceleratorFactory<"8GB">;
  /** AWS Inferentia2 (Inferentia; 32GB). */
  readonly Inferentia2: AcceleratorFactory<"32GB">;
  /** Intel Gaudi (Gaudi; 32GB). */
  readonly Gaudi: AcceleratorFactory<"32GB">;
  /** Intel Gaudi2 (Gaudi; 96GB). */
  readonly Gaudi2: AcceleratorFactory<"96GB">;
  /** Intel Gaudi3 (Gaudi; 128GB). */
  readonly Gaudi3: AcceleratorFactory<"128GB">;
  /** Google TPUv2 (TPU; 16GB). */
  readonly TPUv2: AcceleratorFactory<"16GB">;
  /** Google TPUv3 (TPU; 32GB). */
  readonly TPUv3: AcceleratorFactory<"32GB">;
  /** Google TPUv4 (TPU; 32GB). */
  readonly TPUv4: AcceleratorFactory<"32GB">;
  /** Google TPUv5e (TPU; 16GB). */
  readonly TPUv5e: AcceleratorFactory<"16GB">;
  /** Google TPUv5p (TPU; 95GB). */
  readonly TPUv5p: AcceleratorFactory<"95GB">;
  /** Google TPUv6e (TPU; 32GB). */
  readonly TPUv6e: AcceleratorFactory<"32GB">;
}

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
