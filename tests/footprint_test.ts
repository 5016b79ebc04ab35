/**
 * A program that only runs local nodes does not download a cloud SDK nor
 * the SSH library, and the code shipped to nodes never holds them: the
 * module graphs (`deno info --json`, which also lists what `deno run`
 * prefetches: statically analysable dynamic imports and type-only imports)
 * of a Local script and of the worker reach none of them, and a run with a
 * fresh `DENO_DIR` holding only the packages the Local graph needs works
 * with `--cached-only`, constructing every provider, and prints no warning.
 */
import assert from "node:assert/strict";
import { lazyModule } from "../src/_lazy.ts";
import { ProvisioningError } from "../src/errors.ts";
import { buildBundle } from "../src/bootstrap/bundle.ts";
import { nodeCode } from "../src/bootstrap/stage.ts";
import { libraryBundle } from "../src/bootstrap/worker.ts";
import { writeFiles } from "../src/bootstrap/_files.ts";
import * as sky from "../mod.ts";

const repo = new URL("..", import.meta.url);

/**
 * npm packages no local-only program nor node may load: the cloud SDKs, the
 * SSH library, the Redis client (a pool on Redis loads ioredis on first use),
 * and the dashboard's server and chart (loaded when asked for).
 */
const HEAVY =
  /^(@aws-sdk\/|@smithy\/|ssh2@|cpu-features@|@types\/ssh2@|ioredis@|@ioredis\/|hono@|uplot@)/;

interface Info {
  modules: { specifier: string; kind?: string; npmPackage?: string }[];
  npmPackages?: Record<
    string,
    { name: string; dependencies?: string[]; localPath?: string }
  >;
}

