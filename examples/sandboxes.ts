/**
 * Sandboxes: each task holds exactly the Deno permissions its compute
 * declares; a stricter tier runs self-contained functions in QuickJS compiled
 * to WebAssembly, or exports of raw WebAssembly modules.
 *
 * Run it with `deno run -A examples/sandboxes.ts`.
 *
 * @module
 */
import * as sky from "../mod.ts";

/** Reads the node's host name: a `sys` permission. */
export const host = sky.compute(() => Deno.hostname(), {
  permissions: { sys: ["hostname"] },
});

/** Tries to read a file it was not given: refused with `NotCapable`. */
export const peek = sky.compute((path: string) => Deno.readTextFile(path));

/** A pure function, run in QuickJS with a memory and a time limit. */
export const collatz = sky.compute((n: number) => {
  let steps = 0;
  for (; n !== 1; steps++) n = n % 2 === 0 ? n / 2 : 3 * n + 1;
  return steps;
}, { sandbox: "wasm", memoryLimit: 8 * 1024 * 1024, timeout: 1_000 });

/**
 * `add` of a raw WebAssembly module:
 * `(func (export "add") (param i32 i32) (result i32) local.get 0 local.get 1 i32.add)`.
 */
export const add = sky.wasm<[number, number]>(
  new Uint8Array([
    0,
    97,
    115,
    109,
    1,
    0,
    0,
    0,
    1,
    7,
    1,
    96,
    2,
    127,
    127,
    1,
    127,
    3,
    2,
    1,
    0,
    7,
    7,
    1,
    3,
    97,
    100,
    100,
    0,
    0,
    10,
    9,
    1,
    7,
    0,
    32,
    0,
    32,
    1,
    106,
    11,
  ]),
  "add",
  { timeout: 1_000 },
);

if (import.meta.main) {
  await using pool = await sky.ComputePool.start({ provider: sky.Local() });
  console.log("host:", await pool.run(host()));
  try {
    await pool.run(peek("/etc/hostname"));
  } catch (error) {
    console.log("peek:", error instanceof sky.RemoteError && error.remoteName); // "NotCapable"
  }
  console.log("collatz(27):", await pool.run(collatz(27))); // 111
  console.log("add(2, 3):", await pool.run(add(2, 3))); // 5
}
