/**
 * The code as nodes run it, and the npm packages it needs: readied on the
 * client by {@linkcode nodeCode} before a pool launches anything.
 *
 * A node runs the worker with `--cached-only --frozen`, so it must be given
 * everything up front: a Deno configuration (the project's, with the image's
 * `imports` joining its import map), a lockfile that covers the whole graph,
 * the remote modules (vendored beside the configuration) and the npm
 * packages. The client makes them by laying the code out as on a node in a
 * scratch directory and running `deno install` there, which fetches what its
 * own cache lacks; then `deno info` says which npm packages the graph
 * reaches, and where they are in the client's cache.
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
 * - with `vendor: true` Deno also wants `nodeModulesDir: "none"`, else it
 *   makes a `node_modules` directory beside the configuration;
 * - a task importing a package that is not in the lockfile fails before
 *   anything is fetched ("The lockfile is out of date", or "npm package not
 *   found in cache ... --cached-only"), which the worker rewords to say how
 *   to declare it.
 *
 * @module
 */
import type { Bundle } from "./bundle.ts";
import { ConfigError } from "../errors.ts";
import { sha256Hex } from "../_hash.ts";

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

// ---------------------------------------------------------------------------
// The code as nodes run it

/**
 * What a node runs beside the user's code: the library's worker, as a bundle
 * of local files or, when the library itself was imported from a URL (JSR,
 * `https:`), the worker module's URL (vendored into the code).
 */
export type LibrarySource = Bundle | string;

/** What {@linkcode nodeCode} adds to a bundle. */
export interface NodeDependencies {
  /** The npm packages the nodes need, in the client's cache, sorted by `cachePath`. */
  packages: NpmPackage[];
  /** SHA-256 (hex, 32 characters) of the sorted `cachePath`s. */
  packagesHash: string;
  /**
   * The bundle's modules to resolve on a node to prove it holds everything
   * (`deno install --entrypoint`): the user's modules and the image's imports.
   */
  entries: string[];
  /** The Deno configuration the nodes run with, relative to the bundle's root. */
  config: string;
  /**
   * The hosts (`host:port`) of the remote modules vendored with the code,
   * which a sandbox is allowed to import from while it loads the code.
   */
  importHosts: string[];
}

/** A bundle readied by {@linkcode nodeCode}. */
export type NodeBundle = Bundle & { readonly node: NodeDependencies };

/** Where the stub importing each of the image's `imports` goes, beside the config. */
const IMAGE_IMPORTS = ".skyward/image_imports.ts";

/**
 * An empty configuration at the root of the shipped code, when the node's
 * configuration is deeper: where the code lands, no configuration outside
 * it takes part.
 *
 * Deno (2.9) takes every path target of the import map (`"@skyward/skyward":
 * "../lib/mod.ts"`) and registers the nearest `deno.json` at or above the
 * target's folder as an implicit link, whose own import map then joins the
 * node's (`resolve_auto_link_config_folders` in `libs/config/workspace/
 * discovery.rs`). With no configuration between the target and the root of
 * the shipped code, that search leaves the code: a node folder inside the
 * user's project (`sky.Local({ root: "./.nodes" })`) found the project's own
 * `deno.json`, whose imports point back at the client's files, and the
 * frozen lockfile check failed. This file ends the search inside the code.
 */
const BARRIER = {
  path: "deno.jsonc",
  text:
    "// Keeps Deno from looking above the shipped code for configuration.\n{}\n",
};

/** JSON with comments and trailing commas (`deno.jsonc`) to a value. */
function parseJsonc(text: string): unknown {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === "\\" ? 2 : 1;
      out += text.slice(i, j + 1);
      i = j;
    } else if (c === "/" && text[i + 1] === "/") {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (c === "/" && text[i + 1] === "*") {
      const end = text.indexOf("*/", i + 2);
      i = end < 0 ? text.length : end + 1;
    } else {
      out += c;
    }
  }
  return JSON.parse(out.replace(/,(\s*[}\]])/g, "$1"));
}

function posixDirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i < 0 ? "" : path.slice(0, i);
}

