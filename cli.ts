/**
 * Skyward's command line.
 *
 * ```sh
 * deno run -A jsr:@skyward/skyward/cli offers --accelerator A100 [--provider runpod,vastai] [--max-price 2] [--json]
 * deno run -A jsr:@skyward/skyward/cli providers
 * deno run -A jsr:@skyward/skyward/cli cleanup --provider aws [--region us-east-1] [--cluster sky-…] [--older-than 2h] [--dry-run]
 * deno run -A jsr:@skyward/skyward/cli image build [--dockerfile|--debootstrap] [--dry-run]
 * deno run -A jsr:@skyward/skyward/cli dashboard run.jsonl [--port 8080]
 * deno task cli offers --accelerator H100:8     # from a clone
 * ```
 *
 * - `offers` lists what the clouds offer for an accelerator, cheapest first:
 *   provider, region, accelerator × count, vCPUs, memory, and the spot and
 *   on-demand prices per hour.
 * - `providers` tells which clouds have credentials here, each checked with
 *   one cheap authenticated call.
 * - `cleanup` removes what Skyward pools left at a provider — after a crash,
 *   a `kill -9`, a lost network — found by the `skyward:cluster` tag:
 *   instances first, then security groups and key pairs.
 * - `image` builds the base image of `sky.Container()` (see
 *   `providers/container/image.ts`): `image build`, `image dockerfile`.
 * - `dashboard` serves the live dashboard of a pool from the event log it
 *   writes (`eventLog: "run.jsonl"` on the pool), following the file.
 *
 * @example
 * ```ts ignore
 * import { main } from "./cli.ts";
 *
 * Deno.exit(await main(["offers", "--accelerator", "A100", "--max-price", "2"]));
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { resolveAccelerator } from "./src/accelerators.ts";
import { ConfigError, NoOffersError } from "./src/errors.ts";
import type {
  ClusterSpec,
  Offer,
  Provider,
  ProviderCleanupReport,
} from "./src/provider.ts";
import { priceFor } from "./src/spec.ts";
import { AWS } from "./providers/aws/mod.ts";
import { RunPod } from "./providers/runpod/mod.ts";
import { VastAI } from "./providers/vastai/mod.ts";
import { Verda } from "./providers/verda/mod.ts";

/**
 * The flags of the command line that make a provider, rather than choose
 * what it does; a cloud that takes none refuses them.
 */
export interface CloudFlags {
  /** `--profile`: a profile of ~/.aws/credentials. */
  profile?: string;
  /** `--endpoint`: the API endpoint (EC2-compatible clouds, tests). */
  endpoint?: string;
}

/** A cloud of the command line: makes its provider from the flags. */
export type CloudFactory = (flags: CloudFlags) => Provider<any>;

/** Makes a provider that takes no flags, refusing any given. */
function flagless(name: string, make: () => Provider<any>): CloudFactory {
  return (flags) => {
    for (const flag of Object.keys(flags)) {
      throw new ConfigError(`--${flag} is not supported for ${name}`);
    }
    return make();
  };
}

/** The clouds the command line knows, by the name used in `--provider`. */
export const CLOUDS: Readonly<Record<string, CloudFactory>> = {
  aws: (flags) => AWS(flags),
  runpod: flagless("runpod", () => RunPod()),
  vastai: flagless("vastai", () => VastAI()),
  verda: flagless("verda", () => Verda()),
};

/** The commands `main` runs. */
const COMMANDS = ["offers", "providers", "cleanup", "dashboard", "help"];

