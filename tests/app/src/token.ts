// HS256 JSON Web Tokens with node:crypto only: header.payload.signature, base64url.
import { createHmac, timingSafeEqual } from 'node:crypto';

export interface TokenClaims {
  sub: string;
  email: string;
  iat: number;
  exp: number;
}

const HEADER = Buffer.from(JSON.stringify({ alg: 'HS256', typ: 'JWT' })).toString('base64url');

function sign(data: string, secret: string): string {
  return createHmac('sha256', secret).update(data).digest('base64url');
}

export function signToken(
  subject: { id: string | number; email: string },
  secret: string,
  ttlS: number,
  nowMs: number = Date.now(),
): string {
  const iat = Math.floor(nowMs / 1000);
  const claims: TokenClaims = { sub: String(subject.id), email: subject.email, iat, exp: iat + ttlS };
  const payload = Buffer.from(JSON.stringify(claims)).toString('base64url');
  return `${HEADER}.${payload}.${sign(`${HEADER}.${payload}`, secret)}`;
}

export type VerifyResult = { ok: true; claims: TokenClaims } | { ok: false; reason: string };

export function verifyToken(token: string, secret: string, nowMs: number = Date.now()): VerifyResult {
  const parts = token.split('.');
  if (parts.length !== 3 || parts.some((p) => !/^[A-Za-z0-9_-]+$/.test(p))) return { ok: false, reason: 'malformed token' };
  const [header, payload, sig] = parts;
  const expected = Buffer.from(sign(`${header}.${payload}`, secret));
  const given = Buffer.from(sig);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return { ok: false, reason: 'bad signature' };
  let h: unknown;
  let c: unknown;
  try {
    h = JSON.parse(Buffer.from(header, 'base64url').toString('utf8'));
    c = JSON.parse(Buffer.from(payload, 'base64url').toString('utf8'));
  } catch {
    return { ok: false, reason: 'malformed token' };
  }
  if (typeof h !== 'object' || h === null || (h as { alg?: unknown }).alg !== 'HS256') {
    return { ok: false, reason: 'unsupported algorithm' };
  }
  const claims = c as Partial<TokenClaims>;
  if (typeof claims !== 'object' || claims === null || typeof claims.sub !== 'string' || typeof claims.exp !== 'number') {
    return { ok: false, reason: 'malformed claims' };
  }
  if (claims.exp <= Math.floor(nowMs / 1000)) return { ok: false, reason: 'token expired' };
  return { ok: true, claims: claims as TokenClaims };
}

/** The token from an `Authorization: Bearer <token>` header, or null. */
export function bearerToken(header: string | undefined): string | null {
  if (!header) return null;
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
  return m ? m[1] : null;
}
