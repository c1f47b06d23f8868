//go:build !openblas

package trainer

// biasReLU32 sets v[j] = max(v[j]+b[j], 0), with NaN kept and -0 made +0.
func biasReLU32(v, b []float32) { biasReLUGo(v, b) }

// reluGrad32 sets dz[j] = dy[j] where y[j] > 0 or is NaN, else 0.
func reluGrad32(dz, y, dy []float32) { activationGradSerial(actReLU, dz, y, dy) }

// addRows32 adds rows rows of v, len(s) values each and ld apart, to s, a
// row at a time.
func addRows32(s, v []float32, rows, ld int) { addRowsGo(s, v, rows, ld) }
