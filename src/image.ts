/**
 * `Image`: what each node runs the code with.
 *
 * @module
 */
import { z } from "npm:zod@4.6.7";
import { parseOptions } from "./_options.ts";
import { ConfigError } from "./errors.ts";
import { checkPermissions, type Permissions } from "./sandbox.ts";

/** Options of {@linkcode Image}. */
export interface ImageOptions {
  /**
   * The Deno version on the nodes: `"client"` (the client's exact version,
   * downloaded by the node) or `"upload"` (the client's own binary, uploaded
   * to nodes that cannot download).
   * @default "client"
   */
  deno?: "client" | "upload";
  /** Extra entries of the import map used on the nodes (the counterpart of pip packages). */
  imports?: Record<string, string>;
  /** Debian packages to install on the nodes. */
  apt?: string[];
  /**
   * Environment variables of the worker. Tasks may read these (and no other
   * variable of the node): they are the image's default `env` permission.
   */
  env?: Record<string, string>;
  /**
   * Default Deno permissions of every task's sandbox in the pool. A compute's
   * own `permissions` replace these name by name: see the README's Security
   * section for the merge rule.
   * @default none, except reading the variables of `env`
   */
  permissions?: Permissions;
  /** Extra local paths (files or directories, relative to the project root) uploaded with the code. */
  includes?: string[];
  /** Glob patterns of paths not to upload. */
  excludes?: string[];
}

/** A validated image. */
export type ResolvedImage = Readonly<Required<ImageOptions>> & {
  readonly kind: "image";
};

const schema = z.object({
  deno: z.enum(["client", "upload"]).default("client"),
  imports: z.record(z.string(), z.string()).default({}),
  apt: z.array(
    z.string().regex(/^[a-z0-9][a-z0-9+.:=~-]*$/, "not a Debian package name"),
  )
    .default([]),
  env: z.record(
    z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "not a variable name"),
    z.string(),
  )
    .default({}),
  includes: z.array(z.string()).default([]),
  excludes: z.array(z.string()).default([]),
  permissions: z.custom<Permissions>(() => true).default({}),
}).strict();

/**
 * Describes the software of the nodes: Deno version, import map, apt
 * packages, environment variables and extra files.
 *
 * @param options The image's contents.
 * @returns The validated image, for `ComputePool.start({ image })`.
 * @throws {ConfigError} When an option is invalid; the message names it.
 *
 * @example
 * ```ts
 * import * as sky from "../mod.ts";
 *
 * const image = sky.Image({ env: { MODE: "prod" } });
 * console.log(image.env.MODE); // "prod"
 * ```
 */
export function Image(options: ImageOptions = {}): ResolvedImage {
  try {
    checkPermissions("Invalid image", options.permissions);
  } catch (error) {
    throw new ConfigError((error as Error).message);
  }
  const valid = parseOptions(schema, options, "Invalid image");
  return Object.freeze({ kind: "image" as const, ...valid });
}
