/**
 * The library as a user gets it: a temporary project outside this
 * repository (tests/fixtures/user_project/app.ts copied there) that imports
 * the library by path through its own deno.json, or by an
 * `http://127.0.0.1:PORT/mod.ts` URL with no deno.json at all, and runs the
 * seed's examples — hello, gather, the typed all, broadcast with
 * instanceInfo, `.local`, the accelerator pattern (a dependency imported
 * inside the compute and declared only in the image) and an included data
 * file — on `sky.Local()`, on an SSH rig host (which cannot reach the npm
 * registry) and on a container, plus the error paths: an undeclared import
 * in a task, a missing include, apt where it cannot be installed.
 *
 * Each program runs as its own `deno run`, as a user would run it; one pool
 * per program runs every case. The SSH and container cases need the rig and
 * the Docker daemon (ignored without them, failures under `CI=true`).
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { square } from "./fixtures/cluster.ts";
import { tempRoot } from "./helpers.ts";
import { requireDocker } from "./rig/dockerd.ts";
import { requireRig, RIG_DIR, type RigHost } from "./rig/rig.ts";

const REPO = new URL("../", import.meta.url);
const FIXTURE = new URL("./fixtures/user_project/", import.meta.url);

const { rig, reason: rigReason } = await requireRig({ hosts: 1 });
if (!rig) console.warn(`user_project_test.ts: SSH cases ignored: ${rigReason}`);
const docker = await requireDocker();
if (docker.reason) {
  console.warn(
    `user_project_test.ts: container cases ignored: ${docker.reason}`,
  );
}

/** The client's Deno cache, as `deno info` reports it. */
const DENO_DIR: string = JSON.parse(
  new TextDecoder().decode(
    (await new Deno.Command(Deno.execPath(), {
      args: ["info", "--json"],
      stdout: "piped",
    }).output()).stdout,
  ),
).denoDir;
const NPM_CACHE = `${DENO_DIR}/npm/registry.npmjs.org`;

/**
 * Takes a package version out of the client's cache, so that the test shows
 * it is fetched when declared (dayjs) or never fetched when not (left-pad).
 */
async function uncache(name: string, version: string): Promise<void> {
  await Deno.remove(`${NPM_CACHE}/${name}/${version}`, { recursive: true })
    .catch(() => {});
}

async function exists(path: string): Promise<boolean> {
  try {
    await Deno.stat(path);
    return true;
  } catch {
    return false;
  }
}

/** Every `deno.lock` under `dir`, with its text. */
async function lockfiles(dir: string): Promise<Map<string, string>> {
  const found = new Map<string, string>();
  const walk = async (d: string): Promise<void> => {
    let entries: Deno.DirEntry[];
    try {
      entries = await Array.fromAsync(Deno.readDir(d));
    } catch {
      return;
    }
    for (const entry of entries) {
      const path = `${d}/${entry.name}`;
      if (entry.isDirectory && entry.name !== "vendor") await walk(path);
      else if (entry.name === "deno.lock") {
        found.set(path, await Deno.readTextFile(path));
      }
    }
  };
  await walk(dir);
  return found;
}

type LibraryImport =
  | { kind: "path" }
  | { kind: "absolute" }
  | { kind: "url"; url: string };

/**
 * Makes the user's project in a temporary directory outside the repository:
 * app.ts, a module of its own, a data file, and (when the library is
 * imported by path) a deno.json mapping `@skyward/skyward` to the repository
 * and `#lib/` to the project's folder.
 */
