/**
 * What a node needs, worked out once per plan on the client: the plan
 * itself ({@linkcode BootstrapPlan}: image, Deno version, bundles), checked;
 * the code as the nodes run it, the included files, and the hashes and keys
 * that name what the script finds ready or makes ({@linkcode preparePlan}).
 *
 * @module
 */
import {
  type Bundle,
  bundlePath,
  codeKey,
  type IncludedFile,
  includedFiles,
} from "./bundle.ts";
import { type LibrarySource, type NodeBundle, nodeCode } from "./stage.ts";
import type { BootstrapScriptSpec } from "./script.ts";
import { WORKER_MAIN } from "./worker.ts";
import { sha256Hex } from "../_hash.ts";
import type { ResolvedImage } from "../image.ts";

/** What to make ready on a host. */
export interface BootstrapPlan {
  /** The image: apt packages, environment, Deno source, includes and excludes. */
  image: ResolvedImage;
  /** The exact Deno version to run, e.g. `Deno.version.deno`. */
  denoVersion: string;
  /**
   * The cache directory on the host: absolute, or relative to the login
   * directory (`~/` and `$HOME/` prefixes are understood).
   *
   * @default {"$HOME/.cache/skyward"}
   */
  cacheDir?: string;
  /** The user's code bundle (see `buildBundle`). */
  code: Bundle;
  /**
   * The library's worker: its bundle (see `libraryBundle` in `worker.ts`), or the
   * worker module's URL when the library was imported from a URL (it is then
   * vendored with the code).
   */
  lib: LibrarySource;
}

/** The script's inputs that come from the options, not the plan. */
export type OptionSpec =
  | "denoDownloadUrl"
  | "npmRegistry"
  | "npmConfigRegistry"
  | "probeTimeoutMs"
  | "aptLockTimeoutMs";

/** A plan worked out: the script's inputs but the options', and what it ships. */
export interface Prepared {
  spec: Omit<BootstrapScriptSpec, OptionSpec>;
  includes: IncludedFile[];
  /** The code as the nodes run it (see `nodeCode`). */
  code: NodeBundle;
  /** The library's files (none when it is vendored with the code). */
  lib: Bundle;
}

const encoder = new TextEncoder();

/**
 * Checks a plan.
 *
 * @param plan The plan.
 * @throws {TypeError} Naming the field to fix.
 *
 * @example
 * ```ts
 * import { checkPlan, type BootstrapPlan } from "./plan.ts";
 *
 * try {
 *   checkPlan({ denoVersion: "2" } as unknown as BootstrapPlan);
 * } catch (error) {
 *   console.log((error as Error).message); // Cannot bootstrap: 'image' must be made with sky.Image(...)
 * }
 * ```
 */
export function checkPlan(plan: BootstrapPlan): void {
  const fail = (message: string): never => {
    throw new TypeError(`Cannot bootstrap: ${message}`);
  };
  if (plan?.image?.kind !== "image") {
    fail("'image' must be made with sky.Image(...)");
  }
  if (!/^\d+\.\d+\.\d+(?:-[0-9A-Za-z.-]+)?$/.test(plan.denoVersion)) {
    fail(
      `'denoVersion' must be an exact version such as "2.9.6", got ${
        JSON.stringify(plan.denoVersion)
      }`,
    );
  }
  const cacheDir = plan.cacheDir;
  if (
    cacheDir !== undefined &&
    (typeof cacheDir !== "string" || !cacheDir ||
      [...cacheDir].some((c) => c < " " || c === "\x7f") ||
      /["\\]/.test(cacheDir))
  ) {
    fail(
      `'cacheDir' must be a path without quotes, backslashes or control characters, got ${
        JSON.stringify(cacheDir)
      }`,
    );
  }
  for (const name of ["code", "lib"] as const) {
    const bundle = plan[name];
    if (name === "lib" && typeof bundle === "string") {
      if (!/^(?:https?|file):\/\/[^\s'"\\]+$/.test(bundle)) {
        fail(
          `'lib' must be a bundle or the worker's URL, got ${
            JSON.stringify(bundle)
          }`,
        );
      }
      continue;
    }
    if (
      typeof bundle === "string" ||
      !bundle || typeof bundle.hash !== "string" || !Array.isArray(bundle.files)
    ) {
      fail(`'${name}' must be a bundle made with buildBundle()`);
    }
  }
}

const prepared = new WeakMap<BootstrapPlan, Promise<Prepared>>();

async function prepare(plan: BootstrapPlan): Promise<Prepared> {
  const { image } = plan;
  const code = await nodeCode(plan.code, plan.lib, image.imports);
  const lib: Bundle = typeof plan.lib === "string"
    ? {
      root: "",
      rootUrl: plan.lib,
      hash: (await sha256Hex([encoder.encode(`url\0${plan.lib}`)])).slice(
        0,
        32,
      ),
      files: [],
    }
    : plan.lib;
  const includes = await includedFiles(code, image.includes, image.excludes);
  const key = await codeKey(code, includes);
  const envEntries = Object.entries(image.env).sort(([a], [b]) =>
    a < b ? -1 : a > b ? 1 : 0
  );
  const envHash = (await sha256Hex([
    encoder.encode(JSON.stringify(envEntries)),
  ])).slice(0, 32);
  const workerEntry = typeof plan.lib === "string"
    ? plan.lib
    : bundlePath(lib, WORKER_MAIN.href) ??
      lib.files.find((f) => f.path.endsWith("worker/main.ts"))?.path;
  if (!workerEntry) {
    throw new TypeError(
      `Cannot bootstrap: the library bundle (root ${lib.root}) holds no worker/main.ts`,
    );
  }
  const config = { in: "code" as const, path: code.node.config };
  return {
    includes,
    code,
    lib,
    spec: {
      cacheDir: plan.cacheDir ?? "$HOME/.cache/skyward",
      denoVersion: plan.denoVersion,
      deno: image.deno,
      apt: image.apt,
      env: image.env,
      envHash,
      codeHash: code.hash,
      codeKey: key,
      libHash: lib.hash,
      // The package set follows from the graphs, configuration and lockfile:
      // from the bundles, whose hashes cover them all.
      depsKey: (await sha256Hex([
        encoder.encode(`deps\0${code.hash}\0${lib.hash}`),
      ])).slice(0, 32),
      config,
      workerEntry,
      codeModules: code.node.entries,
    },
  };
}

/**
 * Works a plan out, once per plan object: later calls with the same plan
 * share the first's work (a failure is forgotten, so it can be tried again).
 *
 * @param plan A checked plan.
 * @returns What the script and the uploads need.
 * @throws {ConfigError} When an include is missing or a dependency cannot be readied.
 *
 * @example
 * ```ts ignore
 * import { preparePlan } from "./plan.ts";
 *
 * const ready = await preparePlan(plan);
 * console.log(ready.spec.codeKey);
 * ```
 */
export function preparePlan(plan: BootstrapPlan): Promise<Prepared> {
  let preparing = prepared.get(plan);
  if (!preparing) {
    preparing = prepare(plan);
    prepared.set(plan, preparing);
    preparing.catch(() => prepared.delete(plan));
  }
  return preparing;
}
