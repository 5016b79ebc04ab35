// A pool whose nodes were all given up: no task waits for ever.
import assert from "node:assert/strict";
import * as sky from "../mod.ts";
import { FaultyProvider, NodeKiller } from "./faults.ts";
import { sleep, square } from "./fixtures/computes.ts";
import { eventually, tempRoot } from "./helpers.ts";

/**
 * A one-node pool whose machine is taken back and cannot be replaced (every
 * launch after the first fails): the node is given up.
 */
async function doomedPool(
  options: Partial<sky.PoolOptions> = {},
  failures = 3,
) {
  const killer = new NodeKiller();
  const events: sky.PoolEvent[] = [];
  const provider = new FaultyProvider(sky.Local({ root: await tempRoot() }), {
    // The three launches of the node's restarts fail; later ones work.
    fail: (call, count) =>
      call === "provision" && count > 1 && count <= failures + 1
        ? "before"
        : undefined,
  });
  const pool = await sky.ComputePool.start({
    provider,
    console: "silent",
    onEvent: (e) => {
      events.push(e);
      killer.onEvent(e);
    },
    ...options,
  });
  const loseTheNode = () => {
    provider.preempt(killer.instances[0]);
    killer.killWorker(0);
  };
  return { pool, events, loseTheNode };
}

Deno.test("when every node was given up, queued and new tasks fail at once with a clear error", async () => {
  const { pool, events, loseTheNode } = await doomedPool();
  await using _ = pool;
  const noNode = {
    name: "NodeLostError",
    message: /no node is left.*start a new pool, or pool\.resize\(n\)/,
  };
  assert.equal(await pool.run(square(3)), 9);
  const running = assert.rejects(pool.run(sleep(60_000)), noNode);
  await eventually(
    () => events.some((e) => e.type === "TaskStarted"),
    10_000,
    "the long task to start",
  );
  loseTheNode();
  await eventually(
    () => events.some((e) => e.type === "NodeLost"),
    10_000,
    "the node to be lost",
  );
  // Queued while the pool tries to replace the node.
  const queued = assert.rejects(pool.run(square(4)), noNode);
  await running;
  await queued;
  assert.equal(pool.size, 0);
  // A new task does not wait for a node that will never come.
  await assert.rejects(pool.run(square(5)), noNode);
  await assert.rejects(pool.broadcast(square(6)), noNode);
  await assert.rejects(
    pool.run(sky.gather(square(1), square(2))),
    noNode,
  );
  // As the message says, resize() brings the pool back.
  await pool.resize(1);
  assert.equal(pool.size, 1);
  assert.equal(await pool.run(square(7)), 49);
});

Deno.test("a task waiting in a pool with no node fails after provisionTimeout", async () => {
  // Elastic: the pool keeps trying to start a node, and every launch fails.
  const { pool, events, loseTheNode } = await doomedPool({
    nodes: { min: 1, max: 2, cooldown: 0 },
    provisionTimeout: 3_000,
  }, Infinity);
  await using _ = pool;
  assert.equal(await pool.run(square(3)), 9);
  loseTheNode();
  await eventually(
    () => events.some((e) => e.type === "NodeLost"),
    10_000,
    "the node to be lost",
  );
  await assert.rejects(pool.run(square(4)), {
    name: "ProvisioningError",
    message: /no node became ready within provisionTimeout \(3000 ms\)/,
  });
});
