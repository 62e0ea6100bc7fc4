import { test } from 'node:test';
import assert from 'node:assert/strict';
import { intParam, validateLogin, validateMessage } from '../src/validate';

test('login: email and password required, email normalised', () => {
  assert.deepEqual(validateLogin({ email: ' Test@Church.com ', password: 'pw' }), {
    ok: true,
    value: { email: 'test@church.com', password: 'pw' },
  });
  for (const bad of [null, [], 'x', 42, {}, { email: 'a@b' }, { password: 'x' }, { email: 'nope', password: 'x' }, { email: 'a@b', password: 5 }]) {
    assert.equal(validateLogin(bad).ok, false, JSON.stringify(bad));
  }
});

test('login: both problems are listed', () => {
  const r = validateLogin({});
  assert.ok(!r.ok && r.errors.length === 2);
});

test('message: the runbook smoke-test body is valid', () => {
  const r = validateMessage({ content: 'test', targetType: 'group', targetIds: ['group-id'] });
  assert.deepEqual(r, { ok: true, value: { content: 'test', targetType: 'group', targetIds: ['group-id'] } });
});

test('message: bad bodies are rejected with reasons', () => {
  const cases: [unknown, string][] = [
    [{ targetType: 'group', targetIds: ['g'] }, 'content'],
    [{ content: '   ', targetType: 'group', targetIds: ['g'] }, 'content'],
    [{ content: 'x'.repeat(1601), targetType: 'group', targetIds: ['g'] }, 'content is longer'],
    [{ content: 'x', targetType: '', targetIds: ['g'] }, 'targetType'],
    [{ content: 'x', targetType: 'drop table', targetIds: ['g'] }, 'targetType'],
    [{ content: 'x', targetType: 'group', targetIds: [] }, 'targetIds'],
    [{ content: 'x', targetType: 'group', targetIds: 'g' }, 'targetIds'],
    [{ content: 'x', targetType: 'group', targetIds: [1] }, 'targetIds entries'],
    [[1, 2], 'JSON object'],
  ];
  for (const [body, needle] of cases) {
    const r = validateMessage(body);
    assert.ok(!r.ok && r.errors.some((e) => e.includes(needle)), `${JSON.stringify(body)} -> ${JSON.stringify(r)}`);
  }
});

test('integer query parameters: default, bounds, junk', () => {
  assert.deepEqual(intParam(null, 'limit', 20, 1, 100), { ok: true, value: 20 });
  assert.deepEqual(intParam('5', 'limit', 20, 1, 100), { ok: true, value: 5 });
  assert.equal(intParam('0', 'limit', 20, 1, 100).ok, false);
  assert.equal(intParam('101', 'limit', 20, 1, 100).ok, false);
  assert.equal(intParam('-1', 'limit', 20, 1, 100).ok, false);
  assert.equal(intParam('1e3', 'limit', 20, 1, 100).ok, false);
});
