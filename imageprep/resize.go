package imageprep

import "math"

// resize resamples the sw×sh values of src to dw×dh by area averaging,
// one axis after the other.
func resize(src []float64, sw, sh, dw, dh int) []float64 {
	// Along x: sh rows of dw values.
	wx := areaWeights(sw, dw)
	tmp := make([]float64, sh*dw)
	for y := 0; y < sh; y++ {
		row := src[y*sw : (y+1)*sw]
		for x, ws := range wx {
			sum := 0.0
			for _, t := range ws {
				sum += t.w * row[t.i]
			}
			tmp[y*dw+x] = sum
		}
	}
	// Along y: dh rows of dw values.
	wy := areaWeights(sh, dh)
	out := make([]float64, dh*dw)
	for y, ws := range wy {
		for _, t := range ws {
			row := tmp[t.i*dw : (t.i+1)*dw]
			for x := range dw {
				out[y*dw+x] += t.w * row[x]
			}
		}
	}
	return out
}

// tap is one source index and its weight.
type tap struct {
	i int
	w float64
}

// areaWeights returns, for each of n cells of equal width laid over m
// source values, the source values it covers and the share of the cell each
// covers; the shares of a cell add up to 1.
func areaWeights(m, n int) [][]tap {
	out := make([][]tap, n)
	scale := float64(m) / float64(n)
	for j := range out {
		lo, hi := float64(j)*scale, float64(j+1)*scale
		for i := int(math.Floor(lo)); i < m && float64(i) < hi; i++ {
			if cover := min(hi, float64(i+1)) - max(lo, float64(i)); cover > 0 {
				out[j] = append(out[j], tap{i, cover / scale})
			}
		}
	}
	return out
}

// inkThreshold is the share of the brightest value above which a pixel
// counts as ink for Center's bounding box.
const inkThreshold = 0.1

// center does MNIST's preprocessing on the sw×sh planes: it crops them to
// the bounding box of the ink (of the planes' mean), scales that box to
// fit 20/28 of the dw×dh frame keeping its aspect ratio, and shifts it so
// that the ink's centre of mass lands on the frame's centre. A picture with
// no ink is resized whole.
func center(planes [][]float64, sw, sh, dw, dh int) [][]float64 {
	ink := make([]float64, sw*sh)
	peak := 0.0
	for _, p := range planes {
		for i, v := range p {
			ink[i] += v / float64(len(planes))
		}
	}
	for _, v := range ink {
		peak = max(peak, v)
	}
	x0, y0, x1, y1 := sw, sh, -1, -1
	for y := range sh {
		for x := range sw {
			if peak > 0 && ink[y*sw+x] > inkThreshold*peak {
				x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			}
		}
	}
	out := make([][]float64, len(planes))
	if x1 < 0 {
		for c, p := range planes {
			out[c] = resize(p, sw, sh, dw, dh)
		}
		return out
	}
	bw, bh := x1-x0+1, y1-y0+1
	// The box's size in the frame: its longer side 20/28 of the frame's.
	scale := min(float64(dw)*20/28/float64(bw), float64(dh)*20/28/float64(bh))
	tw := max(1, int(math.Round(float64(bw)*scale)))
	th := max(1, int(math.Round(float64(bh)*scale)))
	boxes := make([][]float64, len(planes))
	for c, p := range planes {
		crop := make([]float64, 0, bw*bh)
		for y := y0; y <= y1; y++ {
			crop = append(crop, p[y*sw+x0:y*sw+x1+1]...)
		}
		boxes[c] = resize(crop, bw, bh, tw, th)
	}
	// The centre of mass of the scaled box's ink.
	var mass, mx, my float64
	for y := range th {
		for x := range tw {
			v := 0.0
			for _, b := range boxes {
				v += b[y*tw+x]
			}
			mass += v
			mx += v * (float64(x) + 0.5)
			my += v * (float64(y) + 0.5)
		}
	}
	ox := int(math.Round(float64(dw)/2 - mx/mass))
	oy := int(math.Round(float64(dh)/2 - my/mass))
	// Keep the whole box inside the frame.
	ox = min(max(ox, 0), dw-tw)
	oy = min(max(oy, 0), dh-th)
	for c, b := range boxes {
		frame := make([]float64, dw*dh)
		for y := range th {
			copy(frame[(oy+y)*dw+ox:(oy+y)*dw+ox+tw], b[y*tw:(y+1)*tw])
		}
		out[c] = frame
	}
	return out
}

// fit crops (FitCrop) or pads with black (FitPad) the sw×sh planes to the
// aspect ratio of dw×dh, around their centre, and returns them with their
// new size; FitStretch returns them as they are.
func fit(planes [][]float64, sw, sh, dw, dh int, mode string) ([][]float64, int, int) {
	if mode == "" || mode == FitStretch || sw*dh == sh*dw {
		return planes, sw, sh
	}
	// The size of the source's region (crop) or canvas (pad) of the frame's
	// ratio.
	tw, th := sw, sh
	wider := sw*dh > sh*dw // the source is wider than the frame
	switch {
	case mode == FitCrop && wider:
		tw = max(1, int(math.Round(float64(sh)*float64(dw)/float64(dh))))
	case mode == FitCrop:
		th = max(1, int(math.Round(float64(sw)*float64(dh)/float64(dw))))
	case mode == FitPad && wider:
		th = max(sh, int(math.Round(float64(sw)*float64(dh)/float64(dw))))
	default: // FitPad, taller
		tw = max(sw, int(math.Round(float64(sh)*float64(dw)/float64(dh))))
	}
	out := make([][]float64, len(planes))
	for c, p := range planes {
		q := make([]float64, tw*th)
		if mode == FitCrop {
			x0, y0 := (sw-tw)/2, (sh-th)/2
			for y := range th {
				copy(q[y*tw:(y+1)*tw], p[(y0+y)*sw+x0:(y0+y)*sw+x0+tw])
			}
		} else {
			x0, y0 := (tw-sw)/2, (th-sh)/2
			for y := range sh {
				copy(q[(y0+y)*tw+x0:(y0+y)*tw+x0+sw], p[y*sw:(y+1)*sw])
			}
		}
		out[c] = q
	}
	return out, tw, th
}
