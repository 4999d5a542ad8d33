// The SDK bundle (statushub-client.js) defines this global for the page's app.js.
declare const Statushub: typeof import('../src/page.js');
