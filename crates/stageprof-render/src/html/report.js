// Sorts a table by the clicked column. Rows carry data-depth, so a nested
// stage stays under its parent: siblings are sorted, then the tree is laid
// out again depth first. Cells carry their sort value in data-v.
document.querySelectorAll("table.sortable").forEach(function (table) {
  var headers = table.tHead.rows[0].cells;
  Array.prototype.forEach.call(headers, function (th, column) {
    th.addEventListener("click", function () {
      var descending = !th.classList.contains("desc");
      Array.prototype.forEach.call(headers, function (h) { h.classList.remove("asc", "desc"); });
      th.classList.add(descending ? "desc" : "asc");
      var text = th.dataset.type === "text";
      var key = function (row) {
        var c = row.cells[column];
        return text ? c.textContent : parseFloat(c.dataset.v);
      };
      var root = { children: [] }, stack = [root];
      Array.prototype.forEach.call(table.tBodies[0].rows, function (row) {
        var depth = parseInt(row.dataset.depth || "0", 10);
        var node = { row: row, children: [] };
        stack.length = Math.min(stack.length, depth + 1);
        stack[stack.length - 1].children.push(node);
        stack.push(node);
      });
      var body = table.tBodies[0];
      (function place(node) {
        node.children.sort(function (a, b) {
          var x = key(a.row), y = key(b.row);
          var order = x < y ? -1 : x > y ? 1 : 0;
          return descending ? -order : order;
        });
        node.children.forEach(function (child) { body.appendChild(child.row); place(child); });
      })(root);
    });
  });
});

// Charts whose x runs along time or frames (the timeline, the frames) zoom
// and pan by changing their viewBox; a ".tl-controls" naming the chart in
// data-svg holds its buttons and the range shown.
function us(v) { return v >= 1e6 ? (v / 1e6).toFixed(3) + " s" : v >= 1e3 ? (v / 1e3).toFixed(2) + " ms" : v.toFixed(1) + " µs"; }
function zoomable(svg, controls) {
  var base = svg.viewBox.baseVal, full = { x: base.x, w: base.width }, view = { x: base.x, w: base.width };
  var range = controls.querySelector(".range");
  var at = svg.dataset.unit === "frame" ? function (v) { return "frame " + Math.floor(v); } : us;
  function show() {
    view.w = Math.min(Math.max(view.w, full.w / 1e6), full.w);
    view.x = Math.min(Math.max(view.x, full.x), full.x + full.w - view.w);
    svg.setAttribute("viewBox", view.x + " " + base.y + " " + view.w + " " + base.height);
    range.textContent = at(view.x) + " to " + at(view.x + view.w);
  }
  function zoom(factor, where) {
    var w = view.w * factor;
    view.x += where * (view.w - w);
    view.w = w;
    show();
  }
  svg.addEventListener("wheel", function (e) {
    e.preventDefault();
    var r = svg.getBoundingClientRect();
    zoom(e.deltaY < 0 ? 0.8 : 1.25, (e.clientX - r.left) / r.width);
  }, { passive: false });
  var drag = null;
  svg.addEventListener("mousedown", function (e) { drag = { x: e.clientX, from: view.x }; });
  window.addEventListener("mouseup", function () { drag = null; });
  window.addEventListener("mousemove", function (e) {
    if (!drag) return;
    view.x = drag.from - (e.clientX - drag.x) / svg.getBoundingClientRect().width * view.w;
    show();
  });
  controls.querySelectorAll("button").forEach(function (b) {
    b.addEventListener("click", function () {
      if (b.dataset.zoom === "reset") { view.x = full.x; view.w = full.w; show(); }
      else zoom(b.dataset.zoom === "in" ? 0.5 : 2, 0.5);
    });
  });
  show();
}
document.querySelectorAll(".tl-controls[data-svg]").forEach(function (c) {
  var svg = document.getElementById(c.dataset.svg);
  if (svg) zoomable(svg, c);
});

