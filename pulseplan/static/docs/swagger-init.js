// Starts Swagger UI on /docs. A file rather than an inline <script> so that the page's
// Content-Security-Policy can say script-src 'self' (pulseplan/web/security.py).
(function () {
  "use strict";
  var root = document.getElementById("swagger-ui");
  window.ui = SwaggerUIBundle({
    url: root.getAttribute("data-openapi-url"),
    dom_id: "#swagger-ui",
    deepLinking: true,
    layout: "BaseLayout",
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    showExtensions: true,
    showCommonExtensions: true,
    // The default validator badge loads an image from validator.swagger.io.
    validatorUrl: null
  });
})();
