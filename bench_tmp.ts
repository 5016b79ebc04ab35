import { redisCollectionBenchmarks } from "./bench/collections_redis.ts";
import { collectionBenchmarks } from "./bench/collections.ts";
import { printTable } from "./bench/_util.ts";
if (Deno.args[0] === "both") await collectionBenchmarks();
await redisCollectionBenchmarks();
printTable();
