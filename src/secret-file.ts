/**
 * Passwords read from files (`REDIS_PASSWORD_FILE`...: Docker/compose secrets, Kubernetes secret
 * volumes), so they are neither in the environment of the process nor on a command line.
 */
import { readFileSync } from 'node:fs'

/** Largest secret file read: a password, not a data file. */
const MAX_SECRET_BYTES = 4096

/**
 * The secret in `file` (one trailing newline dropped, as `echo` writes it), or the one-line error
 * naming `variable` (the caller turns it into a ConfigError). The content is never in a message.
 */
export function readSecretFile (variable: string, file: string): { value: string } | string {
  let data: Buffer
  try {
    data = readFileSync(file)
  } catch (err) {
    const e = err as NodeJS.ErrnoException
    return `Invalid environment variable ${variable}: cannot read ${file} (${e.code ?? e.message.split('\n')[0]})`
  }
  if (data.length > MAX_SECRET_BYTES) return `Invalid environment variable ${variable}: ${file} is over ${MAX_SECRET_BYTES} bytes, not a password`
  const value = data.toString('utf8').replace(/\r?\n$/, '')
  if (value === '') return `Invalid environment variable ${variable}: ${file} is empty`
  if (/[\r\n]/.test(value)) return `Invalid environment variable ${variable}: ${file} holds more than one line`
  return { value }
}

/**
 * `env[name]`, or the content of the file `env[name + '_FILE']` names; undefined when neither is set.
 * Both set: an error, so it is never unclear which password is used.
 */
export function secretFromEnvOrFile (name: string, direct: string | undefined, file: string | undefined): { value?: string } | string {
  if (file === undefined || file === '') return direct === undefined || direct === '' ? {} : { value: direct }
  if (direct !== undefined && direct !== '') return `Invalid environment variables ${name} and ${name}_FILE: set one of them, not both`
  return readSecretFile(`${name}_FILE`, file)
}
