import assert from "node:assert/strict";
import { test } from "node:test";

import { sideBySide } from "../../src/gapless/web/static/prompts.js";

const shape = (rows) => rows.map((r) => [r.kind, r.a, r.left, r.b, r.right]);

test("unchanged lines sit side by side with both line numbers", () => {
  assert.deepEqual(shape(sideBySide("a\nb\n", "a\nb\n")), [
    ["same", 1, "a", 1, "a"],
    ["same", 2, "b", 2, "b"],
  ]);
});

test("a changed line pairs its old and new text on one row", () => {
  assert.deepEqual(shape(sideBySide("one\ntwo\nthree", "one\nTWO\nthree")), [
    ["same", 1, "one", 1, "one"],
    ["changed", 2, "two", 2, "TWO"],
    ["same", 3, "three", 3, "three"],
  ]);
});

test("added and removed lines leave the other side empty and keep the numbering", () => {
  assert.deepEqual(shape(sideBySide("a\nb\nc", "a\nc\nd")), [
    ["same", 1, "a", 1, "a"],
    ["removed", 2, "b", null, null],
    ["same", 3, "c", 2, "c"],
    ["added", null, null, 3, "d"],
  ]);
});

test("a longer replacement pairs what it can and adds the rest", () => {
  assert.deepEqual(shape(sideBySide("x\n", "y1\ny2\n")), [
    ["changed", 1, "x", 1, "y1"],
    ["changed", null, null, 2, "y2"],
  ]);
});

test("an empty side is all added", () => {
  assert.deepEqual(shape(sideBySide("", "hi")), [["added", null, null, 1, "hi"]]);
});
