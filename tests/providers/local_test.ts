/**
 * The conformance suite (tests/providers/conformance.ts) on `sky.Local()`:
 * nodes are worker processes on this machine, in a root of the test's own.
 */
import { tempRoot } from "../helpers.ts";
import { conformance } from "./conformance.ts";

const root = await tempRoot();

conformance({
  name: "sky.Local",
  kind: "local",
  unavailable: null,
  open: () =>
    Promise.resolve({
      recipe: { kind: "local", options: { root } },
      takeBack: (node) => Promise.resolve(Deno.kill(node.pid, "SIGKILL")),
      // Local nodes hold nothing but their processes (and the code cache,
      // kept by design).
      leftovers: () => Promise.resolve([]),
      [Symbol.asyncDispose]: () => Promise.resolve(),
    }),
});
