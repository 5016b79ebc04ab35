/**
 * EC2 offers: instance types that fit the pool's wishes (accelerator, count,
 * vCPUs, memory, architecture), priced with the current spot price per
 * availability zone (`DescribeSpotPriceHistory`) and the on-demand price
 * table, filtered by `maxHourlyCost` and ranked for the allocation.
 *
 * @module
 */
import type { ClusterSpec } from "../../src/provider.ts";
import type { AwsClients } from "./api.ts";
import type { AwsOffer, ResolvedAwsOptions } from "./config.ts";
import {
  CPU_FAMILIES,
  EC2_FAMILIES,
  familiesFor,
  sameModel,
} from "./instance_types.ts";
import { onDemandPrice } from "./prices.ts";
import { priceFor } from "../../src/spec.ts";
import { minimumSize, noOffersError, rankWithinCap } from "../_offers.ts";

export type { AwsOffer };

/** How far EC2's reported device memory may be from the catalog's. */
const MEMORY_TOLERANCE = 0.15;

interface TypeInfo {
  InstanceType?: string;
  VCpuInfo?: { DefaultVCpus?: number };
  MemoryInfo?: { SizeInMiB?: number };
  ProcessorInfo?: { SupportedArchitectures?: string[] };
  SupportedUsageClasses?: string[];
  GpuInfo?: {
    Gpus?: {
      Name?: string;
      Count?: number;
      MemoryInfo?: { SizeInMiB?: number };
    }[];
  };
  NeuronInfo?: {
    NeuronDevices?: {
      Name?: string;
      Count?: number;
      MemoryInfo?: { SizeInMiB?: number };
    }[];
  };
}

function devicesOf(
  info: TypeInfo,
): { name: string; count: number; memoryGb?: number } | undefined {
  const gpu = info.GpuInfo?.Gpus?.[0];
  const device = gpu ?? info.NeuronInfo?.NeuronDevices?.[0];
  if (!device?.Name) return undefined;
  const mib = device.MemoryInfo?.SizeInMiB;
  return {
    name: device.Name,
    count: device.Count ?? 1,
    ...(mib ? { memoryGb: Math.round((mib / 1024) * 10) / 10 } : {}),
  };
}

async function describeTypes(
  clients: AwsClients,
  families: readonly string[],
  exact?: string,
) {
  const { DescribeInstanceTypesCommand } = clients.sdk;
  const types: TypeInfo[] = [];
  let token: string | undefined;
  do {
    const out = await clients.send<
      { InstanceTypes?: TypeInfo[]; NextToken?: string }
    >(
      new DescribeInstanceTypesCommand({
        ...(exact ? { InstanceTypes: [exact as never] } : {
          Filters: [{
            Name: "instance-type",
            Values: families.map((f) => `${f}.*`),
          }],
        }),
        MaxResults: exact ? undefined : 100,
        NextToken: token,
      }),
      "DescribeInstanceTypes",
    );
    types.push(...(out.InstanceTypes ?? []));
    token = out.NextToken || undefined;
  } while (token);
  return types;
}

/**
 * The current spot price of each type in each availability zone.
 *
 * @param clients The region's clients.
 * @param types Instance types.
 * @returns Type → zone → USD per hour.
 */
export async function spotPrices(
  clients: AwsClients,
  types: string[],
): Promise<Map<string, Map<string, number>>> {
  const { DescribeSpotPriceHistoryCommand } = clients.sdk;
  const prices = new Map<string, Map<string, { price: number; at: number }>>();
  for (let i = 0; i < types.length; i += 50) {
    let token: string | undefined;
    do {
      const out = await clients.send<{
        SpotPriceHistory?: {
          InstanceType?: string;
          AvailabilityZone?: string;
          SpotPrice?: string;
          Timestamp?: Date;
        }[];
        NextToken?: string;
      }>(
        new DescribeSpotPriceHistoryCommand({
          InstanceTypes: types.slice(i, i + 50) as never[],
          ProductDescriptions: ["Linux/UNIX"],
          StartTime: new Date(),
          NextToken: token,
        }),
        "DescribeSpotPriceHistory",
      );
      for (const item of out.SpotPriceHistory ?? []) {
        const price = Number(item.SpotPrice);
        if (
          !item.InstanceType || !item.AvailabilityZone ||
          !Number.isFinite(price)
        ) continue;
        const zones = prices.get(item.InstanceType) ?? new Map();
        prices.set(item.InstanceType, zones);
        const at = item.Timestamp ? new Date(item.Timestamp).getTime() : 0;
        const known = zones.get(item.AvailabilityZone);
        if (!known || known.at < at) {
          zones.set(item.AvailabilityZone, { price, at });
        }
      }
      token = out.NextToken || undefined;
    } while (token);
  }
  return new Map(
    [...prices].map((
      [type, zones],
    ) => [type, new Map([...zones].map(([z, p]) => [z, p.price]))]),
  );
}

