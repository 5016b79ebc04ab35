// The first run of a new user: the seed's hello works as written, a denied
// permission says which option to add, and the log lines read well.
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import {
  connects,
  hello,
  helloDenied,
  readsHome,
} from "./fixtures/first_run.ts";
import { alive, eventually, tempRoot } from "./helpers.ts";
import { requireRig, RIG_DIR } from "./rig/rig.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) console.warn(`first_run_test.ts: SSH test ignored: ${reason}`);

async function start(events: sky.PoolEvent[] = []) {
  return await sky.ComputePool.start({
    provider: sky.Local({ root: await tempRoot() }),
    console: "silent",
    onEvent: (e) => events.push(e),
  });
}

Deno.test("the seed's hello reads the host name with no permission set", async () => {
  await using pool = await start();
  assert.equal(await pool.run(hello()), `Hello from ${Deno.hostname()}!`);
});

Deno.test("a denied permission names the compute and the exact option to add, not --allow-*", async () => {
  await using pool = await start();
  const denied = (name: string, option: string) => (error: unknown) => {
    const e = error as sky.RemoteError;
    assert.equal(e.name, "RemoteError");
    assert.equal(e.remoteName, "NotCapable");
    assert.ok(e.message.startsWith("NotCapable: "), e.message);
    assert.ok(
      e.message.includes(`compute '${name}' needs`),
      `names the compute: ${e.message}`,
    );
    assert.ok(
      e.message.includes(`sky.compute(fn, { permissions: ${option} })`),
      `shows ${option}: ${e.message}`,
    );
    assert.doesNotMatch(e.message, /--allow-|run again/);
    assert.doesNotMatch(e.remoteStack ?? "", /--allow-|run again/);
    return true;
  };
  await assert.rejects(
    () => pool.run(helloDenied()),
    denied("helloDenied", '{ sys: ["hostname"] }'),
  );
  await assert.rejects(
    () => pool.run(readsHome()),
    denied("readsHome", '{ env: ["HOME"] }'),
  );
  // A list the compute already has is extended, not replaced.
  await assert.rejects(
    () => pool.run(connects(9)),
    denied("connects", '{ net: ["example.com", "127.0.0.1:9"] }'),
  );
});

Deno.test("the local provider's lines do not repeat its name as a region", async () => {
  const events: sky.PoolEvent[] = [];
  await using _pool = await start(events);
  const prepared = events.find((e) => e.type === "ClusterProvisioned")!;
  assert.equal(
    sky.formatEvent(prepared),
    "[ClusterProvisioned] Cluster prepared on local for 1 node(s)",
  );
});

/**
 * Runs `tests/fixtures/forgotten_pool.ts` (a program that never closes its
 * pool) with these arguments, and checks that it ends by itself: its work
 * done, the pool closed with one line saying so, its workers stopped.
 */
async function forgottenPool(args: string[]): Promise<(number | null)[]> {
  const script = new URL("./fixtures/forgotten_pool.ts", import.meta.url);
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", script.pathname, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  // Hang detection, not a speed check: a program that hangs is killed.
  const hang = setTimeout(() => child.kill("SIGKILL"), 120_000);
  const { code, stdout, stderr } = await child.output();
  clearTimeout(hang);
  const out = new TextDecoder().decode(stdout);
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 0, `exit code; stderr: ${err}`);
  // The work scheduled after the script's last line ran before the close.
  assert.match(out, /result 16\nlater 25\n/);
  const notices = err.split("\n").filter((l) => l.startsWith("skyward:"));
  assert.equal(notices.length, 1, err);
  assert.match(
    notices[0],
    /the program is done but pool sky-\S+ is still open: closing it now \(`await using pool = await sky\.ComputePool\.start\(\.\.\.\)` closes a pool cleanly/,
  );
  return JSON.parse(/pids (\[.*\])/.exec(out)![1]);
}

Deno.test("a program that never closes its pool ends once its own work is done, closing the pool with one line", async () => {
  const pids = await forgottenPool([await tempRoot()]);
  // Its worker was stopped, not left behind.
  assert.equal(pids.length, 1);
  for (const pid of pids) {
    await eventually(
      async () => !(await alive(pid!)),
      10_000,
      `worker ${pid} to end`,
    );
  }
});

