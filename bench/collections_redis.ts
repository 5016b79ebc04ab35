// The collections benchmarks (`collections.ts`) on Redis: the same counter
// increments from 2 local nodes and queue hand-off, with each node's worker
// talking to a real redis-server (tests/rig/redis.ts, started here when none
// runs and stopped after), beside the no-op round trip of the same pool.
import * as sky from "../mod.ts";
import { requireRedis } from "../tests/rig/redis.ts";
import { collectionBenchmarks } from "./collections.ts";
import { row } from "./_util.ts";

/** Measures the collections on Redis, or says why it cannot here. */
export async function redisCollectionBenchmarks(): Promise<void> {
  const found = await requireRedis();
  if (!found.redis) {
    row("redis collections", "skipped", "", found.reason);
    return;
  }
  try {
    await collectionBenchmarks(
      "redis",
      sky.Redis({ url: found.redis.server.url }),
    );
  } finally {
    await found.redis.release();
  }
}