const USAGE = () =>
  `Usage: skyward <command> [options]

Commands:
  offers     List machines and prices the clouds offer, cheapest first
  providers  Show which clouds have credentials, checked with one call each
  cleanup    Remove what Skyward pools left at a provider (found by tag)
  image      Build sky.Container()'s base image: image build [--dockerfile|
             --debootstrap], image dockerfile (see: skyward image --help)
  dashboard  Serve the live dashboard of a pool from its event log:
             dashboard <file> [--port PORT] (see: skyward dashboard --help)
  help       Show this help

Options of offers:
  --accelerator NAME   The accelerator, e.g. A100, H100:8, RTX_4090
                       (default: machines without accelerators)
  --provider NAMES     Clouds to ask, comma-separated (default: every cloud
                       with credentials here): ${Object.keys(CLOUDS).join(", ")}
  --max-price USD      Leave out offers whose lower price is above this, per hour
  --region REGION      The region, where the cloud has regions
  --json               Print JSON instead of a table

Options of providers:
  --provider NAMES     Clouds to check (default: all)
  --json               Print JSON instead of a table

Options of cleanup:
  --provider NAME      The provider: aws, runpod, vastai or verda (required)
  --region REGION      AWS: the region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)
  --profile NAME       AWS: a profile of ~/.aws/credentials
  --cluster ID         Only this pool's resources (sky-…)
  --older-than TIME    AWS, Verda: only resources at least this old: 30m, 2h, 1d
  --dry-run            List what would be removed; remove nothing
  --endpoint URL       AWS: the EC2 endpoint (EC2-compatible clouds, tests)
`;

/**
 * Parses a duration such as `90s`, `30m`, `2h` or `1d` into milliseconds.
 *
 * @param text The duration.
 * @returns Milliseconds.
 * @throws {RangeError} When it is not a duration.
 *
 * @example
 * ```ts
 * import { parseDuration } from "./cli.ts";
 *
 * console.log(parseDuration("2h")); // 7200000
 * ```
 */
