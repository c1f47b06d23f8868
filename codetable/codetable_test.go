package codetable

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"encoding/json"
	"slices"
	"strconv"
	"testing"
)

func rows() []Row {
	return []Row{{"a/1.png", 3, []float32{0.5, -1.25, 3e-7}}, {"b/2.png", 0, []float32{1, 2, 3}}}
}

// TestFormats writes the same rows in each format, reusing the code
// buffer, and reads them back.
func TestFormats(t *testing.T) {
	for _, labelled := range []bool{true, false} {
		for _, format := range []string{CSV, JSONL, Parquet} {
			var buf bytes.Buffer
			w, err := Create(&buf, format, 3, labelled)
			if err != nil {
				t.Fatal(err)
			}
			// One row at a time through one Code buffer, overwritten
			// after each Write: Write keeps nothing of its rows.
			code := make([]float32, 3)
			for _, r := range rows() {
				copy(code, r.Code)
				r.Code = code
				if err := w.Write(r); err != nil {
					t.Fatal(err)
				}
				clear(code)
			}
			if err := w.Close(); err != nil {
				t.Fatal(err)
			}
			got := readBack(t, format, buf.Bytes(), labelled)
			for i, want := range rows() {
				if !labelled {
					want.Label = -1
				}
				if got[i].ID != want.ID || got[i].Label != want.Label || !slices.Equal(got[i].Code, want.Code) {
					t.Errorf("%s (labelled %v) row %d: %+v, want %+v", format, labelled, i, got[i], want)
				}
			}
		}
	}
	if _, err := Create(&bytes.Buffer{}, "xlsx", 3, true); err == nil {
		t.Error("format xlsx: no error")
	}
	w, _ := Create(&bytes.Buffer{}, CSV, 2, true)
	if err := w.Write(rows()[0]); err == nil {
		t.Error("a code of 3 values in a table of 2: no error")
	}
}

func readBack(t *testing.T, format string, data []byte, labelled bool) []Row {
	t.Helper()
	var out []Row
	switch format {
	case CSV:
		recs, err := csv.NewReader(bytes.NewReader(data)).ReadAll()
		if err != nil {
			t.Fatal(err)
		}
		for _, rec := range recs[1:] {
			r := Row{ID: rec[0], Label: -1}
			vals := rec[1:]
			if labelled {
				r.Label, _ = strconv.Atoi(rec[1])
				vals = rec[2:]
			}
			for _, v := range vals {
				f, _ := strconv.ParseFloat(v, 32)
				r.Code = append(r.Code, float32(f))
			}
			out = append(out, r)
		}
	case JSONL:
		sc := bufio.NewScanner(bytes.NewReader(data))
		for sc.Scan() {
			var j jsonlRow
			if err := json.Unmarshal(sc.Bytes(), &j); err != nil {
				t.Fatal(err)
			}
			r := Row{ID: j.ID, Label: -1, Code: j.Code}
			if j.Label != nil {
				r.Label = *j.Label
			}
			out = append(out, r)
		}
	case Parquet:
		var err error
		if out, err = ReadParquet(bytes.NewReader(data), int64(len(data))); err != nil {
			t.Fatal(err)
		}
	}
	return out
}