/** `to` relative to the directory `from` (both relative to one root), as `./x` or `../x`. */
function relativeTo(from: string, to: string): string {
  const a = from ? from.split("/") : [];
  const b = to ? to.split("/") : [];
  let common = 0;
  while (common < a.length && common < b.length && a[common] === b[common]) {
    common++;
  }
  const up = a.length - common;
  const rest = b.slice(common).join("/");
  return (up === 0 ? "./" : "../".repeat(up)) + rest;
}

/**
 * An import map's target as the shipped config must say it: a file path or
 * `file:` URL inside the bundle becomes relative to the config (the bundle
 * lands elsewhere on a node); anything else stays.
 */
function relocate(target: string, bundle: Bundle, configDir: string): string {
  let path: string | undefined;
  if (target.startsWith("file:")) {
    try {
      path = decodeURIComponent(new URL(target).pathname);
    } catch {
      return target;
    }
  } else if (target.startsWith("/")) {
    path = target;
  }
  if (path === undefined) return target;
  const root = bundle.root === "/" ? "" : bundle.root;
  if (path !== bundle.root && !path.startsWith(`${root}/`)) return target;
  const slash = path.endsWith("/") && path.length > 1;
  const inside = path.slice(root.length + 1).replace(/\/+$/, "");
  const relative = relativeTo(configDir, inside);
  return slash && !relative.endsWith("/") ? `${relative}/` : relative;
}

function relocateMap(
  map: unknown,
  bundle: Bundle,
  configDir: string,
): Record<string, string> {
  const out: Record<string, string> = {};
  if (!map || typeof map !== "object") return out;
  for (const [key, value] of Object.entries(map)) {
    if (typeof value === "string") {
      out[key] = relocate(value, bundle, configDir);
    }
  }
  return out;
}

/**
 * A module imported by its absolute path or `file:` URL
 * (`import * as sky from "/opt/skyward/mod.ts"`) would resolve on a node to
 * that path of the node's own disk, outside the shipped copy: each module
 * imported so is mapped, by its exact URL on the client, to its shipped copy.
 * Exact keys match only those imports, never a module of the shipped copy,
 * nor the relative imports of a worker running the library from the
 * client's own files (local nodes).
 */
function absoluteImports(
  bundle: Bundle,
  configDir: string,
): Record<string, string> {
  const root = bundle.root === "/" ? "" : bundle.root;
  const out: Record<string, string> = {};
  for (const path of bundle.absolute ?? []) {
    out[new URL(`file://${root}/${path}`).href] = relativeTo(configDir, path);
  }
  return out;
}

/**
 * The Deno configuration the nodes run with: the project's own (its
 * `imports` and `scopes` with local paths made relative), the image's
 * `imports` over it, remote modules vendored beside it and npm packages
 * from the Deno cache (`nodeModulesDir: "none"`).
 */
