/**
 * Skyward's command line.
 *
 * ```sh
 * deno run -A jsr:@skyward/skyward/cli cleanup --provider aws [--region us-east-1] [--cluster sky-…] [--older-than 2h] [--dry-run]
 * deno task cli cleanup --provider aws --dry-run     # from a clone
 * ```
 *
 * `cleanup` removes what Skyward pools left at a provider — after a crash, a
 * `kill -9`, a lost network — found by the `skyward:cluster` tag: instances
 * first, then security groups and key pairs.
 *
 * @example
 * ```ts ignore
 * import { main } from "./cli.ts";
 *
 * Deno.exit(await main(["cleanup", "--provider", "aws", "--dry-run"]));
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { AWS } from "./providers/aws/mod.ts";

const USAGE = `Usage: skyward <command> [options]

Commands:
  cleanup    Remove what Skyward pools left at a provider (found by tag)
  help       Show this help

Options of cleanup:
  --provider NAME      The provider: aws (required)
  --region REGION      The region (default: AWS_REGION, AWS_DEFAULT_REGION or the profile's)
  --profile NAME       An AWS profile of ~/.aws/credentials
  --cluster ID         Only this pool's resources (sky-…)
  --older-than TIME    Only resources at least this old: 30m, 2h, 1d
  --dry-run            List what would be removed; remove nothing
  --endpoint URL       The EC2 endpoint (EC2-compatible clouds, tests)
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
 * Runs the command line.
 *
 * @param args The arguments, without the program's name.
 * @returns The exit code: 0 done, 1 failed, 2 bad usage.
 */
export async function main(args: string[]): Promise<number> {
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
        help: { type: "boolean", short: "h", default: false },
      },
    });
  } catch (error) {
    console.error(`${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const [command] = parsed.positionals;
  const values = parsed.values;
  if (!command || command === "help" || values.help) {
    console.log(USAGE);
    return command && command !== "help" ? 2 : 0;
  }
  if (command !== "cleanup") {
    console.error(`Unknown command '${command}'\n\n${USAGE}`);
    return 2;
  }
  if (values.provider !== "aws") {
    console.error(
      `cleanup needs --provider aws${
        values.provider ? ` (got '${values.provider}')` : ""
      }\n\n${USAGE}`,
    );
    return 2;
  }
  try {
    const olderThan = values["older-than"]
      ? parseDuration(values["older-than"])
      : undefined;
    const provider = AWS({
      ...(values.region ? { region: values.region } : {}),
      ...(values.profile ? { profile: values.profile } : {}),
      ...(values.endpoint ? { endpoint: values.endpoint } : {}),
    });
    const dryRun = values["dry-run"];
    const report = await provider.cleanup({
      ...(values.cluster ? { cluster: values.cluster } : {}),
      ...(olderThan !== undefined ? { olderThan } : {}),
      dryRun,
    });
    const verb = dryRun ? "Would remove" : "Removed";
    console.log(
      `${verb} in ${report.region}: ${
        plural(report.instances.length, "instance")
      }, ` +
        `${plural(report.securityGroups.length, "security group")}, ${
          plural(report.keyPairs.length, "key pair")
        }` +
        (report.clusters.length ? ` of ${report.clusters.join(", ")}` : ""),
    );
    for (const id of report.instances) console.log(`  instance ${id}`);
    for (const id of report.securityGroups) {
      console.log(`  security group ${id}`);
    }
    for (const name of report.keyPairs) console.log(`  key pair ${name}`);
    return 0;
  } catch (error) {
    console.error(`${(error as Error).name}: ${(error as Error).message}`);
    return 1;
  }
}

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
