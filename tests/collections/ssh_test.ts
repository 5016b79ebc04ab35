/**
 * The collections' pool suite (`suite.ts`) on 3 hosts of the rig
 * (tests/rig/rig.ts): through `sky.SSH`, and through `sky.RunPod` against
 * the fake RunPod (tests/fakes/runpod.ts) whose pods are those hosts — a
 * cloud whose nodes have no private network between them, where the
 * embedded backend serves the nodes over their SSH connections only.
 * Without the rig these tests are ignored with the reason printed.
 */
import { embedded } from "../../src/collections/embedded.ts";
import { requireRig } from "../rig/rig.ts";
import { cloudHosts, releaseRigAtEnd, rigUsers } from "../clouds.ts";
import { rigSsh } from "../helpers.ts";
import { FakeRunPod, TEST_RUNPOD_KEY } from "../fakes/runpod.ts";
import { makeProvider } from "../providers/recipes.ts";
import { poolSuite } from "./suite.ts";

const { rig, reason } = await requireRig({ hosts: 3 });
if (!rig) console.warn(`collections ssh_test.ts: ignored: ${reason}`);
const backend = { name: "embedded", option: () => embedded() };

poolSuite(backend, {
  name: "sky.SSH",
  unavailable: rig ? undefined : reason,
  provider: () => rigSsh(rig!.hosts),
});

let fake: FakeRunPod | undefined;
poolSuite(backend, {
  name: "sky.RunPod (fake RunPod, no private network)",
  unavailable: rig ? undefined : reason,
  poolOptions: { accelerator: "RTX 4090" },
  provider: async () => {
    fake = await FakeRunPod.start({ hosts: cloudHosts(rig!.hosts) });
    return makeProvider({
      kind: "runpod",
      options: { apiKey: TEST_RUNPOD_KEY, baseUrl: fake.baseUrl },
      users: rigUsers(rig!.hosts),
    });
  },
  close: async () => {
    await fake?.[Symbol.asyncDispose]();
  },
});

releaseRigAtEnd(rig);
