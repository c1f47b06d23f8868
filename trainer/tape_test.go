package trainer

import (
	"slices"
	"testing"

	G "gorgonia.org/gorgonia"
	"gorgonia.org/tensor"
)

// TestTapeRunsAsRunAll checks that running a graph's program on the
// caller's goroutine (tape) gives what the machine's RunAll gives: the same
// losses, weights and Adam moments, to the bit, after a few training steps
// of each model kind from the same weights, and the same evaluation.
func TestTapeRunsAsRunAll(t *testing.T) {
	const batch, steps = 64, 3
	images, _ := benchImages(batch)
	for _, kind := range []string{"classic", "conv", "classic-vae"} {
		t.Run(kind, func(t *testing.T) {
			onTape, runAll := notebookTrainer(t, kind), notebookTrainer(t, kind)
			if gr, err := onTape.graphFor(onTape.train, batch, true); err != nil {
				t.Fatal(err)
			} else if gr.tape == nil {
				t.Fatal("the training graph does not run on the tape")
			}
			gr, err := runAll.graphFor(runAll.train, batch, true)
			if err != nil {
				t.Fatal(err)
			}
			gr.tape = nil
			for s := 0; s < steps; s++ {
				x := images[s*batch*784 : (s+1)*batch*784]
				lossT, err := onTape.Step(x, batch)
				if err != nil {
					t.Fatal(err)
				}
				lossR, err := runAll.Step(x, batch)
				if err != nil {
					t.Fatal(err)
				}
				if lossT != lossR {
					t.Fatalf("step %d: loss %v on the tape, %v with RunAll", s+1, lossT, lossR)
				}
			}
			for i, p := range onTape.w.Params {
				if !slices.Equal(onTape.w.Values[i], runAll.w.Values[i]) || !slices.Equal(onTape.adam.M[i], runAll.adam.M[i]) || !slices.Equal(onTape.adam.V[i], runAll.adam.V[i]) {
					t.Errorf("%s after %d steps: the tape's weights or moments differ from RunAll's", p.Name, steps)
				}
			}
			data := Data{Pixels: make([]uint8, 2*evalBatch*784), N: 2 * evalBatch}
			for i := range data.Pixels {
				data.Pixels[i] = uint8(images[i]*255 + 0.5)
			}
			mseT, err := onTape.Evaluate(data)
			if err != nil {
				t.Fatal(err)
			}
			if gr, err = runAll.graphFor(runAll.eval, evalBatch, false); err != nil {
				t.Fatal(err)
			}
			gr.tape = nil
			mseR, err := runAll.Evaluate(data)
			if err != nil {
				t.Fatal(err)
			}
			if mseT != mseR {
				t.Errorf("evaluation: %v on the tape, %v with RunAll", mseT, mseR)
			}
		})
	}
}

// TestTapeError checks that an instruction's error ends a tape's run as it
// ends RunAll (a reshape of int values, which the trainer's ops refuse),
// and that the machine runs again after Reset.
func TestTapeError(t *testing.T) {
	for _, c := range []struct {
		dt   tensor.Dtype
		fail bool
	}{{tensor.Int, true}, {tensor.Float32, false}} {
		g := G.NewGraph()
		x := G.NewMatrix(g, c.dt, G.WithShape(2, 3), G.WithName("x"))
		op, err := newReshapeOp(x, tensor.Shape{3, 2}, false)
		if err != nil {
			t.Fatal(err)
		}
		y, err := G.ApplyOp(op, x)
		if err != nil {
			t.Fatal(err)
		}
		vm := G.NewTapeMachine(g)
		tp := newTape(vm)
		if tp == nil {
			t.Fatal("a tape machine has no tape")
		}
		if c.dt == tensor.Int {
			G.Let(x, tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]int{1, 2, 3, 4, 5, 6})))
		} else {
			G.Let(x, tensor.New(tensor.WithShape(2, 3), tensor.WithBacking([]float32{1, 2, 3, 4, 5, 6})))
		}
		for run := range 2 { // again after Reset
			errR := vm.RunAll()
			vm.Reset()
			errT := tp.run()
			vm.Reset()
			switch {
			case c.fail && (errR == nil || errT == nil):
				t.Fatalf("%v, run %d: errors %v with RunAll and %v on the tape, want both", c.dt, run, errR, errT)
			case c.fail && errR.Error() != errT.Error():
				t.Errorf("%v, run %d: error %q on the tape, %q with RunAll", c.dt, run, errT, errR)
			case !c.fail && (errR != nil || errT != nil):
				t.Fatalf("%v, run %d: errors %v with RunAll and %v on the tape", c.dt, run, errR, errT)
			case !c.fail && !slices.Equal(y.Value().Data().([]float32), []float32{1, 2, 3, 4, 5, 6}):
				t.Errorf("%v, run %d: reshaped %v", c.dt, run, y.Value())
			}
		}
		vm.Close()
	}
}
