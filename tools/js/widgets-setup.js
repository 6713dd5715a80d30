// Offline ipywidgets glue, copied by tools/build_book.py to _static/widgets/ and loaded by
// myst-nb between require.js and embed-amd.js on pages that carry saved widget state
// (see nb_ipywidgets_js in _config.yml).
(function () {
  "use strict";
  // 1. Each webpack bundle inside embed-amd.js (html-manager, and base/controls/output) loads its
  //    Font Awesome fonts relative to the URL require.js gives its AMD module, by default
  //    "<page folder>/@jupyter-widgets/...". Map every @jupyter-widgets module path onto this
  //    folder, where the fonts sit beside embed-amd.js.
  var me = document.currentScript && document.currentScript.src;
  if (me && window.require && window.require.config) {
    var here = me.replace(/[?#].*$/, "").replace(/\/[^\/]*$/, "");
    window.require.config({
      paths: { "@jupyter-widgets/html-manager/dist": here, "@jupyter-widgets": here }
    });
  }
  // 2. ipywidgets typesets widget labels with the MathJax 2 API, MathJax.Hub.Queue(["Typeset",
  //    MathJax.Hub, element]); Sphinx loads MathJax 3, which has no Hub. Provide a small Hub that
  //    forwards to MathJax 3's typesetPromise.
  function hub() {
    return {
      Queue: function () {
        for (var i = 0; i < arguments.length; i++) {
          var job = arguments[i];
          if (Array.isArray(job) && job[0] === "Typeset" && window.MathJax &&
              typeof window.MathJax.typesetPromise === "function") {
            window.MathJax.typesetPromise([job[2]]).catch(function () {});
          }
        }
      }
    };
  }
  var mj = window.MathJax;
  if (mj === undefined) {
    // MathJax 3 (deferred) has not run yet: this object becomes its configuration.
    window.MathJax = {
      Hub: hub(),
      startup: {
        ready: function () {
          window.MathJax.startup.defaultReady();
          window.MathJax.Hub = hub();
        }
      }
    };
  } else if (!mj.Hub) {
    if (mj.version) {
      mj.Hub = hub(); // MathJax 3 already loaded
    } else {
      // a configuration object is already there: chain our ready()
      mj.Hub = hub();
      mj.startup = mj.startup || {};
      var ready = mj.startup.ready;
      mj.startup.ready = function () {
        if (ready) { ready(); } else { window.MathJax.startup.defaultReady(); }
        window.MathJax.Hub = hub();
      };
    }
  }
})();
