/**
 * How the gateway's Node.js process is run in production.
 *
 * V8 otherwise grows its heap generously under load (a gateway at 50 connections peaked at
 * 180-205 MB RSS); with these flags it stays near 95-130 MB for about 5-10% less throughput
 * (measured with `npm run bench`, which runs the gateway with them). This is their one definition:
 * the Dockerfile sets them as NODE_OPTIONS and `npm start` passes them to node; test/dockerfile.test.ts
 * and test/runtime.test.ts check that both use exactly these.
 */
export const PRODUCTION_NODE_OPTIONS = '--max-old-space-size=256 --max-semi-space-size=4'
