package report

import (
	"bytes"
	"encoding/base64"
	"fmt"
	"html/template"
	"os"
	"path/filepath"

	"github.com/latent-ai/latent/atomicfile"
)

// Table is a table with a header row and a caption above it. The first
// cell of each row is a heading; the others are numbers.
type Table struct {
	Caption string
	Header  []string
	Rows    [][]string
}

// Page is what the HTML report shows.
type Page struct {
	Title string
	// Settings are shown as a two-column table, in order.
	Settings [][2]string
	// Metrics are shown as a two-column table, in order.
	Metrics [][2]string
	// Samples, when not nil, is shown under the metrics: the quality of
	// the images the model generates.
	Samples *Table
	// Epochs is one row per epoch: epoch, train loss, test MSE, samples/s.
	Epochs  [][]string
	Figures []Figure
}

var page = template.Must(template.New("report").Parse(`<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{{.Title}}</title>
<style>
body { font-family: system-ui, sans-serif; max-width: 1300px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.6em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border: 1px solid #ccc; padding: 0.25em 0.7em; text-align: left; }
th { background: #f3f3f3; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
figure { margin: 1em 0 2em; } figcaption { color: #555; margin-top: 0.4em; }
img { max-width: 100%; image-rendering: pixelated; }
</style>
</head>
<body>
<h1>{{.Title}}</h1>
<h2>Settings</h2>
<table>{{range .Settings}}<tr><th>{{index . 0}}</th><td>{{index . 1}}</td></tr>
{{end}}</table>
{{if .Metrics}}<h2>Metrics</h2>
<table>{{range .Metrics}}<tr><th>{{index . 0}}</th><td class="num">{{index . 1}}</td></tr>
{{end}}</table>{{end}}
{{with .Samples}}<h2>Sample quality</h2>
<p>{{.Caption}}</p>
<table><tr>{{range .Header}}<th>{{.}}</th>{{end}}</tr>
{{range .Rows}}<tr><th>{{index . 0}}</th>{{range slice . 1}}<td class="num">{{.}}</td>{{end}}</tr>
{{end}}</table>{{end}}
{{if .Epochs}}<h2>Training</h2>
<table><tr><th>epoch</th><th>train loss</th><th>test MSE</th><th>samples/s</th></tr>
{{range .Epochs}}<tr>{{range .}}<td class="num">{{.}}</td>{{end}}</tr>
{{end}}</table>{{end}}
{{range .Figures}}<h2>{{.Title}}</h2>
{{if .Data}}<figure><img src="{{.Data}}" alt="{{.Title}}"><figcaption>{{.Caption}}</figcaption></figure>{{else}}<p>{{.Caption}}</p>{{end}}
{{end}}
</body>
</html>
`))

// WriteHTML writes page as path, with every figure of figDir embedded as a
// data URI, so that the file reads offline on its own. The write is atomic.
func WriteHTML(path, figDir string, p Page) error {
	type fig struct {
		Figure
		Data template.URL
	}
	var figs []fig
	for _, f := range p.Figures {
		if f.File == "" { // a note in place of a figure
			figs = append(figs, fig{Figure: f})
			continue
		}
		b, err := os.ReadFile(filepath.Join(figDir, f.File))
		if err != nil {
			return fmt.Errorf("report: %w", err)
		}
		figs = append(figs, fig{f, template.URL("data:image/png;base64," + base64.StdEncoding.EncodeToString(b))})
	}
	var buf bytes.Buffer
	data := struct {
		Page
		Figures []fig
	}{p, figs}
	if err := page.Execute(&buf, data); err != nil {
		return fmt.Errorf("report: %w", err)
	}
	return atomicfile.WriteBytes(path, buf.Bytes(), 0o644)
}
