import assert from "node:assert/strict";
import { test } from "node:test";

import { shownPath } from "../../src/gapless/web/static/tree.js";

const m = (id, parent_id, created_at) => ({ id, parent_id, created_at });
const messages = [
  m("u1", null, "1"), m("a1", "u1", "2"), m("a1b", "u1", "3"), m("u2", "a1", "4"), m("u0", null, "0"),
];

test("the shown path takes the newest child at each step", () => {
  assert.deepEqual(shownPath(messages, new Map()).map((s) => s.message.id), ["u1", "a1b"]);
});

test("a chosen sibling changes the rest of the path", () => {
  const path = shownPath(messages, new Map([["u1", "a1"]]));
  assert.deepEqual(path.map((s) => s.message.id), ["u1", "a1", "u2"]);
  assert.deepEqual([path[1].index, path[1].siblings.length], [0, 2]);
});

test("roots are siblings too", () => {
  const path = shownPath(messages, new Map([["", "u0"]]));
  assert.deepEqual(path.map((s) => s.message.id), ["u0"]);
  assert.equal(path[0].siblings.length, 2);
});

test("a chosen id that is gone falls back to the newest", () => {
  assert.deepEqual(shownPath(messages, new Map([["u1", "gone"]])).map((s) => s.message.id), ["u1", "a1b"]);
});
