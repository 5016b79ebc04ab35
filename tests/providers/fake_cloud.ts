/**
 * The conformance suite on a cloud's fake whose machines are the rig's
 * hosts: the rig is required (ignored with the reason printed without it,
 * a failure under `CI=true`), each scenario gets a fake of its own, closed
 * after it, and the file's last test releases the rig if the file brought
 * it up.
 *
 * @module
 */
import type * as sky from "../../mod.ts";
import {
  type CloudHost,
  cloudHosts,
  releaseRigAtEnd,
  rigUsers,
} from "../clouds.ts";
import { requireRig, type RigHost } from "../rig/rig.ts";
import { conformance, type RigSession, type Scenario } from "./conformance.ts";
import type { ProviderKind, ProviderRecipe } from "./recipes.ts";

/** A cloud's fake, as the suite drives it. */
export interface FakeCloud<F extends AsyncDisposable> {
  /** The provider as test names show it, e.g. `sky.AWS (fake EC2)`. */
  name: string;
  /** Its row of the table of capabilities. */
  kind: ProviderKind;
  /** Starts a fake that hands out these machines. */
  start(hosts: CloudHost[]): Promise<F>;
  /** The provider's options and pool options on that fake, for a scenario. */
  recipe(
    fake: F,
    scenario: Scenario,
  ): Pick<ProviderRecipe, "options" | "pool" | "env">;
  /** Takes the node's machine back, as the cloud does. */
  takeBack(fake: F, node: sky.NodeReady): Promise<void>;
  /** What the fake and the hosts still hold, one line per resource. */
  leftovers(fake: F, hosts: RigHost[]): Promise<string[]>;
  /** Checks of the cloud's own, on the pool before it closes. */
  check?(
    fake: F,
    hosts: RigHost[],
  ): RigSession["check"];
}

/**
 * Declares the suite's tests for a cloud's fake on the rig's hosts.
 *
 * @param cloud The fake and how to drive it.
 */
export async function fakeCloudConformance<F extends AsyncDisposable>(
  cloud: FakeCloud<F>,
): Promise<void> {
  const { rig, reason } = await requireRig({ hosts: 3 });
  if (!rig) console.warn(`${cloud.name}: conformance ignored: ${reason}`);
  const hosts = rig?.hosts ?? [];
  conformance({
    name: cloud.name,
    kind: cloud.kind,
    unavailable: reason,
    open: async (scenario) => {
      const fake = await cloud.start(cloudHosts(hosts));
      return {
        recipe: {
          kind: cloud.kind,
          users: rigUsers(hosts),
          ...cloud.recipe(fake, scenario),
        },
        takeBack: (node) => cloud.takeBack(fake, node),
        leftovers: () => cloud.leftovers(fake, hosts),
        check: cloud.check?.(fake, hosts),
        [Symbol.asyncDispose]: () => fake[Symbol.asyncDispose](),
      };
    },
  });
  releaseRigAtEnd(rig);
}
