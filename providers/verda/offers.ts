/**
 * Verda offers: the instance types (`GET /instance-types`) that carry the
 * accelerator and meet the vCPU and memory wishes, where they can be
 * deployed now (`GET /instance-availability`, spot and on-demand, per
 * location), priced, capped by `maxHourlyCost` and ranked for the
 * allocation.
 *
 * @module
 */
import type { Accelerator } from "../../src/accelerators.ts";
import { ConfigError, ProvisioningError } from "../../src/errors.ts";
import type { ClusterSpec, Offer } from "../../src/provider.ts";
import {
  AvailabilitySchema,
  InstanceTypeSchema,
  list,
  type VerdaApi,
  type VerdaInstanceType,
} from "./api.ts";
import { minimumSize, noOffersError, rankPriced } from "../_offers.ts";

/** A Verda offer, with the locations where each market has it now. */
export interface VerdaOffer extends Offer {
  /** The provider. */
  provider: "verda";
  /** Locations with spot capacity for the type, the preferred first. */
  spotLocations: string[];
  /** Locations with on-demand capacity for the type, the preferred first. */
  onDemandLocations: string[];
}

/**
 * Verda's name of each catalog model it rents: the token of its instance
 * type names (`1H100.80S.30V` is one H100 with 30 vCPUs) and the `model`
 * field of `GET /instance-types`.
 */
export const VERDA_MODELS: Readonly<Record<string, string>> = {
  "V100": "V100",
  "A100": "A100",
  "H100": "H100",
  "H200": "H200",
  "B200": "B200",
  "B300": "B300",
  "L40S": "L40S",
  "RTX A6000": "A6000",
  "RTX 6000 Ada": "RTX6000ADA",
  "RTX PRO 6000": "RTXPRO6000",
};

/** How far Verda's device memory may be from the catalog's. */
const MEMORY_TOLERANCE = 0.15;

const squash = (s: string) => s.toUpperCase().replace(/[^A-Z0-9]/g, "");

/** The model token of an instance type: `"1H100.80S.30V"` → `"H100"`, `"CPU.4V.16G"` → `undefined`. */
export function modelOf(type: VerdaInstanceType): string | undefined {
  if (type.gpus === 0) return undefined;
  if (type.model) return squash(type.model);
  return /^\d+([A-Z0-9]+)/i.exec(type.instance_type)?.[1]?.toUpperCase();
}

/** Whether a Verda type carries a catalog model. */
export function carries(
  type: VerdaInstanceType,
  accelerator: Accelerator,
): boolean {
  const wanted = VERDA_MODELS[accelerator.name];
  return wanted !== undefined && modelOf(type) === squash(wanted);
}

/** Where each type can be deployed now, by market. */
async function availability(
  api: VerdaApi,
  spot: boolean,
): Promise<Map<string, string[]>> {
  const answer = await api.request("/instance-availability", {
    // Verda's Go SDK sends `is_spot` (`pkg/verda/instance_availability.go`),
    // its Python SDK `isSpot` (`verda/instances/_instances.py`,
    // `get_availabilities`): both, so that either spelling the API reads is
    // there.
    query: { is_spot: spot, isSpot: spot },
    schema: AvailabilitySchema,
  });
  const byType = new Map<string, string[]>();
  for (const { location_code, availabilities } of answer) {
    for (const type of availabilities) {
      byType.set(type, [...(byType.get(type) ?? []), location_code]);
    }
  }
  return byType;
}

/** What {@linkcode findOffers} needs of the provider's options. */
export interface OfferOptions {
  /** Only this location, e.g. `"FIN-01"`. */
  location?: string;
  /** Only this instance type. */
  instanceType?: string;
}

/**
 * The offers for a spec, best first for its allocation.
 *
 * @param api The API.
 * @param spec What the pool asks for.
 * @param options The location and instance type the provider is limited to.
 * @returns The offers, never empty.
 * @throws {NoOffersError} "No instances available on Verda …", naming what
 *   was asked, why nothing fits and what to try.
 * @throws {ConfigError} When the accelerator's count is a fraction.
 */
