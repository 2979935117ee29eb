// Package tesstest makes corrupt copies of a real .traineddata file for
// tests: structurally valid files (a well-formed component table, every
// component where the table says) with a few bytes changed inside one
// component, each of which makes libtesseract 5 crash, hang or exhaust
// memory. Found by reading Tesseract's deserialisers (tessdatamanager.cpp,
// network.cpp, weightmatrix.cpp, matrix.h) and trying the result on
// Debian's eng.traineddata (tessdata_fast 4.0.0) with libtesseract 5.3.0.
package tesstest

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
)

// Corruption is a way to break a traineddata file.
type Corruption string

// The corruptions, and what libtesseract 5.3 does with each. In the
// server's process, each one would take the process down or its memory
// and workers; in the isolated check, each is a refused version.
const (
	// AbortOnLoad sets the element count of the output layer's scales
	// vector to 2^32-1: Tesseract reserves 32 GiB for it, the allocation
	// fails, std::bad_alloc is not caught and the process aborts
	// (SIGABRT) within a second of the load starting.
	AbortOnLoad Corruption = "abort-on-load"
	// TruncatedLSTM cuts the LSTM component to half its size and rewrites
	// the component table to match: the network cannot be read, and
	// Tesseract's ASSERT_HOST (tessedit.cpp) aborts the process.
	TruncatedLSTM Corruption = "truncated-lstm"
	// ShiftedTable moves the LSTM unicharset's offset in the component
	// table back into the middle of the component before it (still in
	// order, so the container stays valid): the character set is read
	// from the wrong bytes and ASSERT_HOST aborts the process.
	ShiftedTable Corruption = "shifted-table"
	// DivideByZero sets the Maxpool layer's x and y scales to 0: the
	// model loads, and the first line it reads divides by zero (SIGFPE):
	// the warm-up, or the first request.
	DivideByZero Corruption = "divide-by-zero"
	// HugeMatrix flags the output layer's weights as floats of 46000 x
	// 46000: the load allocates and zero-fills 8 GiB before it finds the
	// data missing (measured at 20000 x 20000: resident memory still
	// growing past 1.6 GiB after 16 s on a busy machine).
	HugeMatrix Corruption = "huge-matrix"
	// TallInput sets the input layer's height from 36 to 2000 pixels: the
	// model loads, then scales every text line to 2000 pixels high; the
	// first line read runs for minutes (more than 30 s measured) while its
	// memory grows: the warm-up, or the first request, hangs.
	TallInput Corruption = "tall-input"
)

// Corruptions returns every Corruption.
func Corruptions() []Corruption {
	return []Corruption{AbortOnLoad, TruncatedLSTM, ShiftedTable, DivideByZero, HugeMatrix, TallInput}
}

// Component numbers of the traineddata table (tessdatamanager.h).
const (
	componentLSTM           = 17
	componentLSTMUnicharset = 21
	tableStart              = 4 // after the uint32 entry count
)

// Corrupt returns a corrupt copy of data, an LSTM .traineddata file.
func Corrupt(data []byte, c Corruption) ([]byte, error) {
	t, err := parseTable(data)
	if err != nil {
		return nil, err
	}
	lstm, ok := t.component(componentLSTM)
	if !ok {
		return nil, errors.New("tesstest: the traineddata has no LSTM component")
	}
	net, err := parseNetwork(data[lstm.off:lstm.end], lstm.off)
	if err != nil {
		return nil, err
	}
	out := slices.Clone(data)
	put32 := func(at int, v uint32) { binary.LittleEndian.PutUint32(out[at:], v) }
	switch c {
	case AbortOnLoad:
		put32(net.outputScales, math.MaxUint32)
	case TruncatedLSTM:
		return t.resize(data, componentLSTM, (lstm.end-lstm.off)/2), nil
	case ShiftedTable:
		uni, ok := t.component(componentLSTMUnicharset)
		prev, found := t.before(uni.off)
		if !ok || !found {
			return nil, errors.New("tesstest: no LSTM unicharset after another component")
		}
		binary.LittleEndian.PutUint64(out[tableStart+8*componentLSTMUnicharset:], uint64((prev.off+uni.off)/2))
	case DivideByZero:
		put32(net.maxpoolScale, 0)
		put32(net.maxpoolScale+4, 0)
	case HugeMatrix:
		out[net.outputMode] &^= 1 // int8 -> float
		put32(net.outputMode+1, 46000)
		put32(net.outputMode+5, 46000)
	case TallInput:
		put32(net.inputHeight, 2000)
	default:
		return nil, fmt.Errorf("tesstest: unknown corruption %q", c)
	}
	return out, nil
}

// table is the component table: each present component's byte range.
type table struct {
	n     int
	spans map[int]span
}

type span struct{ off, end int }

func (t table) component(i int) (span, bool) {
	s, ok := t.spans[i]
	return s, ok
}

// before returns the component that ends where off starts.
func (t table) before(off int) (span, bool) {
	for _, s := range t.spans {
		if s.end == off {
			return s, true
		}
	}
	return span{}, false
}

func parseTable(data []byte) (table, error) {
	if len(data) < tableStart {
		return table{}, errors.New("tesstest: not a traineddata file")
	}
	n := int(binary.LittleEndian.Uint32(data))
	if n < componentLSTM+1 || n > 1000 || len(data) < tableStart+8*n {
		return table{}, fmt.Errorf("tesstest: unexpected component count %d", n)
	}
	var offs []int
	t := table{n: n, spans: map[int]span{}}
	for i := range n {
		off := int64(binary.LittleEndian.Uint64(data[tableStart+8*i:]))
		if off >= 0 {
			offs = append(offs, int(off))
		}
	}
	slices.Sort(offs)
	for i := range n {
		off := int64(binary.LittleEndian.Uint64(data[tableStart+8*i:]))
		if off < 0 {
			continue
		}
		end := len(data)
		if k, _ := slices.BinarySearch(offs, int(off)); k+1 < len(offs) {
			end = offs[k+1]
		}
		t.spans[i] = span{int(off), end}
	}
	return t, nil
}

