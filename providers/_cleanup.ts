/**
 * What the clouds' `cleanup` and `sweepHint` share: the command line that
 * sweeps a cluster, and the refusal of a cleanup option a provider cannot
 * honour.
 *
 * Internal to the providers; not part of the public API.
 *
 * @module
 */
import { ConfigError } from "../src/errors.ts";
import type { Logger } from "npm:@logtape/logtape@2.4.2";
import type { ProviderCleanupOptions } from "../src/provider.ts";

/**
 * The command that sweeps one cluster's leftovers at a cloud the CLI knows.
 *
 * @param provider The name `--provider` takes.
 * @param clusterId The pool's id.
 * @param flags More flags, e.g. `--region eu-west-1`.
 * @returns The command, for `sweepHint`.
 *
 * @example
 * ```ts
 * import { cleanupCommand } from "./_cleanup.ts";
 *
 * console.log(cleanupCommand("runpod", "sky-1a2b"));
 * // "deno run -A jsr:@skyward/skyward/cli cleanup --provider runpod --cluster sky-1a2b"
 * ```
 */
export function cleanupCommand(
  provider: string,
  clusterId: string,
  flags = "",
): string {
  return `deno run -A jsr:@skyward/skyward/cli cleanup --provider ${provider}${
    flags ? ` ${flags}` : ""
  } --cluster ${clusterId}`;
}

/** Why a cloud without regions refuses `region`. */
export const NO_REGIONS = "it has no regions to choose from";

/** Why a cloud that does not date its machines refuses `olderThan`. */
export const UNDATED =
  "it does not tell when its machines were made; use --cluster";

/**
 * Refuses the cleanup options a provider cannot honour, naming each and why.
 *
 * @param provider The provider's name, for the message.
 * @param options The options given.
 * @param unsupported Each option it cannot honour, with the reason.
 * @throws {ConfigError} When one of them is set.
 *
 * @example
 * ```ts
 * import { refuseCleanupOptions } from "./_cleanup.ts";
 *
 * refuseCleanupOptions("runpod", { cluster: "sky-1" }, {
 *   olderThan: "it does not tell when its machines were made; use --cluster",
 * }); // fine: olderThan is not set
 * ```
 */
export function refuseCleanupOptions(
  provider: string,
  options: ProviderCleanupOptions,
  unsupported: Partial<Record<keyof ProviderCleanupOptions, string>>,
): void {
  for (const [option, why] of Object.entries(unsupported)) {
    const value = options[option as keyof ProviderCleanupOptions];
    if (value !== undefined && value !== false) {
      const flag = `--${
        option.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)
      }`;
      throw new ConfigError(
        `${flag} is not supported for ${provider}: ${why}`,
      );
    }
  }
}

/**
 * Sweeps what a failed `prepare` may have made, logging (not throwing) a
 * sweep that fails too: the prepare's own error is the one to report.
 *
 * @param clusterId The cluster the prepare was for.
 * @param sweep Removes the cluster's resources.
 * @param log Where to warn when the sweep fails.
 *
 * @example
 * ```ts
 * import { sweepFailedPrepare } from "./_cleanup.ts";
 * import { logger } from "../src/log.ts";
 *
 * await sweepFailedPrepare("sky-1", () => Promise.resolve(), logger("demo"));
 * ```
 */
export async function sweepFailedPrepare(
  clusterId: string,
  sweep: () => Promise<unknown>,
  log: Logger,
): Promise<void> {
  await sweep().catch((cleanup) =>
    log.warn("Cleaning up after a failed prepare of {id} failed: {cleanup}", {
      id: clusterId,
      cleanup,
    })
  );
}
