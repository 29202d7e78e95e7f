// Runs tests/reducer_cases.json (shared with the Python `Replica` tests)
// against the browser reducer:  node --test tests/js/
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";

import { Replica } from "../../src/gapless/web/static/reducer.js";

const { cases } = JSON.parse(readFileSync(new URL("../reducer_cases.json", import.meta.url), "utf8"));

for (const { name, state, cursor, events, expect } of cases) {
  test(name, () => {
    const replica = new Replica();
    replica.load(structuredClone(state), cursor);
    let refetch = false;
    for (const event of events) {
      if (!replica.receive(event.type, structuredClone(event.data), event.cursor)) refetch = true;
    }
    assert.equal(refetch, expect.refetch, "refetch");
    for (const [id, fields] of Object.entries(expect.messages)) {
      const message = replica.messages.get(id);
      assert.ok(message, `message ${id} is present`);
      for (const [field, value] of Object.entries(fields)) {
        assert.deepEqual(message[field], value, `${id}.${field}`);
      }
    }
    for (const id of expect.absent) assert.ok(!replica.messages.has(id), `message ${id} is absent`);
  });
}

test("the cursor follows the last applied event and not reset", () => {
  const replica = new Replica();
  replica.load([], "e.1-0");
  replica.receive("chat.updated", { id: "c1" }, "e.2-0");
  assert.equal(replica.cursor, "e.2-0");
  replica.receive("reset", { reason: "x" }, null);
  assert.equal(replica.cursor, "e.2-0");
});

test("changes name exactly the messages a view must redraw", () => {
  const replica = new Replica();
  replica.load([{ id: "a", parent_id: null, seq: 0, status: "pending", content: "" }], "e.1-0");
  assert.deepEqual([...replica.takeChanges()], ["a"]);
  replica.receive("message.delta", { message_id: "a", seq: 1, content: "x" }, "e.2-0");
  replica.receive("message.delta", { message_id: "a", seq: 1, content: "x" }, "e.3-0");
  assert.deepEqual([...replica.takeChanges()], ["a"]);
  replica.receive("message.delta", { message_id: "a", seq: 1, content: "x" }, "e.4-0");
  assert.deepEqual([...replica.takeChanges()], []);
});
