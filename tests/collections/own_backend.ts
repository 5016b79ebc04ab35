// A backend a worker opens for itself (the `worker` half of a collections
// option), for the test that calls go there: every call replies the number
// in its config.
import type {
  CollectionBackend,
  CollectionCall,
  CollectionsContext,
} from "../../src/collections/backend.ts";

export function openBackend(
  config: { value: number },
  _context: CollectionsContext,
): Promise<CollectionBackend> {
  return Promise.resolve({
    call(_call: CollectionCall, _holder: string) {
      return Promise.resolve(config.value);
    },
    forget: () => Promise.resolve(),
    close: () => Promise.resolve(),
  });
}
