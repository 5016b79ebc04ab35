/**
 * Vast.ai offers: the catalog's accelerators under Vast.ai's GPU names, the
 * search filters a pool's wishes become (GPU, count, memory, reliability,
 * verified, CUDA version, vCPUs, RAM, disk, architecture, price), and the
 * offers ranked for the allocation.
 *
 * @module
 */
import {
  type Accelerator,
  describeAccelerator,
} from "../../src/accelerators.ts";
import { ConfigError, NoOffersError } from "../../src/errors.ts";
import type { ClusterSpec, Offer } from "../../src/provider.ts";
import type { HttpClient } from "../_http.ts";
import { searchSchema, type VastApiOffer } from "./api.ts";
import type { ResolvedVastAIOptions } from "./config.ts";
import { priceFor } from "../../src/spec.ts";

/** A Vast.ai offer: one machine's GPUs, rentable on demand or by bid. */
export interface VastOffer extends Offer {
  /** The provider. */
  provider: "vastai";
  /** The offer's (ask's) id, for `PUT /asks/{id}/`. */
  offerId: number;
  /** Vast.ai's name of the GPU, e.g. `"RTX 4090"`. */
  gpuName: string;
  /** GPUs per machine. */
  gpuCount: number;
  /** The machine's id. */
  machineId?: number;
  /** The least bid of an interruptible instance, in dollars per hour. */
  minBid?: number;
  /** The machine's reliability score, 0 to 1. */
  reliability?: number;
  /** The highest CUDA version its driver supports. */
  cudaVersion?: number;
}

/** Catalog names whose Vast.ai names differ; the rest are the same. */
const VAST_NAMES: Record<string, string[]> = {
  K80: ["Tesla K80"],
  M60: ["Tesla M60"],
  P4: ["Tesla P4"],
  P40: ["Tesla P40"],
  P100: ["Tesla P100"],
  V100: ["Tesla V100"],
  T4: ["Tesla T4"],
  A100: ["A100 SXM4", "A100 PCIE", "A100X"],
  A800: ["A800 PCIE"],
  H100: ["H100 SXM", "H100 PCIE", "H100 NVL"],
  H200: ["H200", "H200 NVL"],
  GH200: ["GH200 SXM"],
  "Quadro RTX 4000": ["Q RTX 4000"],
  "Quadro RTX 5000": ["Q RTX 5000"],
  "Quadro RTX 6000": ["Q RTX 6000"],
  "Quadro RTX 8000": ["Q RTX 8000"],
  "RTX 2000 Ada": ["RTX 2000Ada"],
  "RTX 4000 Ada": ["RTX 4000Ada"],
  "RTX 4500 Ada": ["RTX 4500Ada"],
  "RTX 5000 Ada": ["RTX 5000Ada"],
  "RTX 5880 Ada": ["RTX 5880Ada"],
  "RTX 6000 Ada": ["RTX 6000Ada"],
  "RTX PRO 6000": ["RTX PRO 6000 WS", "RTX PRO 6000 S"],
};

/** The catalog's name of each Vast.ai name that differs. */
const CATALOG_NAMES: Record<string, string> = Object.fromEntries(
  Object.entries(VAST_NAMES).flatMap(([catalog, names]) =>
    names.map((name) => [name, catalog])
  ),
);

/** Makers whose devices Vast.ai does not rent out. */
const NOT_ON_VAST = new Set(["AWS", "Google", "Intel"]);

/**
 * Vast.ai's names of an accelerator, narrowed by its form factor.
 *
 * @param accelerator The catalog accelerator.
 * @returns The names to search for; empty when Vast.ai has no such device.
 *
 * @example
 * ```ts
 * import { accelerators } from "../../src/accelerators.ts";
 * import { vastGpuNames } from "./offers.ts";
 *
 * console.log(vastGpuNames(accelerators.T4())); // ["Tesla T4"]
 * ```
 */
export function vastGpuNames(accelerator: Accelerator): string[] {
  if (NOT_ON_VAST.has(accelerator.manufacturer)) return [];
  const names = VAST_NAMES[accelerator.name] ?? [accelerator.name];
  const form = accelerator.formFactor;
  if (!form) return names;
  const tag = form === "PCIe" ? "PCIE" : form;
  const narrowed = names.filter((n) => n.toUpperCase().includes(tag));
  return narrowed.length ? narrowed : names;
}