async function makeProject(library: LibraryImport): Promise<string> {
  const dir = await tempRoot();
  const repo = decodeURIComponent(REPO.pathname).replace(/\/$/, "");
  assert.ok(
    !dir.startsWith(`${repo}/`),
    "the project is outside the repository",
  );
  let app = await Deno.readTextFile(new URL("app.ts", FIXTURE));
  const lib = library.kind === "path"
    ? "@skyward/skyward"
    : library.kind === "absolute"
    ? `${repo}/mod.ts`
    : new URL("mod.ts", library.url).href;
  app = app.replace(`from "../../../mod.ts"`, `from ${JSON.stringify(lib)}`);
  if (library.kind === "path") {
    app = app.replace(`from "./lib/greeting.ts"`, `from "#lib/greeting.ts"`);
    await Deno.writeTextFile(
      `${dir}/deno.json`,
      JSON.stringify(
        {
          imports: {
            "@skyward/skyward": `${repo}/mod.ts`,
            "#lib/": "./lib/",
          },
        },
        null,
        2,
      ),
    );
  }
  await Deno.writeTextFile(`${dir}/app.ts`, app);
  await Deno.mkdir(`${dir}/lib`);
  await Deno.copyFile(
    new URL("lib/greeting.ts", FIXTURE),
    `${dir}/lib/greeting.ts`,
  );
  await Deno.mkdir(`${dir}/data`);
  for (const name of ["input.txt", "scratch.tmp"]) {
    await Deno.copyFile(
      new URL(`data/${name}`, FIXTURE),
      `${dir}/data/${name}`,
    );
  }
  return dir;
}

/** Serves the repository's files over HTTP, as a remote dependency looks to Deno. */
function serveLibrary(): Deno.HttpServer<Deno.NetAddr> & { url: string } {
  const types: Record<string, string> = {
    ts: "application/typescript",
    js: "application/javascript",
    json: "application/json",
  };
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    async (request) => {
      const path = decodeURIComponent(new URL(request.url).pathname);
      if (path.split("/").includes("..")) {
        return new Response("no", { status: 400 });
      }
      try {
        const body = await Deno.readFile(new URL(`.${path}`, REPO));
        const type = types[path.slice(path.lastIndexOf(".") + 1)] ??
          "application/octet-stream";
        return new Response(body, { headers: { "content-type": type } });
      } catch {
        return new Response("not found", { status: 404 });
      }
    },
  );
  return Object.assign(server, {
    url: `http://127.0.0.1:${server.addr.port}/`,
  });
}

type ProviderArg =
  | { kind: "local"; root: string }
  | { kind: "ssh"; hosts: string[]; key: string; knownHosts: string }
  | { kind: "container"; host: string };

interface Results {
  hello: string;
  gather: number[];
  all: [number, number];
  broadcast: number[];
  local: number;
  formatDate: string;
  data: { text: string; files: string[] };
  leftPad: string;
  undeclared: string;
}

/** Runs the project's app.ts as a user would, and returns what it printed. */
async function runApp(
  dir: string,
  provider: ProviderArg,
  nodes: number,
): Promise<Results> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "app.ts", JSON.stringify({ provider, nodes })],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1", DENO_NO_UPDATE_CHECK: "1" },
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  const stderr = new TextDecoder().decode(output.stderr);
  assert.ok(
    output.success,
    `app.ts failed (exit ${output.code}):\n${stderr.slice(-4_000)}`,
  );
  const line = stdout.trim().split("\n").at(-1) ?? "";
  return JSON.parse(line);
}

/** What every provider must answer. */
function assertResults(r: Results, nodes: number): void {
  assert.match(r.hello, /^Hello from .+!$/);
  assert.deepEqual(r.gather, [1, 4, 9]);
  assert.deepEqual(r.all, [25, nodes]);
  assert.deepEqual(r.broadcast, [...Array(nodes).keys()]);
  assert.equal(r.local, 36);
  // Declared only in the image: fetched by the client, shipped or fetched.
  assert.equal(r.formatDate, "2024/03/05");
  // An include, relative to the project's root, less the excludes.
  assert.deepEqual(r.data, { text: "forty-two\n", files: ["input.txt"] });
  // Not declared: refused, naming the package and how to declare it.
  assert.match(r.leftPad, /^RemoteError: /);
  // (Where the client's cache knows the package, Deno names the version the
  // task asked for; elsewhere only the package.)
  assert.match(r.leftPad, /Cannot import "(?:npm:)?left-pad(?:@1\.3\.0)?"/);
  assert.match(
    r.leftPad,
    /sky\.Image\(\{ imports: \{ "left-pad": "npm:left-pad(?:@1\.3\.0)?" \} \}\)/,
  );
  assert.ok(
    r.undeclared.includes(`Cannot import "is-odd"`) &&
      r.undeclared.includes("sky.Image({ imports:"),
    r.undeclared,
  );
}

