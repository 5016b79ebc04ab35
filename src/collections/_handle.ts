/**
 * What every collection handle shares: its name, and the way to its backend
 * (fixed for a handle from `pool.dict(...)`, looked up at each call for one
 * from `sky.dict(...)`, so that a handle made at the top of a module works
 * on the client and in tasks alike).
 *
 * @module
 */
import type { CollectionCall, CollectionKind } from "./backend.ts";
import { type Caller, checkName, currentCaller } from "./_context.ts";

/** The part every collection handle shares. */
export abstract class Handle {
  /** The collection's name. */
  readonly name: string;
  #kind: CollectionKind;
  #caller: Caller | undefined;

  /**
   * @param kind The collection's kind.
   * @param name Its name.
   * @param caller Its backend; absent: the backend of the place each call is made from.
   */
  constructor(kind: CollectionKind, name: string, caller?: Caller) {
    this.#kind = kind;
    this.name = checkName(kind, name);
    this.#caller = caller;
  }

  /** Makes a call on this collection. */
  protected send(
    call: CollectionCall,
    signal?: AbortSignal,
  ): Promise<unknown> {
    const caller = this.#caller ??
      currentCaller(`sky.${this.#kind}(${JSON.stringify(this.name)})`);
    return caller(call, signal);
  }
}