// Hover tips: the timeline's names live in a hidden list and are shown as
// text, never parsed; a frame's figures come from its bar's data- numbers
// and the legend's names.
function tipFollows(svg, tip, text) {
  svg.addEventListener("mouseover", function (e) {
    var t = text(e.target);
    if (t === null) return;
    tip.textContent = t;
    tip.hidden = false;
  });
  svg.addEventListener("mousemove", function (e) { tip.style.left = e.clientX + 12 + "px"; tip.style.top = e.clientY + 12 + "px"; });
  svg.addEventListener("mouseleave", function () { tip.hidden = true; });
}
(function () {
  var svg = document.getElementById("timeline-svg");
  if (!svg) return;
  var names = document.querySelectorAll("#tl-names li");
  tipFollows(svg, document.getElementById("tl-tip"), function (r) {
    var n = r.dataset && r.dataset.n;
    return n === undefined ? null : names[n].textContent + " (" + us(parseFloat(r.getAttribute("width"))) + ")";
  });
})();
(function () {
  var svg = document.getElementById("frames-svg");
  if (!svg) return;
  var legend = document.querySelectorAll("#frame-legend li");
  var classes = Array.prototype.map.call(legend, function (li) { return li.firstChild.classList[1]; });
  tipFollows(svg, document.getElementById("frame-tip"), function (r) {
    var g = r.parentNode;
    if (!g.dataset || g.dataset.f === undefined || r.dataset.v === undefined) return null;
    var k = classes.indexOf(r.classList[0]);
    var what = k >= 0 ? legend[k].textContent : "";
    return "frame " + g.dataset.f + ": " + us(parseFloat(g.dataset.d) / 1e3) + "; " + what + " " + us(parseFloat(r.dataset.v) / 1e3);
  });
})();

// The flame graph zooms into a box by laying every box out again relative
// to it (positions are fractions in data-x and data-w); boxes outside it
// are hidden, its ancestors fill the width. The search marks boxes whose
// name contains the text.
(function () {
  var graph = document.getElementById("flame-graph");
  if (!graph) return;
  var boxes = graph.querySelectorAll(".fb");
  var found = document.getElementById("flame-found");
  function zoom(x0, w0) {
    Array.prototype.forEach.call(boxes, function (b) {
      var left = (parseFloat(b.dataset.x) - x0) / w0, right = left + parseFloat(b.dataset.w) / w0;
      var shown = right > 1e-9 && left < 1 - 1e-9;
      b.hidden = !shown;
      if (!shown) return;
      left = Math.max(left, 0);
      right = Math.min(right, 1);
      b.style.left = 100 * left + "%";
      b.style.width = 100 * (right - left) + "%";
    });
    graph.dataset.zoomed = w0 < 1 ? "yes" : "no";
  }
  graph.addEventListener("click", function (e) {
    var b = e.target.closest(".fb");
    if (!b) return;
    var top = b.classList.contains("r0") && graph.dataset.zoomed === "yes";
    if (top) zoom(0, 1); else zoom(parseFloat(b.dataset.x), Math.max(parseFloat(b.dataset.w), 1e-9));
  });
  document.getElementById("flame-reset").addEventListener("click", function () { zoom(0, 1); });
  document.getElementById("flame-search").addEventListener("input", function (e) {
    var q = e.target.value.toLowerCase(), hits = 0;
    Array.prototype.forEach.call(boxes, function (b) {
      var hit = q !== "" && b.firstChild.textContent.toLowerCase().indexOf(q) >= 0;
      b.classList.toggle("hit", hit);
      hits += hit ? 1 : 0;
    });
    found.textContent = q === "" ? "" : hits + " found";
  });
})();

// The stage table's secondary columns, and each row's distribution enlarged on click.
(function () {
  var table = document.getElementById("stage-table"), more = document.getElementById("more-columns");
  if (!table) return;
  if (more) more.addEventListener("click", function () {
    var all = table.classList.toggle("all");
    more.textContent = all ? "fewer columns" : "more columns";
  });
  table.addEventListener("click", function (e) {
    var td = e.target.closest("td.dist");
    if (td) td.classList.toggle("big");
  });
})();
