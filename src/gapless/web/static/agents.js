/**
 * The agents page: the account's agents (`/agents`), and the editor of one
 * (`/agents/new`, `/agents/{id}`): name, description, instructions, model
 * and its settings, the tools it may call (a checklist of GET /api/tools,
 * with the error of a tool server that cannot start), whether each chosen
 * tool asks a person first, and its step limit.
 *
 * Everything shown that a user or a tool server wrote is set as text.
 */
import { ApiError, api } from "./api.js";

const DEFAULT_STEPS = 10;

const ICON_AGENT =
  '<svg viewBox="0 0 24 24" aria-hidden="true"><rect x="4" y="7" width="16" height="12" rx="3"/><path d="M12 7V4M9 12v1M15 12v1M9 16h6"/></svg>';

/** Build an element from trusted, app-written markup. */
function element(html) {
  const template = document.createElement("template");
  template.innerHTML = html.trim();
  return /** @type {HTMLElement} */ (template.content.firstElementChild);
}

/** A number input's value, or null when empty. */
function numberOrNull(input, parse) {
  const text = input.value.trim();
  return text === "" ? null : parse(text);
}

export class AgentsView {
  /**
   * @param {object} shell  `models`, `agents` ({agents}), `navigate(path)`, `setTitle(text)`, `toast(text)`,
   *   `agentsChanged()` (the list in `shell.agents` changed)
   */
  constructor(shell) {
    this.shell = shell;
    this.root = document.getElementById("agents-view");
    /** @type {{name: string, description: string, destructive: boolean, source: string, error: string|null}[]} */
    this.tools = [];
    this.editing = null;
    this.root.addEventListener("click", (event) => this.clicked(event));
    this.root.addEventListener("submit", (event) => {
      event.preventDefault();
      this.save();
    });
    this.root.addEventListener("change", (event) => {
      if (event.target.matches(".tool-check")) this.toolToggled(event.target);
    });
  }

  /** Show the list (`id` undefined), a new agent's editor ("new") or an agent's. */
  async show(id) {
    this.root.hidden = false;
    if (id === undefined) return this.showList();
    return this.showEditor(id);
  }

  hide() {
    this.root.hidden = true;
    this.root.replaceChildren();
    this.editing = null;
  }

  /** Load the agents into `shell.agents` (the chat's picker shares them). */
  async refresh() {
    const { agents } = await api.get("/api/agents");
    this.shell.agents.agents = agents;
    this.shell.agentsChanged();
    return agents;
  }

  async showList() {
    this.shell.setTitle("Agents");
    this.editing = null;
    let agents;
    try {
      agents = await this.refresh();
    } catch (error) {
      this.shell.toast(`Couldn't load agents: ${error.message}`);
      agents = this.shell.agents.agents;
    }
    const page = element(`<div class="agents-inner">
        <div class="agents-head">
          <p class="muted">An agent is instructions, a model and the tools it may call. Pick one in a chat.</p>
          <a href="/agents/new" class="button primary" data-link id="new-agent">New agent</a>
        </div>
        <ul class="agent-list" aria-label="Your agents"></ul>
        <p class="muted list-empty" id="agents-empty" hidden>No agents yet. Create one to give a chat tools.</p>
      </div>`);
    const list = page.querySelector(".agent-list");
    for (const agent of agents) {
      const item = element(`<li class="agent-item">
          <span class="agent-icon">${ICON_AGENT}</span>
          <a class="agent-link" data-link><span class="agent-name"></span><span class="agent-meta muted small"></span></a>
          <button type="button" class="button small danger" data-action="delete-agent">Delete</button>
        </li>`);
      item.dataset.id = agent.id;
      item.querySelector(".agent-link").href = `/agents/${encodeURIComponent(agent.id)}`;
      item.querySelector(".agent-name").textContent = agent.name || "Untitled agent";
      const tools = agent.tools?.length ?? 0;
      item.querySelector(".agent-meta").textContent = [
        agent.description,
        agent.model,
        `${tools} tool${tools === 1 ? "" : "s"}`,
      ].filter(Boolean).join(" · ");
      item.querySelector("[data-action]").setAttribute("aria-label", `Delete ${agent.name}`);
      list.append(item);
    }
    page.querySelector("#agents-empty").hidden = agents.length > 0;
    this.root.replaceChildren(page);
  }

