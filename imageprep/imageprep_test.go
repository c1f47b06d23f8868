package imageprep

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"math"
	"slices"
	"strings"
	"testing"
)

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// digit draws a filled rectangle of ink, white on black, in a w×h picture.
func digit(w, h int, r image.Rectangle) *image.Gray {
	img := image.NewGray(image.Rect(0, 0, w, h))
	for y := r.Min.Y; y < r.Max.Y; y++ {
		for x := r.Min.X; x < r.Max.X; x++ {
			img.SetGray(x, y, color.Gray{255})
		}
	}
	return img
}

func TestDecodeFormatsAndChannels(t *testing.T) {
	// A 2×1 picture: a red pixel and a half-transparent white one.
	nrgba := image.NewNRGBA(image.Rect(0, 0, 2, 1))
	nrgba.SetNRGBA(0, 0, color.NRGBA{255, 0, 0, 255})
	nrgba.SetNRGBA(1, 0, color.NRGBA{255, 255, 255, 128})
	var jpg bytes.Buffer
	if err := jpeg.Encode(&jpg, digit(8, 8, image.Rect(0, 0, 8, 8)), &jpeg.Options{Quality: 100}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		data []byte
		o    Options
		want []float32
		tol  float64
	}{
		{"gray, as it is", encodePNG(t, digit(2, 2, image.Rect(0, 0, 1, 2))), Options{Channels: 1, Height: 2, Width: 2}, []float32{1, 0, 1, 0}, 0},
		{"gray, halved", encodePNG(t, digit(2, 2, image.Rect(0, 0, 1, 2))), Options{Channels: 1, Height: 1, Width: 1}, []float32{0.5}, 1e-7},
		{"gray, inverted", encodePNG(t, digit(2, 1, image.Rect(0, 0, 1, 1))), Options{Channels: 1, Height: 1, Width: 2, Invert: true}, []float32{0, 1}, 0},
		{"colour to luminance", encodePNG(t, nrgba), Options{Channels: 1, Height: 1, Width: 2}, []float32{0.299, 128.0 / 255}, 1e-6},
		{"colour to RGB", encodePNG(t, nrgba), Options{Channels: 3, Height: 1, Width: 2}, []float32{1, 128.0 / 255, 0, 128.0 / 255, 0, 128.0 / 255}, 1e-6},
		{"gray to RGB", encodePNG(t, digit(1, 1, image.Rect(0, 0, 1, 1))), Options{Channels: 3, Height: 1, Width: 1}, []float32{1, 1, 1}, 0},
		{"JPEG", jpg.Bytes(), Options{Channels: 1, Height: 2, Width: 2}, []float32{1, 1, 1, 1}, 0.01},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := Decode(tt.data, tt.o)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("%d values, want %d", len(got), len(tt.want))
			}
			for i := range got {
				if math.Abs(float64(got[i]-tt.want[i])) > tt.tol {
					t.Fatalf("value %d = %v, want %v (all: %v)", i, got[i], tt.want[i], got)
				}
			}
		})
	}
}

// TestCenter draws a small square of ink in a corner of a large canvas and
// checks that Center gives MNIST's layout: the ink scaled to 20 pixels of
// 28 and its centre of mass at the centre of the frame.
func TestCenter(t *testing.T) {
	data := encodePNG(t, digit(200, 100, image.Rect(10, 5, 30, 45))) // 20 wide, 40 tall
	got, err := Decode(data, Options{Channels: 1, Height: 28, Width: 28, Center: true})
	if err != nil {
		t.Fatal(err)
	}
	var mass, mx, my float64
	x0, y0, x1, y1 := 28, 28, -1, -1
	for y := range 28 {
		for x := range 28 {
			v := float64(got[y*28+x])
			if v > 0.5 {
				x0, y0, x1, y1 = min(x0, x), min(y0, y), max(x1, x), max(y1, y)
			}
			mass += v
			mx += v * (float64(x) + 0.5)
			my += v * (float64(y) + 0.5)
		}
	}
	if h, w := y1-y0+1, x1-x0+1; h != 20 || w != 10 {
		t.Errorf("ink box %d×%d, want 10×20 (the longer side 20 of 28)", w, h)
	}
	if math.Abs(mx/mass-14) > 0.5 || math.Abs(my/mass-14) > 0.5 {
		t.Errorf("centre of mass at (%.2f, %.2f), want (14, 14)", mx/mass, my/mass)
	}
	// Dark ink on white paper, inverted first.
	paper := image.NewGray(image.Rect(0, 0, 50, 50))
	for i := range paper.Pix {
		paper.Pix[i] = 255
	}
	for y := 40; y < 48; y++ {
		for x := 40; x < 48; x++ {
			paper.SetGray(x, y, color.Gray{0})
		}
	}
	got, err = Decode(encodePNG(t, paper), Options{Channels: 1, Height: 28, Width: 28, Center: true, Invert: true})
	if err != nil {
		t.Fatal(err)
	}
	if got[14*28+14] < 0.99 || got[0] != 0 {
		t.Errorf("inverted and centred: centre %v, corner %v; want ink at the centre and black around", got[14*28+14], got[0])
	}
	// No ink at all: resized whole.
	got, err = Decode(encodePNG(t, image.NewGray(image.Rect(0, 0, 5, 5))), Options{Channels: 1, Height: 28, Width: 28, Center: true})
	if err != nil || len(got) != 784 {
		t.Fatalf("blank picture: %d values, %v", len(got), err)
	}
}

