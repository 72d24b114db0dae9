/**
 * Point-in-time looks at what the partition does to the processes: the gateway's own /topology,
 * and the kernel's TCP state of a node's connections (`ss -tin` inside its namespace), which shows
 * retransmission backoff on links a cut left half-open.
 */
import type { Deployment } from './deployment.js'
import type { NodeName } from './netns.js'

interface TopologyView {
  master: { host: string; confirmed: boolean } | null
  requiredReplicas: number
  replicas: Array<{ host: string; healthy: boolean; reason?: string; attached: boolean; lagBytes: number | null }>
  breakers: Array<{ node: string; state: string }>
  lastFailover: { acknowledgedWritesAtRisk?: boolean | null; acknowledgedOffsetGap?: number | null } | null
}

/** One line: the gateway's master, WAIT count, replicas (health, reason, attached) and open breakers. */
export async function gatewayView (dep: Deployment): Promise<string> {
  try {
    const res = await fetch(`${dep.gatewayUrl}/topology`, {
      headers: { authorization: `Bearer ${dep.token}` }, signal: AbortSignal.timeout(3000)
    })
    if (res.status !== 200) return `/topology answered ${res.status}`
    const t = await res.json() as TopologyView
    const name = (host: string): string => dep.nodeOf(host.split(':')[0] ?? '') ?? host
    const reps = t.replicas.map(r => `${name(r.host)}${r.healthy ? '' : `(unhealthy${r.reason === undefined ? '' : `: ${r.reason}`})`}${r.attached ? '' : '(detached)'}`)
    const open = t.breakers.filter(b => b.state !== 'closed').map(b => `${name(b.node)} ${b.state}`)
    return `gateway: master ${t.master === null ? 'none' : `${name(t.master.host)}${t.master.confirmed ? '' : ' (unconfirmed)'}`}, ` +
      `WAIT ${t.requiredReplicas}, replicas [${reps.join(' ')}]${open.length > 0 ? `, breakers ${open.join(' ')}` : ''}` +
      (t.lastFailover?.acknowledgedWritesAtRisk === true
        ? `, lastFailover: acknowledged writes at risk (gap ${t.lastFailover.acknowledgedOffsetGap ?? 'unknown'} bytes)`
        : '')
  } catch (err) {
    return `/topology failed: ${err instanceof Error ? err.message : String(err)}`
  }
}

const field = (line: string, name: string): string | undefined => new RegExp(`(?:^|\\s)${name}:(\\S+)`).exec(line)?.[1]

/**
 * The TCP connections between `node` and `peers` as `node`'s kernel sees them: send queue,
 * retransmission timeout, backoff exponent, unacknowledged segments and retransmissions.
 */
export async function tcpState (dep: Deployment, node: NodeName, peers: readonly NodeName[]): Promise<string> {
  let out: string
  try {
    out = await dep.lab.exec(node, 'ss', ['-tin', 'state', 'established'])
  } catch (err) {
    return `ss in ${node} failed: ${err instanceof Error ? err.message : String(err)}`
  }
  const lines = out.split('\n')
  const conns: string[] = []
  for (let i = 0; i < lines.length; i++) {
    const head = lines[i] ?? ''
    const cols = head.trim().split(/\s+/)
    if (cols.length < 4 || !/^\d+$/.test(cols[0] ?? '')) continue
    const [, sendQ, local, peer] = cols as [string, string, string, string]
    const peerNode = peers.find(p => peer.startsWith(`${dep.lab.ip(p)}:`))
    if (peerNode === undefined) continue
    const info = lines[i + 1] ?? ''
    const dirn = local.endsWith(':6379') ? `${peerNode}->${node}:6379` : `${node}->${peerNode}:${peer.split(':')[1]}`
    conns.push(`${dirn} sendq ${sendQ} rto ${field(info, 'rto') ?? '-'} backoff ${field(info, 'backoff') ?? '0'} ` +
      `unacked ${field(info, 'unacked') ?? '0'} retrans ${field(info, 'retrans') ?? '0'} lastack ${field(info, 'lastack') ?? '-'}ms`)
  }
  return `tcp in ${node}: ${conns.length === 0 ? 'no connection to ' + peers.join('/') : conns.join('; ')}`
}
