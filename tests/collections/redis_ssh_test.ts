/**
 * The collections' pool suite (`suite.ts`) on Redis from 3 SSH hosts of the
 * rig (tests/rig/rig.ts): each host's worker reaches the test
 * `redis-server` at the rig's bridge address (tests/rig/redis.ts) with the
 * backend and `npm:ioredis` shipped with the library (the hosts have no
 * registry). Without the rig, or a server listening on its bridge, these
 * tests are ignored with the reason printed.
 */
import * as sky from "../../mod.ts";
import { requireRig } from "../rig/rig.ts";
import { requireRedis } from "../rig/redis.ts";
import { rigSsh } from "../helpers.ts";
import { releaseRigAtEnd } from "../clouds.ts";
import { poolSuite } from "./suite.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
// After the rig, so that the server listens on its bridge too.
const found = rig ? await requireRedis() : null;
const rigUrl = found?.redis?.server.rigUrl;
const unavailable = !rig
  ? reason
  : !found?.redis
  ? found?.reason ?? "no Redis"
  : !rigUrl
  ? "the test Redis does not listen on the rig's bridge"
  : undefined;
if (unavailable) {
  console.warn(`collections redis_ssh_test.ts: ignored: ${unavailable}`);
}

poolSuite({
  name: "redis",
  option: () => sky.Redis({ url: rigUrl! }),
}, {
  name: "sky.SSH",
  unavailable,
  provider: () => rigSsh(rig!.hosts),
});

Deno.test({
  name: "the Redis test server is released (rig)",
  ignore: !found?.redis,
  async fn() {
    await found?.redis?.release();
  },
});

releaseRigAtEnd(rig);
