/**
 * The partition scenarios of issue 11's table. Each act() makes its cuts while the load runs, heals
 * them, and returns the time of the last heal. "Cut" without qualification isolates the node from
 * every other namespace (the gateway included); the root namespace (load generator, checker) is
 * never cut.
 */
import { MASTER_NAME, type Deployment } from './deployment.js'
import type { Lab, NodeName } from './netns.js'
import type { SentinelWatch, Timeline } from './observe.js'
import { gatewayView, tcpState } from './probes.js'
import { sleep } from './shell.js'

export interface Ctx {
  lab: Lab
  dep: Deployment
  timeline: Timeline
  watch: SentinelWatch
  /** Short run (the tap test): shorter cuts. */
  short: boolean
  /** Lines for the scenario's details (TCP state, gateway view...). */
  detail: (line: string) => void
}

export type ScenarioId = 'a' | 'b' | 'c' | 'd' | 'e1' | 'e2' | 'f'

export interface Scenario {
  id: ScenarioId
  title: string
  /** Makes the cuts and heals them; resolves with the time of the last heal. */
  act: (ctx: Ctx) => Promise<number>
}

const ALL_BUT = (...except: NodeName[]): NodeName[] => (['m', 'r1', 'r2', 's1', 's2', 's3', 'g'] as NodeName[]).filter(n => !except.includes(n))
const OTHERS_OF_M: NodeName[] = ['r1', 'r2', 's1', 's2', 's3']

/** Bounded wait until the sentinels' watch names `node` master (true) or the time is up (false). */
async function untilMaster (ctx: Ctx, node: NodeName, maxMs: number): Promise<boolean> {
  const end = Date.now() + maxMs
  while (Date.now() < end) {
    if (await sentinelsMaster(ctx.dep) === node) return true
    await sleep(250)
  }
  return false
}

/** The node all three sentinels name master (undefined when they disagree or do not answer). */
async function sentinelsMaster (dep: Deployment): Promise<NodeName | undefined> {
  const addrs = await Promise.all((['s1', 's2', 's3'] as NodeName[]).map(s =>
    dep.call(s, ['SENTINEL', 'GET-MASTER-ADDR-BY-NAME', MASTER_NAME]).then(r => String((r as unknown[])[0]), () => '')))
  return addrs.every(a => a === addrs[0]) ? dep.nodeOf(addrs[0] ?? '') : undefined
}

async function heal (ctx: Ctx, what = 'heal'): Promise<number> {
  await ctx.lab.heal()
  return ctx.timeline.mark(what)
}

