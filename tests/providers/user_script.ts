/**
 * The user's script of the conformance suite, started as a child process:
 * a 2-node pool on the provider its recipe describes (in the environment
 * variable `RECIPE_ENV`), held by `await using`; it prints the pool's id,
 * then every node's hello, then throws. The test checks that the throw
 * still tore everything down. Its computes are the suite's too.
 *
 * @module
 */
import * as sky from "../../mod.ts";
import { makeProvider, type ProviderRecipe, RECIPE_ENV } from "./recipes.ts";

/** Each node's greeting, naming its host. */
export const hello = sky.compute(() => `Hello from ${Deno.hostname()}!`, {
  permissions: { sys: ["hostname"] },
});
/** Where the task ran. */
export const info = sky.compute(() => sky.instanceInfo());
/** Waits `ms`, then returns it. */
export const nap = sky.compute(async (ms: number) => {
  await new Promise((r) => setTimeout(r, ms));
  return ms;
});
/** Throws an error of the user's own class. */
export const fail = sky.compute((what: string) => {
  class StockError extends Error {
    override name = "StockError";
  }
  throw new StockError(`${what} is out of stock`);
});

if (import.meta.main) {
  const recipe = JSON.parse(Deno.env.get(RECIPE_ENV)!) as ProviderRecipe;
  await using pool = await sky.ComputePool.start({
    provider: makeProvider(recipe),
    nodes: 2,
    console: "silent",
    ...recipe.pool,
  });
  console.log(JSON.stringify({ id: pool.id }));
  console.log(JSON.stringify({ hello: await pool.broadcast(hello()) }));
  throw new Error("the user's script failed");
}
