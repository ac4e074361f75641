package main

import (
	"fmt"
	"html"
	"math"
	"os"
	"strings"
	"time"
)

// writeSVG plots each row's enqueue-to-start latency over the latency run:
// the worst latency in each 250ms window, on a log scale from 0.1ms to 1s.
func writeSVG(path string, rows []row, cfg config) error {
	const w, h, left, bottom, top = 900, 420, 60, 40, 20
	const win = 250 * time.Millisecond
	colors := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}
	ymin, ymax := 0.1, 1000.0 // ms
	yOf := func(msv float64) float64 {
		msv = min(max(msv, ymin), ymax)
		l := (math.Log10(msv) - math.Log10(ymin)) / (math.Log10(ymax) - math.Log10(ymin))
		return float64(h-bottom) - l*float64(h-bottom-top)
	}
	xOf := func(d time.Duration) float64 {
		return left + float64(d)/float64(cfg.duration)*float64(w-left-20)
	}
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	for _, tick := range []float64{0.1, 1, 10, 100, 1000} {
		y := yOf(tick)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="5" y="%.1f">%gms</text>`+"\n", left, w-20, y, y, y+4, tick)
	}
	fmt.Fprintf(&b, `<text x="%d" y="%d">seconds into the run at %d jobs/s (worst latency per %s)</text>`+"\n", left, h-10, cfg.rate, win)
	for i, r := range rows {
		worst := map[int]time.Duration{}
		last := 0
		for _, p := range r.series {
			k := int(p.at / win)
			worst[k] = max(worst[k], p.latency)
			last = max(last, k)
		}
		var pts []string
		for k := 0; k <= last; k++ {
			if l, ok := worst[k]; ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(time.Duration(k)*win), yOf(float64(l)/1e6)))
			}
		}
		c := colors[i%len(colors)]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="1.5" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", w-140, top+15*(i+1), c, html.EscapeString(r.name))
	}
	b.WriteString("</svg>\n")
	return os.WriteFile(path, []byte(b.String()), 0o644)
}
