import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { add, named, square } from "./fixtures/computes.ts";

Deno.test("local() runs the function in this process", async () => {
  assert.equal(square.local(6), 36);
  assert.equal(add.local(2, 3), 5);
  const info = sky.compute; // computes are plain values: no pool needed to build tasks
  assert.equal(typeof info, "function");
  assert.equal(await Promise.resolve(named.local(1)), 2);
});

Deno.test("calling a compute builds a task without running it", () => {
  const task = square(3);
  assert.deepEqual(task.args, [3]);
  assert.equal(task.compute, square);
  assert.equal(task.timeout, undefined);
});

Deno.test("withTimeout() returns a copy with the new timeout", () => {
  const task = square(3);
  const limited = task.withTimeout(1_000);
  assert.equal(limited.timeout, 1_000);
  assert.equal(task.timeout, undefined);
  assert.throws(
    () => task.withTimeout(-5),
    /positive number of milliseconds, got -5/,
  );
});

Deno.test("a compute is identified by its module and its place or name", () => {
  assert.ok(square.id.module.endsWith("/tests/fixtures/computes.ts"));
  assert.match(square.id.key, /^\d+:\d+$/);
  assert.equal(square.id.name, "square");
  assert.equal(named.id.key, "increment");
  assert.equal(named.id.name, "increment");
});

Deno.test("gather() refuses something that is not a task", () => {
  // deno-lint-ignore no-explicit-any
  assert.throws(
    () => sky.gather(square(1), 2 as any),
    /argument 1 is not a task/,
  );
});

Deno.test("a compute created inside a function is an error at definition time", async () => {
  await assert.rejects(
    () => import("./fixtures/in_function.ts"),
    (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /inside function 'make'/);
      assert.match(error.message, /top level/);
      return true;
    },
  );
});

Deno.test("a compute created inside a block is an error at definition time", async () => {
  await assert.rejects(
    () => import("./fixtures/in_block.ts"),
    (error: Error) => {
      assert.ok(error instanceof TypeError);
      assert.match(error.message, /inside a block \(`if \(Deno\.args/);
      return true;
    },
  );
});

Deno.test("a compute created inside a test callback is refused", () => {
  assert.throws(
    () => sky.compute(() => 1),
    /inside a function or callback|inside function/,
  );
});

Deno.test("bad compute options are clear errors", () => {
  // deno-lint-ignore no-explicit-any
  assert.throws(
    () => sky.compute(42 as any),
    /expected a function, got number/,
  );
});

Deno.test("compute() refuses a sandbox or isolation it does not know, naming the choices", () => {
  const fn = () => 1;
  assert.throws(
    () => sky.compute(fn, { sandbox: "node" } as never),
    {
      name: "TypeError",
      message:
        /Cannot create a compute: 'sandbox' must be "deno" or "wasm", got "node"/,
    },
  );
  assert.throws(
    () => sky.compute(fn, { isolation: 1 } as never),
    {
      name: "TypeError",
      message:
        /Cannot create a compute: 'isolation' must be "shared" or "task", got 1/,
    },
  );
});

Deno.test("instanceInfo() outside a pool describes one local node", () => {
  const info = sky.instanceInfo();
  assert.equal(info.node, 0);
  assert.equal(info.totalNodes, 1);
  assert.equal(info.isHead, true);
});
