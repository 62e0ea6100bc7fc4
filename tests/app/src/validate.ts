// Request validation. Bad input is always a 4xx with every problem listed, never a 5xx.
export type Valid<T> = { ok: true; value: T } | { ok: false; errors: string[] };

export interface LoginInput {
  email: string;
  password: string;
}

export interface MessageInput {
  content: string;
  targetType: string;
  targetIds: string[];
}

export const LIMITS = {
  emailMax: 254,
  passwordMax: 1024,
  contentMax: 1600,
  targetTypeRe: /^[A-Za-z][A-Za-z0-9_-]{0,31}$/,
  targetIdsMax: 1000,
  targetIdMax: 128,
  listDefault: 20,
  listMax: 100,
  slowMaxMs: 10000,
};

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

export function validateLogin(body: unknown): Valid<LoginInput> {
  if (!isObject(body)) return { ok: false, errors: ['body must be a JSON object'] };
  const errors: string[] = [];
  const { email, password } = body;
  if (typeof email !== 'string' || email.trim() === '') errors.push('email is required (string)');
  else if (email.length > LIMITS.emailMax || !/^[^\s@]+@[^\s@]+$/.test(email.trim())) errors.push('email is not valid');
  if (typeof password !== 'string' || password === '') errors.push('password is required (string)');
  else if (password.length > LIMITS.passwordMax) errors.push(`password is longer than ${LIMITS.passwordMax}`);
  if (errors.length) return { ok: false, errors };
  return { ok: true, value: { email: (email as string).trim().toLowerCase(), password: password as string } };
}

export function validateMessage(body: unknown): Valid<MessageInput> {
  if (!isObject(body)) return { ok: false, errors: ['body must be a JSON object'] };
  const errors: string[] = [];
  const { content, targetType, targetIds } = body;
  if (typeof content !== 'string' || content.trim() === '') errors.push('content is required (non-empty string)');
  else if (content.length > LIMITS.contentMax) errors.push(`content is longer than ${LIMITS.contentMax}`);
  if (typeof targetType !== 'string' || !LIMITS.targetTypeRe.test(targetType)) {
    errors.push('targetType is required (1-32 letters, digits, "_" or "-", starting with a letter)');
  }
  if (!Array.isArray(targetIds) || targetIds.length === 0) errors.push('targetIds is required (non-empty array of strings)');
  else if (targetIds.length > LIMITS.targetIdsMax) errors.push(`targetIds has more than ${LIMITS.targetIdsMax} entries`);
  else if (!targetIds.every((t) => typeof t === 'string' && t !== '' && t.length <= LIMITS.targetIdMax)) {
    errors.push(`targetIds entries must be non-empty strings of at most ${LIMITS.targetIdMax} characters`);
  }
  if (errors.length) return { ok: false, errors };
  return { ok: true, value: { content: content as string, targetType: targetType as string, targetIds: targetIds as string[] } };
}

/** A whole number query parameter within [min, max], or the default when absent. */
export function intParam(raw: string | null, name: string, def: number, min: number, max: number): Valid<number> {
  if (raw === null || raw === '') return { ok: true, value: def };
  if (!/^\d+$/.test(raw)) return { ok: false, errors: [`${name} must be a whole number`] };
  const n = Number(raw);
  if (n < min || n > max) return { ok: false, errors: [`${name} must be between ${min} and ${max}`] };
  return { ok: true, value: n };
}
