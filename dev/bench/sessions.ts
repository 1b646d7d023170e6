import { generateKeyPairSync } from 'node:crypto'
import { createSigner } from 'fast-jwt'

/** Session JWTs for the load: one distinct identity per token, signed with the scenario's key. */

export type SessionAlgorithm = 'HS256' | 'RS256' | 'ES256'

export interface SessionKeys {
  algorithm: SessionAlgorithm
  /** The service's environment for this key. */
  env: Record<string, string>
  sign: (index: number, prefix?: string) => string
}

export const BENCH_JWT_SECRET = 'bench-session-secret-bench-session-secret'

export function sessionKeys (algorithm: SessionAlgorithm): SessionKeys {
  let env: Record<string, string>
  let key: string
  if (algorithm === 'HS256') {
    env = { JWT_SECRET: BENCH_JWT_SECRET }
    key = BENCH_JWT_SECRET
  } else {
    const pair = algorithm === 'RS256'
      ? generateKeyPairSync('rsa', { modulusLength: 2048 })
      : generateKeyPairSync('ec', { namedCurve: 'P-256' })
    env = { JWT_PUBLIC_KEY: pair.publicKey.export({ type: 'spki', format: 'pem' }).toString() }
    key = pair.privateKey.export({ type: 'pkcs8', format: 'pem' }).toString()
  }
  const signer = createSigner({ key, algorithm, expiresIn: 3_600_000 })
  return {
    algorithm,
    env,
    sign: (index, prefix = 'user') => signer({ sub: `${prefix}-${index}`, email: `${prefix}-${index}@bench.example.com`, given_name: 'Bench' })
  }
}

export function signMany (keys: SessionKeys, count: number, prefix?: string): string[] {
  return Array.from({ length: count }, (_, index) => keys.sign(index, prefix))
}