/** Nothing fetched left-pad: not the client, not the node; no lockfile names it. */
async function assertNothingFetched(nodeDirs: string[]): Promise<void> {
  assert.ok(
    !(await exists(`${NPM_CACHE}/left-pad/1.3.0`)),
    "left-pad was downloaded into the client's cache",
  );
  for (const dir of nodeDirs) {
    assert.ok(
      !(await exists(
        `${dir}/deno_dir/npm/registry.npmjs.org/left-pad/1.3.0`,
      )),
      `left-pad was downloaded into ${dir}`,
    );
    const locks = await lockfiles(`${dir}/code`);
    assert.ok(locks.size > 0, `no shipped lockfile under ${dir}/code`);
    for (const [path, text] of locks) {
      assert.ok(!text.includes("left-pad"), `${path} was rewritten`);
    }
  }
}

function sshProvider(host: RigHost): ProviderArg {
  return {
    kind: "ssh",
    hosts: [`${host.user}@${host.address}:${host.port}`],
    key: host.keyPath,
    knownHosts: `${RIG_DIR}/known_hosts`,
  };
}

Deno.test("a project with its own deno.json mapping the library by path runs the seed's examples on sky.Local() with 4 nodes", async () => {
  await uncache("dayjs", "1.11.13");
  await uncache("left-pad", "1.3.0");
  const project = await makeProject({ kind: "path" });
  const root = await tempRoot();
  const results = await runApp(project, { kind: "local", root }, 4);
  assertResults(results, 4);
  assert.ok(await exists(`${NPM_CACHE}/dayjs/1.11.13`));
  await assertNothingFetched(
    [...Array(4).keys()].map((i) => `${root}/node-${i}`),
  );
  // The user's own lockfile is theirs: the client does not write the image's
  // package into it.
  const own = await Deno.readTextFile(`${project}/deno.lock`).catch(() => "");
  assert.ok(!own.includes("dayjs"), "the project's deno.lock gained dayjs");
});

Deno.test("a project keeping its sky.Local() nodes inside itself (root: './.nodes') runs the seed's examples: nodes use the shipped configuration only", async () => {
  await uncache("left-pad", "1.3.0");
  const project = await makeProject({ kind: "path" });
  // Relative to the program's working directory, the project's root: under
  // the project's deno.json, which maps the library to the repository.
  const results = await runApp(project, { kind: "local", root: "./.nodes" }, 1);
  assertResults(results, 1);
  const node = `${project}/.nodes/node-0`;
  assert.ok(await exists(`${node}/code`), "the nodes live in the project");
  await assertNothingFetched([node]);
  // The project's own lockfile is the client's: the nodes did not touch it.
  const own = await Deno.readTextFile(`${project}/deno.lock`).catch(() => "");
  assert.ok(!own.includes("dayjs"), "the project's deno.lock gained dayjs");
});

/** Runs the project's app on two local nodes, which fetch nothing. */
async function runTwoLocalNodes(project: string): Promise<void> {
  const root = await tempRoot();
  const results = await runApp(project, { kind: "local", root }, 2);
  assertResults(results, 2);
  await assertNothingFetched([`${root}/node-0`, `${root}/node-1`]);
}

Deno.test("a project with no deno.json importing the library by an http URL runs the seed's examples on sky.Local()", async () => {
  await uncache("left-pad", "1.3.0");
  await using server = serveLibrary();
  const project = await makeProject({ kind: "url", url: server.url });
  await runTwoLocalNodes(project);
});