export async function findOffers(
  api: VerdaApi,
  spec: ClusterSpec,
  options: OfferOptions,
): Promise<VerdaOffer[]> {
  const location = spec.region ?? options.location;
  const noOffers = noOffersError(spec, {
    cloud: location ? `Verda in ${location}` : "Verda",
    otherwise: options.instanceType ?? "a CPU machine",
    alternatives:
      "another location (sky.Verda({ location }) or the pool's 'region'), another accelerator or instance type",
  });
  const accelerator = spec.accelerator;
  if (accelerator && !VERDA_MODELS[accelerator.name]) {
    throw noOffers(
      `Verda rents no ${accelerator.name} (it has ${
        Object.keys(VERDA_MODELS).join(", ")
      })`,
    );
  }
  if (accelerator && !Number.isInteger(accelerator.count)) {
    throw new ConfigError(
      `Cannot start pool on Verda: it rents whole GPUs, but the accelerator asks for ${accelerator.count}x ${accelerator.name}; ` +
        `use a whole count such as ${
          Math.max(1, Math.ceil(accelerator.count))
        }`,
    );
  }
  if (spec.architecture === "arm64") {
    throw noOffers("Verda's instance types are x86_64");
  }
  const [types, spot, onDemand] = await Promise.all([
    // The currency the SDKs send (Python SDK
    // `verda/instance_types/_instance_types.py`, `currency: Currency = 'usd'`;
    // Go SDK `pkg/verda/instance_types.go`), so that prices compare with a
    // USD `maxHourlyCost` and budget.
    api.request("/instance-types", {
      query: { currency: "usd" },
      schema: list(InstanceTypeSchema),
    }),
    spec.allocation === "on-demand"
      ? new Map<string, string[]>()
      : availability(api, true),
    spec.allocation === "spot"
      ? new Map<string, string[]>()
      : availability(api, false),
  ]);
  const foreign = types.find((t) =>
    t.currency !== undefined && t.currency.toLowerCase() !== "usd"
  );
  if (foreign) {
    throw new ProvisioningError(
      `Verda priced ${foreign.instance_type} in ${foreign.currency} although ` +
        `USD was asked (GET /instance-types?currency=usd): its prices would not ` +
        `compare with maxHourlyCost and the budget, which are in USD`,
    );
  }
  const least = minimumSize(spec);
  const rejected: string[] = [];
  const fitting = types.filter((t) => {
    const name = t.instance_type;
    if (options.instanceType) return name === options.instanceType;
    const gpus = t.gpus;
    if (!accelerator && gpus > 0) return false;
    if (accelerator) {
      if (!carries(t, accelerator)) return false;
      if (gpus < accelerator.count) {
        rejected.push(`${name} has ${gpus}x ${accelerator.name}`);
        return false;
      }
      const perDevice = t.gpuMemoryGb / gpus;
      if (
        perDevice > 0 &&
        Math.abs(perDevice - accelerator.memoryGb) >
          accelerator.memoryGb * MEMORY_TOLERANCE
      ) {
        rejected.push(`${name} has ${perDevice} GB per device`);
        return false;
      }
    }
    if (
      t.cores < least.vcpus ||
      t.memoryGb < least.memoryGb
    ) {
      rejected.push(
        `${name} has ${t.cores} vCPUs and ${t.memoryGb} GB`,
      );
      return false;
    }
    return true;
  });
  if (fitting.length === 0) {
    throw noOffers(
      options.instanceType
        ? `Verda lists no instance type ${options.instanceType}`
        : rejected.length
        ? `none of the instance types fits (${rejected.slice(0, 4).join("; ")})`
        : `Verda lists no such instance type`,
    );
  }
  const here = (locations: string[] | undefined) =>
    (locations ?? []).filter((l) => !location || l === location);
  const offers: VerdaOffer[] = [];
  for (const t of fitting) {
    const spotLocations = here(spot.get(t.instance_type));
    const onDemandLocations = here(onDemand.get(t.instance_type));
    // A price of 0 or none (`null`, which the SDKs accept) means the
    // market does not sell the type.
    const spotPrice = spotLocations.length && t.spot_price
      ? t.spot_price
      : undefined;
    const onDemandPrice = onDemandLocations.length && t.price_per_hour
      ? t.price_per_hour
      : undefined;
    if (spotPrice === undefined && onDemandPrice === undefined) {
      rejected.push(`${t.instance_type} is sold out`);
      continue;
    }
    const gpus = t.gpus;
    // Where the allocation would deploy first.
    const spotFirst = spotPrice !== undefined &&
      spec.allocation !== "on-demand" &&
      (spec.allocation !== "cheapest" || onDemandPrice === undefined ||
        spotPrice <= onDemandPrice);
    offers.push({
      provider: "verda",
      instanceType: t.instance_type,
      region: (spotFirst ? spotLocations : onDemandLocations)[0] ??
        spotLocations[0],
      vcpus: t.cores,
      memoryGb: t.memoryGb,
      ...(spotPrice !== undefined ? { spotPrice } : {}),
      ...(onDemandPrice !== undefined ? { onDemandPrice } : {}),
      ...(accelerator && gpus > 0
        ? {
          accelerator: {
            name: accelerator.name,
            count: gpus,
            ...(t.gpuMemoryGb ? { memoryGb: t.gpuMemoryGb / gpus } : {}),
          },
        }
        : {}),
      architecture: "x86_64",
      spotLocations,
      onDemandLocations,
    });
  }
  if (offers.length === 0) {
    throw noOffers(
      `nothing is available now (${rejected.slice(-4).join("; ")})`,
    );
  }
  return rankPriced(offers, spec, noOffers);
}