async function nodeConfig(
  bundle: Bundle,
  configPath: string,
  imports: Readonly<Record<string, string>>,
): Promise<Record<string, unknown>> {
  const configDir = posixDirname(configPath);
  const file = bundle.files.find((f) => f.path === configPath);
  let config: Record<string, unknown> = {};
  if (file) {
    try {
      const parsed = parseJsonc(new TextDecoder().decode(file.data));
      if (parsed && typeof parsed === "object") {
        config = parsed as Record<string, unknown>;
      }
    } catch (error) {
      throw new ConfigError(
        `Cannot ship the project's configuration ${bundle.root}/${configPath}: it is not valid JSON (${
          (error as Error).message
        })`,
      );
    }
  }
  // An import map in a file of its own joins the configuration.
  if (typeof config.importMap === "string") {
    const clientDir = [bundle.root === "/" ? "" : bundle.root, configDir]
      .filter(Boolean).join("/") || "/";
    const mapUrl = new URL(
      config.importMap,
      `file://${clientDir.replace(/\/$/, "")}/`,
    );
    let map: { imports?: unknown; scopes?: unknown };
    try {
      map = JSON.parse(await Deno.readTextFile(mapUrl));
    } catch (error) {
      throw new ConfigError(
        `Cannot ship the import map ${mapUrl.pathname} named by the project's configuration: ${
          (error as Error).message
        }`,
      );
    }
    const mapDir = posixDirname(decodeURIComponent(mapUrl.pathname));
    const resolve = (m: unknown) =>
      Object.fromEntries(
        Object.entries(m && typeof m === "object" ? m : {}).map((
          [k, v],
        ) => [
          k,
          typeof v === "string" && /^\.\.?\//.test(v)
            ? new URL(v, `file://${mapDir}/`).href
            : v,
        ]),
      );
    config.imports = { ...resolve(map.imports), ...(config.imports ?? {}) };
    config.scopes = Object.fromEntries(
      Object.entries(
        map.scopes && typeof map.scopes === "object" ? map.scopes : {},
      ).map(([k, v]) => [k, resolve(v)]),
    );
    delete config.importMap;
  }
  const scopes: Record<string, Record<string, string>> = {};
  if (config.scopes && typeof config.scopes === "object") {
    for (const [scope, map] of Object.entries(config.scopes)) {
      scopes[relocate(scope, bundle, configDir)] = relocateMap(
        map,
        bundle,
        configDir,
      );
    }
  }
  const result: Record<string, unknown> = {
    ...config,
    imports: {
      ...absoluteImports(bundle, configDir),
      ...relocateMap(config.imports, bundle, configDir),
      ...imports,
    },
    vendor: true,
    nodeModulesDir: "none",
  };
  if (Object.keys(scopes).length > 0) result.scopes = scopes;
  else delete result.scopes;
  // The lockfile is `deno.lock` beside the configuration, made for the nodes.
  delete result.lock;
  // A workspace's members are not shipped; their files in the graph are.
  delete result.workspace;
  return result;
}

async function writeFiles(
  dir: string,
  files: { path: string; data: Uint8Array }[],
): Promise<void> {
  const made = new Set<string>();
  for (const file of files) {
    const parent = posixDirname(`${dir}/${file.path}`);
    if (!made.has(parent)) {
      await Deno.mkdir(parent, { recursive: true });
      made.add(parent);
    }
    await Deno.writeFile(`${dir}/${file.path}`, file.data);
  }
}

async function readTree(
  dir: string,
  prefix: string,
  out: { path: string; data: Uint8Array }[],
): Promise<void> {
  let entries: Deno.DirEntry[];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch (error) {
    if (error instanceof Deno.errors.NotFound) return;
    throw error;
  }
  for (const entry of entries) {
    const full = `${dir}/${entry.name}`;
    if (entry.isDirectory) {
      await readTree(full, `${prefix}${entry.name}/`, out);
    } else if (entry.isFile) {
      out.push({
        path: `${prefix}${entry.name}`,
        data: await Deno.readFile(full),
      });
    }
  }
}