Deno.test({
  name:
    "a project mapping the library by path runs the seed's examples on an SSH host that cannot reach the registry",
  ignore: !rig,
  fn: async () => {
    await uncache("dayjs", "1.11.13");
    await uncache("left-pad", "1.3.0");
    const host = rig!.hosts[0];
    const project = await makeProject({ kind: "path" });
    const results = await runApp(project, sshProvider(host), 1);
    assertResults(results, 1);
    await assertNothingFetched([`/home/${host.user}/.cache/skyward`]);
  },
});

Deno.test("a project with no deno.json importing the library by its absolute path runs the seed's examples on sky.Local(): nodes import the shipped copy", async () => {
  await uncache("left-pad", "1.3.0");
  const project = await makeProject({ kind: "absolute" });
  await runTwoLocalNodes(project);
});

Deno.test({
  name:
    "a project importing the library by its absolute path runs on an SSH host, where that path does not exist",
  ignore: !rig,
  fn: async () => {
    const project = await makeProject({ kind: "absolute" });
    const results = await runApp(project, sshProvider(rig!.hosts[0]), 1);
    assertResults(results, 1);
  },
});

Deno.test({
  name:
    "a project importing the library by an http URL runs on an SSH host that cannot reach that server: the library is shipped",
  ignore: !rig,
  fn: async () => {
    await using server = serveLibrary();
    const project = await makeProject({ kind: "url", url: server.url });
    const results = await runApp(project, sshProvider(rig!.hosts[0]), 1);
    assertResults(results, 1);
  },
});

Deno.test({
  name:
    "a project mapping the library by path runs the seed's examples on a container",
  ignore: docker.host === null,
  fn: async () => {
    await uncache("left-pad", "1.3.0");
    const project = await makeProject({ kind: "path" });
    const results = await runApp(
      project,
      { kind: "container", host: docker.host! },
      1,
    );
    assertResults(results, 1);
    assert.ok(!(await exists(`${NPM_CACHE}/left-pad/1.3.0`)));
  },
});

Deno.test("an include that does not exist is a ConfigError on every provider, before anything is launched", async () => {
  const image = sky.Image({ includes: ["tests/fixtures/no-such-dir"] });
  const providers: sky.Provider<any>[] = [
    sky.Local({ root: await tempRoot() }),
  ];
  if (rig) {
    const host = rig.hosts[0];
    providers.push(sky.SSH({
      hosts: [`${host.user}@${host.address}:${host.port}`],
      key: host.keyPath,
      knownHosts: `${RIG_DIR}/known_hosts`,
    }));
  }
  if (docker.host) providers.push(sky.Container({ host: docker.host }));
  for (const provider of providers) {
    const events: string[] = [];
    await assert.rejects(
      sky.ComputePool.start({
        provider,
        image,
        console: "silent",
        onEvent: (e) => events.push(e.type),
      }),
      (error: Error) => {
        assert.ok(
          error instanceof sky.ConfigError,
          `${provider.name}: ${error}`,
        );
        assert.match(error.message, /tests\/fixtures\/no-such-dir/);
        assert.match(error.message, /does not exist/);
        return true;
      },
    );
    assert.ok(
      !events.includes("InstanceLaunched"),
      `${provider.name} launched a node: ${events.join(", ")}`,
    );
  }
  // Keep the computes of the fixture registered for the pools above.
  assert.equal(square.local(3), 9);
});

Deno.test("apt packages on sky.Local() are a ConfigError saying why", async () => {
  await assert.rejects(
    sky.ComputePool.start({
      provider: sky.Local({ root: await tempRoot() }),
      image: sky.Image({ apt: ["ffmpeg"] }),
      console: "silent",
    }),
    (error: Error) => {
      assert.ok(error instanceof sky.ConfigError, String(error));
      assert.match(
        error.message,
        /^Cannot install apt packages on local nodes: .*Install ffmpeg on this machine yourself/,
      );
      return true;
    },
  );
});
