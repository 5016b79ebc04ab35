/**
 * The code bundle: the project's local module graph, found with
 * `deno info --json`, plus `deno.json` and `deno.lock`, identified by a
 * content hash. Workers import user modules from a copy of it.
 *
 * @module
 */
import { ConfigError } from "../errors.ts";
import { sha256Hex } from "../_hash.ts";
import { pathExistsSync } from "../_fs.ts";
import { LIBRARY_MODULE, NODE_ENTRY } from "./library.ts";

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
  /**
   * The modules some module of the bundle imports by an absolute path or a
   * `file:` URL (`import * as sky from "/opt/skyward/mod.ts"`), relative to
   * `root`: the nodes map those imports to the shipped copies.
   */
  absolute?: string[];
  /**
   * The project's root, relative to `root` (`""` when they are the same): the
   * directory of the Deno configuration in use, else the first module's
   * directory. The image's `includes` are relative to it.
   */
  project?: string;
  /**
   * The library's `mod.ts` and its node entry `node.ts`, relative to `root`,
   * when the user's code imports the library by path (so that both are
   * shipped): the nodes' import map sends the one to the other.
   */
  library?: { mod: string; node: string };
}

const CONFIG_NAMES = ["deno.json", "deno.jsonc"];

function fromFileUrl(url: string): string {
  return decodeURIComponent(new URL(url).pathname);
}

function dirname(path: string): string {
  const i = path.lastIndexOf("/");
  return i <= 0 ? "/" : path.slice(0, i);
}

