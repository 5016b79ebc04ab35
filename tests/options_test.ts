// Options that say what is wrong: compute options checked at definition
// time, pool sizes bounded per provider, timeouts of any length.
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { sleep, square } from "./fixtures/computes.ts";
import { tempRoot } from "./helpers.ts";

const fn = () => 1;

Deno.test("compute() names an unknown option and the nearest known one", () => {
  assert.throws(
    () => sky.compute(fn, { isolaton: "task" } as never),
    {
      name: "TypeError",
      message: /unknown option 'isolaton' \(did you mean 'isolation'\?\)/,
    },
  );
  assert.throws(
    () => sky.compute(fn, { timeuot: 5 } as never),
    /unknown option 'timeuot' \(did you mean 'timeout'\?\)/,
  );
  assert.throws(
    () => sky.compute(fn, { colour: "red" } as never),
    /unknown option 'colour' \(the options are name, timeout, permissions, sandbox, isolation, memoryLimit\)/,
  );
});

Deno.test("compute() refuses options that are not an object", () => {
  assert.throws(
    () => sky.compute(fn, "square" as never),
    {
      name: "TypeError",
      message:
        /options must be an object .*got "square" \(to name the compute, pass \{ name: "square" \}\)/,
    },
  );
  assert.throws(() => sky.compute(fn, null as never), /got null/);
  assert.throws(() => sky.compute(fn, [1] as never), /got \[1\]/);
});

Deno.test("compute() refuses a memoryLimit too small to run, saying it is in bytes", () => {
  assert.throws(
    () => sky.compute(fn, { memoryLimit: 1 }),
    {
      name: "RangeError",
      message:
        /'memoryLimit' is in bytes, and 1 bytes is less than a Deno sandbox needs \(at least 33554432, 32 MiB\)/,
    },
  );
  assert.throws(
    () => sky.compute(fn, { sandbox: "wasm", memoryLimit: 1024 }),
    /less than a WASM sandbox needs \(at least 65536, 64 KiB\)/,
  );
});

Deno.test('compute() refuses net: ["*"] with the grant that allows every host', () => {
  assert.throws(
    () => sky.compute(fn, { permissions: { net: ["*"] } }),
    {
      name: "TypeError",
      message:
        /permission 'net' lists "\*", which Deno does not read as "any": grant every host with \{ net: true \}/,
    },
  );
  assert.throws(
    () => sky.compute(fn, { permissions: { net: ["https://example.com/x"] } }),
    /"https:\/\/example.com\/x", which is not a host/,
  );
  assert.throws(
    () => sky.Image({ permissions: { read: ["*"] } }),
    /grant every file with \{ read: true \}/,
  );
});

Deno.test("compute() and withTimeout() quote a timeout that is not a number", () => {
  assert.throws(
    () => sky.compute(fn, { timeout: NaN }),
    /positive number of milliseconds, got NaN/,
  );
  assert.throws(
    () => square(1).withTimeout(Infinity),
    /got Infinity \(leave it out for no limit\)/,
  );
});

Deno.test("start() quotes NaN and Infinity nodes instead of null", async () => {
  const provider = sky.Local({ root: await tempRoot() });
  for (const nodes of [NaN, Infinity]) {
    await assert.rejects(
      () => sky.ComputePool.start({ provider, nodes, console: "silent" }),
      {
        name: "ConfigError",
        message: new RegExp(
          `'nodes' must be a positive integer, or \\{ desired, min, max \\} \\(got ${nodes}\\)`,
        ),
      },
    );
  }
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider,
        nodes: { desired: 1, max: NaN },
        console: "silent",
      }),
    /'nodes\.max' must be a finite number \(got NaN\)/,
  );
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider,
        worker: { concurency: 2 },
        console: "silent",
      } as never),
    /unknown option 'concurency' \(did you mean 'concurrency'\?\) in 'worker'/,
  );
});

Deno.test("start() refuses more nodes than sky.Local() can hold, before making any node", async () => {
  const root = await tempRoot();
  const provider = sky.Local({ root });
  const limit = provider.nodeLimit!;
  assert.ok(limit.max >= 1);
  for (const nodes of [1e9, { min: 1, max: limit.max + 1 }]) {
    await assert.rejects(
      () => sky.ComputePool.start({ provider, nodes, console: "silent" }),
      {
        name: "ConfigError",
        message: new RegExp(
          `'nodes(\\.max)?' is ${
            typeof nodes === "number" ? nodes : limit.max + 1
          }, more than local allows \\(at most ${limit.max}: sky\\.Local\\(\\) runs each node on this machine`,
        ),
      },
    );
  }
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        specs: [sky.Spec({ provider, nodes: 1e6 })],
        console: "silent",
      }),
    /'specs\[0\]\.nodes' is 1000000, more than local allows/,
  );
  assert.deepEqual([...Deno.readDirSync(root)], []);
});

