/**
 * On-demand prices of EC2 instance types, from a dated table kept in the
 * repository (`prices.json`), so that offers need no Price List access and
 * work offline. `deno task aws:prices` refreshes the table from the Price
 * List API (`refresh_prices.ts`).
 *
 * @module
 */
import table from "./prices.json" with { type: "json" };

/** The table's shape. */
export interface PriceTable {
  /** Where the prices come from. */
  source: string;
  /** The day they were taken, `YYYY-MM-DD`. */
  asOf: string;
  /** Prices in USD per hour, by region, then instance type. */
  regions: Record<string, Record<string, number>>;
}

/** The table in use. */
export const PRICES: PriceTable = table as PriceTable;

/** The region whose prices stand in for a region missing from the table. */
export const FALLBACK_REGION = "us-east-1";

/**
 * The on-demand price of an instance type.
 *
 * @param region The region.
 * @param instanceType The instance type, e.g. `"g4dn.xlarge"`.
 * @returns USD per hour and whether it is an estimate (another region's
 *   price), or `undefined` when the table has no price for the type.
 *
 * @example
 * ```ts
 * import { onDemandPrice } from "./prices.ts";
 *
 * console.log(onDemandPrice("us-east-1", "t3.medium")?.price); // 0.0416
 * ```
 */
export function onDemandPrice(
  region: string,
  instanceType: string,
): { price: number; estimated: boolean } | undefined {
  const own = PRICES.regions[region]?.[instanceType];
  if (own !== undefined) return { price: own, estimated: false };
  const fallback = PRICES.regions[FALLBACK_REGION]?.[instanceType];
  return fallback === undefined
    ? undefined
    : { price: fallback, estimated: true };
}