export function parseDuration(text: string): number {
  const match = /^(\d+(?:\.\d+)?)\s*(ms|s|m|h|d)?$/.exec(text.trim());
  if (!match) {
    throw new RangeError(
      `Invalid duration '${text}': write it as 90s, 30m, 2h or 1d`,
    );
  }
  const unit = {
    ms: 1,
    s: 1_000,
    m: 60_000,
    h: 3_600_000,
    d: 86_400_000,
  }[match[2] ?? "s"]!;
  return Number(match[1]) * unit;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? "" : "s"}`;
}

/**
 * What a provider's cleanup report says, as lines: one that counts each
 * kind (and names where it looked and the clusters), then one per item.
 *
 * @param provider The provider's name.
 * @param report What its `cleanup` returned.
 * @param dryRun Whether nothing was removed.
 * @returns The lines to print.
 *
 * @example
 * ```ts
 * import { describeCleanup } from "./cli.ts";
 *
 * const lines = describeCleanup("aws", {
 *   region: "us-east-1",
 *   clusters: ["sky-1"],
 *   instances: ["i-1"],
 *   keyPairs: [],
 * }, false);
 * console.log(lines[0]); // "Removed at aws in us-east-1: 1 instance, 0 key pairs of sky-1"
 * ```
 */
export function describeCleanup(
  provider: string,
  report: ProviderCleanupReport,
  dryRun: boolean,
): string[] {
  const entries = Object.entries(report);
  const where = entries.flatMap(([, v]) => typeof v === "string" ? [v] : []);
  const clusters = Array.isArray(report.clusters) ? report.clusters : [];
  const lists = entries.flatMap(([kind, items]) =>
    Array.isArray(items) && kind !== "clusters"
      ? [
        [
          kind.replace(/([A-Z])/g, " $1").toLowerCase().replace(/s$/, ""),
          items,
        ] as const,
      ]
      : []
  );
  return [
    `${dryRun ? "Would remove" : "Removed"} at ${provider}${
      where.length ? ` in ${where.join(", ")}` : ""
    }: ${lists.map(([kind, items]) => plural(items.length, kind)).join(", ")}${
      clusters.length ? ` of ${clusters.join(", ")}` : ""
    }`,
    ...lists.flatMap(([kind, items]) =>
      items.map((item) => `  ${kind} ${item}`)
    ),
  ];
}

/** Options of {@linkcode main}. */
export interface MainOptions {
  /**
   * The clouds `offers` and `providers` know, by name.
   * @default {@linkcode CLOUDS}
   */
  clouds?: Readonly<Record<string, CloudFactory>>;
}

/** One row of `offers --json`. */
export interface OfferRow {
  /** The provider's name. */
  provider: string;
  /** The region or location, when the cloud has them. */
  region: string | null;
  /** The cloud's name for the machine. */
  instanceType: string;
  /** The accelerator model, or `null` for none. */
  accelerator: string | null;
  /** How many accelerators. */
  count: number;
  /** vCPUs, when known. */
  vcpus: number | null;
  /** Memory in GiB, when known. */
  memoryGb: number | null;
  /** Spot price in dollars per hour, when offered. */
  spot: number | null;
  /** On-demand price in dollars per hour, when offered. */
  onDemand: number | null;
}

/** One row of `providers --json`. */
export interface ProviderRow {
  /** The provider's name. */
  provider: string;
  /** `"ok"`, `"missing"` (no credentials here) or `"error"` (refused, unreachable). */
  status: "ok" | "missing" | "error";
  /** The account, or what to set or fix. */
  detail: string;
}

function pick(
  names: string | undefined,
  clouds: Readonly<Record<string, CloudFactory>>,
): string[] {
  if (!names) return Object.keys(clouds);
  const wanted = names.split(",").map((n) => n.trim().toLowerCase()).filter(
    Boolean,
  );
  const unknown = wanted.filter((n) => !(n in clouds));
  if (unknown.length) {
    throw new ConfigError(
      `Unknown provider(s) ${unknown.map((n) => `'${n}'`).join(", ")}: ` +
        `choose among ${Object.keys(clouds).join(", ")}`,
    );
  }
  return wanted;
}

/** Whether an error says credentials are missing (not refused). */
function missingCredentials(error: unknown): boolean {
  return error instanceof ConfigError &&
    /\b(set|missing|no credentials|not found)\b/i.test(error.message) &&
    !/refused/i.test(error.message);
}

/**
 * Gathers the offers of several clouds for one accelerator, cheapest first.
 *
 * @param providers The clouds to ask, by name.
 * @param spec What to ask each of them.
 * @param maxPrice Leaves out offers whose lower price is above it.
 * @returns The rows, and why each cloud that could not be asked failed (a
 *   cloud with no offer that fits has no rows and no failure).
 *
 * @example
 * ```ts
 * import * as sky from "./mod.ts";
 * import { gatherOffers } from "./cli.ts";
 *
 * const { rows } = await gatherOffers(
 *   { local: sky.Local() },
 *   { clusterId: "offers", nodes: 1, allocation: "cheapest" },
 * );
 * console.log(rows[0].provider); // "local"
 * ```
 */
export async function gatherOffers(
  providers: Record<string, Provider<any>>,
  spec: ClusterSpec,
  maxPrice?: number,
): Promise<{ rows: OfferRow[]; failures: Record<string, Error> }> {
  const failures: Record<string, Error> = {};
  const rows: OfferRow[] = [];
  await Promise.all(
    Object.entries(providers).map(async ([name, provider]) => {
      let offers: Offer[];
      try {
        offers = await provider.offers(spec);
      } catch (error) {
        // A cloud with nothing that fits has no rows; that is not a failure.
        if (!(error instanceof NoOffersError)) failures[name] = error as Error;
        return;
      }
      for (const offer of offers) {
        const price = priceFor(offer, "cheapest");
        if (maxPrice !== undefined && price !== undefined && price > maxPrice) {
          continue;
        }
        rows.push({
          provider: offer.provider,
          region: offer.region ?? null,
          instanceType: offer.instanceType,
          accelerator: offer.accelerator?.name ?? null,
          count: offer.accelerator?.count ?? 0,
          vcpus: offer.vcpus ?? null,
          memoryGb: offer.memoryGb ?? null,
          spot: offer.spotPrice ?? null,
          onDemand: offer.onDemandPrice ?? null,
        });
      }
    }),
  );
  const cheapest = (r: OfferRow) =>
    Math.min(r.spot ?? Infinity, r.onDemand ?? Infinity);
  rows.sort((a, b) =>
    cheapest(a) - cheapest(b) || a.provider.localeCompare(b.provider) ||
    a.instanceType.localeCompare(b.instanceType)
  );
  return { rows, failures };
}

/**
 * Lays out rows as a plain-text table with a header line; numbers are
 * right-aligned.
 *
 * @param header The column names.
 * @param rows The cells.
 * @returns The table's lines.
 *
 * @example
 * ```ts
 * import { table } from "./cli.ts";
 *
 * console.log(table(["name", "$/h"], [["a", "1.00"], ["bb", "12.50"]]).join("\n"));
 * ```
 */
export function table(header: string[], rows: string[][]): string[] {
  const widths = header.map((h, i) =>
    Math.max(h.length, ...rows.map((r) => r[i].length))
  );
  const numeric = header.map((_, i) =>
    rows.some((r) => /\d/.test(r[i])) &&
    rows.every((r) => /^\$?[\d.,]+( GiB)?$|^—$/.test(r[i]))
  );
  const line = (cells: string[]) =>
    cells.map((c, i) =>
      numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i])
    ).join("  ").trimEnd();
  return [line(header), ...rows.map(line)];
}

const money = (n: number | null) => n === null ? "—" : `$${n.toFixed(2)}`;

async function offersCommand(
  values: Record<string, string | boolean | undefined>,
  clouds: Readonly<Record<string, CloudFactory>>,
): Promise<number> {
  const names = pick(values.provider as string | undefined, clouds);
  const explicit = values.provider !== undefined;
  const maxPrice = values["max-price"] === undefined
    ? undefined
    : Number(values["max-price"]);
  if (maxPrice !== undefined && !(maxPrice > 0)) {
    throw new ConfigError(
      `--max-price must be a positive number of dollars per hour (got '${
        values["max-price"]
      }')`,
    );
  }
  const spec: ClusterSpec = {
    clusterId: "offers",
    nodes: 1,
    allocation: "cheapest",
    accelerator: resolveAccelerator(values.accelerator),
    ...(values.region ? { region: values.region as string } : {}),
  };
  const providers: Record<string, Provider<any>> = {};
  const failures: Record<string, Error> = {};
  for (const name of names) {
    try {
      providers[name] = clouds[name]({});
    } catch (error) {
      failures[name] = error as Error;
    }
  }
  const found = await gatherOffers(providers, spec, maxPrice);
  Object.assign(failures, found.failures);
  const rows = found.rows;
  let failed = false;
  for (const [name, error] of Object.entries(failures)) {
    // Clouds without credentials here are skipped quietly unless asked for.
    if (!explicit && missingCredentials(error)) {
      console.error(`(${name} skipped: ${error.message})`);
      continue;
    }
    failed = true;
    console.error(`${name}: ${error.name}: ${error.message}`);
  }
  if (!failed && Object.keys(failures).length === names.length) {
    console.error(
      "No cloud has credentials here: `skyward providers` tells what to set.",
    );
    return 1;
  }
  if (values.json) {
    console.log(JSON.stringify(rows, null, 2));
  } else if (rows.length === 0) {
    console.log(
      `No offers${values.accelerator ? ` for ${values.accelerator}` : ""}${
        maxPrice !== undefined ? ` at most $${maxPrice}/h` : ""
      }.`,
    );
  } else {
    const lines = table(
      [
        "provider",
        "region",
        "accelerator",
        "instance type",
        "vCPU",
        "memory",
        "spot $/h",
        "on-demand $/h",
      ],
      rows.map((r) => [
        r.provider,
        r.region ?? "—",
        r.accelerator ? `${r.accelerator} × ${r.count}` : "—",
        r.instanceType,
        r.vcpus === null ? "—" : String(r.vcpus),
        r.memoryGb === null ? "—" : `${r.memoryGb} GiB`,
        money(r.spot),
        money(r.onDemand),
      ]),
    );
    for (const line of lines) console.log(line);
  }
  return failed ? 1 : 0;
}

