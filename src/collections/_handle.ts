/**
 * What every collection handle shares: the way to its backend (fixed for a
 * handle from `pool.dict(...)`, looked up at each call for one from
 * `sky.dict(...)`, so that a handle made at the top of a module works on
 * the client and in tasks alike).
 *
 * @module
 */
import type { CollectionCall } from "./backend.ts";
import { type Caller, currentCaller } from "./_context.ts";

/**
 * Makes a call on a collection.
 *
 * @param caller The handle's backend; absent: the one of the place the
 *   call is made from.
 */
export function send(
  caller: Caller | undefined,
  call: CollectionCall,
  signal?: AbortSignal,
): Promise<unknown> {
  return (caller ??
    currentCaller(`sky.${call.kind}(${JSON.stringify(call.name)})`))(
      call,
      signal,
    );
}