  async showEditor(id) {
    let agent = null;
    try {
      const [tools, found] = await Promise.all([
        api.get("/api/tools"),
        id === "new" ? null : api.get(`/api/agents/${encodeURIComponent(id)}`),
      ]);
      this.tools = tools.tools;
      agent = found;
    } catch (error) {
      this.shell.toast(error instanceof ApiError && error.status === 404 ? "That agent does not exist." : `Couldn't load: ${error.message}`);
      this.shell.navigate("/agents", { replace: true });
      return;
    }
    this.editing = agent;
    this.shell.setTitle(agent ? agent.name || "Untitled agent" : "New agent");
    this.root.replaceChildren(this.form(agent));
    this.root.querySelector("#agent-name").focus();
  }

  /** The editor's form, filled from `agent` (null: a new one). */
  form(agent) {
    const form = element(`<form class="agents-inner agent-form" novalidate>
        <a href="/agents" class="back-link muted small" data-link>← All agents</a>
        <div class="field"><label for="agent-name">Name</label><input id="agent-name" required maxlength="200"></div>
        <div class="field"><label for="agent-description">Description</label>
          <input id="agent-description" maxlength="500" placeholder="What it is for (shown in the list)"></div>
        <div class="field"><label for="agent-instructions">Instructions</label>
          <textarea id="agent-instructions" rows="6" placeholder="The system prompt: how the agent should behave and when to use its tools."></textarea></div>
        <div class="field-row">
          <div class="field"><label for="agent-model">Model</label><select id="agent-model"></select></div>
          <div class="field"><label for="agent-temperature">Temperature</label>
            <input id="agent-temperature" type="number" min="0" max="2" step="0.1" placeholder="Model default"></div>
          <div class="field"><label for="agent-max-tokens">Max output tokens</label>
            <input id="agent-max-tokens" type="number" min="1" step="1" placeholder="Model default"></div>
          <div class="field"><label for="agent-steps">Step limit</label>
            <input id="agent-steps" type="number" min="1" step="1" required></div>
        </div>
        <fieldset class="field tool-fieldset"><legend>Tools</legend>
          <p class="muted small">Checked tools may be called by the model. “Ask first” holds a call until someone approves it in the chat.</p>
          <ul class="tool-checklist"></ul>
          <p class="muted small" id="no-tools" hidden>No tools are available on this server.</p>
        </fieldset>
        <p class="form-error" id="agent-error" role="alert" hidden></p>
        <div class="form-actions">
          <button type="button" class="button danger" data-action="delete-agent" hidden>Delete agent</button>
          <span class="spacer"></span>
          <a href="/agents" class="button" data-link>Cancel</a>
          <button type="submit" class="button primary" id="agent-save">Save</button>
        </div>
      </form>`);
    const $ = (selector) => form.querySelector(selector);
    $("#agent-name").value = agent?.name ?? "";
    $("#agent-description").value = agent?.description ?? "";
    $("#agent-instructions").value = agent?.instructions ?? "";
    const models = this.shell.models.models;
    $("#agent-model").replaceChildren(...models.map((m) => new Option(m.label || m.name || m.id, m.id)));
    const model = agent?.model ?? this.shell.models.default;
    if (model && !models.some((m) => m.id === model)) $("#agent-model").append(new Option(model, model));
    if (model) $("#agent-model").value = model;
    $("#agent-temperature").value = agent?.temperature ?? "";
    $("#agent-max-tokens").value = agent?.max_tokens ?? "";
    $("#agent-steps").value = agent?.step_limit ?? DEFAULT_STEPS;
    const chosen = new Set(agent?.tools ?? []);
    const approval = agent?.approval ?? {};
    const rows = this.tools.map((tool) => this.toolRow(tool, chosen.has(tool.name), approval[tool.name]));
    // a tool the agent has that the server no longer offers stays visible, so saving keeps or drops it knowingly
    for (const name of chosen) {
      if (!this.tools.some((tool) => tool.name === name)) {
        rows.push(this.toolRow({ name, description: "", destructive: false, source: "", error: "Not available on this server." }, true, approval[name]));
      }
    }
    $(".tool-checklist").replaceChildren(...rows);
    $("#no-tools").hidden = rows.length > 0;
    $("[data-action=delete-agent]").hidden = agent === null;
    return form;
  }

