/**
 * The Deno configuration the nodes run with: the project's own, its import
 * map joined (local paths made relative to where the code lands, absolute
 * imports mapped to their shipped copies), the image's `imports` over it,
 * remote modules vendored (`vendor: true`) and npm packages taken from the
 * Deno cache (`nodeModulesDir: "none"`: with `vendor: true` Deno otherwise
 * makes a `node_modules` directory beside the configuration).
 *
 * @module
 */
import type { Bundle } from "./bundle.ts";
import { ConfigError } from "../errors.ts";
import { toNodeEntry } from "./library.ts";

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
export const BARRIER: { path: string; text: string } = {
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

/**
 * The directory part of a `/`-separated path (`""` for a bare name).
 *
 * @param path The path.
 * @returns Its directory.
 *
 * @example
 * ```ts
 * import { posixDirname } from "./node_config.ts";
 *
 * console.log(posixDirname("app/deno.json")); // app
 * ```
 */
export function posixDirname(path: string): string {
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
 *
 * @param bundle The user's bundle.
 * @param configPath The configuration's path in the bundle (it may be absent).
 * @param imports The image's `imports`.
 * @returns The configuration, as an object to write as JSON.
 * @throws {ConfigError} When the configuration or its import map cannot be read.
 *
 * @example
 * ```ts
 * import { nodeConfig } from "./node_config.ts";
 *
 * const config = await nodeConfig(
 *   { root: "/p", rootUrl: "file:///p/", hash: "0", files: [] },
 *   "deno.json",
 *   { "left-pad": "npm:left-pad@1.3.0" },
 * );
 * console.log(config.imports, config.vendor); // { "left-pad": "npm:left-pad@1.3.0" } true
 * ```
 */
export async function nodeConfig(
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
  // The library, imported by path, name or URL, is its node entry there.
  const library = bundle.library && {
    mod: relativeTo(configDir, bundle.library.mod),
    node: relativeTo(configDir, bundle.library.node),
  };
  const scopes: Record<string, Record<string, string>> = {};
  if (config.scopes && typeof config.scopes === "object") {
    for (const [scope, map] of Object.entries(config.scopes)) {
      scopes[relocate(scope, bundle, configDir)] = toNodeEntry(
        relocateMap(map, bundle, configDir),
        library,
      );
    }
  }
  const result: Record<string, unknown> = {
    ...config,
    imports: toNodeEntry({
      ...absoluteImports(bundle, configDir),
      ...relocateMap(config.imports, bundle, configDir),
      ...imports,
    }, library),
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
