"use strict";
document.getElementById("login").addEventListener("submit", async (event) => {
  event.preventDefault();
  const form = new FormData(event.target);
  const body = Object.fromEntries([...form.entries()].filter(([, v]) => v !== ""));
  const response = await fetch("/ui/session", {
    method: "POST", headers: {"Content-Type": "application/json"}, body: JSON.stringify(body),
  });
  if (response.ok) {
    window.location.assign("/ui/");
    return;
  }
  const detail = (await response.json().catch(() => ({}))).detail;
  document.getElementById("error").textContent = typeof detail === "string" ? detail : "login failed";
});
