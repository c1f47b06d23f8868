// Package codetable writes the codes of a set of images as a table, one
// row per image: its id (a path, or an index), its label when the set has
// labels, and its code. The formats are CSV (a header id,label,c0,c1...),
// JSON Lines ({"id":..., "label":..., "code":[...]}) and Parquet (columns
// id string, label int32 (null when unlabelled), code list<float>), which
// pandas and duckdb read as they are. Rows are written as they come, so
// the table of a large data set never has to be in memory; Parquet keeps a
// row group's worth.
package codetable

import (
	"bufio"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/parquet-go/parquet-go"
)

// The formats of a table, as Create and FormatOf name them.
const (
	CSV     = "csv"
	JSONL   = "jsonl"
	Parquet = "parquet"
)

// FormatOf returns the format of a file named path from its extension:
// .csv, .jsonl (or .ndjson) or .parquet; "" for any other.
func FormatOf(path string) string {
	switch strings.ToLower(filepath.Ext(path)) {
	case ".csv":
		return CSV
	case ".jsonl", ".ndjson":
		return JSONL
	case ".parquet":
		return Parquet
	}
	return ""
}

// Row is one image's row. Label is ignored in a table without labels.
type Row struct {
	ID    string
	Label int
	Code  []float32
}

// Writer writes rows; Close flushes them and ends the table (a Parquet
// file's footer). The caller closes the underlying writer. Write keeps
// nothing of its rows after it returns: the caller may reuse their Code
// slices at once (latent encode writes every batch from one buffer).
type Writer interface {
	Write(rows ...Row) error
	Close() error
}

// Create returns a writer of a table in format to w, of codes of b values,
// with a label column when labelled.
func Create(w io.Writer, format string, b int, labelled bool) (Writer, error) {
	switch format {
	case CSV:
		cw := csv.NewWriter(w)
		head := []string{"id"}
		if labelled {
			head = append(head, "label")
		}
		for k := range b {
			head = append(head, "c"+strconv.Itoa(k))
		}
		if err := cw.Write(head); err != nil {
			return nil, err
		}
		return &csvWriter{w: cw, b: b, labelled: labelled}, nil
	case JSONL:
		bw := bufio.NewWriterSize(w, 1<<16)
		return &jsonlWriter{w: bw, enc: json.NewEncoder(bw), b: b, labelled: labelled}, nil
	case Parquet:
		// Row groups of 65,536 rows keep the writer's memory bounded: the
		// default, one row group for the whole table, holds it all until
		// Close.
		return &parquetWriter{w: parquet.NewGenericWriter[parquetRow](w, parquet.MaxRowsPerRowGroup(rowGroup)), b: b, labelled: labelled}, nil
	}
	return nil, fmt.Errorf("codetable: format %q: want csv, jsonl or parquet", format)
}

func check(r Row, b int) error {
	if len(r.Code) != b {
		return fmt.Errorf("codetable: row %q has a code of %d values, want %d", r.ID, len(r.Code), b)
	}
	return nil
}

type csvWriter struct {
	w        *csv.Writer
	b        int
	labelled bool
	rec      []string
}

func (c *csvWriter) Write(rows ...Row) error {
	for _, r := range rows {
		if err := check(r, c.b); err != nil {
			return err
		}
		c.rec = append(c.rec[:0], r.ID)
		if c.labelled {
			c.rec = append(c.rec, strconv.Itoa(r.Label))
		}
		for _, v := range r.Code {
			c.rec = append(c.rec, strconv.FormatFloat(float64(v), 'g', -1, 32))
		}
		if err := c.w.Write(c.rec); err != nil {
			return err
		}
	}
	return nil
}

func (c *csvWriter) Close() error {
	c.w.Flush()
	return c.w.Error()
}

type jsonlWriter struct {
	w        *bufio.Writer
	enc      *json.Encoder
	b        int
	labelled bool
}

type jsonlRow struct {
	ID    string    `json:"id"`
	Label *int      `json:"label,omitempty"`
	Code  []float32 `json:"code"`
}

func (j *jsonlWriter) Write(rows ...Row) error {
	for _, r := range rows {
		if err := check(r, j.b); err != nil {
			return err
		}
		row := jsonlRow{ID: r.ID, Code: r.Code}
		if j.labelled {
			row.Label = &r.Label
		}
		if err := j.enc.Encode(row); err != nil {
			return err
		}
	}
	return nil
}

func (j *jsonlWriter) Close() error { return j.w.Flush() }

// parquetRow is a row of the Parquet table.
// rowGroup is the number of rows of a Parquet row group.
const rowGroup = 1 << 16

type parquetRow struct {
	ID    string    `parquet:"id"`
	Label *int32    `parquet:"label,optional"`
	Code  []float32 `parquet:"code,list"`
}

type parquetWriter struct {
	w        *parquet.GenericWriter[parquetRow]
	b        int
	labelled bool
	buf      []parquetRow
}

func (p *parquetWriter) Write(rows ...Row) error {
	p.buf = p.buf[:0]
	for _, r := range rows {
		if err := check(r, p.b); err != nil {
			return err
		}
		row := parquetRow{ID: r.ID, Code: r.Code}
		if p.labelled {
			l := int32(r.Label)
			row.Label = &l
		}
		p.buf = append(p.buf, row)
	}
	_, err := p.w.Write(p.buf)
	return err
}

func (p *parquetWriter) Close() error { return p.w.Close() }

// ReadParquet reads a Parquet table that Create wrote, for tests and
// tools: its rows, with Label -1 where it is null.
func ReadParquet(r io.ReaderAt, size int64) ([]Row, error) {
	rows, err := parquet.Read[parquetRow](r, size)
	if err != nil {
		return nil, fmt.Errorf("codetable: %w", err)
	}
	out := make([]Row, len(rows))
	for i, r := range rows {
		out[i] = Row{ID: r.ID, Label: -1, Code: r.Code}
		if r.Label != nil {
			out[i].Label = int(*r.Label)
		}
	}
	return out, nil
}
