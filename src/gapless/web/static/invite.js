/**
 * The invitation page (`/invite#<secret>`): a new member chooses a first password,
 * then lands signed in on the app. The secret rides in the fragment, which is never
 * sent to the server in a request line nor in a Referer.
 */
import { ApiError, api } from "./api.js";

const $ = (id) => document.getElementById(id);

$("invite-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const error = $("invite-error");
  error.hidden = true;
  const password = $("invite-password").value;
  try {
    if (password !== $("invite-again").value) throw new Error("The passwords differ.");
    await api.post("/api/invites", { secret: location.hash.slice(1), password });
    location.replace("/");
  } catch (failure) {
    error.textContent = failure instanceof ApiError || failure instanceof Error ? failure.message : String(failure);
    error.hidden = false;
  }
});
