import assert from "node:assert/strict";
import { alive, eventually, tempRoot } from "./helpers.ts";

const script = new URL("./fixtures/script.ts", import.meta.url).pathname;
const noGuard = new URL("./fixtures/no_guard.ts", import.meta.url).pathname;
const root = await tempRoot();

function spawn(path: string, ...args: string[]) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", path, ...args],
    env: { XDG_CACHE_HOME: root },
    stdout: "piped",
    stderr: "piped",
  }).spawn();
}

async function firstLine(stream: ReadableStream<Uint8Array>): Promise<string> {
  const reader = stream.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) break;
    text += value;
  }
  reader.releaseLock();
  return text.split("\n")[0];
}

Deno.test("an exception in the user's script still tears the pool down", async () => {
  const child = spawn(script, "throw");
  const [status, stdout, stderr] = await Promise.all([
    child.status,
    new Response(child.stdout).text(),
    new Response(child.stderr).text(),
  ]);
  assert.equal(status.success, false);
  assert.match(stderr, /the user's script failed/);
  const { pids } = JSON.parse(stdout.split("\n")[0]) as { pids: number[] };
  assert.equal(pids.length, 2);
  for (const pid of pids) {
    await eventually(
      async () => !(await alive(pid)),
      5_000,
      `pid ${pid} to exit`,
    );
  }
});

Deno.test("SIGINT during a run tears the pool down and exits with 130", async () => {
  const child = spawn(script, "wait");
  const { pids } = JSON.parse(await firstLine(child.stdout)) as {
    pids: number[];
  };
  for (const pid of pids) assert.ok(await alive(pid));
  await new Promise((r) => setTimeout(r, 200));
  child.kill("SIGINT");
  const status = await child.status;
  const stderr = await new Response(child.stderr).text();
  assert.equal(status.code, 130, stderr);
  assert.match(stderr, /Interrupted: closing 1 pool/);
  for (const pid of pids) {
    assert.equal(await alive(pid), false, `worker ${pid} survived`);
  }
});

Deno.test("a pool started while a worker imports the module points at the import.meta.main guard", async () => {
  const child = spawn(noGuard);
  const status = await child.status;
  const stderr = await new Response(child.stderr).text();
  await child.stdout.cancel();
  assert.equal(status.success, false);
  assert.match(stderr, /ConfigError/);
  assert.match(stderr, /import\.meta\.main/);
});
