/**
 * Vast.ai's sweep: finds what Skyward pools left on the account (instances
 * labelled with a pool's id, SSH keys whose comment names one) and removes
 * it, for a pool's teardown and for `cleanup()`.
 *
 * @module
 */
import { ProvisioningError } from "../../src/errors.ts";
import type { ProviderCleanupOptions } from "../../src/provider.ts";
import type { VastApiInstance, VastApiSshKey } from "./api.ts";

/** The comment of a pool's SSH key, by which teardown and cleanup find it. */
export const KEY_COMMENT = "skyward:";

/**
 * Options of `VastAIProvider.cleanup`: which pool's resources (by default
 * every Skyward pool's, also those of pools still running), and a dry run.
 * Vast.ai's listing does not date instances, so `olderThan` is refused, and
 * `region` too.
 */
export type VastCleanupOptions = ProviderCleanupOptions;

/** What `VastAIProvider.cleanup` found and removed. */
export type VastCleanupReport = {
  /** The pools whose resources were found. */
  clusters: string[];
  /** Instances destroyed (their ids). */
  instances: string[];
  /** SSH keys deleted (their ids). */
  sshKeys: string[];
};

/** The account's calls a sweep makes (the provider's, through its API). */
export interface VastAccount {
  /** Every instance of the account, or those with one label. */
  listInstances(label?: string): Promise<VastApiInstance[]>;
  /** The account's SSH keys. */
  listKeys(): Promise<VastApiSshKey[]>;
  /** Deletes an SSH key; one already gone is not an error. */
  deleteKey(id: number): Promise<void>;
  /** Destroys an instance and makes sure it is. */
  destroy(id: string): Promise<void>;
}

/**
 * Removes (or, on a dry run, lists) what Skyward pools left on the account:
 * the instances `launched` and those labelled with the pool's id (every
 * `sky-…` label without a cluster), then the SSH keys whose comment names
 * one.
 *
 * @param account The account's calls.
 * @param cleanup Which pool, and whether to remove anything.
 * @param launched Instance ids known to be the pool's, destroyed even when
 *   the listing fails or misses them.
 * @returns What was found and removed.
 * @throws {ProvisioningError} When something could not be removed, naming
 *   what may be left and the call that sweeps it.
 */
export async function sweep(
  account: VastAccount,
  cleanup: VastCleanupOptions,
  launched: Iterable<string> = [],
): Promise<VastCleanupReport> {
  const mine = (label: string | null | undefined) =>
    !!label &&
    (cleanup.cluster ? label === cleanup.cluster : label.startsWith("sky-"));
  const failures: string[] = [];
  // The ids the pool launched are destroyed even when the listing fails or
  // misses them; the listing adds what a lost answer may have launched.
  const ids = new Set(launched);
  let listed: VastApiInstance[] = [];
  try {
    listed = (await account.listInstances(cleanup.cluster)).filter((i) =>
      mine(i.label)
    );
  } catch (error) {
    if (ids.size === 0 || cleanup.dryRun) throw error;
    failures.push(`listing the instances: ${(error as Error).message}`);
  }
  for (const i of listed) ids.add(String(i.id));
  const instances = [...ids];
  const keys = (await account.listKeys()).filter((k) => {
    const line = (k.public_key ?? k.key ?? "").trim();
    const comment = line.split(/\s+/)[2] ?? "";
    return comment.startsWith(KEY_COMMENT) &&
      mine(comment.slice(KEY_COMMENT.length));
  });
  const clusters = new Set<string>();
  if (cleanup.cluster && instances.length) clusters.add(cleanup.cluster);
  for (const i of listed) clusters.add(i.label!);
  for (const k of keys) {
    clusters.add(
      (k.public_key ?? k.key ?? "").trim().split(/\s+/)[2].slice(
        KEY_COMMENT.length,
      ),
    );
  }
  if (!cleanup.dryRun) {
    await Promise.all(
      instances.map((id) =>
        account.destroy(id).catch((e) =>
          failures.push(`instance ${id}: ${(e as Error).message}`)
        )
      ),
    );
    for (const key of keys) {
      await account.deleteKey(key.id).catch((e) =>
        failures.push(`SSH key ${key.id}: ${(e as Error).message}`)
      );
    }
    if (failures.length) {
      throw new ProvisioningError(
        `Vast.ai teardown could not finish; what may be left: ${
          failures.join("; ")
        }. Sweep it with: await sky.VastAI().cleanup(${
          cleanup.cluster ? `{ cluster: "${cleanup.cluster}" }` : ""
        })`,
      );
    }
  }
  return {
    clusters: [...clusters].sort(),
    instances,
    sshKeys: keys.map((k) => String(k.id)),
  };
}