func TestDecodeErrors(t *testing.T) {
	good := encodePNG(t, digit(4, 4, image.Rect(0, 0, 2, 2)))
	// A PNG header that claims 100000×100000 pixels (a decompression bomb).
	bomb := bytes.Clone(good)
	copy(bomb[16:24], []byte{0, 1, 0x86, 0xa0, 0, 1, 0x86, 0xa0})
	binary.BigEndian.PutUint32(bomb[29:33], crc32.ChecksumIEEE(bomb[12:29])) // the IHDR chunk's CRC
	tests := []struct {
		name string
		data []byte
		o    Options
		is   error
		want string
	}{
		{"GIF", []byte("GIF89a..."), Options{Channels: 1, Height: 28, Width: 28}, ErrFormat, "neither the PNG nor the JPEG signature"},
		{"empty", nil, Options{Channels: 1, Height: 28, Width: 28}, ErrFormat, "signature"},
		{"truncated PNG", good[:len(good)-20], Options{Channels: 1, Height: 28, Width: 28}, ErrFormat, ""},
		{"truncated JPEG", []byte{0xff, 0xd8, 0xff, 0xe0, 0, 16}, Options{Channels: 1, Height: 28, Width: 28}, ErrFormat, ""},
		{"bomb", bomb, Options{Channels: 1, Height: 28, Width: 28}, ErrTooLarge, "100000×100000"},
		{"over MaxSide", encodePNG(t, image.NewGray(image.Rect(0, 0, 65, 2))), Options{Channels: 1, Height: 28, Width: 28, MaxSide: 64}, ErrTooLarge, "at most 64"},
		{"two channels", good, Options{Channels: 2, Height: 28, Width: 28}, nil, "want 1 or 3"},
		{"no output", good, Options{Channels: 1}, nil, "at least 1×1"},
	}
	for _, tt := range tests {
		_, err := Decode(tt.data, tt.o)
		if err == nil || (tt.is != nil && !errors.Is(err, tt.is)) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%s: error %v, want %v saying %q", tt.name, err, tt.is, tt.want)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(encodePNG(f, digit(28, 28, image.Rect(3, 3, 9, 20))))
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, o := range []Options{{Channels: 1, Height: 28, Width: 28, MaxSide: 512}, {Channels: 3, Height: 5, Width: 7, Center: true, Invert: true, MaxSide: 512}} {
			x, err := Decode(data, o)
			if err != nil {
				if !errors.Is(err, ErrFormat) && !errors.Is(err, ErrTooLarge) {
					t.Fatalf("error %v wraps neither ErrFormat nor ErrTooLarge", err)
				}
				continue
			}
			if len(x) != o.Channels*o.Height*o.Width {
				t.Fatalf("%d values for %+v", len(x), o)
			}
			for i, v := range x {
				if !(v >= 0 && v <= 1) {
					t.Fatalf("value %d = %v, outside [0,1]", i, v)
				}
			}
		}
	})
}
func TestAreaWeights(t *testing.T) {
	for _, tt := range []struct{ m, n int }{{28, 28}, {56, 28}, {100, 28}, {7, 28}, {1, 28}, {2048, 28}, {29, 28}, {27, 28}} {
		ws := areaWeights(tt.m, tt.n)
		if len(ws) != tt.n {
			t.Fatalf("%d→%d: %d cells", tt.m, tt.n, len(ws))
		}
		for j, w := range ws {
			sum := 0.0
			for _, x := range w {
				if x.i < 0 || x.i >= tt.m || x.w <= 0 {
					t.Fatalf("%d→%d: cell %d has tap %+v", tt.m, tt.n, j, x)
				}
				sum += x.w
			}
			if sum < 1-1e-9 || sum > 1+1e-9 {
				t.Errorf("%d→%d: cell %d weights add up to %v", tt.m, tt.n, j, sum)
			}
		}
	}
}

// TestFit fits a 4×2 picture (a white left half, a black right half) into a
// square 2×2 frame each way.
func TestFit(t *testing.T) {
	data := encodePNG(t, digit(4, 2, image.Rect(0, 0, 2, 2)))
	for _, tc := range []struct {
		fit  string
		want []float32
	}{
		{FitStretch, []float32{1, 0, 1, 0}},
		{"", []float32{1, 0, 1, 0}},
		// The middle 2×2: the white column 1, the black column 2.
		{FitCrop, []float32{1, 0, 1, 0}},
		// A 4×4 canvas, the picture in rows 1-2: each output pixel averages 2×2.
		{FitPad, []float32{0.5, 0, 0.5, 0}},
	} {
		got, err := Decode(data, Options{Channels: 1, Height: 2, Width: 2, Fit: tc.fit})
		if err != nil {
			t.Fatal(err)
		}
		for i := range got {
			if math.Abs(float64(got[i]-tc.want[i])) > 1e-6 {
				t.Errorf("fit %q: %v, want %v", tc.fit, got, tc.want)
				break
			}
		}
	}
	// A tall picture padded: black columns on both sides.
	tall := encodePNG(t, digit(1, 3, image.Rect(0, 0, 1, 3)))
	got, err := Decode(tall, Options{Channels: 1, Height: 3, Width: 3, Fit: FitPad})
	if err != nil {
		t.Fatal(err)
	}
	if want := []float32{0, 1, 0, 0, 1, 0, 0, 1, 0}; !slices.Equal(got, want) {
		t.Errorf("padded tall picture %v, want %v", got, want)
	}
	if _, err := Decode(data, Options{Channels: 1, Height: 2, Width: 2, Fit: "zoom"}); err == nil {
		t.Error("fit zoom: no error")
	}
}