async function info(script: string, config?: string): Promise<Info> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "info",
      "--json",
      ...(config ? ["--config", config] : ["--no-config"]),
      script,
    ],
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  assert(out.success, new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The npm packages a graph reaches (those its modules import, and their dependencies), by id. */
function reached(graph: Info): string[] {
  const found = new Set<string>();
  const queue = graph.modules.filter((m) => m.kind === "npm")
    .map((m) => m.npmPackage!).filter(Boolean);
  for (let id = queue.pop(); id !== undefined; id = queue.pop()) {
    if (found.has(id)) continue;
    found.add(id);
    queue.push(...(graph.npmPackages?.[id]?.dependencies ?? []));
  }
  return [...found].sort();
}

/** A user's script, outside the repository, that imports the library by path and uses only sky.Local(). */
function localScript(dir: string, body: string): string {
  const path = `${dir}/local.ts`;
  Deno.writeTextFileSync(
    path,
    `import * as sky from ${
      JSON.stringify(new URL("mod.ts", repo).href)
    };\n${body}\n`,
  );
  return path;
}

const EVERY_PROVIDER = `
export const hello = sky.compute(() => "hello");
const providers = [
  sky.Local(),
  sky.AWS({ region: "us-east-1" }),
  sky.SSH({ hosts: ["sky@127.0.0.1:22"], key: "/nonexistent/key" }),
  sky.Container(),
  sky.RunPod({ apiKey: "test" }),
  sky.VastAI({ apiKey: "test" }),
  sky.Verda({ clientId: "test", clientSecret: "test" }),
];
console.log(providers.map((p) => p.name).join(","));
`;

Deno.test("a sky.Local() script's module graph holds no cloud SDK and no SSH library", async () => {
  const dir = await Deno.makeTempDir({ prefix: "skyward-footprint-" });
  try {
    const graph = await info(localScript(dir, EVERY_PROVIDER));
    const packages = reached(graph);
    assert(packages.some((id) => id.startsWith("zod@")), packages.join(" "));
    assert.deepEqual(packages.filter((id) => HEAVY.test(id)), []);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("the worker's module graph, shipped to every node, holds no cloud SDK and no SSH library", async () => {
  const graph = await info(new URL("worker/main.ts", repo).pathname);
  const packages = reached(graph);
  assert(packages.length > 0);
  assert.deepEqual(packages.filter((id) => HEAVY.test(id)), []);
});

Deno.test("a sky.Local() script runs from a fresh DENO_DIR holding only its own packages, constructs every provider, and prints no warning", async () => {
  const dir = await Deno.makeTempDir({ prefix: "skyward-footprint-" });
  try {
    const script = localScript(dir, EVERY_PROVIDER);
    // Seed a fresh cache with what the Local graph reaches, nothing else:
    // `--cached-only` then fails the run if it needs any other package.
    const graph = await info(script);
    const denoDir = `${dir}/deno`;
    for (const id of reached(graph).filter((id) => !HEAVY.test(id))) {
      const local = graph.npmPackages?.[id]?.localPath;
      if (!local) throw new Error(`${id} is not in the npm cache`);
      const name = graph.npmPackages![id].name;
      const depth = name.split("/").length + 2;
      const relative = local.split("/").slice(-depth).join("/");
      const target = `${denoDir}/npm/${relative}`;
      await Deno.mkdir(target, { recursive: true });
      const copy = await new Deno.Command("cp", {
        args: ["-r", `${local}/.`, target],
      }).output();
      assert(copy.success);
      // The packument, from which Deno resolves versions without a lockfile.
      const packument = `${
        local.slice(0, local.lastIndexOf("/"))
      }/registry.json`;
      await Deno.copyFile(
        packument,
        `${target.slice(0, target.lastIndexOf("/"))}/registry.json`,
      );
    }
    const out = await new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "--cached-only",
        "--no-lock",
        "--no-config",
        "-A",
        script,
      ],
      cwd: dir,
      stdout: "piped",
      stderr: "piped",
      env: { DENO_DIR: denoDir, NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
    }).output();
    const stderr = new TextDecoder().decode(out.stderr);
    assert(out.success, stderr);
    assert.deepEqual(
      new TextDecoder().decode(out.stdout).trim(),
      "local,aws,ssh,container,runpod,vastai,verda",
    );
    assert.deepEqual(stderr.match(/warning/i), null, stderr);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a module loaded on first use is imported once, and one that cannot load is a ProvisioningError naming what it brings", async () => {
  const dir = await Deno.makeTempDir({ prefix: "skyward-footprint-" });
  try {
    await Deno.writeTextFile(`${dir}/there.ts`, "export const value = 42;\n");
    const there = lazyModule<{ value: number }>(
      new URL(`file://${dir}/there.ts`),
      "the test's module",
    );
    const loaded = await there();
    assert.equal(loaded.value, 42);
    assert.equal(await there(), loaded);
    const missing = lazyModule<{ value: number }>(
      new URL(`file://${dir}/missing.ts`),
      "the test's SDK (npm:nothing)",
    );
    for (let attempt = 0; attempt < 2; attempt++) {
      await assert.rejects(missing(), (error: Error) => {
        assert.ok(error instanceof ProvisioningError, String(error));
        assert.match(
          error.message,
          /^Cannot load the test's SDK \(npm:nothing\), which Skyward fetches on first use: .*missing\.ts/,
        );
        return true;
      });
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

/**
 * The modules a run of `root` loads: the graph followed through its code
 * imports only (`import type` loads nothing), as specifiers, npm packages
 * by id.
 */
function loaded(graph: Info & { roots?: string[] }, root: string): string[] {
  const byUrl = new Map(
    graph.modules.map((m) => [
      m.specifier,
      m as Info["modules"][0] & {
        dependencies?: { code?: { specifier?: string } }[];
      },
    ]),
  );
  const found = new Set<string>();
  const queue = [root];
  for (let url = queue.pop(); url !== undefined; url = queue.pop()) {
    if (found.has(url)) continue;
    found.add(url);
    const module = byUrl.get(url);
    if (module?.npmPackage) found.add(`npm:${module.npmPackage}`);
    for (const dependency of module?.dependencies ?? []) {
      if (dependency.code?.specifier) queue.push(dependency.code.specifier);
    }
  }
  return [...found].sort();
}

/** What no node may load when it imports a user's module. */
const CLIENT =
  /npm:(zod|ssh2|@logtape\/|@aws-sdk\/|@smithy\/)|\/(providers|src\/pool|src\/transport|src\/bootstrap)\/|\/mod\.ts$/;

/**
 * The modules a node loads when it imports `module` (a file URL of the
 * user's code): the code readied for the nodes as a pool readies it, laid
 * out in a directory, and the graph Deno resolves there with the nodes'
 * configuration.
 */
async function nodeImport(module: string): Promise<string[]> {
  const code = await nodeCode(
    await buildBundle([module]),
    await libraryBundle(),
  );
  const dir = await Deno.makeTempDir({ prefix: "skyward-footprint-" });
  try {
    await writeFiles(dir, code.files);
    const path = decodeURIComponent(module.slice(code.rootUrl.length));
    const url = new URL(`file://${dir}/${path}`).href;
    return loaded(await info(url, `${dir}/${code.node.config}`), url)
      .map((m) => m.replace(`file://${dir}/`, ""));
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

/** A user's project outside the repository, importing the library as `how` says. */
async function userProject(how: "absolute" | "bare"): Promise<string> {
  const dir = await Deno.makeTempDir({ prefix: "skyward-footprint-" });
  const lib = how === "bare"
    ? "@skyward/skyward"
    : new URL("mod.ts", repo).pathname;
  if (how === "bare") {
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify({
        imports: { "@skyward/skyward": new URL("mod.ts", repo).pathname },
      }),
    );
  }
  await Deno.writeTextFile(
    `${dir}/app.ts`,
    `import * as sky from ${JSON.stringify(lib)};\n` +
      `export const one = sky.compute(() => sky.instanceInfo().node + 1);\n` +
      `const provider = sky.Local();\n` +
      `if (import.meta.main) console.log(provider.name);\n`,
  );
  return dir;
}

for (
  const how of ["a relative path", "an absolute path", "a bare name"] as const
) {
  Deno.test(`a node importing a user's module that imports the library by ${how} loads no client, provider, SSH library, zod nor LogTape`, async () => {
    const dir = how === "a relative path"
      ? undefined
      : await userProject(how === "a bare name" ? "bare" : "absolute");
    try {
      const module = dir
        ? new URL(`file://${dir}/app.ts`).href
        : new URL("tests/fixtures/node_library.ts", repo).href;
      const modules = await nodeImport(module);
      assert.deepEqual(modules.filter((m) => CLIENT.test(m)), []);
      assert.ok(modules.some((m) => m.endsWith("node.ts")), modules.join(" "));
      // The user's module, the node entry and what a task needs: computes,
      // errors, shard, the collections and the codec (msgpack) they use.
      assert.ok(modules.length <= 30, modules.join("\n"));
    } finally {
      if (dir) await Deno.remove(dir, { recursive: true });
    }
  });
}

Deno.test("the node entry has every name of mod.ts, and loads only modules mod.ts loads", async () => {
  const node = await import("../node.ts");
  const missing = Object.keys(sky).filter((name) => !(name in node));
  assert.deepEqual(missing, [], "add them to node.ts");
  const modGraph = loaded(
    await info(new URL("mod.ts", repo).href),
    new URL("mod.ts", repo).href,
  );
  const nodeGraph = loaded(
    await info(new URL("node.ts", repo).href),
    new URL("node.ts", repo).href,
  );
  assert.deepEqual(
    nodeGraph.filter((m) => !modGraph.includes(m) && !m.endsWith("/node.ts")),
    [],
  );
  // The codec's, which every task's values go through anyway: its ES module
  // build (its CommonJS main costs a process some 30 ms more to load).
  assert.deepEqual(
    nodeGraph.filter((m) => m.startsWith("npm:")),
    ["npm:@msgpack/msgpack@3.1.3/dist.esm/index.mjs"],
  );
});

Deno.test("on a node, the library's client parts import fine and say what they are when used", async () => {
  const node = await import("../node.ts");
  assert.equal(node.Local().name, "local");
  assert.equal(node.Image({ env: { MODE: "prod" } }).env.MODE, "prod");
  assert.throws(
    () => (node.AWS() as unknown as { offers: unknown }).offers,
    (error: Error) =>
      error instanceof node.ConfigError &&
      /sky\.AWS\(\)\.offers belongs to the client/.test(error.message),
  );
  await assert.rejects(
    node.ComputePool.start({ provider: node.Local() }),
    /ConfigError: ComputePool\.start\(\) was called while a worker imported your module \(.*footprint_test\.ts/,
  );
  assert.equal(node.compute, sky.compute);
  assert.equal(node.RemoteError, sky.RemoteError);
});

Deno.test("a task on a local node sees the node entry, beside top-level code that makes an image and a provider", async () => {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("tests/fixtures/node_library.ts", repo).pathname,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stderr = new TextDecoder().decode(out.stderr);
  assert.ok(out.success, stderr);
  const result = JSON.parse(new TextDecoder().decode(out.stdout));
  assert.match(
    result.pool,
    /^ConfigError: sky\.Local\(\)\.offers belongs to the client/,
  );
  assert.deepEqual(
    { ...result, pool: undefined },
    { pool: undefined, provider: "local", image: "prod", gpu: true, node: 0 },
  );
});