Deno.test({
  name: "a program that never closes its SSH pool ends too",
  ignore: !rig,
  fn: async () => {
    const host = rig!.hosts[rig!.hosts.length - 1];
    await forgottenPool([
      "ssh",
      `${host.user}@${host.address}:${host.port}`,
      host.keyPath,
      `${RIG_DIR}/known_hosts`,
    ]);
    // The worker on the host was stopped by the close.
    const workers = async () => {
      const { stdout } = await new Deno.Command("pgrep", {
        args: ["-u", host.user, "-f", "worker/main.ts"],
      }).output();
      return new TextDecoder().decode(stdout).trim();
    };
    await eventually(
      async () => (await workers()) === "",
      10_000,
      "the worker on the host to end",
    );
  },
});

Deno.test("from a project outside the repository: hello as written, a denied permission's advice, a pool left open", async () => {
  const dir = await tempRoot();
  const nodes = await tempRoot();
  const repo = decodeURIComponent(new URL("../", import.meta.url).pathname)
    .replace(/\/$/, "");
  assert.ok(!dir.startsWith(`${repo}/`), "the project is outside the repo");
  await Deno.writeTextFile(
    `${dir}/deno.json`,
    JSON.stringify({ imports: { "@skyward/skyward": `${repo}/mod.ts` } }),
  );
  await Deno.writeTextFile(
    `${dir}/main.ts`,
    `import * as sky from "@skyward/skyward";

export const hello = sky.compute(() => \`Hello from \${Deno.hostname()}!\`);
export const home = sky.compute(() => Deno.env.get("HOME"));

if (import.meta.main) {
  const pool = await sky.ComputePool.start({
    provider: sky.Local({ root: ${JSON.stringify(nodes)} }),
    nodes: 2,
    console: "silent",
  });
  console.log(JSON.stringify(await pool.broadcast(hello())));
  try {
    await pool.run(home());
  } catch (error) {
    console.log((error as Error).message);
  }
}
`,
  );
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "--quiet", "main.ts"],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const hang = setTimeout(() => child.kill("SIGKILL"), 180_000);
  const { code, stdout, stderr } = await child.output();
  clearTimeout(hang);
  const out = new TextDecoder().decode(stdout).trim().split("\n");
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 0, `exit code; stderr: ${err}`);
  const greeting = `Hello from ${Deno.hostname()}!`;
  assert.deepEqual(JSON.parse(out[0]), [greeting, greeting]);
  assert.match(
    out[1],
    /^NotCapable: compute 'home' needs env access to "HOME", which its sandbox does not grant\. Grant it where the compute is defined: sky\.compute\(fn, \{ permissions: \{ env: \["HOME"\] \} \}\)/,
  );
  assert.equal(
    err.split("\n").filter((l) =>
      /^skyward: the program is done but pool sky-\S+ is still open: closing it now/
        .test(l)
    ).length,
    1,
    err,
  );
});

Deno.test("a program run without -A is told once which flags it lacks, and to run with deno run -A", async () => {
  const dir = await tempRoot();
  const nodes = await tempRoot();
  const mod = new URL("../mod.ts", import.meta.url).href;
  await Deno.writeTextFile(
    `${dir}/main.ts`,
    `import * as sky from ${JSON.stringify(mod)};

export const hello = sky.compute(() => "hello");

if (import.meta.main) {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local({ root: ${JSON.stringify(nodes)} }),
    console: "silent",
  });
  console.log(await pool.run(hello()));
}
`,
  );
  const { code, stderr } = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--no-prompt", "--allow-read", "--quiet", "main.ts"],
    cwd: dir,
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  const err = new TextDecoder().decode(stderr);
  assert.equal(code, 1, err);
  assert.match(
    err,
    /ConfigError: Cannot start pool: the program runs without --allow-run, --allow-write, --allow-env\. .*Run the program with `deno run -A`\./,
  );
  // Nothing was started: no node directory was made.
  assert.deepEqual([...Deno.readDirSync(nodes)], []);
});