async function providersCommand(
  values: Record<string, string | boolean | undefined>,
  clouds: Readonly<Record<string, CloudFactory>>,
): Promise<number> {
  const names = pick(values.provider as string | undefined, clouds);
  const rows: ProviderRow[] = await Promise.all(names.map(async (name) => {
    try {
      const provider = clouds[name]({});
      if (!provider.checkCredentials) {
        return {
          provider: name,
          status: "ok" as const,
          detail: "nothing to check",
        };
      }
      return {
        provider: name,
        status: "ok" as const,
        detail: await provider.checkCredentials(),
      };
    } catch (error) {
      return {
        provider: name,
        status: missingCredentials(error)
          ? "missing" as const
          : "error" as const,
        detail: (error as Error).message,
      };
    }
  }));
  if (values.json) {
    console.log(JSON.stringify(rows, null, 2));
  } else {
    const lines = table(
      ["provider", "credentials", "detail"],
      rows.map((r) => [r.provider, r.status, r.detail]),
    );
    for (const line of lines) console.log(line);
  }
  return rows.some((r) => r.status === "error") ? 1 : 0;
}

/**
 * Runs the command line.
 *
 * @param args The arguments, without the program's name.
 * @param options The clouds known (tests point them at fakes).
 * @returns The exit code: 0 done, 1 failed, 2 bad usage.
 */