/** The nearest directory at or above `dir` holding a Deno configuration file. */
function findConfigDir(dir: string): string | undefined {
  for (let d = dir;; d = dirname(d)) {
    if (CONFIG_NAMES.some((name) => pathExistsSync(`${d}/${name}`))) return d;
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
  modules?: {
    specifier: string;
    local?: string;
    error?: string;
    dependencies?: {
      specifier: string;
      code?: { specifier?: string };
      type?: { specifier?: string };
    }[];
  }[];
}

/** A module graph's local files, and those of them imported by an absolute path or `file:` URL. */
interface Graph {
  files: string[];
  absolute: string[];
}

async function moduleGraph(root: string, cwd: string): Promise<Graph> {
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
  const absolute: string[] = [];
  for (const module of info.modules ?? []) {
    if (!module.specifier.startsWith("file:")) continue;
    if (module.error) {
      throw new ConfigError(`Cannot ship ${module.specifier}: ${module.error}`);
    }
    files.push(module.local ?? fromFileUrl(module.specifier));
    for (const dependency of module.dependencies ?? []) {
      if (!/^(\/|file:)/.test(dependency.specifier)) continue;
      for (const target of [dependency.code, dependency.type]) {
        if (target?.specifier?.startsWith("file:")) {
          absolute.push(fromFileUrl(target.specifier));
        }
      }
    }
  }
  return { files, absolute };
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
        bundle.project,
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
  // The project: the directory of the Deno configuration in use, else the
  // entry module's directory.
  const main = Deno.mainModule.startsWith("file:")
    ? dirname(fromFileUrl(Deno.mainModule))
    : undefined;
  const projectDir = findConfigDir(first) ?? main ?? first;
  const graphs = await Promise.all(
    roots.map((root) => moduleGraph(root, projectDir)),
  );
  const files = new Set(graphs.flatMap((g) => g.files));
  // The library's node entry goes with it: nodes import it in its place
  // (its imports are a part of mod.ts's, shipped already).
  const libraryFiles = LIBRARY_MODULE.protocol === "file:" &&
      files.has(fromFileUrl(LIBRARY_MODULE.href))
    ? [fromFileUrl(LIBRARY_MODULE.href), fromFileUrl(NODE_ENTRY.href)]
    : undefined;
  if (libraryFiles) files.add(libraryFiles[1]);
  let config: string | undefined;
  for (const name of [...CONFIG_NAMES, "deno.lock"]) {
    const path = `${projectDir}/${name}`;
    if (pathExistsSync(path)) {
      files.add(path);
      if (name !== "deno.lock") config ??= path;
    }
  }
  const root = commonDir([...files, `${projectDir}/.`]);
  const inside = (path: string) =>
    path.slice(root === "/" ? 1 : root.length + 1);
  const relative = [...files].map(inside).sort();
  const bundle = await hashFiles(
    root,
    relative,
    config && inside(config),
    projectDir === root ? "" : inside(projectDir),
  );
  const absolute = [
    ...new Set(
      graphs.flatMap((g) => g.absolute).filter((path) => files.has(path)),
    ),
  ].map(inside).sort();
  const library = libraryFiles &&
    { mod: inside(libraryFiles[0]), node: inside(libraryFiles[1]) };
  return {
    ...bundle,
    ...(absolute.length > 0 ? { absolute } : {}),
    ...(library ? { library } : {}),
  };
}

async function hashFiles(
  root: string,
  paths: string[],
  config?: string,
  project?: string,
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
    hash: (await sha256Hex(all)).slice(0, 32),
    files,
    config,
    project,
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

/** An include: a file on the client, uploaded into the code directory. */
export interface IncludedFile {
  /** Its path relative to the bundle's root (and to the code directory). */
  path: string;
  /** Its absolute path on the client. */
  file: string;
  size: number;
  mtimeMs: number;
}

/**
 * A glob as a regular expression over `/`-separated relative paths: `*`
 * and `?` stay within a segment, `**` spans segments, `[...]` and `{a,b}`
 * work as in shells. A pattern without `/` matches a name at any depth
 * (like `.gitignore`); a match on a directory covers what is inside.
 */
function globToRegExp(glob: string): RegExp {
  let pattern = glob.replace(/^\.\//, "").replace(/^\/+/, "").replace(
    /\/+$/,
    "",
  );
  const anywhere = !pattern.includes("/");
  let out = "";
  let braces = 0;
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === "*") {
      if (pattern[i + 1] === "*") {
        const slash = pattern[i + 2] === "/";
        out += slash ? "(?:.*/)?" : ".*";
        i += slash ? 2 : 1;
      } else {
        out += "[^/]*";
      }
    } else if (c === "?") {
      out += "[^/]";
    } else if (c === "[") {
      const end = pattern.indexOf("]", i + 1);
      if (end < 0) {
        out += "\\[";
      } else {
        const body = pattern.slice(i + 1, end).replace(/^!/, "^").replace(
          /\\/g,
          "\\\\",
        );
        out += `[${body}]`;
        i = end;
      }
    } else if (c === "{") {
      braces++;
      out += "(?:";
    } else if (c === "}" && braces > 0) {
      braces--;
      out += ")";
    } else if (c === "," && braces > 0) {
      out += "|";
    } else {
      out += c.replace(/[.+^$()|\\]/g, "\\$&");
    }
  }
  pattern = out;
  return new RegExp(
    anywhere ? `(?:^|/)${pattern}(?:/|$)` : `^${pattern}(?:/|$)`,
  );
}

async function walk(
  dir: string,
  prefix: string,
  skip: (path: string) => boolean,
  out: string[],
): Promise<void> {
  const entries: Deno.DirEntry[] = [];
  for await (const entry of Deno.readDir(dir)) entries.push(entry);
  entries.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
  for (const entry of entries) {
    const path = `${prefix}${entry.name}`;
    if (skip(path)) continue;
    const full = `${dir}/${entry.name}`;
    const info = entry.isSymlink ? await Deno.stat(full) : entry;
    if (info.isDirectory) await walk(full, `${path}/`, skip, out);
    else if (info.isFile) out.push(path);
  }
}

