/**
 * The benchmarks, each beside a baseline measured in the same run.
 *
 * Run with `deno task bench` (the SSH part needs the rig: `deno task rig:up`
 * as root). Prints each figure as it is measured, then a Markdown table.
 *
 * @module
 */
import { printTable } from "./_util.ts";
import { coreBenchmarks } from "./core.ts";
import { sandboxBenchmarks } from "./sandbox.ts";
import { sshBenchmarks } from "./ssh.ts";
import { streamBenchmarks } from "./stream.ts";

const only = Deno.args[0];
if (!only || only === "core") await coreBenchmarks();
if (!only || only === "sandbox") await sandboxBenchmarks();
if (!only || only === "ssh") await sshBenchmarks();
if (!only || only === "stream") await streamBenchmarks();
printTable();
