/**
 * Run by `ssh.ts` in a fresh process: one 3-node SSH pool start to its first
 * result on the rig's hosts, as a user's program does it the first time
 * (the SSH client loaded on the way); prints the breakdown as JSON.
 *
 * @module
 */
import { rigHosts } from "../tests/rig/rig.ts";
import { timedStart } from "./_ssh_start.ts";

const hosts = await rigHosts();
if (!hosts) throw new Error("the rig is not up");
console.log(JSON.stringify(await timedStart(hosts)));
