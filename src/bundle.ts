/**
 * The code bundle: the project's local module graph, found with
 * `deno info --json`, plus `deno.json` and `deno.lock`, identified by a
 * content hash. Workers import user modules from a copy of it.
 *
 * @module
 */
import { ConfigError } from "./errors.ts";

/** One file of a bundle. */
export interface BundleFile {
  /** Path relative to the bundle's root, with `/` separators. */
  path: string;
  /** The file's bytes. */
  data: Uint8Array;
}

/** A content-addressed copy of the project's code. */
export interface Bundle {
  /** The directory on the client that paths are relative to. */
  root: string;
  /** `root` as a file URL ending in `/`. */
  rootUrl: string;
  /** SHA-256 of every path and content, hex. */
  hash: string;
  /** The files, sorted by path. */
  files: BundleFile[];
  /** Whether the bundle carries a Deno configuration file, and its path. */
  config?: string;
}

const CONFIG_NAMES = ["deno.json", "deno.jsonc"];

function fromFileUrl(url: string): string {
  return decodeURIComponent(new URL(url).pathname);
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

/** The nearest directory at or above `dir` holding a Deno configuration file. */
function findConfigDir(dir: string): string | undefined {
  for (let d = dir;; d = dirname(d)) {
    if (CONFIG_NAMES.some((name) => exists(`${d}/${name}`))) return d;
    if (d === "/") return undefined;
  }
}

function commonDir(paths: string[]): string {
  let common = dirname(paths[0]);
  for (const path of paths) {
    while (
      !(path === common || path.startsWith(common === "/" ? "/" : `${common}/`))
    ) {
      common = dirname(common);
    }
  }
  return common;
}

interface DenoInfo {
  modules?: { specifier: string; local?: string; error?: string }[];
}

async function moduleGraph(root: string, cwd: string): Promise<string[]> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", root],
    cwd,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  if (!output.success) {
    throw new ConfigError(
      `Cannot ship the code of ${root}: \`deno info\` failed: ${
        new TextDecoder().decode(output.stderr).trim()
      }`,
    );
  }
  const info = JSON.parse(new TextDecoder().decode(output.stdout)) as DenoInfo;
  const files: string[] = [];
  for (const module of info.modules ?? []) {
    if (!module.specifier.startsWith("file:")) continue;
    if (module.error) {
      throw new ConfigError(`Cannot ship ${module.specifier}: ${module.error}`);
    }
    files.push(module.local ?? fromFileUrl(module.specifier));
  }
  return files;
}

async function sha256(data: Uint8Array): Promise<string> {
  const digest = await crypto.subtle.digest(
    "SHA-256",
    data as Uint8Array<ArrayBuffer>,
  );
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, "0"))
    .join("");
}

const cache = new Map<string, Promise<Bundle>>();

/**
 * Builds the bundle of the modules `roots` and everything they import from
 * the local file system, plus the Deno configuration and lock file of the
 * project (the nearest directory at or above the first root holding
 * `deno.json`).
 *
 * @param roots File URLs of the modules whose graphs to ship.
 * @returns The bundle. The same roots with unchanged files give the same hash.
 * @throws {ConfigError} When a root is not a local file or its graph cannot be read.
 */
export function buildBundle(roots: string[]): Promise<Bundle> {
  const key = roots.join("\n");
  const cached = cache.get(key);
  if (cached) {
    // Reuse the previous graph only while every file is unchanged.
    return cached.then(async (bundle) => {
      const fresh = await hashFiles(
        bundle.root,
        bundle.files.map((f) => f.path),
        bundle.config,
      );
      if (fresh.hash === bundle.hash) return bundle;
      cache.delete(key);
      return buildBundle(roots);
    });
  }
  const built = build(roots);
  cache.set(key, built);
  built.catch(() => cache.delete(key));
  return built;
}

async function build(roots: string[]): Promise<Bundle> {
  if (roots.length === 0) {
    throw new ConfigError("Cannot ship code: no module defines a compute");
  }
  for (const root of roots) {
    if (!root.startsWith("file:")) {
      throw new ConfigError(
        `Cannot ship ${root}: only modules on the local file system can be shipped`,
      );
    }
  }
  const first = dirname(fromFileUrl(roots[0]));
  const projectDir = findConfigDir(first) ?? first;
  const graphs = await Promise.all(
    roots.map((root) => moduleGraph(root, projectDir)),
  );
  const files = new Set(graphs.flat());
  let config: string | undefined;
  for (const name of [...CONFIG_NAMES, "deno.lock"]) {
    const path = `${projectDir}/${name}`;
    if (exists(path)) {
      files.add(path);
      if (name !== "deno.lock") config ??= path;
    }
  }
  const root = commonDir([...files, `${projectDir}/.`]);
  const relative = [...files].map((f) =>
    f.slice(root === "/" ? 1 : root.length + 1)
  ).sort();
  return await hashFiles(
    root,
    relative,
    config && config.slice(root.length + 1),
  );
}

async function hashFiles(
  root: string,
  paths: string[],
  config?: string,
): Promise<Bundle> {
  const encoder = new TextEncoder();
  const files: BundleFile[] = await Promise.all(
    paths.map(async (path) => ({
      path,
      data: await Deno.readFile(`${root}/${path}`),
    })),
  );
  const parts: Uint8Array[] = [];
  for (const file of files) {
    parts.push(
      encoder.encode(`${file.path}\0${file.data.length}\0`),
      file.data,
    );
  }
  const all = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const part of parts) {
    all.set(part, at);
    at += part.length;
  }
  const rootUrl =
    new URL(`file://${encodeURI(root === "/" ? "/" : `${root}/`)}`).href;
  return {
    root,
    rootUrl,
    hash: (await sha256(all)).slice(0, 32),
    files,
    config,
  };
}

/**
 * The path of a module inside the bundle, relative to its root.
 *
 * @param bundle The bundle.
 * @param moduleUrl The module's URL on the client.
 * @returns The relative path, or `undefined` when the module is not in the bundle.
 */
export function bundlePath(
  bundle: Bundle,
  moduleUrl: string,
): string | undefined {
  if (!moduleUrl.startsWith(bundle.rootUrl)) return undefined;
  const path = decodeURIComponent(moduleUrl.slice(bundle.rootUrl.length));
  return bundle.files.some((f) => f.path === path) ? path : undefined;
}
