/**
 * How the conformance suite makes a provider: a recipe that is plain JSON,
 * so that the same provider can be made in the test's process and in a
 * child process playing the user's script (tests/providers/user_script.ts).
 * The fakes' machines are the rig's hosts, each with its own login user:
 * the recipe carries them, and {@linkcode makeProvider} turns them into the
 * provider's `sshUser`.
 *
 * @module
 */
import * as sky from "../../mod.ts";

/** The providers of the library, as the suite names them. */
export type ProviderKind =
  | "local"
  | "ssh"
  | "container"
  | "aws"
  | "runpod"
  | "vastai"
  | "verda";

/** A provider and the pool options it needs, as JSON. */
export interface ProviderRecipe {
  /** Which factory to call. */
  kind: ProviderKind;
  /** The factory's options, without functions. */
  options: Record<string, unknown>;
  /** The login user of each rig host, by address (the fakes' machines). */
  users?: Record<string, string>;
  /** Pool options this provider needs (e.g. RunPod's accelerator). */
  pool?: { accelerator?: string; allocation?: sky.Allocation };
  /** Environment variables the user's script runs with, beside the test's. */
  env?: Record<string, string>;
}

/** The environment variable that gives the user's script its recipe. */
export const RECIPE_ENV = "SKYWARD_TEST_RECIPE";

/**
 * The clouds' factories, with the field of their machines' details that
 * holds the address SSH goes to, and the login user of their images.
 */
const CLOUDS = {
  aws: { factory: sky.AWS, address: "publicIp", user: "ubuntu" },
  runpod: { factory: sky.RunPod, address: "ip", user: "root" },
  vastai: { factory: sky.VastAI, address: "sshHost", user: "root" },
  verda: { factory: sky.Verda, address: "ip", user: "root" },
} as const;

/**
 * Makes the provider a recipe describes.
 *
 * @param recipe What to make.
 * @returns A new provider.
 */
export function makeProvider(recipe: ProviderRecipe): sky.Provider<any> {
  const options = recipe.options as any;
  const { kind } = recipe;
  if (kind === "local") return sky.Local(options);
  if (kind === "ssh") return sky.SSH(options);
  if (kind === "container") return sky.Container(options);
  const cloud = CLOUDS[kind];
  const factory = cloud.factory as (options: unknown) => sky.Provider<any>;
  return factory({
    ...options,
    sshUser: (machine: Record<string, string | undefined>) =>
      recipe.users?.[machine[cloud.address] ?? ""] ?? cloud.user,
  });
}
