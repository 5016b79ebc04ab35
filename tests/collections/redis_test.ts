/**
 * The collections' conformance suite (`suite.ts`) on Redis: the semantics on
 * the backend itself and a pool of 3 local nodes, on a real `redis-server`
 * from Debian's packages (`deno task redis:up`, or started here).
 */
import * as sky from "../../mod.ts";
import { tempRoot } from "../helpers.ts";
import { requireRedis } from "../rig/redis.ts";
import { poolSuite, semanticsSuite } from "./suite.ts";

const root = await tempRoot();
const found = await requireRedis();
const url = found.redis?.server.url;
const backend = {
  name: "redis",
  option: () => sky.Redis({ url: url ?? "redis://127.0.0.1:1" }),
  ...(found.reason ? { unavailable: found.reason } : {}),
};

semanticsSuite(backend);
poolSuite(backend, {
  name: "sky.Local",
  provider: () => sky.Local({ root }),
});

Deno.test({
  name: "the Redis test server is released (conformance)",
  ignore: found.redis === null,
  async fn() {
    await found.redis?.release();
  },
});
