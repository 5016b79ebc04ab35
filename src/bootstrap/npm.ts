/**
 * The npm packages the nodes need, found in the client's cache, and the
 * lockfile trimmed to them.
 *
 * What Deno needs on a node, found by trying it (Deno 2.9):
 *
 * - under the node's `DENO_DIR`, each package directory at the same place as
 *   in the client's npm cache, `npm/<registry host>/<name>/<version>/` (for
 *   example `npm/registry.npmjs.org/@msgpack/msgpack/3.1.3/`), copied as is;
 * - with a lockfile, Deno installs the lockfile's whole npm snapshot at
 *   start-up, so every package of the lockfile must be there — including
 *   those only the client uses (a cloud SDK, test tools). The shipped
 *   lockfile is therefore pruned to the packages the shipped graph reaches
 *   ({@linkcode pruneLockfile}), which Deno accepts under `--frozen`;
 * - a task importing a package that is not in the lockfile fails before
 *   anything is fetched ("The lockfile is out of date", or "npm package not
 *   found in cache ... --cached-only"), which the worker rewords to say how
 *   to declare it.
 *
 * @module
 */
import type { Bundle } from "./bundle.ts";
import { ConfigError } from "../errors.ts";

/** One npm package in the client's cache. */
export interface NpmPackage {
  /** `name@version`, as Deno names it. */
  id: string;
  /** The package's name, e.g. `@msgpack/msgpack`. */
  name: string;
  /** Its exact version. */
  version: string;
  /** Its directory in the client's npm cache. */
  localPath: string;
  /**
   * Its directory relative to the npm cache, which is also its place under
   * `$DENO_DIR/npm/` on a node: `<registry host>/<name>/<version>`.
   */
  cachePath: string;
  /** The registry it came from. */
  registryUrl: string;
}

const SAFE_PATH = /^[A-Za-z0-9@._+~-]+(?:\/[A-Za-z0-9@._+~-]+)*$/;

/**
 * The path of a bundle's lockfile, when it carries one: `deno.lock` beside
 * its configuration file.
 *
 * @param bundle The bundle.
 * @returns The path relative to the bundle's root, or `undefined`.
 *
 * @example
 * ```ts
 * import { lockfilePath } from "./npm.ts";
 *
 * const data = new Uint8Array();
 * console.log(lockfilePath({
 *   root: "/p", rootUrl: "file:///p/", hash: "0", config: "app/deno.json",
 *   files: [{ path: "app/deno.json", data }, { path: "app/deno.lock", data }],
 * })); // "app/deno.lock"
 * ```
 */
export function lockfilePath(bundle: Bundle): string | undefined {
  const path = bundle.config
    ? bundle.config.replace(/[^/]*$/, "deno.lock")
    : "deno.lock";
  return bundle.files.some((f) => f.path === path) ? path : undefined;
}

/**
 * Prunes a Deno lockfile (versions 4 and 5) to the given npm packages: drops
 * the other packages' `npm` entries and the `specifiers` that resolve to
 * them, and keeps everything else.
 *
 * @param text The lockfile.
 * @param keep Package ids (`name@version`) to keep.
 * @returns The pruned lockfile, or `undefined` when its version is not one this understands.
 *
 * @example
 * ```ts
 * import { pruneLockfile } from "./npm.ts";
 *
 * const lock = JSON.stringify({
 *   version: "5",
 *   specifiers: { "npm:zod@4": "4.6.7", "npm:left-pad@1": "1.3.0" },
 *   npm: { "zod@4.6.7": {}, "left-pad@1.3.0": {} },
 * });
 * const pruned = JSON.parse(pruneLockfile(lock, new Set(["zod@4.6.7"]))!);
 * console.log(Object.keys(pruned.npm)); // ["zod@4.6.7"]
 * ```
 */