/** What a pool asks of an offer, kept with the cluster to search again. */
export interface VastQuery {
  /** Vast.ai's GPU names, or none for any GPU. */
  gpuNames?: string[];
  /** GPUs per machine, or none for at least one. */
  gpuCount?: number;
  /** Least memory per GPU, in GB. */
  gpuMemoryGb?: number;
  /** The pool's allocation. */
  allocation: ClusterSpec["allocation"];
  /** The pool's price cap. */
  maxHourlyCost?: number;
  /** Least vCPUs per machine. */
  vcpus?: number;
  /** Least RAM per machine, in GiB. */
  memoryGb?: number;
  /** Disk of each instance, in GB. */
  diskGb: number;
  /** The CPU architecture. */
  architecture?: "x86_64" | "arm64";
  /** A country code the machine's location must end with. */
  region?: string;
}

/** Disk of each instance when the pool names none, in GB. */
export const DEFAULT_DISK_GB = 32;

/**
 * The query of a pool's spec.
 *
 * @throws {ConfigError} For a fractional GPU count.
 * @throws {NoOffersError} When Vast.ai rents no such accelerator.
 */
export function queryOf(spec: ClusterSpec): VastQuery {
  const accelerator = spec.accelerator;
  let gpu: Pick<VastQuery, "gpuNames" | "gpuCount" | "gpuMemoryGb"> = {};
  if (accelerator) {
    if (!Number.isInteger(accelerator.count)) {
      throw new ConfigError(
        `Vast.ai rents whole GPUs: accelerator count ${accelerator.count} must be a whole number`,
      );
    }
    const names = vastGpuNames(accelerator);
    if (names.length === 0) {
      throw new NoOffersError(
        `No instances available on Vast.ai for ${
          describeAccelerator(accelerator)
        }: Vast.ai rents no ${accelerator.name} (${accelerator.manufacturer}); try sky.AWS() or another accelerator.`,
      );
    }
    gpu = {
      gpuNames: names,
      gpuCount: accelerator.count,
      gpuMemoryGb: accelerator.memoryGb,
    };
  }
  return {
    ...gpu,
    allocation: spec.allocation,
    ...(spec.maxHourlyCost !== undefined
      ? { maxHourlyCost: spec.maxHourlyCost }
      : {}),
    ...(spec.vcpus !== undefined ? { vcpus: spec.vcpus } : {}),
    ...(spec.memoryGb !== undefined ? { memoryGb: spec.memoryGb } : {}),
    diskGb: spec.diskGb ?? DEFAULT_DISK_GB,
    ...(spec.architecture ? { architecture: spec.architecture } : {}),
    ...(spec.region ? { region: spec.region } : {}),
  };
}

/** The body of `POST /bundles/` for a query. */
export function searchBody(
  query: VastQuery,
  options: ResolvedVastAIOptions,
): Record<string, unknown> {
  const body: Record<string, unknown> = {
    rentable: { eq: true },
    rented: { eq: false },
    reliability2: { gte: options.minReliability },
    num_gpus: query.gpuCount !== undefined
      ? { eq: query.gpuCount }
      : { gte: 1 },
    disk_space: { gte: query.diskGb },
    type: query.allocation === "spot" ? "bid" : "on-demand",
    order: [["dph_total", "asc"]],
    limit: options.searchLimit,
    allocated_storage: query.diskGb,
  };
  if (options.verified) body.verified = { eq: true };
  if (query.gpuNames) body.gpu_name = { in: query.gpuNames };
  if (query.gpuMemoryGb) {
    // Vast.ai reports usable memory in MB, a little under the nominal size.
    body.gpu_ram = { gte: Math.floor(query.gpuMemoryGb * 1000 * 0.9) };
  }
  if (options.cudaVersion !== undefined) {
    body.cuda_max_good = { gte: options.cudaVersion };
  }
  if (query.vcpus !== undefined) {
    body.cpu_cores_effective = { gte: query.vcpus };
  }
  if (query.memoryGb !== undefined) {
    body.cpu_ram = { gte: Math.floor(query.memoryGb * 1024) };
  }
  if (query.architecture) {
    body.cpu_arch = { eq: query.architecture === "arm64" ? "arm64" : "amd64" };
  }
  if (query.maxHourlyCost !== undefined && query.allocation === "on-demand") {
    body.dph_total = { lte: query.maxHourlyCost };
  }
  return body;
}

