// The static site's behaviour: draw the embedded Plotly charts, the panel selector, table search.
// No request leaves the page: figures are JSON in <script type="application/json"> elements.
(function () {
  "use strict";
  function spec(id) { return JSON.parse(document.getElementById(id).textContent); }
  function draw(div, figure) {
    if (typeof Plotly === "undefined") return;
    Plotly.react(div, figure.data, figure.layout, { responsive: true, displaylogo: false });
  }
  document.querySelectorAll("[data-chart]").forEach(function (div) {
    draw(div, spec(div.getAttribute("data-chart")));
  });
  var select = document.getElementById("panel-select");
  if (select) {
    select.addEventListener("change", function () {
      var panel = select.value;
      var div = document.getElementById(select.getAttribute("data-controls"));
      div.setAttribute("data-panel", panel);
      draw(div, spec("nc-spec-" + panel));
      document.querySelectorAll(".nc-table").forEach(function (t) {
        t.hidden = t.getAttribute("data-panel") !== panel;
      });
    });
  }
  document.querySelectorAll("input[data-filter]").forEach(function (input) {
    var rows = document.querySelectorAll("#" + input.getAttribute("data-filter") + " tbody tr");
    input.addEventListener("input", function () {
      var q = input.value.trim().toLowerCase();
      rows.forEach(function (row) { row.hidden = q !== "" && row.textContent.toLowerCase().indexOf(q) < 0; });
    });
  });
})();
