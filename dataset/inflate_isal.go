//go:build isal && cgo

package dataset

/*
#cgo LDFLAGS: -lisal
#include <stdlib.h>
#include <isa-l/igzip_lib.h>

// latent_inflate runs isal_inflate over in and out, which are Go memory:
// it points the state at them for the call only and clears the pointers
// before it returns, so that the state (C memory) never keeps a Go
// pointer. used and wrote return the bytes consumed and produced.
static int latent_inflate(struct inflate_state *s, unsigned char *in, uint32_t in_len,
		unsigned char *out, uint32_t out_len, uint32_t *used, uint32_t *wrote) {
	s->next_in = in;
	s->avail_in = in_len;
	s->next_out = out;
	s->avail_out = out_len;
	int rc = isal_inflate(s);
	*used = in_len - s->avail_in;
	*wrote = out_len - s->avail_out;
	s->next_in = NULL;
	s->avail_in = 0;
	s->next_out = NULL;
	s->avail_out = 0;
	return rc;
}

static struct inflate_state *latent_inflate_new(void) {
	struct inflate_state *s = malloc(sizeof *s);
	if (s != NULL) {
		isal_inflate_init(s);
		s->crc_flag = ISAL_GZIP_NO_HDR_VER;
	}
	return s;
}

static void latent_inflate_reset(struct inflate_state *s) {
	isal_inflate_reset(s);
	s->crc_flag = ISAL_GZIP_NO_HDR_VER;
}

static int latent_inflate_finished(struct inflate_state *s) {
	return s->block_state == ISAL_BLOCK_FINISH;
}
*/
import "C"

import (
	"bufio"
	"errors"
	"io"
	"runtime"
	"unsafe"

	"github.com/klauspost/compress/flate"
	"github.com/klauspost/compress/gzip"
)

// Inflater names the DEFLATE decoder that reads gzip-compressed input: in
// this build (tag isal), Intel's ISA-L (igzip), about three times as fast
// as the pure-Go decoder on MNIST's files. The gzip headers are still
// parsed by klauspost/compress, so both builds accept and refuse the same
// files.
const Inflater = "isa-l"

// isalBody inflates the body of one gzip member, from just after its
// header to the end of its trailer, whose CRC-32 and size ISA-L checks.
type isalBody struct {
	br    *bufio.Reader
	state *C.struct_inflate_state // C memory, freed when the isalBody is collected
	in    int64                   // bytes of the member's body consumed, for errors
	err   error                   // sticky: returned by every later Read
}

func newBody(br *bufio.Reader) memberBody {
	s := C.latent_inflate_new()
	if s == nil {
		return nil // out of C memory: the pure-Go decoder does the work
	}
	b := &isalBody{br: br, state: s}
	runtime.AddCleanup(b, func(s *C.struct_inflate_state) { C.free(unsafe.Pointer(s)) }, s)
	return b
}

func (b *isalBody) reset() {
	C.latent_inflate_reset(b.state)
	b.in, b.err = 0, nil
}

// Read returns the member's content, then io.EOF once the trailer has been
// read and checked. Input that ends before the trailer does gives
// io.ErrUnexpectedEOF; damaged data a flate.CorruptInputError, and a
// wrong CRC-32 or size gzip.ErrChecksum, as the pure-Go decoder does.
func (b *isalBody) Read(p []byte) (int, error) {
	if b.err != nil {
		return 0, b.err
	}
	if len(p) == 0 {
		return 0, nil
	}
	p = p[:min(len(p), 1<<30)]
	for {
		if C.latent_inflate_finished(b.state) != 0 {
			return 0, io.EOF
		}
		in, err := b.br.Peek(max(1, b.br.Buffered()))
		if err != nil && !errors.Is(err, io.EOF) {
			return 0, err
		}
		var inPtr *C.uchar
		if len(in) > 0 {
			inPtr = (*C.uchar)(unsafe.Pointer(&in[0]))
		}
		var used, wrote C.uint32_t
		rc := C.latent_inflate(b.state, inPtr, C.uint32_t(len(in)), (*C.uchar)(unsafe.Pointer(&p[0])), C.uint32_t(len(p)), &used, &wrote)
		b.br.Discard(int(used))
		b.in += int64(used)
		switch {
		case rc == C.ISAL_INCORRECT_CHECKSUM:
			b.err = gzip.ErrChecksum
			return int(wrote), b.err
		case rc < 0:
			b.err = flate.CorruptInputError(b.in)
			return int(wrote), b.err
		case wrote > 0:
			return int(wrote), nil
		case used > 0 || C.latent_inflate_finished(b.state) != 0:
			continue
		case len(in) == 0:
			return 0, io.ErrUnexpectedEOF
		}
		// Nothing consumed from what is buffered (the start of a trailer,
		// say): read more, or find that the input ends here.
		if _, err := b.br.Peek(len(in) + 1); errors.Is(err, io.EOF) {
			return 0, io.ErrUnexpectedEOF
		} else if err != nil {
			return 0, err
		}
	}
}
