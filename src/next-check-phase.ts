/**
 * One setImmediate shared by everyone who waits for the event loop's next check phase in the same
 * turn: the I/O callbacks of the current poll phase (an invalidation read together with a request
 * included) have run when it resolves. Each caller waits for the same moment it would have waited
 * for with a setImmediate of its own, and a busy turn costs one timer instead of one per caller.
 */
let next: Promise<void> | undefined

export function nextCheckPhase (): Promise<void> {
  return (next ??= new Promise(resolve => setImmediate(() => {
    next = undefined
    resolve()
  })))
}
