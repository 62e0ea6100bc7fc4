import { test } from 'node:test';
import assert from 'node:assert/strict';
import { bearerToken, signToken, verifyToken } from '../src/token';
import { hashPassword, verifyPassword, DUMMY_HASH } from '../src/password';

const secret = 'test-secret-0123456789';

test('a signed token verifies and carries the user', () => {
  const t = signToken({ id: 7, email: 'a@b.c' }, secret, 3600, 1_700_000_000_000);
  const v = verifyToken(t, secret, 1_700_000_000_000 + 1000);
  assert.ok(v.ok);
  assert.equal(v.ok && v.claims.sub, '7');
  assert.equal(v.ok && v.claims.email, 'a@b.c');
  assert.equal(v.ok && v.claims.exp - v.claims.iat, 3600);
});

test('a token signed with another secret is rejected', () => {
  const t = signToken({ id: 1, email: 'a@b.c' }, 'another-secret-xxxxxxxx', 3600);
  assert.deepEqual(verifyToken(t, secret), { ok: false, reason: 'bad signature' });
});

test('an expired token is rejected', () => {
  const t = signToken({ id: 1, email: 'a@b.c' }, secret, 60, 1_700_000_000_000);
  assert.deepEqual(verifyToken(t, secret, 1_700_000_000_000 + 61_000), { ok: false, reason: 'token expired' });
});

test('a tampered payload is rejected', () => {
  const [h, , s] = signToken({ id: 1, email: 'a@b.c' }, secret, 3600).split('.');
  const forged = Buffer.from(JSON.stringify({ sub: '2', email: 'x@y.z', iat: 0, exp: 9e9 })).toString('base64url');
  assert.equal(verifyToken(`${h}.${forged}.${s}`, secret).ok, false);
});

test('garbage is rejected without throwing', () => {
  for (const t of ['', 'abc', 'a.b', 'a.b.c.d', '!!.??.**', 'token']) assert.equal(verifyToken(t, secret).ok, false);
});

test('bearer header parsing', () => {
  assert.equal(bearerToken('Bearer abc.def.ghi'), 'abc.def.ghi');
  assert.equal(bearerToken('bearer   xyz '), 'xyz');
  assert.equal(bearerToken('Basic dXNlcjpwdw=='), null);
  assert.equal(bearerToken('Bearer'), null);
  assert.equal(bearerToken(undefined), null);
});

test('scrypt password hashes verify the right password only', async () => {
  const h = await hashPassword('password');
  assert.match(h, /^scrypt\$16384\$8\$1\$/);
  assert.equal(await verifyPassword('password', h), true);
  assert.equal(await verifyPassword('Password', h), false);
  assert.notEqual(await hashPassword('password'), h, 'salted: two hashes differ');
});

test('malformed stored hashes never verify', async () => {
  for (const h of ['', 'plain', 'scrypt$1$2$3$x$y', 'md5$abc', DUMMY_HASH]) {
    assert.equal(await verifyPassword('password', h), false, h);
  }
});
