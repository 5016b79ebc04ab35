/**
 * The npm packages a shipped bundle needs, found on the client with
 * `deno info --json`, so that a node that cannot reach the registry can be
 * given them from the client's own cache.
 *
 * What Deno needs on the node, found by trying it (Deno 2.9):
 *
 * - under the node's `DENO_DIR`, each package directory at the same place as
 *   in the client's npm cache, `npm/<registry host>/<name>/<version>/` (for
 *   example `npm/registry.npmjs.org/@msgpack/msgpack/3.1.3/`), copied as is;
 * - beside them, each package's `registry.json` (the cached packument) when
 *   the project has no lockfile: Deno resolves versions from it;
 * - with a lockfile, Deno installs the lockfile's whole npm snapshot at
 *   start-up, so every package of the lockfile must be there — including
 *   those only the client uses (a cloud SDK, test tools). The shipped
 *   lockfile is therefore pruned to the packages the shipped graph reaches
 *   ({@linkcode pruneLockfile}): its `npm` and `specifiers` entries for
 *   other packages are dropped, which Deno accepts without rewriting it.
 *
 * @module
 */
import type { Bundle } from "./bundle.ts";
import { ConfigError } from "./errors.ts";

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

/** The npm packages of one or more bundles, and their lockfiles pruned to them. */
export interface NpmDependencies {
  /** The packages to ship, sorted by `cachePath`, without duplicates. */
  packages: NpmPackage[];
  /** SHA-256 (hex, 32 characters) of the sorted `cachePath`s: the package set. */
  hash: string;
  /**
   * The lockfile to ship in place of each bundle's own, by bundle hash:
   * its path in the bundle and its pruned content.
   */
  lockfiles: Map<string, { path: string; data: Uint8Array }>;
}

const MODULE = /\.(?:[mc]?[jt]s|[jt]sx)$/;
const SAFE_PATH = /^[A-Za-z0-9@._+~-]+(?:\/[A-Za-z0-9@._+~-]+)*$/;

/**
 * The module files of a bundle (not its configuration, lockfile or data),
 * as paths relative to its root.
 *
 * @param bundle The bundle.
 * @returns The paths of its JavaScript and TypeScript modules, declaration files left out.
 *
 * @example
 * ```ts
 * import { moduleFiles } from "./deps.ts";
 *
 * const files = moduleFiles({
 *   root: "/p", rootUrl: "file:///p/", hash: "0", config: "deno.json",
 *   files: [{ path: "a.ts", data: new Uint8Array() }, { path: "deno.json", data: new Uint8Array() }],
 * });
 * console.log(files); // ["a.ts"]
 * ```
 */
export function moduleFiles(bundle: Bundle): string[] {
  return bundle.files.map((f) => f.path).filter((path) =>
    MODULE.test(path) && !/\.d\.[mc]?ts$/.test(path)
  );
}

/**
 * The path of a bundle's lockfile, when it carries one: `deno.lock` beside
 * its configuration file.
 *
 * @param bundle The bundle.
 * @returns The path relative to the bundle's root, or `undefined`.
 *
 * @example
 * ```ts
 * import { lockfilePath } from "./deps.ts";
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
 * import { pruneLockfile } from "./deps.ts";
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

async function sha256Hex(text: string): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(text),
  );
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
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

interface BundleGraph {
  /** Packages the graph reaches, by id. */
  reached: Map<string, NpmPackage>;
  /** Every package of the resolution (with a lockfile, its snapshot), by id. */
  all: Map<string, NpmPackage>;
}

