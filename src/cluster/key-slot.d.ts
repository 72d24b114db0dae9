/** Types of cluster-key-slot (ioredis's own hash-slot function; the package ships none). */
declare module 'cluster-key-slot' {
  /** The Redis Cluster hash slot (0..16383) of `key`, honouring {hash tags}. */
  export default function calculateSlot (key: string | Buffer): number
}
