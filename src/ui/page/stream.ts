/**
 * The page's live connection: GET /ui/events read as a Server-Sent Events stream through fetch()
 * (EventSource cannot send an Authorization header, and the token never goes in a URL). When the
 * stream ends it reconnects after a delay that doubles up to RETRY_MAX_MS; a 401 or 403 stops it
 * (the page asks for a token instead of failing again and again).
 */

const RETRY_FIRST_MS = 1000
const RETRY_MAX_MS = 10_000

export type StreamState = 'connecting' | 'live' | 'retrying' | 'unauthorized' | 'forbidden'

export interface StreamHandlers {
  event: (name: string, data: unknown) => void
  state: (state: StreamState, detail: string) => void
}

/** Opens the stream; `close()` stops it for good. */
export function openStream (url: string, token: string | null, on: StreamHandlers): { close: () => void } {
  const abort = new AbortController()
  let delay = RETRY_FIRST_MS
  let stopped = false

  const run = async (): Promise<void> => {
    while (!stopped) {
      on.state('connecting', '')
      let detail = 'the connection closed'
      try {
        const res = await fetch(url, {
          headers: { accept: 'text/event-stream', ...(token === null ? {} : { authorization: `Bearer ${token}` }) },
          cache: 'no-store',
          signal: abort.signal
        })
        if (res.status === 401 || res.status === 403) {
          on.state(res.status === 401 ? 'unauthorized' : 'forbidden', await errorText(res))
          return
        }
        if (!res.ok || res.body === null) {
          detail = `the gateway answered ${res.status}: ${await errorText(res)}`
        } else {
          delay = RETRY_FIRST_MS
          on.state('live', '')
          await readEvents(res.body, on.event)
        }
      } catch (err) {
        if (stopped) return
        detail = (err as Error).message
      }
      if (stopped) return
      on.state('retrying', `${detail}; retrying in ${Math.round(delay / 1000)} s`)
      await new Promise(resolve => setTimeout(resolve, delay))
      delay = Math.min(delay * 2, RETRY_MAX_MS)
    }
  }
  void run()
  return { close () { stopped = true; abort.abort() } }
}

async function errorText (res: Response): Promise<string> {
  try {
    const body = await res.json() as { error?: { message?: string } }
    return body.error?.message ?? res.statusText
  } catch {
    return res.statusText
  }
}

/** Reads `event:`/`data:` blocks until the stream ends. */
async function readEvents (body: ReadableStream<Uint8Array>, onEvent: StreamHandlers['event']): Promise<void> {
  const reader = body.getReader()
  const decoder = new TextDecoder()
  let buffered = ''
  for (;;) {
    const { value, done } = await reader.read()
    if (done) return
    buffered += decoder.decode(value, { stream: true })
    let end: number
    while ((end = buffered.indexOf('\n\n')) >= 0) {
      const block = buffered.slice(0, end)
      buffered = buffered.slice(end + 2)
      let name = 'message'
      const data: string[] = []
      for (const line of block.split('\n')) {
        if (line.startsWith('event: ')) name = line.slice(7)
        else if (line.startsWith('data: ')) data.push(line.slice(6))
      }
      if (data.length > 0) onEvent(name, JSON.parse(data.join('\n')))
    }
  }
}