// resize rebuilds the file with component i cut to size bytes and every
// later offset moved to match.
func (t table) resize(data []byte, i, size int) []byte {
	cut := t.spans[i].end - t.spans[i].off - size
	out := slices.Clone(data[:tableStart+8*t.n])
	for j := range t.n {
		s, ok := t.spans[j]
		if ok && s.off > t.spans[i].off {
			binary.LittleEndian.PutUint64(out[tableStart+8*j:], uint64(s.off-cut))
		}
	}
	out = append(out, data[tableStart+8*t.n:t.spans[i].off+size]...)
	return append(out, data[t.spans[i].end:]...)
}

// network is where the bytes the corruptions change lie, as offsets into
// the whole file.
type network struct {
	inputHeight  int // the Input layer's shape: batch, height, ...
	maxpoolScale int // the Maxpool layer's x_scale, y_scale
	outputMode   int // the output layer's weight matrix: mode, dim1, dim2
	outputScales int // its scales vector's element count
}

// netReader walks an LSTM network as Network::CreateFromFile reads it.
type netReader struct {
	b    []byte
	pos  int
	base int
	net  network
	err  error
}

func parseNetwork(b []byte, base int) (network, error) {
	r := &netReader{b: b, base: base}
	r.layer()
	if r.err != nil {
		return network{}, fmt.Errorf("tesstest: reading the LSTM network: %w", r.err)
	}
	if r.net.inputHeight == 0 || r.net.maxpoolScale == 0 || r.net.outputMode == 0 {
		return network{}, errors.New("tesstest: the LSTM network lacks an Input, a Maxpool or an output layer")
	}
	return r.net, nil
}

func (r *netReader) need(n int) bool {
	if r.err == nil && (n < 0 || r.pos+n > len(r.b)) {
		r.err = fmt.Errorf("truncated at byte %d", r.pos)
	}
	return r.err == nil
}

func (r *netReader) u8() int {
	if !r.need(1) {
		return 0
	}
	r.pos++
	return int(r.b[r.pos-1])
}

func (r *netReader) u32() int {
	if !r.need(4) {
		return 0
	}
	r.pos += 4
	return int(binary.LittleEndian.Uint32(r.b[r.pos-4:]))
}

func (r *netReader) str() string {
	n := r.u32()
	if !r.need(n) {
		return ""
	}
	r.pos += n
	return string(r.b[r.pos-n : r.pos])
}

// Layer type names (network.cpp's kTypeNames) by family.
var (
	plumbing = []string{"Parallel", "Replicated", "ParBidiLSTM", "DepParUDLSTM", "Par2dLSTM", "Series", "RTLReversed", "TTBReversed", "XYTranspose"}
	lstms    = []string{"LSTM", "SummLSTM", "LSTMSoftmax", "LSTMBinarySoftmax"}
	dense    = []string{"Logistic", "LinLogistic", "LinTanh", "Tanh", "Relu", "Linear", "Softmax", "SoftmaxNoCTC"}
)

const layerLearningRates = 64 // NF_LAYER_SPECIFIC_LR

func (r *netReader) layer() {
	if t := r.u8(); t != 0 {
		r.err = fmt.Errorf("layer type %d stored as a number, not a name", t)
		return
	}
	kind := r.str()
	r.u8() // training
	r.u8() // needs_to_backprop
	flags := r.u32()
	r.u32() // ni
	r.u32() // no
	r.u32() // num_weights
	r.str() // name
	switch {
	case r.err != nil:
	case kind == "Input":
		r.net.inputHeight = r.base + r.pos + 4
		r.need(20)
		r.pos += 20 // batch, height, width, depth, loss type
	case kind == "Convolve", kind == "Maxpool", kind == "Reconfig":
		if kind == "Maxpool" {
			r.net.maxpoolScale = r.base + r.pos
		}
		r.need(8)
		r.pos += 8
	case slices.Contains(plumbing, kind):
		for range r.u32() {
			if r.layer(); r.err != nil {
				return
			}
		}
		if flags&layerLearningRates != 0 {
			n := r.u32()
			r.need(4 * n)
			r.pos += 4 * n
		}
	case slices.Contains(lstms, kind):
		r.u32() // na
		for range 4 {
			r.matrix()
		}
		if kind == "LSTMSoftmax" || kind == "LSTMBinarySoftmax" {
			r.layer()
		}
	case slices.Contains(dense, kind):
		r.net.outputMode = r.base + r.pos // the last dense layer is the output
		r.net.outputScales = r.matrix()
	default:
		r.err = fmt.Errorf("unknown layer type %q", kind)
	}
}

// matrix skips a WeightMatrix (int8 mode) and returns the file offset of
// its scales count.
func (r *netReader) matrix() int {
	if mode := r.u8(); mode&0x81 != 0x81 && r.err == nil {
		r.err = fmt.Errorf("weight matrix mode %#x: only int8 models are supported", mode)
	}
	dim1, dim2 := r.u32(), r.u32()
	r.u8() // empty
	r.need(dim1 * dim2)
	r.pos += dim1 * dim2
	at := r.base + r.pos
	n := r.u32()
	r.need(8 * n)
	r.pos += 8 * n
	return at
}