/**
 * The offers of a region for a spec, best first for its allocation.
 *
 * @param clients The region's clients.
 * @param spec What the pool asks for.
 * @param options The provider's options (`instanceType`).
 * @returns The offers, never empty.
 * @throws {NoOffersError} "No instances available …", naming the region, what
 *   was asked and why nothing fits, with the hint to try another region or
 *   allocation.
 */
export async function findOffers(
  clients: AwsClients,
  spec: ClusterSpec,
  options: ResolvedAwsOptions,
): Promise<AwsOffer[]> {
  const region = clients.region;
  const accelerator = spec.accelerator;
  const architecture = spec.architecture ??
    (accelerator ? undefined : "x86_64");
  const noOffers = noOffersError(spec, {
    cloud: `AWS in ${region}`,
    otherwise: options.instanceType ?? `${architecture} machine`,
    detail: options.instanceType && accelerator
      ? ` (instance type ${options.instanceType})`
      : "",
    alternatives:
      "another region (sky.AWS({ region }) or the pool's 'region'), another accelerator or instance type",
  });
  const families = options.instanceType
    ? []
    : accelerator
    ? familiesFor(accelerator)
    : CPU_FAMILIES[architecture ?? "x86_64"];
  if (!options.instanceType && families.length === 0) {
    const models = [
      ...new Set(Object.keys(EC2_FAMILIES).map((k) => k.split(":")[0])),
    ];
    throw noOffers(
      `EC2 has no instance type with ${accelerator!.name} (it has ${
        models.join(", ")
      })`,
    );
  }
  const types = await describeTypes(clients, families, options.instanceType);
  if (types.length === 0) {
    throw noOffers(
      options.instanceType
        ? `EC2 lists no instance type ${options.instanceType} in ${region}`
        : `EC2 lists no ${families.join("/")} instance type in ${region}`,
    );
  }
  const least = minimumSize(spec);
  const rejected: string[] = [];
  const fitting = types.filter((info) => {
    const type = info.InstanceType ?? "?";
    const archs = info.ProcessorInfo?.SupportedArchitectures ?? [];
    if (architecture && !archs.includes(architecture)) {
      rejected.push(`${type} is ${archs.join("/")}`);
      return false;
    }
    const vcpus = info.VCpuInfo?.DefaultVCpus ?? 0;
    const memoryGb = (info.MemoryInfo?.SizeInMiB ?? 0) / 1024;
    if (vcpus < least.vcpus || memoryGb < least.memoryGb) {
      rejected.push(`${type} has ${vcpus} vCPUs and ${memoryGb} GiB`);
      return false;
    }
    if (accelerator) {
      const devices = devicesOf(info);
      if (!devices || !sameModel(accelerator.name, devices.name)) {
        rejected.push(
          `${type} has ${devices ? devices.name : "no accelerator"}`,
        );
        return false;
      }
      if (devices.count < accelerator.count) {
        rejected.push(`${type} has ${devices.count}x ${devices.name}`);
        return false;
      }
      if (
        devices.memoryGb !== undefined &&
        Math.abs(devices.memoryGb - accelerator.memoryGb) >
          accelerator.memoryGb * MEMORY_TOLERANCE
      ) {
        rejected.push(`${type} has ${devices.memoryGb} GB per device`);
        return false;
      }
    }
    return true;
  });
  if (fitting.length === 0) {
    throw noOffers(
      `none of ${types.length} instance type(s) fits (${
        rejected.slice(0, 4).join("; ")
      })`,
    );
  }
  const spot = await spotPrices(clients, fitting.map((t) => t.InstanceType!));
  const offers: AwsOffer[] = fitting.map((info) => {
    const type = info.InstanceType!;
    const zones = [...(spot.get(type) ?? new Map<string, number>())].sort((
      a,
      b,
    ) => a[1] - b[1]);
    const onDemand = onDemandPrice(region, type);
    const devices = devicesOf(info);
    const archs = info.ProcessorInfo?.SupportedArchitectures ?? [];
    return {
      provider: "aws" as const,
      instanceType: type,
      region,
      vcpus: info.VCpuInfo?.DefaultVCpus,
      memoryGb: (info.MemoryInfo?.SizeInMiB ?? 0) / 1024,
      ...(zones.length > 0 ? { spotPrice: zones[0][1] } : {}),
      ...(onDemand ? { onDemandPrice: onDemand.price } : {}),
      ...(onDemand?.estimated ? { priceEstimated: true } : {}),
      ...(devices ? { accelerator: devices } : {}),
      architecture: archs.includes("arm64") && !archs.includes("x86_64")
        ? "arm64"
        : "x86_64",
      spotZones: zones,
    };
  });
  const priced = offers.map((offer) => ({
    offer,
    price: priceFor(offer, spec.allocation),
  }));
  const usable = priced.filter((p) =>
    spec.allocation !== "spot" || p.offer.spotPrice !== undefined
  );
  if (usable.length === 0) {
    throw noOffers(
      `no ${
        fitting.map((t) => t.InstanceType).join("/")
      } has a spot market in ${region}`,
    );
  }
  return rankWithinCap(usable, spec.maxHourlyCost, noOffers);
}
