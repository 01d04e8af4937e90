// Runs in <head> before the first paint, so a chosen theme never flashes the other one.
(function () {
  try {
    var t = localStorage.getItem("failboard-theme");
    if (t === "dark" || t === "light") document.documentElement.dataset.theme = t;
  } catch (e) { /* storage may be off: follow the system */ }
})();
