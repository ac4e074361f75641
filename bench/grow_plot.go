package main

import (
	"fmt"
	"html"
	"strings"
)

// svg plots metric m of a grow result: the sizes evenly along x, the
// median of each row on a linear y from 0, one line per row, so that a
// flat cost is a flat line and a row's peer is beside it.
func (r *growResult) svg(m int) string {
	const w, h, left, right, bottom, top = 900, 420, 70, 160, 50, 30
	palette := []string{"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f"}
	ymax := 0.0
	for _, row := range r.rows {
		for i := range r.sizes {
			if v, _, ok := r.med(m, row, i); ok {
				ymax = max(ymax, v)
			}
		}
	}
	ymax = max(ymax*1.1, 1e-9)
	xOf := func(i int) float64 {
		if len(r.sizes) == 1 {
			return left + float64(w-left-right)/2
		}
		return left + float64(i)*float64(w-left-right)/float64(len(r.sizes)-1)
	}
	yOf := func(v float64) float64 { return float64(h-bottom) - v/ymax*float64(h-bottom-top) }
	var b strings.Builder
	fmt.Fprintf(&b, `<svg xmlns="http://www.w3.org/2000/svg" width="%d" height="%d" font-family="sans-serif" font-size="12">`+"\n", w, h)
	fmt.Fprintf(&b, `<rect width="%d" height="%d" fill="white"/>`+"\n", w, h)
	fmt.Fprintf(&b, `<text x="%d" y="18">%s: %s (median of the rounds)</text>`+"\n", left, html.EscapeString(r.name), html.EscapeString(r.metrics[m].title))
	for k := range 5 {
		v := ymax * float64(k) / 4
		y := yOf(v)
		fmt.Fprintf(&b, `<line x1="%d" x2="%d" y1="%.1f" y2="%.1f" stroke="#ddd"/><text x="5" y="%.1f">%s</text>`+"\n", left, w-right, y, y, y+4, num(v))
	}
	for i, s := range r.sizes {
		fmt.Fprintf(&b, `<text x="%.1f" y="%d" text-anchor="middle">%s</text>`+"\n", xOf(i), h-bottom+20, html.EscapeString(s))
	}
	for n, row := range r.rows {
		var pts []string
		for i := range r.sizes {
			if v, _, ok := r.med(m, row, i); ok {
				pts = append(pts, fmt.Sprintf("%.1f,%.1f", xOf(i), yOf(v)))
			}
		}
		c := palette[n%len(palette)]
		fmt.Fprintf(&b, `<polyline fill="none" stroke="%s" stroke-width="2" points="%s"/>`+"\n", c, strings.Join(pts, " "))
		for _, p := range pts {
			xy := strings.Split(p, ",")
			fmt.Fprintf(&b, `<circle cx="%s" cy="%s" r="3" fill="%s"/>`+"\n", xy[0], xy[1], c)
		}
		fmt.Fprintf(&b, `<text x="%d" y="%d" fill="%s">%s</text>`+"\n", w-right+15, top+15*(n+1), c, html.EscapeString(row))
	}
	b.WriteString("</svg>\n")
	return b.String()
}
