// Computes of the reliability suite.
import * as sky from "../../mod.ts";

/** Returns its argument after a moment, so that tasks are in flight when a fault strikes. */
export const echo = sky.compute(async (i: number) => {
  await new Promise((r) => setTimeout(r, 2));
  return i;
});
