/**
 * Skyward for Deno: run your functions on ephemeral remote machines.
 *
 * Mark a function with {@linkcode compute}, open a {@linkcode ComputePool} on a
 * provider, and run it there. The pool provisions the machines, ships your
 * code, runs each task on a worker, streams results, logs and events back,
 * and tears everything down when it is disposed — also when the program
 * fails or is interrupted.
 *
 * @example
 * ```ts
 * import * as sky from "./mod.ts";
 * import { square } from "./examples/parallel.ts";
 * import { info } from "./examples/demo.ts";
 *
 * await using pool = await sky.ComputePool.start({
 *   provider: sky.Local(),
 *   nodes: 2,
 *   console: "silent",
 * });
 * console.log(await pool.run(square(4))); // 16
 * console.log(await pool.run(sky.gather(square(1), square(2)))); // [1, 4]
 * const [a, b] = await pool.run(sky.all(square(3), info())); // [number, InstanceInfo]
 * console.log(a, b.node);
 * console.log((await pool.broadcast(info())).map((i) => i.node)); // [0, 1]
 * console.log(square.local(6)); // 36
 * ```
 *
 * @module
 */
export {
  all,
  type Compute,
  compute,
  type ComputeId,
  type ComputeOptions,
  type Dispatchable,
  gather,
  type Group,
  type Pending,
  type Permissions,
  type ResultOf,
} from "./src/compute.ts";
export {
  ComputePool,
  type HealthCheckOptions,
  type NodesOptions,
  type PoolOptions,
  type PoolSpend,
  type RunOptions,
} from "./src/pool/pool.ts";
export type { MapResults, RunResult, TaskHandle } from "./src/pool/handles.ts";
export type { DeadManSwitchOptions } from "./src/pool/deadman.ts";
export type { DashboardOptions } from "./src/dashboard/serve.ts";
export type { BudgetOptions, ResolvedBudget } from "./src/pool/budget.ts";
export { BudgetExceededError } from "./src/errors.ts";
export {
  ConfigError,
  NodeLostError,
  NoOffersError,
  PoolClosedError,
  ProtocolError,
  ProvisioningError,
  QueueClosedError,
  RemoteError,
  SerializationError,
  TaskCancelledError,
  TaskTimeoutError,
} from "./src/errors.ts";
export { type Dict, dict } from "./src/collections/dict.ts";
export { set, type SharedSet } from "./src/collections/set.ts";
export { type Counter, counter } from "./src/collections/counter.ts";
export {
  type Queue,
  queue,
  type QueueGetOptions,
} from "./src/collections/queue.ts";
export {
  type Barrier,
  barrier,
  type BarrierWaitOptions,
} from "./src/collections/barrier.ts";
export {
  type Lock,
  lock,
  type LockAcquireOptions,
  type LockHandle,
} from "./src/collections/lock.ts";
export type {
  CallKey,
  CollectionBackend,
  CollectionCall,
  CollectionKind,
  CollectionReplies,
  CollectionsContext,
  CollectionsOption,
  Page,
  QueueTake,
  ReplyOf,
  WorkerBackendSpec,
} from "./src/collections/backend.ts";
export type * from "./src/events.ts";
export { formatEvent } from "./src/events.ts";
export { formatDollars } from "./src/events.ts";
export {
  type AcceleratorInfo,
  type InstanceInfo,
  instanceInfo,
} from "./src/instance.ts";
export { Image, type ImageOptions, type ResolvedImage } from "./src/image.ts";
export {
  shard,
  type Shardable,
  shardAll,
  type ShardOptions,
  type TypedArray,
} from "./src/shard.ts";
export {
  type Allocation,
  type Selection,
  Spec,
  type SpecOptions,
} from "./src/spec.ts";
export { wasm, type WasmOptions } from "./src/wasm.ts";
export type { Streamed } from "./src/wire/stream.ts";
export type {
  ClusterSpec,
  Endpoint,
  Instance,
  NodeLimit,
  Offer,
  Provider,
  ProviderCleanupOptions,
  ProviderCleanupReport,
  ProviderWithCleanup,
} from "./src/provider.ts";
export {
  parseTarget,
  SSH,
  type SshCluster,
  type SshOptions,
  type SshProvider,
  type SshTarget,
} from "./providers/ssh/mod.ts";
export {
  type CleanupOptions,
  type CleanupReport,
  Container,
  type ContainerCluster,
  type ContainerOptions,
  type ContainerProvider,
  type ResolvedContainerOptions,
} from "./providers/container/mod.ts";
export {
  Local,
  type LocalCluster,
  type LocalOptions,
  type LocalProvider,
} from "./providers/local/mod.ts";
export {
  Verda,
  type VerdaCleanupOptions,
  type VerdaCleanupReport,
  type VerdaCluster,
  type VerdaInstance,
  type VerdaOffer,
  type VerdaOptions,
  type VerdaProvider,
} from "./providers/verda/mod.ts";
export {
  AWS,
  type AwsCleanupOptions,
  type AwsCleanupReport,
  type AwsCluster,
  type AwsInstanceDetails,
  type AwsOffer,
  type AwsOptions,
  type AwsProvider,
} from "./providers/aws/mod.ts";
export {
  RunPod,
  type RunPodCleanupOptions,
  type RunPodCleanupReport,
  type RunPodCluster,
  type RunPodOffer,
  type RunPodOptions,
  type RunPodPodDetails,
  type RunPodProvider,
} from "./providers/runpod/mod.ts";
export {
  VastAI,
  type VastAIOptions,
  type VastAIProvider,
  type VastCleanupOptions,
  type VastCleanupReport,
  type VastCluster,
  type VastInstanceDetails,
  type VastOffer,
  type VastQuery,
} from "./providers/vastai/mod.ts";
export {
  type Accelerator,
  ACCELERATOR_MODELS,
  type AcceleratorFactories,
  type AcceleratorFactory,
  type AcceleratorModel,
  type AcceleratorOptions,
  type Accelerators,
  accelerators,
  type AcceleratorSpec,
  type FormFactor,
  type Manufacturer,
} from "./src/accelerators.ts";
export {
  Redis,
  type RedisCollections,
  type RedisOptions,
} from "./src/collections/redis.ts";
