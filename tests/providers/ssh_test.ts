/**
 * The conformance suite (tests/providers/conformance.ts) on `sky.SSH`: the
 * rig's hosts (tests/rig/rig.ts), each a network namespace with its own
 * sshd. Without root or sshd these tests are ignored with the reason
 * printed; under `CI=true` that is a failure instead.
 */
import { cloudHosts, releaseRigAtEnd } from "../clouds.ts";
import { killClusterSessions } from "../fakes/ec2.ts";
import { requireRig, RIG_DIR } from "../rig/rig.ts";
import { conformance } from "./conformance.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) console.warn(`providers/ssh_test.ts: ignored: ${reason}`);
const hosts = rig?.hosts.slice(0, 2) ?? [];
const targets = hosts.map((h) => `${h.user}@${h.address}:${h.port}`);

conformance({
  name: "sky.SSH",
  kind: "ssh",
  unavailable: reason,
  open: () =>
    Promise.resolve({
      recipe: {
        kind: "ssh",
        options: {
          hosts: targets,
          key: hosts[0]?.keyPath,
          knownHosts: `${RIG_DIR}/known_hosts`,
        },
      },
      takeBack: (node, pool) =>
        killClusterSessions(
          cloudHosts(hosts)[targets.indexOf(node.instance)],
          pool,
        ),
      // The hosts are the user's: the pool adds nothing to them but its
      // processes (and the caches it keeps by design).
      leftovers: () => Promise.resolve([]),
      [Symbol.asyncDispose]: () => Promise.resolve(),
    }),
});

releaseRigAtEnd(rig);
