/**
 * A tour of the API on the local provider: run, gather, all, broadcast,
 * submit, stream, map, remote logs, a remote error, and the event log.
 *
 * Run it with `deno task demo`.
 *
 * @module
 */
import * as sky from "../mod.ts";

/** Squares a number. */
export const square = sky.compute((x: number) => x * x);

/** Where am I? */
export const info = sky.compute(() => sky.instanceInfo());

/** Says something on the node; the line comes back as a `Log` event. */
export const chatty = sky.compute((name: string) => {
  console.log(`hello ${name}, from node ${sky.instanceInfo().node}`);
  return name.length;
});

/** Fails on purpose with an error class of its own. */
export const fails = sky.compute(() => {
  class InventoryError extends Error {
    override name = "InventoryError";
  }
  throw new InventoryError("only 3 widgets left");
});

if (import.meta.main) {
  await using pool = await sky.ComputePool.start({
    provider: sky.Local(),
    nodes: 2,
    console: "log",
  });
  console.log("run:", await pool.run(square(4)));
  console.log(
    "gather:",
    await pool.run(sky.gather(square(1), square(2), square(3))),
  );
  const [n, where] = await pool.run(sky.all(square(3), info()));
  console.log("all:", n, `node ${where.node} of ${where.totalNodes}`);
  const nodes = await pool.broadcast(info());
  console.log(
    "broadcast:",
    nodes.map((i) => `node ${i.node} (job ${i.jobId})`).join(", "),
  );
  console.log("submit:", await pool.submit(square(5)));
  const streamed: number[] = [];
  for await (
    const r of pool.stream(sky.gather(square(6), square(7)), { ordered: false })
  ) {
    streamed.push(r);
  }
  console.log("stream:", streamed);
  console.log("map:", await pool.map(square, [1, 2, 3, 4]));
  console.log("log:", await pool.run(chatty("demo")));
  try {
    await pool.run(fails());
  } catch (error) {
    console.log(
      "error:",
      error instanceof sky.RemoteError ? error.message : error,
    );
  }
  console.log("local:", square.local(6));
}
