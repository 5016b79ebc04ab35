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

const repo = new URL("..", import.meta.url);

/** npm packages no local-only program nor node may load (a pool on Redis loads ioredis on first use). */
const HEAVY =
  /^(@aws-sdk\/|@smithy\/|ssh2@|cpu-features@|@types\/ssh2@|ioredis@|@ioredis\/)/;

interface Info {
  modules: { specifier: string; kind?: string; npmPackage?: string }[];
  npmPackages?: Record<
    string,
    { name: string; dependencies?: string[]; localPath?: string }
  >;
}

async function info(script: string): Promise<Info> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "--no-config", script],
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
