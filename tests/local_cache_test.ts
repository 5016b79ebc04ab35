// The local provider's node directories keep a bounded number of versions
// of the shipped code (providers/local/mod.ts).
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { pruneCode } from "../providers/local/mod.ts";
import { square } from "./fixtures/computes.ts";
import { tempRoot } from "./helpers.ts";

/** Makes `node-<n>/code/<name>` as a complete copy last written `ageMs` ago. */
async function version(
  root: string,
  node: number,
  name: string,
  ageMs: number,
): Promise<string> {
  const dir = `${root}/node-${node}/code/${name}`;
  await Deno.mkdir(`${dir}/app`, { recursive: true });
  await Deno.writeTextFile(`${dir}/app/main.ts`, "export {};\n");
  await Deno.writeTextFile(`${dir}/.skyward-hash`, name);
  const when = new Date(Date.now() - ageMs);
  await Deno.utime(`${dir}/.skyward-hash`, when, when);
  return dir;
}

async function listing(dir: string): Promise<string[]> {
  const names: string[] = [];
  for await (const entry of Deno.readDir(dir)) names.push(entry.name);
  return names.sort();
}

Deno.test("pruneCode() keeps the most recent versions of each node and removes the rest", async () => {
  const root = await tempRoot();
  for (let i = 0; i < 6; i++) await version(root, 0, `v${i}`, i * 60_000);
  await version(root, 1, "w0", 0);
  await Deno.writeTextFile(`${root}/node-0/code/.skyward-contact`, "x");
  const removed = await pruneCode(root, 3);
  assert.deepEqual(
    removed.map((d) => d.slice(root.length)).sort(),
    ["/node-0/code/v3", "/node-0/code/v4", "/node-0/code/v5"],
  );
  assert.deepEqual(await listing(`${root}/node-0/code`), [
    ".skyward-contact",
    "v0",
    "v1",
    "v2",
  ]);
  assert.deepEqual(await listing(`${root}/node-1/code`), ["w0"]);
});

Deno.test("pruneCode() leaves a version a running process works in", async () => {
  const root = await tempRoot();
  await version(root, 0, "new", 0);
  const busy = await version(root, 0, "busy", 3_600_000);
  await version(root, 0, "idle", 7_200_000);
  const child = new Deno.Command("sleep", { args: ["60"], cwd: busy })
    .spawn();
  try {
    await pruneCode(root, 1);
    assert.deepEqual(await listing(`${root}/node-0/code`), ["busy", "new"]);
  } finally {
    child.kill("SIGKILL");
    await child.status;
  }
});

Deno.test("a local pool starting removes the code versions beyond keepCode, and keeps its own", async () => {
  const root = await tempRoot();
  for (let i = 0; i < 4; i++) {
    await version(root, 0, `old${i}`, (i + 1) * 60_000);
  }
  await using pool = await sky.ComputePool.start({
    provider: sky.Local({ root, keepCode: 2 }),
    console: "silent",
  });
  assert.equal(await pool.run(square(3)), 9);
  const left = await listing(`${root}/node-0/code`);
  assert.deepEqual(left.filter((n) => n.startsWith("old")), ["old0", "old1"]);
  // Its own version came in beside them.
  assert.equal(
    left.filter((n) => /^[0-9a-f]+$/.test(n)).length,
    1,
    left.join(" "),
  );
});

Deno.test("sky.Local() refuses a keepCode that is not a positive integer", () => {
  for (const keepCode of [0, -1, 1.5]) {
    assert.throws(
      () => sky.Local({ keepCode }),
      (e: Error) =>
        e instanceof sky.ConfigError &&
        /'keepCode' must be a positive integer/.test(e.message),
    );
  }
});
