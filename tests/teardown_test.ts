/**
 * Teardown guarantees: whatever ends the program — an unhandled rejection,
 * an exception thrown from a callback, SIGTERM, SIGINT — the pool's workers
 * and machines are released, machines still being launched included; a
 * second interrupt exits at once, saying what may be left and how to sweep it.
 */
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { alive, eventually, tempRoot } from "./helpers.ts";

const script = new URL("./fixtures/teardown_script.ts", import.meta.url)
  .pathname;
const root = await tempRoot();

async function start(mode: string, ...more: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", script, mode, ...more],
    env: { XDG_CACHE_HOME: root },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  child.stdout.cancel().catch(() => {});
  const { pids, id } = JSON.parse(text.split("\n")[0]) as {
    pids: number[];
    id: string;
  };
  const stderr = new Response(child.stderr).text();
  return { child, pids, id, stderr };
}

async function allGone(pids: number[]): Promise<void> {
  for (const pid of pids) {
    await eventually(async () => !(await alive(pid)), 5_000, `pid ${pid}`);
  }
}

for (
  const [mode, pattern] of [
    ["reject", /Uncaught \(in promise\).*nobody handled this/s],
    ["timer-throw", /Uncaught.*a callback threw/s],
  ] as const
) {
  Deno.test(
    `${
      mode === "reject"
        ? "an unhandled rejection"
        : "an exception thrown from a callback"
    } closes the pool and exits with 1`,
    async () => {
      const { child, pids, stderr } = await start(mode);
      const status = await child.status;
      const text = await stderr;
      assert.equal(status.code, 1, text);
      assert.match(text, pattern);
      assert.match(text, /closing 1 pool/);
      await allGone(pids);
    },
  );
}

Deno.test("a program that ends with its pool open waits for the pool's close to finish: its machines are released by the provider", async () => {
  const mark = `${root}/released-${crypto.randomUUID()}`;
  const { child, pids, stderr } = await start("left-open", mark);
  const status = await child.status;
  const text = await stderr;
  assert.equal(status.code, 0, text);
  assert.match(text, /the program is done but pool .* is still open/);
  // The provider's release ran to its end before the program exited.
  assert.equal(await Deno.readTextFile(mark), "released");
  await allGone(pids);
});

Deno.test("SIGTERM closes the pool and exits with 143", async () => {
  const { child, pids, stderr } = await start("wait");
  child.kill("SIGTERM");
  const status = await child.status;
  const text = await stderr;
  assert.equal(status.code, 143, text);
  assert.match(text, /Interrupted: closing 1 pool/);
  for (const pid of pids) assert.equal(await alive(pid), false);
});

Deno.test("a second Ctrl-C exits at once, printing what may be left and how to sweep it", async () => {
  const { child, pids, id, stderr } = await start("slow-close");
  child.kill("SIGINT");
  // The workers go first; the provider's teardown then takes a minute.
  await allGone(pids);
  const second = Date.now();
  child.kill("SIGINT");
  const status = await child.status;
  const text = await stderr;
  assert.ok(Date.now() - second < 5_000, "the second interrupt waited");
  assert.equal(status.code, 130, text);
  assert.match(text, /Interrupted again: exiting now/);
  assert.ok(
    text.includes(`${id} on local: sweep-command --cluster ${id}`),
    text,
  );
});

Deno.test("closing while machines are still being launched terminates them once they exist", async () => {
  const alive = new Set<string>();
  let launched = 0;
  const local = sky.Local({ root });
  const provider: sky.Provider<any> = {
    ...local,
    async provision(cluster, count) {
      // The launch outlives the pool's start: its reply comes after the
      // deadline (which leaves time to build the code under load).
      await new Promise((r) => setTimeout(r, 3_000));
      const instances = await local.provision(cluster, count);
      for (const instance of instances) alive.add(instance.id);
      launched += instances.length;
      return instances;
    },
    async terminate(cluster, ids) {
      for (const id of ids) alive.delete(id);
      await local.terminate(cluster, ids);
    },
  };
  await assert.rejects(
    sky.ComputePool.start({
      provider,
      nodes: 2,
      console: "silent",
      provisionTimeout: 1_500,
    }),
    /provisionTimeout/,
  );
  assert.equal(launched, 2);
  assert.deepEqual([...alive], []);
});
