// Starts Swagger UI on /docs (web/apidocs.py). A file rather than FastAPI's inline script, so
// the page runs under the same strict Content-Security-Policy as the rest of the dashboard.
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  var meta = document.querySelector("meta[name=csrf-token]");
  var csrf = meta ? meta.content : "";

  function sameOrigin(url) {
    try {
      return new URL(url, location.href).origin === location.origin;
    } catch (e) {
      return false;
    }
  }

  SwaggerUIBundle({
    url: root.dataset.openapiUrl,
    domNode: root,
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis],
    deepLinking: true,
    showExtensions: true,
    showCommonExtensions: true,
    // Swagger's online validator is another site: nothing here loads from the internet.
    validatorUrl: null,
    // "Try it out" runs with the signed-in session, whose writes need its CSRF token
    // (web/security.py); the token never goes to another origin.
    requestInterceptor: function (request) {
      if (csrf && sameOrigin(request.url)) request.headers["X-CSRF-Token"] = csrf;
      return request;
    },
  });
})();
