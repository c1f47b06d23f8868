//go:build !(isal && cgo)

package dataset

import "bufio"

// Inflater names the DEFLATE decoder that reads gzip-compressed input: in
// this build, klauspost/compress, in pure Go. Build with the tag isal (and
// Debian's libisal-dev) for Intel's ISA-L, about three times as fast.
const Inflater = "klauspost/compress"

// newBody returns nil: the gzip reader inflates each member itself.
func newBody(*bufio.Reader) memberBody { return nil }
