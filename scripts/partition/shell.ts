/**
 * Running the system tools of the partition suite (`ip`, `iptables`, `ss`): bounded in time, the
 * command line in every error, and a synchronous form for the last-resort exit hook.
 */
import { execFile, execFileSync } from 'node:child_process'
import { readFileSync } from 'node:fs'

/** Longest any one tool call may take. */
const TOOL_TIMEOUT_MS = 15_000

/** Runs `cmd args...`; resolves with stdout, rejects with the command and its stderr. */
export function run (cmd: string, args: string[], timeoutMs = TOOL_TIMEOUT_MS): Promise<string> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024 }, (err, stdout, stderr) => {
      if (err) {
        reject(new Error(`'${cmd} ${args.join(' ')}' failed: ${String(stderr).trim() || err.message}`))
        return
      }
      resolve(String(stdout))
    })
  })
}

/** Like run(), but a failure is ignored (cleanup of things that may already be gone). */
export async function tryRun (cmd: string, args: string[]): Promise<string> {
  try {
    return await run(cmd, args)
  } catch {
    return ''
  }
}

/** Synchronous, failure-ignoring form for process 'exit' handlers (no event loop left there). */
export function tryRunSync (cmd: string, args: string[]): string {
  try {
    return String(execFileSync(cmd, args, { timeout: 5000, stdio: ['ignore', 'pipe', 'ignore'] }))
  } catch {
    return ''
  }
}

/** Whether a pid is a running process: a zombie (killed, not reaped yet) counts as gone. */
export function pidAlive (pid: number): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}

export const sleep = (ms: number): Promise<void> => new Promise(resolve => setTimeout(resolve, ms))

/** Whether this process runs as root (network namespaces, bridges and iptables need it). */
export const isRoot = (): boolean => process.getuid?.() === 0
