// Swagger UI for /api/openapi.json, from vendored swagger-ui-dist (no CDN, no inline script).
// The document and "Try it out" calls carry the token the admin page keeps in this tab.
"use strict";

const TOKEN_KEY = "livermore.token";

function show(token) {
  document.getElementById("signin").hidden = true;
  const ui = SwaggerUIBundle({
    url: "/api/openapi.json",
    dom_id: "#swagger-ui",
    deepLinking: true,
    requestInterceptor: (request) => {
      request.headers.Authorization = `Bearer ${token}`;
      return request;
    },
  });
  ui.preauthorizeApiKey("bearerAuth", token);
}

document.getElementById("signin-form").addEventListener("submit", (event) => {
  event.preventDefault();
  const token = document.getElementById("token-input").value.trim();
  sessionStorage.setItem(TOKEN_KEY, token);
  show(token);
});

const saved = sessionStorage.getItem(TOKEN_KEY);
if (saved) show(saved); else document.getElementById("signin").hidden = false;