async function bundleGraph(bundle: Bundle): Promise<BundleGraph> {
  const modules = moduleFiles(bundle);
  if (modules.length === 0) return { reached: new Map(), all: new Map() };
  // One root that imports every module of the bundle: one `deno info` gives
  // the union of their graphs.
  const root = "data:application/typescript," + encodeURIComponent(
    modules.map((path) =>
      `import ${JSON.stringify(new URL(path, bundle.rootUrl).href)};`
    ).join("\n"),
  );
  const args = ["info", "--json"];
  if (bundle.config) args.push("--config", `${bundle.root}/${bundle.config}`);
  const output = await new Deno.Command(Deno.execPath(), {
    args: [...args, root],
    cwd: bundle.root,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (!output.success) {
    throw new ConfigError(
      `Cannot find the npm packages of the code in ${bundle.root}: \`deno info\` failed: ${
        new TextDecoder().decode(output.stderr).trim()
      }`,
    );
  }
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as DenoInfo;
  const all = new Map<string, NpmPackage>();
  for (const [id, npm] of Object.entries(info.npmPackages ?? {})) {
    const localPath = npm.localPath;
    if (!localPath) {
      throw new ConfigError(
        `Cannot ship npm package ${id}: it is not in the client's npm cache (run \`deno install\` in ${bundle.root})`,
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
    all.set(id, {
      id,
      name: npm.name,
      version: npm.version,
      localPath,
      cachePath,
      registryUrl: npm.registryUrl ?? "https://registry.npmjs.org/",
    });
  }
  // What the graph imports, and what those depend on.
  const reached = new Map<string, NpmPackage>();
  const queue = (info.modules ?? []).filter((m) => m.kind === "npm")
    .map((m) => m.npmPackage).filter((id): id is string => !!id);
  for (let id = queue.pop(); id !== undefined; id = queue.pop()) {
    if (reached.has(id)) continue;
    const pkg = all.get(id);
    if (!pkg) {
      throw new ConfigError(
        `Cannot ship npm package ${id}: \`deno info\` does not say where it is`,
      );
    }
    reached.set(id, pkg);
    queue.push(...(info.npmPackages?.[id]?.dependencies ?? []));
  }
  return { reached, all };
}

const graphs = new Map<string, Promise<BundleGraph>>();

/**
 * Finds the npm packages that running the bundles needs — those their module
 * graphs reach, and what those depend on — in the client's npm cache, and
 * prunes the bundles' lockfiles to them. Runs `deno info` once per bundle
 * and remembers the answer for the bundle's hash.
 *
 * @param bundles The bundles (the user's code and the library's worker).
 * @returns The packages, the hash of the set, and the pruned lockfiles.
 * @throws {ConfigError} When `deno info` fails or a package is not in the client's cache.
 *
 * @example
 * ```ts
 * import { buildBundle } from "./bundle.ts";
 * import { npmDependencies } from "./deps.ts";
 *
 * const bundle = await buildBundle([new URL("../worker/main.ts", import.meta.url).href]);
 * const { packages } = await npmDependencies([bundle]);
 * console.log(packages.some((p) => p.name === "zod")); // true
 * ```
 */
export async function npmDependencies(
  bundles: Bundle[],
): Promise<NpmDependencies> {
  const found = await Promise.all(bundles.map((bundle) => {
    let graph = graphs.get(bundle.hash);
    if (!graph) {
      graph = bundleGraph(bundle);
      graphs.set(bundle.hash, graph);
      graph.catch(() => graphs.delete(bundle.hash));
    }
    return graph;
  }));
  const ship = new Map<string, NpmPackage>();
  for (const graph of found) {
    for (const [id, pkg] of graph.reached) ship.set(id, pkg);
  }
  const keep = new Set(ship.keys());
  const lockfiles = new Map<string, { path: string; data: Uint8Array }>();
  bundles.forEach((bundle, i) => {
    const path = lockfilePath(bundle);
    if (!path) return;
    const text = new TextDecoder().decode(
      bundle.files.find((f) => f.path === path)!.data,
    );
    const pruned = pruneLockfile(text, keep);
    if (pruned === undefined) {
      // A lockfile this cannot prune: Deno will want all of it.
      for (const [id, pkg] of found[i].all) ship.set(id, pkg);
    } else {
      lockfiles.set(bundle.hash, {
        path,
        data: new TextEncoder().encode(pruned),
      });
    }
  });
  const byPath = new Map([...ship.values()].map((p) => [p.cachePath, p]));
  const packages = [...byPath.values()].sort((a, b) =>
    a.cachePath < b.cachePath ? -1 : a.cachePath > b.cachePath ? 1 : 0
  );
  const hash = (await sha256Hex(packages.map((p) => p.cachePath).join("\n")))
    .slice(0, 32);
  return { packages, hash, lockfiles };
}
