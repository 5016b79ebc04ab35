/**
 * The collections' pool suite (`suite.ts`) on 3 SSH hosts of the rig
 * (tests/rig/rig.ts): the embedded backend serves nodes that are separate
 * hosts, over their SSH connections only. Without the rig these tests are
 * ignored with the reason printed.
 */
import * as sky from "../../mod.ts";
import { embedded } from "../../src/collections/embedded.ts";
import { requireRig, RIG_DIR } from "../rig/rig.ts";
import { releaseRigAtEnd } from "../clouds.ts";
import { poolSuite } from "./suite.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) console.warn(`collections ssh_test.ts: ignored: ${reason}`);

poolSuite({ name: "embedded", option: () => embedded() }, {
  name: "sky.SSH",
  unavailable: rig ? undefined : reason,
  provider: () =>
    sky.SSH({
      hosts: rig!.hosts.map((h) => `${h.user}@${h.address}:${h.port}`),
      key: rig!.hosts[0].keyPath,
      knownHosts: `${RIG_DIR}/known_hosts`,
    }),
});

releaseRigAtEnd(rig);
