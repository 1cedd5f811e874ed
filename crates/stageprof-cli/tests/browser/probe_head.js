// Injected before the report's own markup: records every error the page raises.
window.probeErrors = [];
window.addEventListener("error", function (e) { window.probeErrors.push(String(e.message)); });
(function () {
  var original = console.error;
  console.error = function () {
    window.probeErrors.push(Array.prototype.join.call(arguments, " "));
    original.apply(console, arguments);
  };
})();