  /** One line of the checklist: a checkbox, the tool's name, source and description, its error, "Ask first". */
  toolRow(tool, checked, policy) {
    const row = element(`<li class="tool-row">
        <label class="tool-pick"><input type="checkbox" class="tool-check">
          <span class="tool-label"><code class="tool-row-name"></code>
            <span class="tool-source muted small"></span><span class="tool-risk small" hidden>changes things</span>
            <span class="tool-description muted small"></span>
            <span class="tool-broken small" role="note" hidden></span></span></label>
        <label class="tool-ask-first small"><input type="checkbox" class="approval-check"> Ask first</label>
      </li>`);
    row.dataset.tool = tool.name;
    row.dataset.destructive = String(Boolean(tool.destructive));
    const check = row.querySelector(".tool-check");
    check.checked = checked;
    check.value = tool.name;
    check.setAttribute("aria-label", tool.name);
    row.querySelector(".tool-row-name").textContent = tool.name;
    row.querySelector(".tool-source").textContent = tool.source && tool.source !== "builtin" ? tool.source : "";
    row.querySelector(".tool-risk").hidden = !tool.destructive;
    row.querySelector(".tool-description").textContent = tool.description ?? "";
    const broken = row.querySelector(".tool-broken");
    broken.hidden = !tool.error;
    broken.textContent = tool.error ? `Unavailable: ${tool.error}` : "";
    if (tool.error && !checked) check.disabled = true;
    const ask = row.querySelector(".approval-check");
    ask.checked = policy === undefined ? Boolean(tool.destructive) : policy === "always";
    ask.setAttribute("aria-label", `Ask before running ${tool.name}`);
    row.querySelector(".tool-ask-first").hidden = !checked;
    return row;
  }

  toolToggled(check) {
    const row = check.closest(".tool-row");
    row.querySelector(".tool-ask-first").hidden = !check.checked;
  }

  /** The form as the Agent body the API takes. */
  values() {
    const $ = (selector) => this.root.querySelector(selector);
    const tools = [];
    const approval = {};
    for (const row of this.root.querySelectorAll(".tool-row")) {
      if (!row.querySelector(".tool-check").checked) continue;
      tools.push(row.dataset.tool);
      approval[row.dataset.tool] = row.querySelector(".approval-check").checked ? "always" : "never";
    }
    return {
      name: $("#agent-name").value.trim(),
      description: $("#agent-description").value.trim(),
      instructions: $("#agent-instructions").value,
      model: $("#agent-model").value || null,
      temperature: numberOrNull($("#agent-temperature"), Number),
      max_tokens: numberOrNull($("#agent-max-tokens"), (text) => Number.parseInt(text, 10)),
      step_limit: numberOrNull($("#agent-steps"), (text) => Number.parseInt(text, 10)) ?? DEFAULT_STEPS,
      tools,
      approval,
    };
  }

  async save() {
    const error = this.root.querySelector("#agent-error");
    const button = this.root.querySelector("#agent-save");
    const body = this.values();
    error.hidden = true;
    if (body.name === "") {
      error.textContent = "Give the agent a name.";
      error.hidden = false;
      this.root.querySelector("#agent-name").focus();
      return;
    }
    button.disabled = true;
    try {
      const saved = this.editing
        ? await api.patch(`/api/agents/${encodeURIComponent(this.editing.id)}`, body)
        : await api.post("/api/agents", body);
      this.shell.toast(this.editing ? "Agent saved." : "Agent created.");
      this.editing = saved;
      this.shell.navigate("/agents");
    } catch (failure) {
      error.textContent = failure.message;
      error.hidden = false;
    } finally {
      button.disabled = false;
    }
  }

  async remove(id, name) {
    if (!window.confirm(`Delete the agent “${name}”?`)) return;
    try {
      await api.delete(`/api/agents/${encodeURIComponent(id)}`);
      this.shell.toast("Agent deleted.");
      if (this.editing) this.shell.navigate("/agents");
      else await this.showList();
    } catch (error) {
      this.shell.toast(`Couldn't delete: ${error.message}`);
    }
  }

  clicked(event) {
    const button = event.target.closest("[data-action=delete-agent]");
    if (!button) return;
    if (this.editing) return this.remove(this.editing.id, this.editing.name);
    const item = button.closest(".agent-item");
    if (item) this.remove(item.dataset.id, item.querySelector(".agent-name").textContent);
  }
}
