// Injected after the report's script: reads what the browser drew, clicks
// the stage table's headers, and leaves the findings as JSON in <pre id="probe">.
(function () {
  function stageRows() {
    return Array.prototype.map.call(document.querySelectorAll("#stage-table tbody tr"), function (r) {
      return [parseInt(r.dataset.depth, 10), r.cells[0].textContent, parseFloat(r.cells[2].dataset.v)];
    });
  }
  function drawn(svg) {
    var bars = Array.prototype.filter.call(svg.querySelectorAll("rect"), function (r) {
      return r.getBBox().width > 0;
    }).length;
    var line = svg.querySelector("polyline");
    return { id: svg.closest("section").id, bars: bars, points: line ? line.points.numberOfItems : 0 };
  }
  var headers = document.querySelectorAll("#stage-table th");
  var out = { charts: Array.prototype.map.call(document.querySelectorAll("svg.chart"), drawn), initial: stageRows() };
  headers[2].click();
  headers[2].click();
  out.wallAscending = stageRows();
  headers[0].click();
  out.nameDescending = stageRows();
  var timeline = document.getElementById("timeline-svg");
  var zoomIn = document.querySelector(".tl-controls button[data-zoom=in]");
  out.timeline = { rects: timeline.querySelectorAll("rect").length, viewBox: timeline.getAttribute("viewBox") };
  zoomIn.click();
  zoomIn.click();
  out.zoomed = { viewBox: timeline.getAttribute("viewBox"), range: document.getElementById("tl-range").textContent };
  out.errors = window.probeErrors;
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
