/**
 * The composer: a growing textarea (Enter sends, Shift+Enter breaks the
 * line), the agent and model pickers, and one round button that is Send, or
 * Stop while a reply streams.
 */

const MAX_HEIGHT = 240;

export class Composer {
  /**
   * @param {{onSend: (text: string) => void, onStop: () => void, onModel: (id: string) => void,
   *   onAgent: (id: string|null) => void}} handlers
   */
  constructor({ onSend, onStop, onModel, onAgent }) {
    this.form = document.getElementById("composer");
    this.prompt = document.getElementById("prompt");
    this.send = document.getElementById("send");
    this.stop = document.getElementById("stop");
    this.picker = document.getElementById("model");
    this.agentPicker = document.getElementById("agent");
    this.onSend = onSend;
    this.state = { streaming: false, sending: false };
    this.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    this.prompt.addEventListener("keydown", (event) => {
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        this.submit();
      }
    });
    this.prompt.addEventListener("input", () => this.refresh());
    this.stop.addEventListener("click", () => onStop());
    this.picker.addEventListener("change", () => onModel(this.picker.value));
    this.agentPicker.addEventListener("change", () => onAgent(this.agentPicker.value || null));
  }

  /** The chosen model id. */
  get model() {
    return this.picker.value;
  }

  /**
   * Offer `models` (from GET /api/models) with `selected` chosen, or `fallback`.
   * @param {{id: string, label?: string, name?: string}[]} models
   */
  setModels(models, selected, fallback) {
    if (this.picker.options.length !== models.length) {
      this.picker.replaceChildren(...models.map((m) => new Option(m.label || m.name || m.id, m.id)));
    }
    const value = models.some((m) => m.id === selected) ? selected : fallback;
    if (value) this.picker.value = value;
  }

  /**
   * Offer "No agent" and `agents` (from GET /api/agents), with `selected` chosen.
   * @param {{id: string, name: string}[]} agents
   * @param {string|null} selected
   */
  setAgents(agents, selected) {
    const options = [new Option("No agent", ""), ...agents.map((a) => new Option(a.name || "Untitled agent", a.id))];
    const key = JSON.stringify(agents.map((a) => [a.id, a.name]));
    if (this.agentPicker.dataset.key !== key) {
      this.agentPicker.replaceChildren(...options);
      this.agentPicker.dataset.key = key;
    }
    const known = agents.some((a) => a.id === selected);
    if (selected && !known) {
      // an agent this list does not have (deleted, or not loaded yet): say so rather than show "No agent"
      this.agentPicker.append(new Option("Unknown agent", selected));
      this.agentPicker.dataset.key = "";
    }
    this.agentPicker.value = selected ?? "";
    this.agentPicker.closest(".agent-picker").hidden = agents.length === 0 && !selected;
  }

  /**
   * `streaming`: a reply is being written (Stop replaces Send, Enter waits);
   * `sending`: a message is on its way (a second Enter or click does nothing).
   */
  setState(state) {
    this.state = state;
    this.refresh();
  }

  /** Hand the text to `onSend` and empty the box, unless there is nothing to send or it must wait. */
  submit() {
    const text = this.prompt.value;
    if (text.trim() === "" || this.state.streaming || this.state.sending) return;
    this.prompt.value = "";
    this.refresh();
    this.onSend(text);
  }

  /** Put text back in an empty box (a discarded failed message). */
  restore(text) {
    if (this.prompt.value === "") this.prompt.value = text;
    this.refresh();
  }

  focus() {
    this.prompt.focus();
  }

  refresh() {
    this.stop.hidden = !this.state.streaming;
    this.send.hidden = this.state.streaming;
    this.send.disabled = this.state.sending || this.prompt.value.trim() === "";
    this.prompt.style.height = "auto";
    this.prompt.style.height = `${Math.min(this.prompt.scrollHeight, MAX_HEIGHT)}px`;
  }
}
