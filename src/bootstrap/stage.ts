/**
 * The code as nodes run it, readied on the client by {@linkcode nodeCode}
 * before a pool launches anything.
 *
 * A node runs the worker with `--cached-only --frozen`, so it must be given
 * everything up front: a Deno configuration (`node_config.ts`), a lockfile
 * that covers the whole graph, the remote modules (vendored beside the
 * configuration) and the npm packages (`npm.ts`). The client makes them by
 * laying the code out as on a node in a scratch directory and running
 * `deno install` there, which fetches what its own cache lacks; then
 * `deno info` says which npm packages the graph reaches, and where they are
 * in the client's cache. What it made is kept between runs
 * (`stage_cache.ts`).
 *
 * @module
 */
import type { Bundle } from "./bundle.ts";
import { BARRIER, nodeConfig, posixDirname } from "./node_config.ts";
import {
  lockfilePath,
  npmGraph,
  type NpmPackage,
  packageIn,
  pruneLockfile,
} from "./npm.ts";
import {
  envOf,
  loadStaged,
  saveStaged,
  STAGE_FORMAT,
  type Staged,
} from "./stage_cache.ts";
import { writeFiles } from "./_files.ts";
import { ConfigError } from "../errors.ts";
import { sha256Hex } from "../_hash.ts";

const MODULE = /\.(?:[mc]?[jt]s|[jt]sx)$/;

/**
 * The module files of a bundle (not its configuration, lockfile or data),
 * as paths relative to its root.
 *
 * @param bundle The bundle.
 * @returns The paths of its JavaScript and TypeScript modules, declaration files left out.
 *
 * @example
 * ```ts
 * import { moduleFiles } from "./stage.ts";
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
 * import { libraryBundle } from "./worker.ts";
 * import { nodeCode } from "./stage.ts";
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
    // The library's modules beside the worker that it loads on first use
    // (e.g. the Redis backend, with npm:ioredis), so that their packages
    // are readied and shipped too.
    let libEntries: string[] = [];
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
      libEntries = moduleFiles(lib).filter((m) => m !== entry.path)
        .map((m) => new URL(`file://${dir}/lib/${m}`).href);
    }
    const entries = [
      workerEntry,
      ...libEntries,
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

async function hashBundle(
  code: Bundle,
  files: { path: string; data: Uint8Array }[],
): Promise<string> {
  const encoder = new TextEncoder();
  return (await sha256Hex([
    encoder.encode(`node\0${code.hash}\0`),
    ...files.flatMap((f) => [
      encoder.encode(`${f.path}\0${f.data.length}\0`),
      f.data,
    ]),
  ])).slice(0, 32);
}