Deno.test("start() refuses more nodes than sky.SSH() has hosts", async () => {
  const provider = sky.SSH({ hosts: ["a@127.0.0.1:1", "a@127.0.0.1:2"] });
  await assert.rejects(
    () => sky.ComputePool.start({ provider, nodes: 3, console: "silent" }),
    /'nodes' is 3, more than ssh allows \(at most 2: sky\.SSH\(\) runs one node per host and was given 2\)/,
  );
});

Deno.test("resize() refuses more nodes than the provider can hold, quoting the value", async () => {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local({ root: await tempRoot() }),
    console: "silent",
  });
  await assert.rejects(() => pool.resize(1e9), {
    name: "RangeError",
    message:
      /Cannot resize pool to 1000000000 nodes: local allows at most \d+ \(sky\.Local\(\) runs each node/,
  });
  await assert.rejects(() => pool.resize(NaN), /got NaN/);
  assert.equal(pool.size, 1);
});

Deno.test("a timeout of 2^31 ms or more does not fire at once", async () => {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local({ root: await tempRoot() }),
    console: "silent",
    taskTimeout: 2 ** 32,
    provisionTimeout: 2 ** 31,
  });
  assert.equal(await pool.run(sleep(200).withTimeout(2 ** 31)), 200);
  assert.equal(await pool.run(sleep(200)), 200);
});

Deno.test("sky.Spec() names an unknown option and the nearest known one", () => {
  assert.throws(
    () => sky.Spec({ provider: sky.Local(), nodse: 2 } as never),
    {
      name: "ConfigError",
      message: /unknown option 'nodse' \(did you mean 'nodes'\?\)/,
    },
  );
});

Deno.test("intervals past the longest a timer takes are refused, not fired at once", async () => {
  const provider = sky.Local({ root: await tempRoot() });
  await assert.rejects(
    () =>
      sky.ComputePool.start({
        provider,
        console: "silent",
        deadManSwitch: { heartbeatInterval: 2 ** 31 },
      }),
    /'deadManSwitch\.heartbeatInterval' must be at most 2147483647 ms \(24\.8 days\).*\(got 2147483648\)/,
  );
});

Deno.test("sky.Local() refuses a root that is not a path, quoting it", async () => {
  for (const root of [5, ""]) {
    await assert.rejects(
      () =>
        sky.ComputePool.start({
          provider: sky.Local({ root: root as unknown as string }),
          console: "silent",
        }),
      (error: Error) => {
        assert.equal(error.name, "ConfigError");
        assert.match(
          error.message,
          new RegExp(
            `'root' must be a directory path, got ${JSON.stringify(root)}`,
          ),
        );
        return true;
      },
    );
  }
});

Deno.test("provider and image factories name an unknown option with the nearest known one", () => {
  const cases: [() => unknown, RegExp][] = [
    [
      () => sky.Local({ rot: "./nodes" } as never),
      /^Invalid sky\.Local options: unknown option 'rot' \(did you mean 'root'\?\)$/,
    ],
    [
      () => sky.Local("./nodes" as never),
      /expected an object, got "\.\/nodes"/,
    ],
    [
      () => sky.SSH({ hosts: ["u@h"], keyy: "k" } as never),
      /^Invalid sky\.SSH options: unknown option 'keyy' \(did you mean 'key'\?\)$/,
    ],
    [
      () => sky.Container({ cpu: 2 } as never),
      /^Invalid sky\.Container options: unknown option 'cpu' \(did you mean 'cpus'\?\)$/,
    ],
    [
      () => sky.Image({ import: {} } as never),
      /^Invalid image: unknown option 'import' \(did you mean 'imports'\?\)$/,
    ],
    [
      () => sky.RunPod({ apiKey: "k", cloudTyp: "SECURE" } as never),
      /unknown option 'cloudTyp' \(did you mean 'cloudType'\?\)/,
    ],
  ];
  for (const [make, message] of cases) {
    assert.throws(make, (e: unknown) => {
      assert.ok(e instanceof sky.ConfigError, String(e));
      assert.match(e.message, message);
      return true;
    });
  }
});
