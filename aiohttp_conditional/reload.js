// aiohttp-conditional's live reload.  In a page, it reloads the page when the files
// it is served from change, or swaps its stylesheets when only stylesheets changed.
// The same file runs as a shared worker that holds one event stream for every tab of
// the site: a browser opens at most six connections to a server over HTTP/1.1, and
// a stream for each tab would take them all.
(() => {
  "use strict";

  if (typeof SharedWorkerGlobalScope !== "undefined" && self instanceof SharedWorkerGlobalScope) {
    const ports = new Set();
    let last = null;
    const tell = (message) => {
      last = message.type === "hello" ? message : { ...message, type: "hello" };
      for (const port of ports) port.postMessage(message);
    };
    listen(new URL("events", location.href), tell);
    self.addEventListener("connect", (event) => {
      const port = event.ports[0];
      ports.add(port);
      port.addEventListener("message", (message) => {
        if (message.data === "gone") ports.delete(port);
      });
      port.start();
      if (last !== null) port.postMessage(last);
    });
  } else if (typeof document !== "undefined" && document.currentScript) {
    page(document.currentScript.src);
  }

  // Read the event stream at `url`; tell each hello and change as
  // {type, server, seq, changedAt[, change]}, changedAt by this browser's clock.
  function listen(url, tell) {
    let server = null;
    const connect = () => {
      const source = new EventSource(url);
      source.addEventListener("hello", (event) => {
        const hello = JSON.parse(event.data);
        server = hello.server;
        tell({ type: "hello", server, seq: hello.seq, changedAt: Date.now() - hello.age });
      });
      source.addEventListener("change", (event) => {
        const change = JSON.parse(event.data);
        tell({ type: "change", server, seq: change.seq, changedAt: Date.now(), change });
      });
      // A browser gives up on a stream answered with an error (a proxy's 502 while
      // the server restarts, a server without --live); this one tries again.
      source.addEventListener("error", () => {
        if (source.readyState === EventSource.CLOSED) setTimeout(connect, 2000);
      });
    };
    connect();
  }

  function page(script) {
    const KEY = "aiohttp-conditional:reloaded";
    const own = new URL(".", script).pathname; // this script and its stream
    let server = null;
    let seq = -1;
    let reloading = false;

    // What this page loaded from this server, as it loads it (the browser's own list
    // keeps 250), but requests of scripts and the live reload's own.
    const loaded = new Set();
    const note = (entries) => {
      for (const entry of entries) {
        if (["fetch", "xmlhttprequest", "beacon"].includes(entry.initiatorType)) continue;
        const url = new URL(entry.name);
        if (url.origin === location.origin && !url.pathname.startsWith(own)) {
          loaded.add(url.pathname + url.search);
        }
      }
    };
    try {
      new PerformanceObserver((list) => note(list.getEntries()))
        .observe({ type: "resource", buffered: true });
    } catch (error) {
      note(performance.getEntriesByType("resource"));
    }
    // Whether a changed path (a file, or a directory with all below it) covers `url`.
    const covers = (paths, url) => {
      const path = new URL(url, location.href).pathname;
      return paths.some((p) => path === p || path.startsWith(p.endsWith("/") ? p : p + "/"));
    };
    // What the browser may keep without asking (a file sent without Cache-Control is
    // reused for a while) is fetched anew before it is used again: what this page
    // loaded that changed (all it loaded when the change is not told in full).
    const refetch = (paths) => {
      const urls = [location.href];
      for (const url of loaded) {
        if (paths === null || covers(paths, url)) urls.push(url);
      }
      return Promise.all(urls.map((url) => {
        const signal = AbortSignal.timeout ? AbortSignal.timeout(10000) : undefined;
        return fetch(url, { cache: "reload", signal })
          .then((response) => response.arrayBuffer()).catch(() => null);
      }));
    };
    const store = (value) => {
      try {
        if (value === null) sessionStorage.removeItem(KEY);
        else sessionStorage.setItem(KEY, JSON.stringify(value));
      } catch (error) { /* no storage here: the page's age tells instead */ }
    };
    const stored = () => {
      try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); }
      catch (error) { return null; }
    };
    // The page that loads next knows which change it was reloaded for.
    const reload = (paths) => {
      if (reloading) return;
      reloading = true;
      const reloadedFor = { server, seq, page: location.href };
      refetch(paths).then(() => {
        store(reloadedFor);
        location.reload();
      });
    };
    const sheets = () => [...document.querySelectorAll(
      'link[rel~="stylesheet"][href]:not([data-live-replaced])')]
      .filter((link) => new URL(link.href).origin === location.origin);
    const swapStyles = (paths) => {
      // A stylesheet no <link> of this page loads (an @import, a shadow root's, a
      // script's): only a reload shows it.
      const links = sheets();
      if (!paths.every((p) => links.some((link) => covers([p], link.href)))) {
        reload(paths);
        return;
      }
      refetch(paths).then(() => {
        if (reloading) return;
        for (const link of sheets()) {
          const url = new URL(link.href);
          url.searchParams.set("livereload", String(Date.now()));
          const fresh = link.cloneNode();
          fresh.href = url.href;
          link.dataset.liveReplaced = "";
          const done = () => link.remove();
          fresh.addEventListener("load", done, { once: true });
          fresh.addEventListener("error", done, { once: true });
          link.after(fresh);
        }
      });
    };
    // Whether a change was made after this page began to load, which it may not show.
    const missed = (hello) => {
      const before = stored();
      store(null);
      const [navigation] = performance.getEntriesByType("navigation");
      const type = navigation ? navigation.type : "navigate";
      if (type === "back_forward") return true; // from the cache, unasked
      if (before && before.server === hello.server && before.page === location.href
          && type === "reload") {
        return hello.seq !== before.seq;
      }
      // When this page began to load, by the clock of Date.now().
      return hello.changedAt >= Date.now() - performance.now();
    };
    const hear = (message) => {
      if (message.type === "hello") {
        const first = server === null;
        const stale = first ? missed(message) : message.server !== server || message.seq !== seq;
        server = message.server;
        seq = message.seq;
        // Back from a restart, or from this server past changes missed meanwhile.
        if (stale) reload(null);
        return;
      }
      if (message.server !== server) return;
      seq = message.seq;
      const change = message.change;
      if (!change.more && change.paths.length && change.paths.every((p) => p.endsWith(".css"))) {
        swapStyles(change.paths);
      } else {
        reload(change.more ? null : change.paths);
      }
    };

    // Back from the back-forward cache: it may show what changed meanwhile.
    addEventListener("pageshow", (event) => {
      if (event.persisted) location.reload();
    });
    let ownStream = false;
    const alone = () => {
      if (ownStream) return;
      ownStream = true;
      listen(new URL("events", script), hear);
    };
    let worker = null;
    try {
      worker = new SharedWorker(script, { name: "aiohttp-conditional live reload" });
    } catch (error) { /* none here (an old Safari, a strict policy) */ }
    if (worker === null) {
      alone();
      return;
    }
    let heard = false;
    worker.port.addEventListener("message", (message) => {
      heard = true;
      hear(message.data);
    });
    // A worker that cannot run (its script refused): a stream of this page's own.
    worker.addEventListener("error", () => {
      if (!heard) alone();
    });
    worker.port.start();
    addEventListener("pagehide", () => worker.port.postMessage("gone"));
  }
})();
