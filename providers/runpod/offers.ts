/**
 * RunPod's offers: the GPU types that fit the pool's accelerator, with
 * their secure/community and spot/on-demand prices per pod, ranked
 * cheapest first for the allocation.
 *
 * @module
 */
import { ConfigError } from "../../src/errors.ts";
import type { ClusterSpec, Offer } from "../../src/provider.ts";
import {
  DATA_CENTERS,
  dataCentersSchema,
  GPU_TYPES,
  gpuTypeSchema,
  type RunPodApi,
} from "./api.ts";
import type { ResolvedRunPodOptions } from "./config.ts";
import { catalogNameOf, RUNPOD_GPU_TYPES, runpodGpuIds } from "./gpu_types.ts";
import { noOffersError, rankPriced } from "../_offers.ts";

/** A RunPod offer: a GPU type and count, with its prices per machine. */
export interface RunPodOffer extends Offer {
  /** The provider. */
  provider: "runpod";
  /** RunPod's GPU type id, e.g. `"NVIDIA GeForce RTX 4090"`. */
  instanceType: string;
  /** GPUs per pod. */
  gpuCount: number;
  /** The lowest acceptable spot bid per GPU, when spot is offered. */
  minimumBidPerGpu?: number;
}

/** The offers that fit the spec, best first. */
export async function findOffers(
  api: RunPodApi,
  options: ResolvedRunPodOptions,
  spec: ClusterSpec,
): Promise<RunPodOffer[]> {
  const accelerator = spec.accelerator;
  if (!accelerator) {
    throw new ConfigError(
      "sky.RunPod() runs GPU pods: pass the pool an accelerator, e.g. " +
        'accelerator: sky.accelerators.RTX_4090() (or "A100:2"), or use another provider for CPU-only pools',
    );
  }
  const noOffers = noOffersError(spec, {
    cloud: "RunPod",
    alternatives:
      "another accelerator or cloud type (sky.RunPod({ cloudType })), another provider",
  });
  if (!Number.isInteger(accelerator.count) || accelerator.count < 1) {
    throw new ConfigError(
      `sky.RunPod() rents whole GPUs: the accelerator's count must be a positive integer, got ${accelerator.count}`,
    );
  }
  if (spec.architecture === "arm64") {
    throw noOffers("RunPod's GPU pods are x86_64 machines");
  }
  const ids = runpodGpuIds(accelerator);
  if (ids.length === 0) {
    throw noOffers(
      RUNPOD_GPU_TYPES[accelerator.name]
        ? `RunPod has ${accelerator.name} only as ${
          RUNPOD_GPU_TYPES[accelerator.name].map((g) =>
            `${g.memoryGb}GB${g.formFactor ? ` ${g.formFactor}` : ""}`
          ).join(", ")
        }`
        : `RunPod has no GPU type for ${accelerator.name}`,
    );
  }
  const count = accelerator.count;
  if (options.dataCenterId) {
    // runpodctl `internal/api/gpu.go` `ListDataCenters`: the ids RunPod has.
    const centers = await api.run(
      "dataCenters",
      DATA_CENTERS,
      {},
      dataCentersSchema,
    );
    const ids = (centers ?? []).map((c) => c.id);
    if (ids.length > 0 && !ids.includes(options.dataCenterId)) {
      throw new ConfigError(
        `sky.RunPod({ dataCenterId: "${options.dataCenterId}" }): RunPod lists no such data center; it lists ${
          ids.join(", ")
        }`,
      );
    }
  }
  const types = await api.run(
    "gpuTypes",
    GPU_TYPES,
    {
      lowestPriceInput: {
        gpuCount: count,
        ...(spec.vcpus ? { minVcpuCount: spec.vcpus } : {}),
        ...(spec.memoryGb ? { minMemoryInGb: spec.memoryGb } : {}),
        ...(options.cloudType === "ALL"
          ? {}
          : { secureCloud: options.cloudType === "SECURE" }),
        ...(options.dataCenterId ? { dataCenterId: options.dataCenterId } : {}),
      },
    },
    gpuTypeSchema.array(),
  );
  const rejected: string[] = [];
  const offers: RunPodOffer[] = [];
  for (const wantedId of ids) {
    const type = types.find((t) => t.id === wantedId.id);
    if (!type) {
      rejected.push(`${wantedId.id} is not listed`);
      continue;
    }
    if (type.maxGpuCount != null && type.maxGpuCount < count) {
      rejected.push(`${type.id} comes at most ${type.maxGpuCount} per pod`);
      continue;
    }
    const price = type.lowestPrice;
    const onDemand = price?.uninterruptablePrice ?? undefined;
    const bid = price?.minimumBidPrice ?? undefined;
    if (!price?.stockStatus || (onDemand === undefined && bid === undefined)) {
      rejected.push(`${type.id} is out of stock`);
      continue;
    }
    const catalog = catalogNameOf(type.id) ?? accelerator.name;
    offers.push({
      provider: "runpod",
      instanceType: type.id,
      ...(options.dataCenterId ? { region: options.dataCenterId } : {}),
      ...(price.minVcpu ? { vcpus: price.minVcpu } : {}),
      ...(price.minMemory ? { memoryGb: price.minMemory } : {}),
      ...(bid !== undefined
        ? {
          spotPrice: round((options.bidPerGpu ?? bid) * count),
          minimumBidPerGpu: bid,
        }
        : {}),
      ...(onDemand !== undefined
        ? { onDemandPrice: round(onDemand * count) }
        : {}),
      accelerator: {
        name: catalog,
        count,
        memoryGb: type.memoryInGb ?? wantedId.memoryGb,
      },
      architecture: "x86_64",
      gpuCount: count,
    });
  }
  if (offers.length === 0) {
    throw noOffers(rejected.join("; ") || "nothing listed");
  }
  return rankPriced(offers, spec, noOffers);
}

function round(n: number): number {
  return Math.round(n * 10_000) / 10_000;
}
