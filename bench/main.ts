/**
 * The benchmarks, each beside a baseline measured in the same run.
 *
 * Run with `deno task bench` (the SSH part needs the rig: `deno task rig:up`
 * as root; the container part a Docker daemon and the base image: `deno task
 * docker:up`, `deno task image:build`). `deno task bench container` runs one
 * part. Prints each figure as it is measured, then a Markdown table.
 *
 * @module
 */
import { printTable } from "./_util.ts";
import { collectionBenchmarks } from "./collections.ts";
import { redisCollectionBenchmarks } from "./collections_redis.ts";
import { containerBenchmarks } from "./container.ts";
import { coreBenchmarks } from "./core.ts";
import { sandboxBenchmarks } from "./sandbox.ts";
import { sshBenchmarks } from "./ssh.ts";
import { streamBenchmarks } from "./stream.ts";

const only = Deno.args[0];
if (!only || only === "core") await coreBenchmarks();
if (!only || only === "sandbox") await sandboxBenchmarks();
if (!only || only === "ssh") await sshBenchmarks();
if (!only || only === "stream") await streamBenchmarks();
if (!only || only === "collections") await collectionBenchmarks();
if (!only || only === "collections") await redisCollectionBenchmarks();
if (!only || only === "container") await containerBenchmarks();
printTable();