export function pruneLockfile(
  text: string,
  keep: ReadonlySet<string>,
): string | undefined {
  let lock: {
    version?: string;
    specifiers?: Record<string, string>;
    npm?: Record<string, unknown>;
  };
  try {
    lock = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (lock?.version !== "4" && lock?.version !== "5") return undefined;
  if (lock.npm) {
    lock.npm = Object.fromEntries(
      Object.entries(lock.npm).filter(([id]) => keep.has(id)),
    );
  }
  if (lock.specifiers) {
    lock.specifiers = Object.fromEntries(
      Object.entries(lock.specifiers).filter(([specifier, resolved]) => {
        if (!specifier.startsWith("npm:")) return true;
        const request = specifier.slice(4);
        const name = request.slice(0, request.indexOf("@", 1));
        return keep.has(`${name}@${resolved}`);
      }),
    );
  }
  return JSON.stringify(lock, null, 2) + "\n";
}

interface DenoInfo {
  modules?: { kind?: string; npmPackage?: string }[];
  npmPackages?: Record<string, {
    name: string;
    version: string;
    dependencies?: string[];
    localPath?: string;
    registryUrl?: string;
  }>;
}

/**
 * The npm packages a `deno info --json` graph reaches — those its modules
 * import and what those depend on — with their place in the client's cache.
 */
function reachedPackages(info: DenoInfo): Map<string, NpmPackage> {
  const reached = new Map<string, NpmPackage>();
  const queue = (info.modules ?? []).filter((m) => m.kind === "npm")
    .map((m) => m.npmPackage).filter((id): id is string => !!id);
  for (let id = queue.pop(); id !== undefined; id = queue.pop()) {
    if (reached.has(id)) continue;
    const npm = info.npmPackages?.[id];
    if (!npm) {
      throw new ConfigError(
        `Cannot ship npm package ${id}: \`deno info\` does not say where it is`,
      );
    }
    const localPath = npm.localPath;
    if (!localPath) {
      throw new ConfigError(
        `Cannot ship npm package ${id}: it is not in the client's npm cache`,
      );
    }
    // `<npm cache>/<registry host>/<name>/<version dir>`: keep the last parts.
    const depth = npm.name.split("/").length + 2;
    const cachePath = localPath.split("/").slice(-depth).join("/");
    if (!SAFE_PATH.test(cachePath)) {
      throw new ConfigError(
        `Cannot ship npm package ${id}: unexpected cache path '${localPath}'`,
      );
    }
    reached.set(id, {
      id,
      name: npm.name,
      version: npm.version,
      localPath,
      cachePath,
      registryUrl: npm.registryUrl ?? "https://registry.npmjs.org/",
    });
    queue.push(...(npm.dependencies ?? []));
  }
  return reached;
}

/**
 * The npm package (or remote module) named in one of Deno's messages about
 * a module it could not get.
 *
 * @param message Deno's message.
 * @returns The package's specifier, or `undefined`.
 *
 * @example
 * ```ts
 * import { packageIn } from "./npm.ts";
 *
 * console.log(packageIn("error: npm package 'left-pad@9' does not exist")); // left-pad@9
 * ```
 */
export function packageIn(message: string): string | undefined {
  return message.match(/npm package '([^']+)'/)?.[1] ??
    message.match(/"(npm:[^"]+|jsr:[^"]+|https?:[^"]+)"/)?.[1] ??
    message.match(/\b((?:npm|jsr):[^\s'"`]+)/)?.[1];
}

/**
 * The npm packages a graph reaches, by id, from `deno info --json` run
 * with the given configuration over the given entries.
 *
 * @param config The configuration file.
 * @param cwd Where to run `deno info`.
 * @param entries The entry modules' URLs.
 * @returns The packages, by id (`name@version`), with their place in the client's cache.
 * @throws {ConfigError} When `deno info` fails or a package is not in the cache.
 *
 * @example
 * ```ts ignore
 * import { npmGraph } from "./npm.ts";
 *
 * const graph = await npmGraph("/tmp/stage/deno.json", "/tmp/stage", ["file:///tmp/stage/main.ts"]);
 * console.log([...graph.keys()]); // ["@msgpack/msgpack@3.1.3", …]
 * ```
 */
export async function npmGraph(
  config: string,
  cwd: string,
  entries: string[],
): Promise<Map<string, NpmPackage>> {
  const root = "data:application/typescript," + encodeURIComponent(
    entries.map((url) => `import ${JSON.stringify(url)};`).join("\n"),
  );
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--allow-import", "--config", config, root],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  }).output();
  if (!output.success) {
    throw new ConfigError(
      `Cannot list the npm packages the nodes need: \`deno info\` failed: ${
        new TextDecoder().decode(output.stderr).trim()
      }`,
    );
  }
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as DenoInfo;
  return reachedPackages(info);
}