/**
 * The image's `includes`, less its `excludes`, as files relative to the
 * bundle's root. Both are relative to the project's root (the directory of
 * the Deno configuration in use, else the entry module's): an include is a
 * file or a directory there, an exclude a glob over paths there. Files are
 * identified by path, size and modification time, not read: a large data
 * set costs a `stat` per file on a ready host, and is streamed when it is
 * uploaded.
 *
 * @param code The bundle the files go with.
 * @param includes Paths of files or directories, relative to the project's root (or absolute, inside it).
 * @param excludes Glob patterns of paths to leave out.
 * @returns The files, sorted, without those already in the bundle.
 * @throws {ConfigError} When an include is outside the project or does not exist.
 *
 * @example
 * ```ts
 * import { buildBundle, includedFiles } from "./bundle.ts";
 *
 * const bundle = await buildBundle([new URL("../../examples/hello.ts", import.meta.url).href]);
 * const files = await includedFiles(bundle, ["README.md"], []);
 * console.log(files.map((f) => f.path)); // ["README.md"]
 * ```
 */
export async function includedFiles(
  code: Bundle,
  includes: readonly string[],
  excludes: readonly string[],
): Promise<IncludedFile[]> {
  if (includes.length === 0) return [];
  const patterns = excludes.map(globToRegExp);
  const excluded = (path: string) => patterns.some((p) => p.test(path));
  const paths = new Set<string>();
  const root = code.root === "/" ? "" : code.root;
  const prefix = code.project ? `${code.project}/` : "";
  const project = `${root}/${code.project ?? ""}`.replace(/\/+$/, "") || "/";
  const inProject = project === "/" ? "" : project;
  for (const include of includes) {
    if (typeof include !== "string" || include === "") {
      throw new ConfigError(
        `Cannot ship include ${
          JSON.stringify(include)
        }: it must be a path relative to the project (${project})`,
      );
    }
    let relative = include.startsWith("/")
      ? (include === project || include.startsWith(`${inProject}/`)
        ? include.slice(inProject.length + 1)
        : undefined)
      : include;
    relative = relative?.replace(/^(?:\.\/+)+/, "").replace(/\/+$/, "");
    if (relative === ".") relative = "";
    if (
      relative === undefined ||
      relative.split("/").some((s) => s === "..")
    ) {
      throw new ConfigError(
        `Cannot ship include '${include}': includes must be inside the project (${project})`,
      );
    }
    const full = relative ? `${inProject}/${relative}` : project;
    let info: Deno.FileInfo;
    try {
      info = await Deno.stat(full);
    } catch {
      throw new ConfigError(
        `Cannot ship include '${include}': ${full} does not exist (includes are relative to the project's root, ${project})`,
      );
    }
    if (info.isDirectory) {
      const found: string[] = [];
      await walk(full, relative ? `${relative}/` : "", excluded, found);
      for (const path of found) paths.add(path);
    } else if (!excluded(relative)) {
      paths.add(relative);
    }
  }
  const inBundle = new Set(code.files.map((f) => f.path));
  return await Promise.all(
    [...paths].map((p) => `${prefix}${p}`).filter((p) => !inBundle.has(p))
      .sort().map(async (path) => {
        const file = `${root}/${path}`;
        const info = await Deno.stat(file);
        return {
          path,
          file,
          size: info.size,
          mtimeMs: info.mtime?.getTime() ?? 0,
        };
      }),
  );
}

/**
 * The name of a code directory on a node: the bundle's hash, or with
 * includes a hash of it and of the included files' paths, sizes and times.
 *
 * @param bundle The bundle.
 * @param includes Its includes (see {@linkcode includedFiles}).
 * @returns 32 hex characters.
 *
 * @example
 * ```ts
 * import { codeKey } from "./bundle.ts";
 *
 * const bundle = { root: "/p", rootUrl: "file:///p/", hash: "ab12", files: [] };
 * console.log(await codeKey(bundle, [])); // "ab12"
 * ```
 */
export async function codeKey(
  bundle: Bundle,
  includes: readonly IncludedFile[],
): Promise<string> {
  if (includes.length === 0) return bundle.hash;
  const text = [
    bundle.hash,
    ...includes.map((f) => `${f.path}\0${f.size}\0${f.mtimeMs}`),
  ].join("\0\0");
  return (await sha256Hex(new TextEncoder().encode(text))).slice(0, 32);
}