function toOffer(o: VastApiOffer): VastOffer {
  const minBid = o.min_bid ?? undefined;
  return {
    provider: "vastai",
    offerId: o.id,
    instanceType: `${o.num_gpus}x ${o.gpu_name}`,
    gpuName: o.gpu_name,
    gpuCount: o.num_gpus,
    ...(o.geolocation ? { region: o.geolocation } : {}),
    ...(o.cpu_cores_effective != null
      ? { vcpus: Math.floor(o.cpu_cores_effective) }
      : {}),
    ...(o.cpu_ram != null
      ? { memoryGb: Math.round((o.cpu_ram / 1024) * 10) / 10 }
      : {}),
    onDemandPrice: o.dph_total,
    ...(minBid !== undefined ? { spotPrice: minBid, minBid } : {}),
    accelerator: {
      name: CATALOG_NAMES[o.gpu_name] ?? o.gpu_name,
      count: o.num_gpus,
      ...(o.gpu_ram != null ? { memoryGb: Math.round(o.gpu_ram / 1024) } : {}),
    },
    architecture: o.cpu_arch === "arm64" ? "arm64" : "x86_64",
    ...(o.machine_id != null ? { machineId: o.machine_id } : {}),
    ...(o.reliability2 ?? o.reliability) != null
      ? { reliability: (o.reliability2 ?? o.reliability)! }
      : {},
    ...(o.cuda_max_good != null ? { cudaVersion: o.cuda_max_good } : {}),
  };
}

/**
 * Searches the marketplace and ranks what fits for the allocation.
 *
 * @returns The offers, cheapest for the allocation first (possibly none).
 */
export async function searchOffers(
  api: HttpClient,
  query: VastQuery,
  options: ResolvedVastAIOptions,
): Promise<VastOffer[]> {
  // vast-cli `vast.py` `search__offers`: POST /bundles/ with the query's
  // `{ field: { op: value } }` filters, `type`, `order` and `limit`.
  const { offers } = await api.request("/bundles/", {
    method: "POST",
    body: searchBody(query, options),
    schema: searchSchema,
  });
  const cap = query.maxHourlyCost;
  return offers.map(toOffer)
    .filter((o) =>
      !query.region ||
      (o.region ?? "").toUpperCase().endsWith(query.region.toUpperCase())
    )
    .map((o) => ({ offer: o, price: priceFor(o, query.allocation) }))
    .filter((r) =>
      r.price !== undefined && (cap === undefined || r.price <= cap)
    )
    .sort((a, b) =>
      a.price! - b.price! || (b.offer.reliability ?? 0) -
        (a.offer.reliability ?? 0)
    )
    .map((r) => r.offer);
}

/** A short description of what was searched, for messages. */
export function describeQuery(
  query: VastQuery,
  options: ResolvedVastAIOptions,
): string {
  const parts = [
    query.gpuNames
      ? `${query.gpuCount}x ${query.gpuNames.join(" or ")}`
      : "any GPU",
    `reliability ≥ ${options.minReliability}`,
    options.verified ? "verified" : "verified or not",
  ];
  if (options.cudaVersion !== undefined) {
    parts.push(`CUDA ≥ ${options.cudaVersion}`);
  }
  if (query.maxHourlyCost !== undefined) {
    parts.push(`≤ $${query.maxHourlyCost.toFixed(4)}/h`);
  }
  if (query.region) parts.push(`in ${query.region}`);
  return parts.join(", ");
}

/** What to try when nothing fits. */
export function noOffersHint(query: VastQuery): string {
  const hints = [
    "another accelerator",
    "a lower minReliability or verified: false in sky.VastAI()",
  ];
  if (query.maxHourlyCost !== undefined) hints.push("a higher maxHourlyCost");
  if (query.allocation === "spot") {
    hints.push("allocation 'spot-if-available'");
  }
  return `Try ${hints.join(", ")}.`;
}