export async function main(
  args: string[],
  options: MainOptions = {},
): Promise<number> {
  if (args[0] === "image") {
    const { imageCommand } = await import("./providers/container/image.ts");
    return await imageCommand(args.slice(1));
  }
  if (args[0] === "dashboard") {
    const { dashboardCommand } = await import("./src/dashboard/command.ts");
    return await dashboardCommand(args.slice(1));
  }
  const clouds = options.clouds ?? CLOUDS;
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        provider: { type: "string" },
        region: { type: "string" },
        profile: { type: "string" },
        cluster: { type: "string" },
        "older-than": { type: "string" },
        "dry-run": { type: "boolean", default: false },
        endpoint: { type: "string" },
        accelerator: { type: "string" },
        "max-price": { type: "string" },
        json: { type: "boolean", default: false },
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE()}`);
    return 2;
  }
  const [command] = parsed.positionals;
  const values = parsed.values;
  if (!command || command === "help" || values.help) {
    // Help asked for is an answer, not an error: exit 0. A command that
    // does not exist is one, also with --help.
    if (command && !COMMANDS.includes(command)) {
      console.error(`Unknown command '${command}'\n\n${USAGE()}`);
      return 2;
    }
    console.log(USAGE());
    return 0;
  }
  if (command === "offers" || command === "providers") {
    try {
      return await (command === "offers" ? offersCommand : providersCommand)(
        values,
        clouds,
      );
    } catch (error) {
      console.error(`${(error as Error).name}: ${(error as Error).message}`);
      return error instanceof ConfigError ? 2 : 1;
    }
  }
  if (command !== "cleanup") {
    console.error(`Unknown command '${command}'\n\n${USAGE()}`);
    return 2;
  }
  const cleaners = Object.keys(clouds);
  if (!values.provider || !cleaners.includes(values.provider)) {
    console.error(
      `cleanup needs --provider ${cleaners.join("|")}${
        values.provider ? ` (got '${values.provider}')` : ""
      }\n\n${USAGE()}`,
    );
    return 2;
  }
  try {
    const olderThan = values["older-than"]
      ? parseDuration(values["older-than"])
      : undefined;
    const dryRun = values["dry-run"];
    const provider = clouds[values.provider]({
      ...(values.profile ? { profile: values.profile } : {}),
      ...(values.endpoint ? { endpoint: values.endpoint } : {}),
    });
    if (!provider.cleanup) {
      throw new ConfigError(
        `${values.provider} has no cleanup: it leaves nothing behind`,
      );
    }
    const report = await provider.cleanup({
      ...(values.cluster ? { cluster: values.cluster } : {}),
      ...(olderThan !== undefined ? { olderThan } : {}),
      ...(values.region ? { region: values.region } : {}),
      dryRun,
    });
    for (const line of describeCleanup(provider.name, report, dryRun)) {
      console.log(line);
    }
    return 0;
  } catch (error) {
    console.error(`${(error as Error).name}: ${(error as Error).message}`);
    return error instanceof ConfigError ? 2 : 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
