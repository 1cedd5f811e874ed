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
