// Injected after the report's script: reads what the browser drew, clicks
// what a reader would click, and leaves the findings as JSON in <pre id="probe">.
(function () {
  var out = {};
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
  out.sections = Array.prototype.map.call(document.querySelectorAll("section"), function (s) { return s.id; });
  out.scroll = { page: document.documentElement.scrollWidth, view: document.documentElement.clientWidth, window: window.innerWidth };
  out.charts = Array.prototype.map.call(document.querySelectorAll("svg.chart"), drawn);

  var headers = document.querySelectorAll("#stage-table th");
  if (headers.length) {
    out.initial = stageRows();
    headers[2].click();
    headers[2].click();
    out.wallAscending = stageRows();
    headers[0].click();
    out.nameDescending = stageRows();
  }
  var more = document.getElementById("more-columns");
  if (more) {
    var hidden = document.querySelector("#stage-table th.more");
    out.moreColumns = { before: getComputedStyle(hidden).display };
    more.click();
    out.moreColumns.after = getComputedStyle(hidden).display;
    out.moreColumns.scrollAfter = document.documentElement.scrollWidth;
    more.click();
  }

  var timeline = document.getElementById("timeline-svg");
  if (timeline) {
    var zoomIn = document.querySelector(".tl-controls[data-svg=timeline-svg] button[data-zoom=in]");
    out.timeline = { rects: timeline.querySelectorAll("rect").length, viewBox: timeline.getAttribute("viewBox") };
    zoomIn.click();
    zoomIn.click();
    out.zoomed = { viewBox: timeline.getAttribute("viewBox"), range: document.getElementById("tl-range").textContent };
  }

  var flame = document.getElementById("flame-graph");
  if (flame) {
    var boxes = flame.querySelectorAll(".fb");
    var shown = function () {
      return Array.prototype.filter.call(boxes, function (b) { return !b.hidden; }).map(function (b) { return b.textContent; });
    };
    var texts = function (selector) {
      return Array.prototype.map.call(flame.querySelectorAll(selector), function (b) { return b.textContent; });
    };
    out.flame = { names: texts(".fb"), stages: texts(".fb.stage"), threads: texts(".fb.thread") };
    var nested = flame.querySelector(".fb.stage.r1");
    if (nested) {
      nested.click();
      var g = flame.getBoundingClientRect(), r = nested.getBoundingClientRect();
      out.flame.zoomedInto = nested.textContent;
      out.flame.zoomedBox = [(r.left - g.left) / g.width, r.width / g.width];
      out.flame.shownZoomed = shown();
      document.getElementById("flame-reset").click();
      out.flame.shownReset = shown();
    }
    var search = document.getElementById("flame-search");
    search.value = boxes[0].textContent;
    search.dispatchEvent(new Event("input"));
    out.flame.searchHits = flame.querySelectorAll(".fb.hit").length;
  }

  var frames = document.getElementById("frames-svg");
  if (frames) out.frameBars = frames.querySelectorAll("g[data-f]").length;
  var changed = document.getElementById("changed-table");
  if (changed) {
    out.changed = Array.prototype.map.call(changed.tBodies[0].rows, function (r) {
      return [r.cells[0].textContent, r.cells[1].textContent, r.className];
    });
  }
  out.errors = window.probeErrors;
  var pre = document.createElement("pre");
  pre.id = "probe";
  pre.textContent = JSON.stringify(out);
  document.body.appendChild(pre);
})();