export const SCENARIOS: Scenario[] = [
  {
    id: 'a',
    title: 'M cut from R1 R2 S1-3 (not from G), then healed',
    act: async ctx => {
      await ctx.lab.cut(['m'], OTHERS_OF_M)
      ctx.timeline.mark('cut m from r1 r2 s1-3')
      await sleep(ctx.short ? 10_000 : 17_000)
      return await heal(ctx)
    }
  },
  {
    id: 'b',
    title: 'G cut from S1-3; SENTINEL FAILOVER during the cut',
    act: async ctx => {
      await ctx.lab.cut(['g'], ['s1', 's2', 's3'])
      ctx.timeline.mark('cut g from s1-3')
      await sleep(3000)
      let accepted = false
      for (let i = 0; i < 20 && !accepted; i++) {
        try {
          await ctx.dep.call('s1', ['SENTINEL', 'FAILOVER', MASTER_NAME])
          accepted = true
        } catch { await sleep(500) }
      }
      ctx.timeline.mark(accepted ? 'SENTINEL FAILOVER accepted by s1' : 'SENTINEL FAILOVER refused 20 times')
      await sleep(ctx.short ? 9000 : 12_000)
      return await heal(ctx)
    }
  },
  {
    id: 'c',
    title: '{G, M} cut from {R1 R2 S1-3}',
    act: async ctx => {
      await ctx.lab.cut(['g', 'm'], OTHERS_OF_M)
      ctx.timeline.mark('cut {g m} from {r1 r2 s1-3}')
      await sleep(15_000)
      return await heal(ctx)
    }
  },
  {
    id: 'd',
    title: 'current master cut (from everyone, G too) 3 s / healed 3 s, 5 cycles',
    act: async ctx => {
      let last = Date.now()
      for (let cycle = 1; cycle <= 5; cycle++) {
        const master = await sentinelsMaster(ctx.dep) ?? 'm'
        await ctx.lab.cut([master], ALL_BUT(master))
        ctx.timeline.mark(`cycle ${cycle}: cut ${master} from everyone`)
        await sleep(3000)
        last = await heal(ctx, `cycle ${cycle}: heal`)
        await sleep(3000)
      }
      return last
    }
  },
  {
    id: 'e1',
    title: 'M cannot receive from R1 R2 (can send)',
    act: async ctx => {
      await ctx.lab.block('m', ['r1', 'r2'], 'in')
      ctx.timeline.mark('m drops input from r1 r2')
      // 15 s in the short run too: the retransmission backoff it builds up is the point.
      await sleep(10_000)
      ctx.detail(`cut+10s ${await tcpState(ctx.dep, 'm', ['r1', 'r2'])}`)
      ctx.detail(`cut+10s ${await gatewayView(ctx.dep)}`)
      await sleep(5000)
      const at = await heal(ctx)
      for (const after of [0, 2000, 5000]) {
        await sleep(Math.max(0, at + after - Date.now()))
        ctx.detail(`heal+${after / 1000}s ${await tcpState(ctx.dep, 'm', ['r1', 'r2'])}`)
        ctx.detail(`heal+${after / 1000}s ${await tcpState(ctx.dep, 'r1', ['m'])}`)
        ctx.detail(`heal+${after / 1000}s ${await gatewayView(ctx.dep)}`)
      }
      return at
    }
  },
  {
    id: 'e2',
    title: 'M cannot receive from R1 R2 S1-3',
    act: async ctx => {
      await ctx.lab.block('m', OTHERS_OF_M, 'in')
      ctx.timeline.mark('m drops input from r1 r2 s1-3')
      await sleep(15_000)
      return await heal(ctx)
    }
  },
  {
    id: 'f',
    title: 'M cut, failover to R1, heal (M back, still master), then {R1 R2} cut from {M S1-3}',
    act: async ctx => {
      await ctx.lab.cut(['m'], ALL_BUT('m'))
      ctx.timeline.mark('phase 1: cut m from everyone')
      const switched = await untilMaster(ctx, 'r1', 20_000)
      ctx.timeline.mark(switched ? 'phase 1: sentinels promoted r1' : 'phase 1: no switch to r1 within 20 s')
      // Writes acknowledged now are confirmed by R2 only: M is flagged down and not attached.
      await sleep(4000)
      await heal(ctx, 'phase 1: heal')
      const back = Date.now() + 8000
      while (ctx.watch.downAt('m', Date.now()) && Date.now() < back) await sleep(200)
      await sleep(1000)
      const role = await ctx.dep.call('m', ['ROLE']).then(r => (r as unknown[]).slice(0, 2).map(String).join(' '), () => 'unreachable')
      ctx.detail(`phase 2 starts: m ROLE ${role}; ${await gatewayView(ctx.dep)}`)
      await ctx.lab.cut(['r1', 'r2'], ['m', 's1', 's2', 's3'])
      ctx.timeline.mark('phase 2: cut {r1 r2} from {m s1-3}')
      const toM = await untilMaster(ctx, 'm', 20_000)
      ctx.timeline.mark(toM ? 'phase 2: sentinels promoted m' : 'phase 2: m not promoted within 20 s')
      await sleep(3000)
      ctx.detail(`phase 2 before heal: ${await gatewayView(ctx.dep)}`)
      const at = await heal(ctx, 'phase 2: heal')
      for (const after of [3000, 7000]) {
        await sleep(Math.max(0, at + after - Date.now()))
        const roles = await Promise.all((['r1', 'r2'] as NodeName[]).map(n => ctx.dep.call(n, ['ROLE'])
          .then(r => `${n} ${String((r as unknown[])[0])}`, () => `${n} unreachable`)))
        ctx.detail(`phase 2 heal+${after / 1000}s: ${roles.join(', ')}; ${await gatewayView(ctx.dep)}`)
      }
      return at
    }
  }
]

export const scenario = (id: string): Scenario | undefined => SCENARIOS.find(s => s.id === id)
