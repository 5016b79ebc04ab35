/**
 * The collections' conformance suite (`suite.ts`) on the embedded backend:
 * the semantics on the backend itself, and a pool of 3 local nodes.
 */
import * as sky from "../../mod.ts";
import { embedded } from "../../src/collections/embedded.ts";
import { tempRoot } from "../helpers.ts";
import { poolSuite, semanticsSuite } from "./suite.ts";

const root = await tempRoot();
const backend = { name: "embedded", option: () => embedded() };

semanticsSuite(backend);
poolSuite(backend, {
  name: "sky.Local",
  provider: () => sky.Local({ root }),
});