/** The npm package named in one of Deno's messages about a module it could not get. */
function packageIn(message: string): string | undefined {
  return message.match(/npm package '([^']+)'/)?.[1] ??
    message.match(/"(npm:[^"]+|jsr:[^"]+|https?:[^"]+)"/)?.[1] ??
    message.match(/\b((?:npm|jsr):[^\s'"`]+)/)?.[1];
}

const nodeCodes = new Map<string, Promise<NodeBundle>>();

/**
 * Readies a code bundle for the nodes, on the client, once per bundle,
 * library and image imports:
 *
 * - the Deno configuration the nodes run with ({@linkcode NodeDependencies.config}):
 *   the project's, with the image's `imports` joining its import map, local
 *   paths made relative, remote (`https:`, JSR) modules vendored into the
 *   bundle and npm packages taken from the Deno cache;
 * - `deno install` of the user's modules, the image's imports and the
 *   library's worker in a copy laid out as on a node, which fetches what the
 *   client's cache lacks (so an image's package need not be in the project)
 *   and writes the lockfile the nodes run with (`--frozen`), pruned to the
 *   npm packages the graph reaches;
 * - the list of those packages, to ship from the client's cache to a node
 *   that cannot reach the registry.
 *
 * @param code The user's bundle (see `buildBundle`).
 * @param lib The library's worker: its bundle, or the worker module's URL.
 * @param imports The image's `imports`.
 * @returns The bundle to ship: the same root and paths, plus the files above, under a new hash.
 * @throws {ConfigError} When a dependency cannot be resolved or fetched; the message names it.
 *
 * @example
 * ```ts ignore
 * import { buildBundle } from "./bundle.ts";
 * import { libraryBundle } from "./bootstrap.ts";
 * import { nodeCode } from "./deps.ts";
 *
 * const code = await buildBundle([new URL("../../examples/hello.ts", import.meta.url).href]);
 * const shipped = await nodeCode(code, await libraryBundle(), { "left-pad": "npm:left-pad@1.3.0" });
 * console.log(shipped.node.packages.some((p) => p.name === "left-pad")); // true
 * ```
 */
export function nodeCode(
  code: Bundle,
  lib: LibrarySource,
  imports: Readonly<Record<string, string>> = {},
): Promise<NodeBundle> {
  if ("node" in code && (code as NodeBundle).node) {
    return Promise.resolve(code as NodeBundle);
  }
  const key = JSON.stringify([
    code.hash,
    typeof lib === "string" ? lib : lib.hash,
    Object.entries(imports).sort(),
  ]);
  let made = nodeCodes.get(key);
  if (!made) {
    made = stage(code, lib, imports);
    nodeCodes.set(key, made);
    made.catch(() => nodeCodes.delete(key));
  }
  return made;
}

async function stage(
  code: Bundle,
  lib: LibrarySource,
  imports: Readonly<Record<string, string>>,
): Promise<NodeBundle> {
  for (const [name, target] of Object.entries(imports)) {
    if (!name || !target) {
      throw new ConfigError(
        `Invalid image: imports must map a name to a specifier, got ${
          JSON.stringify({ [name]: target })
        }`,
      );
    }
  }
  const project = code.project ?? "";
  const config = code.config ??
    (project ? `${project}/deno.json` : "deno.json");
  const configDir = posixDirname(config);
  const lock = configDir ? `${configDir}/deno.lock` : "deno.lock";
  const stub = configDir ? `${configDir}/${IMAGE_IMPORTS}` : IMAGE_IMPORTS;
  const oldLock = lockfilePath(code);
  const encoder = new TextEncoder();
  const userFiles = code.files.filter((f) =>
    f.path !== code.config && f.path !== oldLock &&
    !f.path.startsWith(`${configDir ? `${configDir}/` : ""}vendor/`)
  );
  const configText = JSON.stringify(
    await nodeConfig(code, config, imports),
    null,
    2,
  ) + "\n";
  const barrier = configDir !== "" &&
      !userFiles.some((f) => f.path === "deno.json" || f.path === "deno.jsonc")
    ? [{ path: BARRIER.path, data: encoder.encode(BARRIER.text) }]
    : [];
  const names = Object.keys(imports).filter((name) => !name.endsWith("/"));
  const stubText =
    "// The image's imports, resolved on the nodes before the worker starts.\n" +
    names.map((name) => `import ${JSON.stringify(name)};\n`).join("");
  const modules = [...moduleFiles({ ...code, files: userFiles }), stub];
  // What this client readied before, in an earlier run, while its packages
  // are still in the cache.
  const diskKey = (await sha256Hex(JSON.stringify([
    STAGE_FORMAT,
    code.hash,
    configText,
    typeof lib === "string" ? lib : lib.hash,
    Object.entries(imports).sort(),
    Deno.version.deno,
    envOf("DENO_DIR") ?? "",
    envOf("NPM_CONFIG_REGISTRY") ?? "",
  ]))).slice(0, 32);
  const cached = await loadStaged(diskKey);
  if (cached) return await assemble(code, userFiles, cached);

  const dir = await Deno.makeTempDir({ prefix: "skyward-stage-" });
  try {
    const codeDir = `${dir}/code`;
    await writeFiles(codeDir, [
      ...userFiles,
      ...barrier,
      { path: config, data: encoder.encode(configText) },
      { path: stub, data: encoder.encode(stubText) },
      ...(oldLock
        ? [{
          path: lock,
          data: code.files.find((f) => f.path === oldLock)!.data,
        }]
        : []),
    ]);
    let workerEntry: string;
    if (typeof lib === "string") {
      workerEntry = lib;
    } else {
      await writeFiles(`${dir}/lib`, lib.files);
      const entry = lib.files.find((f) => f.path.endsWith("worker/main.ts"));
      if (!entry) {
        throw new TypeError(
          `Cannot ship the worker: the library bundle (root ${lib.root}) holds no worker/main.ts`,
        );
      }
      workerEntry = new URL(`file://${dir}/lib/${entry.path}`).href;
    }
    const entries = [
      workerEntry,
      ...modules.map((m) => new URL(`file://${codeDir}/${m}`).href),
    ];
    const configFile = `${codeDir}/${config}`;
    const install = await new Deno.Command(Deno.execPath(), {
      args: [
        "install",
        "--entrypoint",
        "--quiet",
        "--allow-import",
        "--config",
        configFile,
        ...entries,
      ],
      cwd: `${codeDir}/${configDir}`,
      stdout: "piped",
      stderr: "piped",
      env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).output();
    if (!install.success) {
      const text = new TextDecoder().decode(install.stderr)
        .replace(/\n*Stack backtrace:[\s\S]*$/, "").trim()
        .replaceAll(`file://${codeDir}/`, code.rootUrl)
        .replaceAll(`${codeDir}/`, `${code.root === "/" ? "" : code.root}/`);
      // A failure at a line of the stub is that of one of the image's imports.
      const line = text.match(
        new RegExp(`${IMAGE_IMPORTS.replaceAll(".", "\\.")}:(\\d+):`),
      )?.[1];
      const name = line ? names[Number(line) - 2] : undefined;
      if (name !== undefined) {
        throw new ConfigError(
          `Cannot get the image's import ${JSON.stringify(name)} (${
            imports[name]
          }): ${
            text.split("\n")[0].replace(/^error: /, "")
          }. Check its name and version in sky.Image({ imports }).`,
        );
      }
      const what = packageIn(text);
      throw new ConfigError(
        `Cannot get the dependencies the nodes need${
          what ? ` (${what})` : ""
        }: \`deno install\` failed on the client: ${text}`,
      );
    }
    const graph = await npmGraph(
      configFile,
      `${codeDir}/${configDir}`,
      entries,
    );
    const packages = [...new Map(
      [...graph.values()].map((p) => [p.cachePath, p]),
    ).values()].sort((a, b) =>
      a.cachePath < b.cachePath ? -1 : a.cachePath > b.cachePath ? 1 : 0
    );
    const vendored: { path: string; data: Uint8Array }[] = [];
    await readTree(
      `${codeDir}/${configDir ? `${configDir}/` : ""}vendor`,
      `${configDir ? `${configDir}/` : ""}vendor/`,
      vendored,
    );
    const extras = [
      ...barrier,
      { path: config, data: encoder.encode(configText) },
      { path: stub, data: encoder.encode(stubText) },
      ...vendored,
    ];
    let lockText: string | undefined;
    try {
      lockText = await Deno.readTextFile(`${codeDir}/${lock}`);
    } catch {
      // No npm package, no remote module: no lockfile.
    }
    if (lockText !== undefined) {
      const pruned = pruneLockfile(lockText, new Set(graph.keys())) ??
        lockText;
      extras.push({ path: lock, data: encoder.encode(pruned) });
    }
    const importHosts = new Set<string>();
    const remotes = [
      ...(typeof lib === "string" ? [lib] : []),
      ...Object.keys(
        lockText === undefined ? {} : JSON.parse(lockText).remote ?? {},
      ),
    ];
    for (const url of remotes) {
      try {
        const u = new URL(url);
        if (u.protocol !== "http:" && u.protocol !== "https:") continue;
        importHosts.add(
          `${u.hostname}:${u.port || (u.protocol === "https:" ? 443 : 80)}`,
        );
      } catch {
        // Not a URL.
      }
    }
    const staged: Staged = {
      extras,
      packages,
      importHosts: [...importHosts].sort(),
      entries: modules,
      config,
    };
    await saveStaged(diskKey, staged).catch(() => {
      // A cache that cannot be written: readied again next time.
    });
    return await assemble(code, userFiles, staged);
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

/** What staging adds to the user's files, as kept between runs. */
interface Staged {
  /** The node's configuration, the image's imports stub, the lockfile, vendored modules. */
  extras: { path: string; data: Uint8Array }[];
  packages: NpmPackage[];
  importHosts: string[];
  entries: string[];
  config: string;
}

async function assemble(
  code: Bundle,
  userFiles: { path: string; data: Uint8Array }[],
  staged: Staged,
): Promise<NodeBundle> {
  const files = [...userFiles, ...staged.extras].sort((a, b) =>
    a.path < b.path ? -1 : a.path > b.path ? 1 : 0
  );
  return {
    ...code,
    files,
    config: staged.config,
    hash: await hashBundle(code, files),
    node: {
      packages: staged.packages,
      packagesHash: (await sha256Hex(
        staged.packages.map((p) => p.cachePath).join("\n"),
      )).slice(0, 32),
      entries: staged.entries,
      config: staged.config,
      importHosts: staged.importHosts,
    },
  };
}

function envOf(name: string): string | undefined {
  try {
    return Deno.env.get(name);
  } catch {
    return undefined;
  }
}

/** Where readied code is kept between runs: `$XDG_CACHE_HOME/skyward/staged`, else `~/.cache/skyward/staged`. */
function stagedDir(): string | undefined {
  const cache = envOf("XDG_CACHE_HOME") ??
    (envOf("HOME") ? `${envOf("HOME")}/.cache` : undefined);
  return cache ? `${cache}/skyward/staged` : undefined;
}

async function loadStaged(key: string): Promise<Staged | undefined> {
  const base = stagedDir();
  if (!base) return undefined;
  try {
    const dir = `${base}/${key}`;
    const meta = JSON.parse(await Deno.readTextFile(`${dir}/meta.json`)) as
      & Omit<Staged, "extras">
      & { extras: string[] };
    for (const pkg of meta.packages) {
      if (!(await Deno.stat(pkg.localPath)).isDirectory) return undefined;
    }
    const extras = await Promise.all(
      meta.extras.map(async (path) => ({
        path,
        data: await Deno.readFile(`${dir}/files/${path}`),
      })),
    );
    return { ...meta, extras };
  } catch {
    return undefined;
  }
}

async function saveStaged(key: string, staged: Staged): Promise<void> {
  const base = stagedDir();
  if (!base) return;
  const dir = `${base}/${key}`;
  const tmp = `${dir}.${Deno.pid}.tmp`;
  await Deno.remove(tmp, { recursive: true }).catch(() => {});
  await writeFiles(`${tmp}/files`, staged.extras);
  await Deno.writeTextFile(
    `${tmp}/meta.json`,
    JSON.stringify({ ...staged, extras: staged.extras.map((f) => f.path) }),
  );
  await Deno.remove(dir, { recursive: true }).catch(() => {});
  await Deno.rename(tmp, dir);
  // Keep the last few.
  const kept: { path: string; at: number }[] = [];
  for await (const entry of Deno.readDir(base)) {
    if (!entry.isDirectory || entry.name.includes(".")) continue;
    const path = `${base}/${entry.name}`;
    const at = (await Deno.stat(path).catch(() => undefined))?.mtime
      ?.getTime() ?? 0;
    kept.push({ path, at });
  }
  kept.sort((a, b) => b.at - a.at);
  for (const old of kept.slice(KEEP_STAGED)) {
    await Deno.remove(old.path, { recursive: true }).catch(() => {});
  }
}

/** The version of what staging makes: a change to it readies the code again. */
const STAGE_FORMAT = 2;

/** How many readied code directories are kept between runs. */
const KEEP_STAGED = 16;

async function hashBundle(
  code: Bundle,
  files: { path: string; data: Uint8Array }[],
): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest(
      "SHA-256",
      await new Blob([
        `node\0${code.hash}\0`,
        ...files.flatMap((
          f,
        ) => [
          `${f.path}\0${f.data.length}\0`,
          f.data as Uint8Array<ArrayBuffer>,
        ]),
      ]).arrayBuffer(),
    ),
  );
  return [...digest].map((b) => b.toString(16).padStart(2, "0")).join("")
    .slice(0, 32);
}

/** The npm packages the entries reach, by id, from `deno info` in the staged copy. */
async function npmGraph(
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
