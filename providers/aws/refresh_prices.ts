/**
 * Refreshes the on-demand price table (`prices.json`) from the AWS Price
 * List API, for the instance families the provider uses. Needs credentials
 * allowed `pricing:GetProducts`.
 *
 * ```sh
 * deno task aws:prices                                   # default regions
 * deno task aws:prices --regions us-east-1,eu-west-1     # some regions
 * ```
 *
 * Options: `--regions a,b,c`, `--out path` (default: `prices.json` beside
 * this file), `--endpoint URL` (a Price List endpoint, for tests).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { CPU_FAMILIES, EC2_FAMILIES, familyOf } from "./instance_types.ts";
import type { PriceTable } from "./prices.ts";

const DEFAULT_REGIONS = [
  "us-east-1",
  "us-east-2",
  "us-west-2",
  "eu-west-1",
  "eu-central-1",
  "ap-northeast-1",
  "ap-southeast-1",
];

interface PriceItem {
  product?: { attributes?: { instanceType?: string } };
  terms?: {
    OnDemand?: Record<
      string,
      {
        priceDimensions?: Record<
          string,
          { unit?: string; pricePerUnit?: { USD?: string } }
        >;
      }
    >;
  };
}

/**
 * Reads the on-demand Linux prices of one region.
 *
 * @param send Sends a `GetProducts` command.
 * @param region The region code.
 * @param families The instance families to keep.
 * @returns Instance type → USD per hour.
 */
export async function regionPrices(
  send: (
    input: Record<string, unknown>,
  ) => Promise<{ PriceList?: (string | unknown)[]; NextToken?: string }>,
  region: string,
  families: Set<string>,
): Promise<Record<string, number>> {
  const prices: Record<string, number> = {};
  let token: string | undefined;
  do {
    const out = await send({
      ServiceCode: "AmazonEC2",
      Filters: [
        ["regionCode", region],
        ["operatingSystem", "Linux"],
        ["tenancy", "Shared"],
        ["preInstalledSw", "NA"],
        ["capacitystatus", "Used"],
      ].map(([Field, Value]) => ({ Type: "TERM_MATCH", Field, Value })),
      FormatVersion: "aws_v1",
      MaxResults: 100,
      NextToken: token,
    });
    for (const raw of out.PriceList ?? []) {
      const item = (typeof raw === "string" || raw instanceof String
        ? JSON.parse(String(raw))
        : raw) as PriceItem;
      const type = item.product?.attributes?.instanceType;
      if (!type || !families.has(familyOf(type))) {
        continue;
      }
      for (const term of Object.values(item.terms?.OnDemand ?? {})) {
        for (const dimension of Object.values(term.priceDimensions ?? {})) {
          const usd = Number(dimension.pricePerUnit?.USD);
          if (dimension.unit === "Hrs" && usd > 0) {
            prices[type] = usd;
          }
        }
      }
    }
    token = out.NextToken || undefined;
  } while (token);
  return Object.fromEntries(
    Object.entries(prices).sort(([a], [b]) => a.localeCompare(b)),
  );
}

if (import.meta.main) {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      regions: { type: "string" },
      out: { type: "string" },
      endpoint: { type: "string" },
    },
  });
  const regions = values.regions?.split(",").map((r) =>
    r.trim()
  ).filter(Boolean) ?? DEFAULT_REGIONS;
  const out = values.out ?? new URL("./prices.json", import.meta.url).pathname;
  const families = new Set([
    ...Object.values(EC2_FAMILIES).flat(),
    ...Object.values(CPU_FAMILIES).flat(),
  ]);
  const { PricingClient, GetProductsCommand } = await import(
    "npm:@aws-sdk/client-pricing@3.1133.0"
  );
  // The Price List API lives in us-east-1 (and a few others), whatever region is priced.
  const client = new PricingClient({
    region: "us-east-1",
    ...(values.endpoint ? { endpoint: values.endpoint } : {}),
  });
  const table: PriceTable = {
    source:
      "On-demand prices, Linux, shared tenancy, USD per hour, by region, from the AWS Price List API " +
      "(deno task aws:prices). Regions missing here use us-east-1's prices as an estimate.",
    asOf: new Date().toISOString().slice(0, 10),
    regions: {},
  };
  for (const region of regions) {
    table.regions[region] = await regionPrices(
      (input) => client.send(new GetProductsCommand(input as never)),
      region,
      families,
    );
    console.error(
      `${region}: ${Object.keys(table.regions[region]).length} instance types`,
    );
  }
  await Deno.writeTextFile(out, JSON.stringify(table, null, 2) + "\n");
  console.error(`Wrote ${out}`);
}
