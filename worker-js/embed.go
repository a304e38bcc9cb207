// Package workerjs embeds the browser side of imload: the SharedWorker
// (worker.js) that owns one WebSocket per browser, the tab-side client
// (client.js), and the demo chat page. imload serve serves them at /.
package workerjs

import (
	"embed"
	"io/fs"
)

//go:embed static
var static embed.FS

// FS returns the browser files, rooted so that "index.html" is the demo page.
func FS() fs.FS {
	sub, err := fs.Sub(static, "static")
	if err != nil {
		panic("workerjs: embedded static folder missing: " + err.Error())
	}
	return sub
}
